"""What folding BatchNorm into the convolutions (kft.training.fold) saves: plain Keras vs ``kft.training.fold.call``.

    python benchmarks/fold_speed.py [--backbone mobilenet_v2] [--image-size 160] [--batches 10] [--repeats 3]

Three kinds of work make up a kft run's time (docs/results.md), each timed per image on
kft's own classifier and cut (``kft.training.cache.prefix_model`` and ``bridge`` at ``layer3``,
the default recipe's top stage), warm-up excluded, random weights (speed does not depend
on them):

- ``prefix``: the frozen stem .. layer2 forward over 32-px images, upsampling included,
  batch 64 (building the feature cache; the unlabelled pool's pass);
- ``scoring``: the whole classifier forward, batch 64 (test and pool scoring);
- ``top step``: one training step of layer3 + layer4 + head on cached features, batch
  32, Adam, BatchNorm in inference mode as kft trains it (the top stages).

Plain and folded alternate ``--repeats`` times in one process; the best of each is
compared, and the largest difference between their outputs (relative to the largest
output) is printed beside them.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--batches", type=int, default=10, help="timed batches per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="alternating plain/folded measurements")
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    from cpu_precision import CUT, per_image, top_stage  # the same model, cut and step
    from kft.training import fold

    model, prefix, _, make_step, inputs = top_stage(args.backbone, args.image_size)

    def plain(m, x):
        return m(x, training=False)

    variants = (("plain", plain), ("folded", fold.call))
    images, step_args = (inputs["images"],), (inputs["feats"], inputs["targets"])
    work = {  # name: (images per call, {variant: (fn, args)})
        "prefix": (64, {v: (tf.function(lambda x, r=r: r(prefix, x)), images) for v, r in variants}),
        "scoring": (64, {v: (tf.function(lambda x, r=r: r(model, x)), images) for v, r in variants}),
        "top step": (32, {v: (make_step(r), step_args) for v, r in variants}),
    }

    def rel_diff(m, x):  # largest |plain - folded| over the largest |plain|
        a, b = np.asarray(m(x, training=False)), np.asarray(fold.call(m, x))
        return float(np.abs(a - b).max() / np.abs(a).max())

    diff = {"prefix": rel_diff(prefix, *images), "scoring": rel_diff(model, *images)}

    print(f"{os.cpu_count()} CPUs; {args.backbone} at {args.image_size} px, cut at {CUT}; "
          f"{len(fold.pairs(model.get_layer('backbone')))} conv->BatchNorm pairs folded; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'work':<10}{'plain ms/img':>14}{'folded ms/img':>15}{'speed-up':>10}{'rel. diff':>12}")
    for name, (n, variants) in work.items():
        times = {"plain": [], "folded": []}
        for _ in range(args.repeats):  # alternate, so drift in the machine's speed hits both
            for v in times:
                times[v].append(per_image(*variants[v], n, args.batches))
        best = {v: min(t) for v, t in times.items()}
        d = f"{diff[name]:.1e}" if name in diff else "-"
        print(f"{name:<10}{best['plain']:>14.2f}{best['folded']:>15.2f}{best['plain'] / best['folded']:>9.2f}x{d:>12}")


if __name__ == "__main__":
    main()
