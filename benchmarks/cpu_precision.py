"""Does bfloat16 compute make the default recipe's CPU work faster? float32 vs Keras' mixed_bfloat16.

    python benchmarks/cpu_precision.py [--backbone mobilenet_v2] [--image-size 160] [--batches 10]

The default recipe (lp_ft_top) spends its time in two kinds of work (docs/results.md):

- ``prefix``: the frozen stem .. layer2 running forward over 32-px images (upsampling
  included), as when the feature cache is built and in two thirds of a test-set pass;
- ``top step``: a training step of layer3 + layer4 + head on cached features (the top stage).

Both use kft's own classifier and cut (``kft.cache.prefix_model`` and ``bridge`` at
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


def measure(policy: str, backbone: str, image_size: int, batches: int) -> dict:
    import numpy as np
    import tensorflow as tf
    import keras

    from kft.backbones.registry import HEAD_BLOCK
    from kft.cache import bridge, prefix_model
    from kft.model import build_classifier, set_trainable_blocks

    keras.mixed_precision.set_global_policy(policy)
    model = build_classifier(backbone, 10, image_size=image_size, input_size=32, weights="none", dropout=0.5)
    set_trainable_blocks(model, TOP_BLOCKS)
    prefix, trunk = prefix_model(model, CUT), bridge(model, CUT, HEAD_BLOCK)
    dropout, logits = model.get_layer("dropout"), model.get_layer("logits")
    train_vars = model.trainable_variables
    optimizer = keras.optimizers.Adam(1e-4)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)

    @tf.function
    def forward(images):
        return prefix(images, training=False)

    @tf.function
    def train_step(feats, targets):
        with tf.GradientTape() as tape:
            out = logits(dropout(trunk(feats, training=False), training=True))  # BatchNorm as kft trains it
            loss = loss_fn(targets, tf.cast(out, tf.float32))
        optimizer.apply_gradients(zip(tape.gradient(loss, train_vars), train_vars))
        return loss

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32"))
    feats = tf.constant(rng.standard_normal((32, *prefix.output.shape[1:])).astype("float32"))
    targets = tf.constant(np.eye(10, dtype="float32")[rng.integers(0, 10, 32)])

    def per_image(fn, args, n_images):
        for _ in range(2):
            fn(*args).numpy()
        t = time.perf_counter()
        for _ in range(batches):
            fn(*args).numpy()
        return (time.perf_counter() - t) / (batches * n_images) * 1000

    return {"policy": policy, "prefix_ms": per_image(forward, (images,), 64),
            "top_step_ms": per_image(train_step, (feats, targets), 32)}


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
