"""``kft bench``: latency of .tflite (and, for comparison, .keras) models per thread count.

Each model x thread count gives one record: latency statistics of single-image
inference (warm-up excluded), file size, MACs counted from the model, the
effective GMAC/s (MACs / median latency) and the accuracy when a sibling
report knows it. Every input is checked before anything runs, and outputs are
written atomically only at the end, so an error leaves no file behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from kft.errors import KftError

SUFFIXES = (".tflite", ".keras")
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; each a positive integer."""
    from kft.lists import parse_list

    return list(parse_list(text, "threads", int, minimum=1))


def check_models(models) -> list[Path]:
    """The model paths, each an existing file with a supported suffix."""
    if not models:
        raise KftError("no model given: kft bench MODEL.tflite [MODEL.keras ...]")
    paths = []
    for m in models:
        p = Path(m)
        if p.suffix.lower() not in SUFFIXES:
            raise KftError(f"{p}: unsupported model type {p.suffix or '(no suffix)'!r}; "
                           f"choose one of: {', '.join(SUFFIXES)}")
        if not p.is_file():
            raise KftError(f"{p}: no such file")
        paths.append(p)
    return paths


def benchmark(models, threads=(1,), runs: int = 50, warmup: int = 5, images_dir=None,
              log=None) -> tuple[list[dict], dict]:
    """Benchmark every model at every thread count; returns (records, context for the header)."""
    from kft.bench.inputs import bench_images
    from kft.bench.report import accuracy_for
    from kft.machine import cpu_info

    paths = check_models(models)
    if runs < 1 or warmup < 0:
        raise KftError(f"--runs must be >= 1 and --warmup >= 0 (got {runs} and {warmup})")
    threads = [int(t) for t in threads]
    if not threads or min(threads) < 1:
        raise KftError("--threads: every thread count must be >= 1")
    images, source = bench_images(images_dir)
    labels = short_labels(paths)
    cpu = cpu_info()
    records, runtimes = [], []
    for path, label in zip(paths, labels):
        accuracy, accuracy_source = accuracy_for(path)
        for n in threads:
            if log:
                log(f"{path.name}: {n} thread{'s' * (n > 1)} ...")
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


def run_bench(models, threads: str = "1", runs: int = 50, warmup: int = 5, json_path=None, plot_path=None,
              images_dir=None, echo=print, warn=None) -> list[dict]:
    """The ``kft bench`` command: benchmark, print the table, write --json and --plot."""
    from kft import atomic
    from kft.bench.report import format_table, header, plot_pareto

    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    thread_counts = parse_threads(threads)
    check_models(models)
    for p, what in ((json_path, "--json"), (plot_path, "--plot")):
        if p is not None and Path(p).is_dir():
            raise KftError(f"{what} {p} is a folder; give a file name")
    if plot_path is not None and Path(plot_path).suffix.lower() not in PLOT_SUFFIXES:
        raise KftError(f"--plot {plot_path}: unsupported image type; choose one of: {', '.join(PLOT_SUFFIXES)}")

    records, ctx = benchmark(models, thread_counts, runs, warmup, images_dir, log=warn)
    echo(header(ctx["cpu"], ctx["runtimes"], ctx["images"], runs, warmup))
    echo(format_table(records))
    if json_path is not None:
        try:
            atomic.write_json(json_path, records)
        except OSError as e:
            raise KftError(f"cannot write {json_path} ({e.strerror or e})") from None
    if plot_path is not None:
        if plot_pareto(records, plot_path) == 0:
            warn(f"warning: no model has a known accuracy (no export_report.json / metrics.json beside it); "
                 f"{plot_path} not written")
    return records
