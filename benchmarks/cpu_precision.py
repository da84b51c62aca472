"""Does bfloat16 compute make the default recipe's CPU work faster? float32 vs Keras' mixed_bfloat16.

    python benchmarks/cpu_precision.py [--backbone mobilenet_v2] [--image-size 160] [--batches 10]

The default recipe (lp_ft_top) spends its time in two kinds of work (docs/results.md):

- ``prefix``: the frozen stem .. layer2 running forward over 32-px images (upsampling
  included), as when the feature cache is built and in two thirds of a test-set pass;
- ``top step``: a training step of layer3 + layer4 + head on cached features (the top stage).

Both use kft's own classifier and cut (``kft.training.cache.prefix_model`` and ``bridge`` at
``layer3``), timed per image, in a fresh process per precision policy (a Keras policy is
global and must be set before the model is built), warm-up excluded. Random weights:
speed does not depend on them. The script prints which bfloat16 flags the CPU reports
(``avx512_bf16``, ``amx_bf16``): they decide whether oneDNN has native bfloat16 kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CUT = "layer3"  # the top stage's first trainable block: its input is what the cache holds
TOP_BLOCKS = ["layer3", "layer4", "head"]


def top_stage(backbone: str, image_size: int):
    """kft's classifier cut as the default recipe's top stage: (model, prefix, trunk,
    make_step, inputs). ``make_step(run)`` is a ``tf.function`` train step of layer3 +
    layer4 + head on cached features, calling the trunk as ``run(trunk, x)``; ``inputs``
    holds 64 random 32-px images and a batch of 32 features with targets."""
    import numpy as np
    import tensorflow as tf
    import keras

    from kft.backbones.registry import HEAD_BLOCK
    from kft.training.cache import bridge, prefix_model
    from kft.model import build_classifier, set_trainable_blocks

    model = build_classifier(backbone, 10, image_size=image_size, input_size=32, weights="none", dropout=0.5)
    set_trainable_blocks(model, TOP_BLOCKS)
    prefix, trunk = prefix_model(model, CUT), bridge(model, CUT, HEAD_BLOCK)
    dropout, logits = model.get_layer("dropout"), model.get_layer("logits")
    train_vars = model.trainable_variables
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)

    def make_step(run):
        optimizer = keras.optimizers.Adam(1e-4)

        @tf.function
        def train_step(feats, targets):
            with tf.GradientTape() as tape:
                out = logits(dropout(run(trunk, feats), training=True))
                loss = loss_fn(targets, tf.cast(out, tf.float32))
            optimizer.apply_gradients(zip(tape.gradient(loss, train_vars), train_vars))
            return loss
        return train_step

    rng = np.random.default_rng(0)
    inputs = {"images": tf.constant(rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")),
              "feats": tf.constant(rng.standard_normal((32, *prefix.output.shape[1:])).astype("float32")),
              "targets": tf.constant(np.eye(10, dtype="float32")[rng.integers(0, 10, 32)])}
    return model, prefix, trunk, make_step, inputs


def per_image(fn, args, n_images: int, batches: int) -> float:
    """Milliseconds per image of ``fn(*args)`` over ``batches`` calls, after 2 warm-up calls."""
    for _ in range(2):
        fn(*args).numpy()
    t = time.perf_counter()
    for _ in range(batches):
        fn(*args).numpy()
    return (time.perf_counter() - t) / (batches * n_images) * 1000


def measure(policy: str, backbone: str, image_size: int, batches: int) -> dict:
    import tensorflow as tf
    import keras

    keras.mixed_precision.set_global_policy(policy)  # before the model is built
    _, prefix, _, make_step, inputs = top_stage(backbone, image_size)
    # BatchNorm as kft trains it: the trunk called with training=False
    train_step = make_step(lambda trunk, feats: trunk(feats, training=False))

    @tf.function
    def forward(images):
        return prefix(images, training=False)

    return {"policy": policy,
            "prefix_ms": per_image(forward, (inputs["images"],), 64, batches),
            "top_step_ms": per_image(train_step, (inputs["feats"], inputs["targets"]), 32, batches)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--batches", type=int, default=10, help="timed batches per measurement")
    ap.add_argument("--policy", help=argparse.SUPPRESS)  # internal: measure one policy in this process
    args = ap.parse_args()
    if args.policy:
        print(json.dumps(measure(args.policy, args.backbone, args.image_size, args.batches)))
        return
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    bf16 = sorted(f for f in flags if "bf16" in f) or ["none"]
    print(f"{os.cpu_count()} CPUs, bfloat16 CPU flags: {', '.join(bf16)}; {args.backbone} at {args.image_size} px; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'policy':<16}{'prefix ms/img':>15}{'top step ms/img':>17}")
    rows = {}
    for policy in ("float32", "mixed_bfloat16", "float32"):  # float32 twice: the drift between its runs
        out = subprocess.run([sys.executable, __file__, "--policy", policy, "--backbone", args.backbone,
                              "--image-size", str(args.image_size), "--batches", str(args.batches)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.setdefault(policy, []).append(r)
        print(f"{policy:<16}{r['prefix_ms']:>15.2f}{r['top_step_ms']:>17.2f}")
    f32, b16 = rows["float32"], rows["mixed_bfloat16"][0]
    for key, name in (("prefix_ms", "prefix"), ("top_step_ms", "top step")):
        best = min(r[key] for r in f32)
        print(f"{name}: mixed_bfloat16 takes {b16[key] / best:.2f}x the best float32 time")


if __name__ == "__main__":
    main()
