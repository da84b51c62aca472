"""The accuracy guard of every export: a variant that falls too far below Keras is never shipped silently.

Each variant is scored through the interpreter on held-out images (the test set, or
a folder run's validation split). When its accuracy is more than
``max_accuracy_drop`` points below the Keras model's, the export first tries the
variant's fallback (``fallback_for``); if that still falls short, the variant is
marked FAILED in the report with its figures and its file is not written (a file
of that name left by an earlier export is removed), and ``kft export`` ends with
a one-line error after writing the other variants. Without held-out images the
guard cannot check, and the report says so.
"""

from __future__ import annotations

from dataclasses import replace

DEFAULT_MAX_ACCURACY_DROP = 1.0  # percentage points below the Keras model
OK, FAILED, UNCHECKED = "ok", "FAILED", "unchecked"



def drop_points(row: dict, keras_row: dict) -> float | None:
    """How many accuracy points ``row`` is below the Keras model, or None if either is unscored."""
    if row.get("accuracy") is None or keras_row.get("accuracy") is None:
        return None
    return round(100.0 * (keras_row["accuracy"] - row["accuracy"]), 4)


def allowed_drop(max_accuracy_drop: float, n_images: int) -> float:
    """The drop that passes: ``max_accuracy_drop``, but never less than one image's worth
    (100 / n points): on a small validation split one image flipping is no evidence."""
    return max(max_accuracy_drop, 100.0 / n_images if n_images else 0.0) + 1e-9


def verdict(row: dict, keras_row: dict, max_accuracy_drop: float, n_images: int) -> str:
    drop = drop_points(row, keras_row)
    if drop is None:
        return UNCHECKED
    return OK if drop <= allowed_drop(max_accuracy_drop, n_images) else FAILED


def fallback_for(quant, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP):
    """The safer conversion to try when ``quant`` fails the guard, or None.

    int8: selective quantization ("float islands", as in TensorFlow's quantization-debugger
    guide): the nodes whose int8 error moves the output most, measured one at a time on
    the calibration images, stay in float until the file agrees with the float model's
    top-1 on all but ``max_accuracy_drop`` percent of them, or half of those nodes are float
    (``kft.export.quant_debug.selective_int8``); the file stays mostly int8. Float variants
    have no fallback.
    """
    if quant.name == "int8" and not quant.selective:
        return replace(quant, selective=True, island_agreement=1.0 - max_accuracy_drop / 100.0)
    return None


ISLAND_TIMING_RUNS = 30  # single-image runs per model, after 3 untimed ones, at 1 thread


def island_speed(int8_model: bytes, float32_model: bytes, images) -> dict:
    """Is an int8 file with float islands still faster than float32? Median ``invoke()`` ms of
    each at 1 thread on the same images (islands add dequantize/quantize pairs and run their
    ops in float, which can cost more than int8 saves)."""
    import tempfile
    from pathlib import Path

    from kft.bench.tflite_timing import time_tflite

    medians = {}
    with tempfile.TemporaryDirectory(prefix="kft-island-speed-") as d:
        for name, data in (("int8", int8_model), ("float32", float32_model)):
            path = Path(d) / f"{name}.tflite"
            path.write_bytes(data)
            times = time_tflite(path, 1, list(images), ISLAND_TIMING_RUNS, 3)["times_ms"]
            medians[name] = round(float(sorted(times)[len(times) // 2]), 3)
    return {"int8_ms": medians["int8"], "float32_ms": medians["float32"], "threads": 1,
            "faster": medians["int8"] < medians["float32"]}
