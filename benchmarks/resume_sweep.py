"""Kill a small run with SIGKILL at random moments, resume it, and count identical results.

    python benchmarks/resume_sweep.py [--kills 10] [--seed 0] [--out benchmarks/out/resume_sweep]

Needs KFT_DATA_DIR (CIFAR-10) and KFT_WEIGHTS_DIR (MobileNetV2 ImageNet weights). One reference
run, then for each kill: start the same run, SIGKILL it after a random time drawn over the
reference run's whole duration, ``kft train --resume`` it, and compare history (without the
seconds column), test accuracy, confusion matrix and model weights with the reference. Timers land
on different points on every machine, which is why tests use named kill points
(``KFT_TEST_KILL_AT``, tests/test_run_safety.py) instead; this script is the end-to-end check.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ARGS = ["mobilenet_v2", "--max-epochs", "4", "--samples-per-class", "20", "--limit-test", "200",
        "--image-size", "64", "--seed", "3"]


def _train(out: Path, kill_after: float | None = None) -> float:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "kft", "train", *ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.time() - t


def _summary(run: Path) -> dict:
    import keras

    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader((run / "history.csv").open())]
    m = json.loads((run / "metrics.json").read_text())
    weights = keras.saving.load_model(run / "model.keras").get_weights()
    return {"history": rows, "test_accuracy": m["test_accuracy"], "confusion": m["confusion_matrix"],
            "weights": weights}


def _same(a: dict, b: dict) -> bool:
    import numpy as np

    return (a["history"] == b["history"] and a["test_accuracy"] == b["test_accuracy"]
            and a["confusion"] == b["confusion"]
            and all(np.array_equal(x, y) for x, y in zip(a["weights"], b["weights"], strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/out/resume_sweep")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    duration = _train(out / "reference")
    ref = _summary(out / "reference")
    print(f"reference run: {duration:.0f} s, test accuracy {ref['test_accuracy']:.4f}", flush=True)
    rng = random.Random(args.seed)
    identical = 0
    for k in range(args.kills):
        run = out / f"kill{k}"
        at = rng.uniform(0.1, 0.98) * duration
        _train(run, kill_after=at)
        finished_anyway = (run / "metrics.json").exists()
        resumed = subprocess.run([sys.executable, "-m", "kft", "train", "--resume", str(run)],
                                 capture_output=True, text=True)
        first = (resumed.stdout.splitlines() or [""])[0]
        if resumed.returncode != 0 and "not a kft run folder" in resumed.stderr:
            # killed while loading data, before the run folder held anything: a user starts it again
            first = "nothing written yet; started again with the same command"
            _train(run)
        ok = (finished_anyway or resumed.returncode == 0 or first.startswith("nothing")) and \
            _same(_summary(run), ref)
        identical += ok
        print(f"kill {k + 1}: after {at:5.1f} s -> {'finished before the kill' if finished_anyway else first[:90]}"
              f" -> {'identical' if ok else 'DIFFERENT'}", flush=True)
    print(f"{identical} of {args.kills} random kill points resumed to an identical result")


if __name__ == "__main__":
    main()
