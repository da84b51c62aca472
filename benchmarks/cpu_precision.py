"""Does bfloat16 compute make the default recipe's CPU work faster? float32 vs Keras' mixed_bfloat16.

    python benchmarks/cpu_precision.py [--image-size 160] [--batches 10]

The default MobileNetV2 recipe spends its time in two kinds of work (docs/results.md):

- ``prefix``: the frozen stem .. layer2 running forward over the images (building the
  feature cache, and two thirds of a test-set forward pass);
- ``top step``: a training step of layer3 + layer4 + head on cached features (the top stage).

Each is timed per image, in a fresh process per precision policy (a Keras policy is
global and must be set before the model is built), with warm-up excluded. The blocks
are keras.applications' MobileNetV2 cut at the same place kft's block map cuts it
(``block_5_add``, the input of ``layer3``). Random weights: speed does not depend on them.
The CPU's flags decide whether oneDNN has native bfloat16 kernels (``avx512_bf16``,
``amx_bf16``); the script prints which of them the CPU reports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CUT = "block_5_add"  # MobileNetV2's layer2 output = layer3's input in kft's block map


def measure(policy: str, image_size: int, batches: int) -> dict:
    import numpy as np
    import tensorflow as tf
    import keras

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False, weights=None)
    prefix = keras.Model(base.input, base.get_layer(CUT).output)
    # the suffix as its own model: the layers after the cut, called in order on a new input
    feats_in = keras.Input(base.get_layer(CUT).output.shape[1:])
    tensors = {CUT: feats_in}
    names = [layer.name for layer in base.layers]
    for layer in base.layers[names.index(CUT) + 1:]:
        inbound = layer._inbound_nodes[0].input_tensors
        inbound = inbound if isinstance(inbound, (list, tuple)) else [inbound]
        args = [tensors[t._keras_history[0].name] for t in inbound]
        tensors[layer.name] = layer(args if len(args) > 1 else args[0], training=False)
    x = keras.layers.GlobalAveragePooling2D()(tensors[base.layers[-1].name])
    x = keras.layers.Dropout(0.5)(x)
    top = keras.Model(feats_in, keras.layers.Dense(10, dtype="float32")(x))
    optimizer = keras.optimizers.Adam(1e-4)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)

    @tf.function
    def forward(images):
        return prefix(images, training=False)

    @tf.function
    def train_step(feats, targets):
        with tf.GradientTape() as tape:
            loss = loss_fn(targets, top(feats, training=True))
        grads = tape.gradient(loss, top.trainable_variables)
        optimizer.apply_gradients(zip(grads, top.trainable_variables))
        return loss

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (64, image_size, image_size, 3)).astype("float32"))
    feats = tf.constant(rng.standard_normal((32, *feats_in.shape[1:])).astype("float32"))
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
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--batches", type=int, default=10, help="timed batches per measurement")
    ap.add_argument("--policy", help=argparse.SUPPRESS)  # internal: measure one policy in this process
    args = ap.parse_args()
    if args.policy:
        print(json.dumps(measure(args.policy, args.image_size, args.batches)))
        return
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    bf16 = sorted(f for f in flags if "bf16" in f) or ["none"]
    print(f"{os.cpu_count()} CPUs, bfloat16 CPU flags: {', '.join(bf16)}; MobileNetV2 at {args.image_size} px; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'policy':<16}{'prefix ms/img':>15}{'top step ms/img':>17}")
    rows = {}
    for policy in ("float32", "mixed_bfloat16", "float32"):  # float32 twice: the drift between its runs
        out = subprocess.run([sys.executable, __file__, "--policy", policy, "--image-size", str(args.image_size),
                              "--batches", str(args.batches)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.setdefault(policy, []).append(r)
        print(f"{policy:<16}{r['prefix_ms']:>15.2f}{r['top_step_ms']:>17.2f}")
    f32, b16 = rows["float32"], rows["mixed_bfloat16"][0]
    for key, name in (("prefix_ms", "prefix"), ("top_step_ms", "top step")):
        best = min(r[key] for r in f32)
        print(f"{name}: mixed_bfloat16 takes {b16[key] / best:.2f}x the best float32 time")


if __name__ == "__main__":
    main()
