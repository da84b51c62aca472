"""Per-epoch time of the default MobileNetV2 plan's stages, cached vs uncached, in one run.

    KFT_DATA_DIR=... KFT_WEIGHTS_DIR=... python benchmarks/cache_speed.py [--epochs 2] [--backbone mobilenet_v2]

For each stage of the shipped two_stage plan: the one-off cost of building the
feature cache (K augmented views + validation features), then the mean time of
a training epoch plus validation, with the cache and without (``cache: off``:
the whole network runs forward every epoch). Same data, same weights, same
process, stages interleaved so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v2")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per stage and mode")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from kft.config import strategy_plan
    from kft.data import load_few_shot
    from kft.model import build_classifier
    from kft.train import StageTrainer

    plan = strategy_plan(args.backbone, "two_stage")
    data = load_few_shot(samples_per_class=plan.samples_per_class, val_per_class=plan.val_per_class, seed=args.seed)
    model = build_classifier(plan.backbone, 10, image_size=plan.image_size, input_size=32, weights="imagenet",
                             dropout=plan.dropout, seed=args.seed)
    start = [v.numpy() for v in model.weights]
    print(f"{plan.backbone} two_stage at {plan.image_size} px, {len(data.train.y)} train + {len(data.val.y)} val "
          f"images, batch {plan.batch_size}, {plan.cache_views} cached views; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average {os.getloadavg()[0]:.1f}")
    rows = []
    for i, stage in enumerate(plan.stages):
        for mode in ("auto", "off"):
            for v, w in zip(model.weights, start):
                v.assign(w)
            p = dataclasses.replace(plan, cache=mode)
            trainer = StageTrainer(model, p, stage, i, data, args.seed, log=lambda *_: None)
            t = time.perf_counter()
            trainer._prepare()
            setup = time.perf_counter() - t
            trainer._epoch(0)  # trace the train step outside the timing
            trainer.validate()
            times = []
            for e in range(1, args.epochs + 1):
                t = time.perf_counter()
                trainer._epoch(e)
                trainer.validate()
                times.append(time.perf_counter() - t)
            rows.append((stage.name, mode, setup, sum(times) / len(times), trainer.cache_mb))
            print(f"  {stage.name:<7} cache={mode:<4} setup {setup:6.1f}s  epoch+val {rows[-1][3]:6.2f}s"
                  + (f"  cache {trainer.cache_mb:.0f} MB" if trainer.cached else ""), flush=True)
    print("\nstage    uncached epoch   cached epoch   speed-up   cache build (one-off)")
    for name in dict.fromkeys(r[0] for r in rows):
        cached = next(r for r in rows if r[0] == name and r[1] == "auto")
        plain = next(r for r in rows if r[0] == name and r[1] == "off")
        print(f"{name:<8} {plain[3]:12.2f}s {cached[3]:12.2f}s {plain[3] / cached[3]:9.1f}x {cached[2]:12.1f}s")


if __name__ == "__main__":
    main()
