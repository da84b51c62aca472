"""``kft bench``: latency of .tflite (and, for comparison, .keras) models per thread count.

Each model x thread count gives one record: latency statistics of single-image
inference (warm-up excluded), file size, MACs counted from the model, the
effective GMAC/s (MACs / median latency) and the accuracy when a sibling
report knows it. Every input is checked before anything runs, and outputs are
written atomically only at the end, so an error leaves no file behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from kft.bench.inputs import bench_images
from kft.bench.report import accuracy_for
from kft.errors import KftError
from kft.lists import parse_list
from kft.machine import cpu_info
from kft.rundir.artifacts import open_artifact

_log = logging.getLogger(__name__)



def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; each a positive integer."""

    return list(parse_list(text, "threads", int, minimum=1))


def check_models(models) -> list[Path]:
    """The model files: each a .tflite or .keras file, or a run folder (its model.keras)."""
    if not models:
        raise KftError("no model given: kft bench MODEL.tflite [MODEL.keras ...]")

    return [open_artifact(m).model_path for m in models]  # a run folder: its model.keras


def benchmark(models, threads=(1,), runs: int = 50, warmup: int = 5, images_dir=None) -> tuple[list[dict], dict]:
    """Benchmark every model at every thread count; returns (records, context for the header)."""

    paths = check_models(models)
    if runs < 1 or warmup < 0:
        raise KftError(f"`runs` must be >= 1 and `warmup` >= 0 (got {runs} and {warmup})")
    threads = [int(t) for t in threads]
    if not threads or min(threads) < 1:
        raise KftError("`threads`: every thread count must be >= 1")
    images, source = bench_images(images_dir)
    labels = short_labels(paths)
    cpu = cpu_info()
    records, runtimes = [], []
    for path, label in zip(paths, labels):
        accuracy, accuracy_source = accuracy_for(path)
        for n in threads:
            _log.info(f"{path.name}: {n} thread{'s' * (n > 1)} ...")
            rec, runtime = _one(path, n, images, runs, warmup)
            rec.update(label=label, accuracy=accuracy, accuracy_source=accuracy_source, images=source, cpu=cpu["cpu"])
            records.append(rec)
            if runtime not in runtimes:
                runtimes.append(runtime)
    return records, {"cpu": cpu, "runtimes": runtimes, "images": source, "runs": runs, "warmup": warmup}


def short_labels(paths: list[Path]) -> list[str]:
    """File names; a name shared by different files gets parent folders until it is unique
    (``run1/model_int8.tflite`` vs ``run2/model_int8.tflite``)."""
    parts = [p.resolve().parts for p in paths]
    depth = [1] * len(paths)
    for _ in range(max((len(p) for p in parts), default=1)):
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashes = {lab for i, lab in enumerate(labels) if any(
            lab == other and parts[i] != parts[j] for j, other in enumerate(labels))}
        if not clashes:
            break
        depth = [d + 1 if lab in clashes else d for lab, d in zip(labels, depth)]
    return labels


def _one(path: Path, n: int, images, runs: int, warmup: int) -> tuple[dict, str]:
    if path.suffix.lower() == ".tflite":
        from kft.bench.macs import tflite_macs
        from kft.bench.tflite_timing import runtime_name, time_tflite

        result = time_tflite(path, n, images, runs, warmup)
        result["macs"] = tflite_macs(path)
        runtime = f"{runtime_name()} ({'XNNPACK' if result['xnnpack'] else 'built-in kernels'})"
        kind = "tflite"
    else:
        from kft.bench.keras_timing import time_keras

        result = time_keras(path, n, images, runs, warmup)
        runtime = result["runtime"] + " (tf.function, one process per thread count)"
        kind = "keras"
    times = np.asarray(result["times_ms"], dtype=np.float64)
    median = float(np.median(times))
    record = {
        "model": os.fspath(path), "name": path.name, "kind": kind, "threads": n,
        "threads_observed": result.get("threads_observed"),
        "median_ms": median, "p90_ms": float(np.percentile(times, 90)), "min_ms": float(times.min()),
        "mean_ms": float(times.mean()), "runs": int(len(times)), "warmup": warmup,
        "size_bytes": path.stat().st_size, "macs": int(result["macs"]),
        "gmacs_per_s": result["macs"] / (median / 1e3) / 1e9 if median > 0 else None,
        "input_shape": result["input_shape"], "input_dtype": result["input_dtype"], "runtime": runtime,
    }
    if kind == "tflite":
        record["xnnpack"] = bool(result["xnnpack"])
        record["xnnpack_partitions"] = int(result["xnnpack_partitions"])
    return record, runtime
