"""Peak memory and time of a large image folder: decoded into memory vs kept on disk (data budget).

    python benchmarks/folder_memory.py [--images 4000] [--size 160] [--budget-mb 64]

Writes ``--images`` JPEG photos (3 classes, 128 px, smooth random content) to a temporary
folder, then, in a fresh process per mode: ``load_few_shot`` of the folder at ``--size``
px (the decode pass), then one epoch of training batches (32 images, augmented, shuffled)
through ``kft.training.pipeline.image_batches``. Prints, per mode, the seconds of each step, the
process's peak resident memory (``VmHWM``) and, after the epoch, its anonymous memory
(``RssAnon``: what the process itself holds) apart from mapped file pages (``RssFile``: the
page cache of the on-disk images, which the kernel drops under memory pressure). Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(folder: str, size: int, budget: float | None) -> None:
    import numpy as np
    import tensorflow as tf

    from kft.training import pipeline
    from kft.training.augment import make_augmenter
    from kft.plan import Augment
    from kft.data import load_few_shot, ondisk

    tf.constant(1) + 1  # TensorFlow started: its own memory is the baseline
    baseline = _status()["VmRSS"]
    t = time.perf_counter()
    data = load_few_shot(folder=folder, image_size=size, seed=0, memory_budget_mb=budget)
    load_s = time.perf_counter() - t
    n = len(data.train.y)
    order = np.random.default_rng(0).permutation(n)
    seeds = np.arange(2 * pipeline.n_batches(n, 32), dtype=np.int32).reshape(-1, 2)
    t = time.perf_counter()
    for _x, _y in pipeline.image_batches(data.train.x, data.train.y, 32, order=order,
                                         augmenter=make_augmenter(Augment()), seeds=seeds):
        pass
    epoch_s = time.perf_counter() - t
    print(json.dumps({"on_disk": ondisk.on_disk(data.train.x), "train": n, "val": len(data.val.y),
                      "decoded_mb": round(data.train.x.nbytes / 2**20 + data.val.x.nbytes / 2**20, 1),
                      "load_s": round(load_s, 1), "epoch_s": round(epoch_s, 1), "baseline_rss_mb": baseline,
                      **{f"{k}_mb": v for k, v in _status().items() if k != "VmRSS"}}))


def _status() -> dict:
    """Memory lines of /proc/self/status, in MB."""
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024)
    return out


def make_folder(root: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 3}"
        d.mkdir(exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((128, 128), Image.BILINEAR).save(d / f"{i:06d}.jpg", quality=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--budget-mb", type=float, default=64)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        folder, size, budget = args.worker
        return worker(folder, int(size), None if budget == "none" else float(budget))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        make_folder(Path(tmp), args.images)
        print(f"wrote {args.images} JPEGs (128 px) in {time.perf_counter() - t:.0f} s; decoding at {args.size} px")
        rows = []
        for label, budget in (("in memory (no budget)", "none"), (f"on disk (budget {args.budget_mb:g} MB)",
                                                                   str(args.budget_mb))):
            out = subprocess.run([sys.executable, __file__, "--worker", tmp, str(args.size), budget],
                                 capture_output=True, text=True, check=True, env={**_env(), "KFT_PROGRESS": "off"})
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(label, r, flush=True)
            rows.append((label, r))
    print("\n| mode | decoded MB | RSS with TF only | peak RSS | anonymous after epoch | file pages after epoch "
          "| decode s | one epoch of batches s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {r['decoded_mb']} | {r['baseline_rss_mb']} | {r['VmHWM_mb']} | {r['RssAnon_mb']} "
              f"| {r['RssFile_mb']} | {r['load_s']} | {r['epoch_s']} |")


def _env():
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


if __name__ == "__main__":
    main()
