"""Per-epoch time of the default MobileNetV2 plan's stages, cached vs uncached, in one run.

    KFT_DATA_DIR=... KFT_WEIGHTS_DIR=... python benchmarks/cache_speed.py [--epochs 3] [--xla]

For each stage of the shipped two_stage plan, three ways of feeding it:

- ``shared``: what ``kft train`` does. One FeatureCache for the whole run: the
  images go through the frozen high-resolution prefix once (K augmented views +
  validation), at the lowest cut of any stage; each stage derives its own cut.
- ``per-stage``: each stage builds its own cache straight from the images.
- ``off``: no cache, the whole network runs forward every epoch (augmentation
  in the tf.data pipeline).

It prints the one-off cost of building the features and the median time of a
training epoch plus validation. Same data, same starting weights, same process;
the modes' epochs are interleaved so drifting machine load hits every mode
alike. ``--xla`` adds stage-1 rows with the train and eval steps compiled by XLA
(``jit_compile=True``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per stage and mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--xla", action="store_true", help="also time stage 1 with XLA-compiled steps")
    args = ap.parse_args()

    from kft.training.cache import FeatureCache
    from kft.plan import build_plan
    from kft.data import load_few_shot
    from kft.model import build_classifier
    from kft.training.trainer import StageTrainer

    plan = build_plan(args.backbone, "two_stage")
    data = load_few_shot(samples_per_class=plan.samples_per_class, val_per_class=plan.val_per_class, seed=args.seed)
    model = build_classifier(plan.backbone, 10, image_size=plan.image_size, input_size=32, weights="imagenet",
                             dropout=plan.dropout, seed=args.seed)
    start = [v.numpy() for v in model.weights]
    print(f"{plan.backbone} two_stage at {plan.image_size} px, {len(data.train.y)} train + {len(data.val.y)} val "
          f"images, batch {plan.batch_size}, {plan.cache_views} cached views; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average {os.getloadavg()[0]:.1f}")
    shared = FeatureCache(model, plan, data, args.seed)

    def features_for(mode, stage):
        if mode == "shared":
            return shared
        if mode == "per-stage":
            return FeatureCache(model, dataclasses.replace(plan, stages=[stage]), data, args.seed)
        return None

    modes = [("shared", False), ("per-stage", False), ("off", False)]
    rows = []
    for i, stage in enumerate(plan.stages):
        for v, w in zip(model.weights, start):
            v.assign(w)
        trainers = {}
        for mode, xla in modes + ([("shared", True), ("off", True)] if args.xla and i == 0 else []):
            p = dataclasses.replace(plan, cache="off" if mode == "off" else "auto")
            t = time.perf_counter()  # construction builds (or derives) the stage's cached features
            trainer = StageTrainer(model, p, stage, i, data, args.seed, features=features_for(mode, stage),
                                   jit_compile=xla)
            build = time.perf_counter() - t
            trainer.train_epoch(0)  # trace the steps outside the timing
            trainer.validate()
            trainers[mode + (" +xla" if xla else "")] = (trainer, build, [])
        # Round-robin: epoch e of every mode before epoch e + 1, so drifting machine load hits all alike.
        # (The modes train the same model in turn; only their speed is measured here.)
        for e in range(1, args.epochs + 1):
            for trainer, _, times in trainers.values():
                t = time.perf_counter()
                trainer.train_epoch(e)
                trainer.validate()
                times.append(time.perf_counter() - t)
        for label, (trainer, build, times) in trainers.items():
            rows.append((stage.name, label, build, statistics.median(times)))
            print(f"  {stage.name:<7} {label:<14} build {build:6.1f}s  epoch+val median {rows[-1][3]:6.2f}s "
                  f"(of {', '.join(f'{t:.2f}' for t in times)})"
                  + (f"  cache {trainer.cache_mb:.0f} MB" if trainer.cached else ""), flush=True)

    print("\nstage    mode            feature build   epoch+val   speed-up vs off")
    for name, label, setup, epoch in rows:
        off = next(r[3] for r in rows if r[0] == name and r[1] == "off")
        print(f"{name:<8} {label:<14} {setup:12.1f}s {epoch:10.2f}s {off / epoch:12.1f}x")


if __name__ == "__main__":
    main()
