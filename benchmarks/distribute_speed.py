"""Training throughput (images/s) of the default plan's stages with 1 device vs N replicas.

    python benchmarks/distribute_speed.py [--backbone mobilenet_v2] [--replicas 2] [--epochs 2]

Each setting runs in its own process (``KFT_LOGICAL_CPUS`` must be set before TensorFlow
starts): ``none`` is the plain single-device loop; ``mirrored`` is MirroredStrategy over
``--replicas`` logical CPUs here, or the GPUs where there are some. For each stage: the
stage's inputs come from the shared feature cache exactly as in ``kft train``; one warm-up
epoch traces the steps, then ``--epochs`` timed epochs; images/s = training images / median
epoch seconds. Prints one line per (mode, stage) and a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(args) -> None:
    from kft.training.distribute import make_strategy

    strategy = make_strategy(args.mode)
    import numpy as np

    from kft.training.cache import FeatureCache
    from kft.plan import build_plan
    from kft.data import load_few_shot
    from kft.training.initial import initial_model
    from kft.training.trainer import StageTrainer, scope

    plan = build_plan(args.backbone, "two_stage")
    data = load_few_shot(samples_per_class=plan.samples_per_class, val_per_class=plan.val_per_class, seed=0)
    model = initial_model(plan, len(data.class_names), int(data.train.x.shape[1]), 0, "imagenet", strategy)
    with scope(strategy):
        features = FeatureCache(model, plan, data, 0)
    for i, stage in enumerate(plan.stages):
        trainer = StageTrainer(model, plan, stage, i, data, 0, features, strategy=strategy)
        trainer.train_epoch(0)  # traces the step
        times = []
        for e in range(1, args.epochs + 1):
            t = time.perf_counter()
            trainer.train_epoch(e)
            times.append(time.perf_counter() - t)
        n = len(data.train.y)
        print(json.dumps({"mode": args.mode, "replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
                          "stage": stage.name, "images": n, "epoch_s": float(np.median(times)),
                          "images_per_s": n / float(np.median(times))}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        return worker(args)
    rows = []
    for mode in ("none", "mirrored"):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KFT_PROGRESS": "off"}
        if mode == "mirrored":
            env["KFT_LOGICAL_CPUS"] = str(args.replicas)
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--backbone", args.backbone, "--epochs",
                              str(args.epochs)], env=env, capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                rows.append(json.loads(line))
                print(line, flush=True)
    print(f"\n{args.backbone}, {os.cpu_count()} CPUs, default two_stage plan, cached stages")
    print("| mode | replicas | stage | epoch (s) | images/s |\n|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['replicas']} | {r['stage']} | {r['epoch_s']:.2f} | {r['images_per_s']:.0f} |")


if __name__ == "__main__":
    main()
