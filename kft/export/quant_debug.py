"""Per-layer int8 error with TFLite's QuantizationDebugger: the quantization report and selective int8.

``layer_statistics`` runs the calibration images through a debug-mode int8
conversion and returns, per quantized tensor, its op, scale and error against
float (the debugger compares each layer's int8 output with the float output
computed from the same quantized input). ``rmse/scale`` — the RMSE in units of
the tensor's int8 step — is the measure TensorFlow's quantization-debugger guide
uses to find layers int8 cannot represent. ``write_report`` writes the table as CSV
and Markdown (``kft export --quantization-report``).

``selective_int8`` is the export guard's int8 fallback: it leaves in float the nodes
whose int8 error moves the model's output most (measured one node at a time), which
on MobileNetV3-Small are not the layers with the largest rmse/scale.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from kft.export import tflite_model
from kft.progress import progress
from kft.rundir import atomic
from kft.runtime import Classifier

RMSE_PER_SCALE_LIMIT = 0.7  # TensorFlow's quantization-debugger guide's threshold
ISLAND_AGREEMENT = 0.99  # top-1 agreement with float: accuracy then moves by 1 point at most
MAX_ISLAND_SHARE = 0.5  # of the graph's nodes, at most this share in float
REPORT_CSV = "quantization_report.csv"
REPORT_MD = "quantization_report.md"
COLUMNS = ("op_name", "tensor_name", "scale", "zero_point", "rmse_per_scale", "mean_error", "max_abs_error",
           "left_in_float")


def layer_statistics(converter, dataset) -> list[dict]:
    """Per-layer int8 error of the conversion ``converter`` is set up for, worst first."""
    import tensorflow as tf

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r.get("scale") or 0.0)
        mse = float(r.get("mean_squared_error") or 0.0)
        rows.append({"op_name": r["op_name"], "tensor_name": r["tensor_name"], "scale": scale,
                     "zero_point": int(float(r.get("zero_point") or 0)),
                     "rmse_per_scale": float(np.sqrt(mse) / scale) if scale else 0.0,
                     "mean_error": float(r.get("mean_error") or 0.0),
                     "max_abs_error": float(r.get("max_abs_error") or 0.0), "left_in_float": False})
    rows.sort(key=lambda row: -row["rmse_per_scale"])
    return rows


def selective_int8(converter, images, target: float | None = None, batch_size: int | None = None,
                   workers: int | None = None) -> tuple[bytes, list[str]]:
    """An int8 model of ``converter``'s conversion with the nodes int8 hurts most left in float,
    and those nodes' output tensor names.

    Which nodes: every node of the graph is quantized alone (every other node float) and
    scored by how far its probabilities move from the float model's on ``images`` (mean KL
    divergence). The costliest k go to float, for the fewest k (``fewest_passing``: 1, 2, 4,
    ... then bisection) at which the model agrees with the float model's top-1 on at least
    ``target`` (``ISLAND_AGREEMENT``) of ``images``, or ``MAX_ISLAND_SHARE`` of the nodes are
    float (past that the file is not int8 in any useful sense; the export guard then decides).
    On MobileNetV3-Small (docs/benchmarks.md) this finds the nodes that matter: the layers with
    the largest RMSE per quantization step (the report's ranking) were squeeze-excite convs
    whose error cost nothing, and the convs and hard-swishes alone were not enough (with all
    of them float, a second run still lost 1.2 points: the rest was in MUL, ADD, the resize
    and the softmax).
    ``images``: float32 (N, S, S, 3) at the converter's input size (kft uses the calibration
    images). The file keeps the converter's input and output types (uint8 with ``--int8-io``).
    ``batch_size`` / ``workers``: how each candidate is scored (``probabilities``).
    """
    import tensorflow as tf


    target = ISLAND_AGREEMENT if target is None else target
    calibrated = calibrated_model(converter)
    names = list(dict.fromkeys(name for _, name in graph_nodes(calibrated)))
    images = np.asarray(images, np.float32)
    def score(buf, x):
        return probabilities(buf, x, batch_size, workers)

    reference = score(calibrated, images)
    cost = {}
    with progress("int8 fallback: the cost of each node alone", total=len(names), unit="node") as bar:
        for name in names:
            alone = _quantize(calibrated, denylisted_nodes=[n for n in names if n != name])
            cost[name] = _kl(reference, score(alone, images))
            bar.update(1)
    worst = sorted(names, key=lambda n: -cost[n])
    models = {}

    def agrees(k: int) -> bool:
        models[k] = _quantize(calibrated, denylisted_nodes=worst[:k])
        return float((score(models[k], images).argmax(1) == reference.argmax(1)).mean()) >= target

    k = fewest_passing(agrees, max(1, int(len(worst) * MAX_ISLAND_SHARE)))
    buf, float_nodes = models[k], worst[:k]
    io_types = [t if t in (tf.uint8, tf.int8) else tf.float32
                for t in (converter.inference_input_type, converter.inference_output_type)]
    if io_types != [tf.float32, tf.float32]:  # the measured model has float I/O; --int8-io wants uint8
        buf = _quantize(calibrated, io_types, float_nodes)
    return buf, float_nodes


def calibrated_model(converter) -> bytes:
    """The float model with the activation ranges ``converter``'s calibration images gave: what
    int8 quantizes (``_quantize`` then quantizes it with any nodes left in float)."""
    converter._experimental_calibrate_only = True
    try:
        return converter.convert()
    finally:
        converter._experimental_calibrate_only = False


def fewest_passing(passes, most: int) -> int:
    """The smallest k in 1..``most`` with ``passes(k)``, assuming more is never worse: k = 1, 2,
    4, ... until one passes, then bisection below it; ``most`` if none does. Agreement is not
    strictly monotone in k, so the k returned is always one that was seen to pass (or ``most``)."""
    failed, k = 0, 1
    while not passes(k):
        if k >= most:
            return most
        failed, k = k, min(2 * k, most)
    while k - failed > 1:
        mid = (failed + k) // 2
        if passes(mid):
            k = mid
        else:
            failed = mid
    return k


def _quantize(calibrated: bytes, io_types=None, denylisted_nodes=()) -> bytes:
    """``calibrated`` quantized to int8 except ``denylisted_nodes``, through the quantizer
    TFLite's QuantizationDebugger calls (its ``get_nondebug_quantized_model`` always gives
    float32 I/O, and ``kft export --int8-io`` needs uint8). ``fully_quantize=True`` would
    make the I/O int8 whatever is asked, so it stays False and the types are passed."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    io_types = io_types or (tf.float32, tf.float32)
    return tflite_convert.mlir_quantize(calibrated, input_data_type=io_types[0], output_data_type=io_types[1],
                                        denylisted_nodes=list(denylisted_nodes))


def graph_nodes(buf: bytes) -> list[tuple[str, str]]:
    """(op type, output tensor name) of every op of a .tflite model, in graph order."""

    tree = tflite_model.load(buf)
    graph = tree.subgraphs[0]
    return [(tflite_model.op_name(tree, op), graph.tensors[op.outputs[0]].name.decode()) for op in graph.operators]


PROBE_BATCH = 8  # images per invoke when scoring the fallback's candidate models


def probabilities(buf: bytes, images: np.ndarray, batch_size: int | None = None,
                  workers: int | None = None) -> np.ndarray:
    """A float-input .tflite classifier's outputs (float64) for float32 ``images``,
    ``batch_size`` (default ``PROBE_BATCH``) images per invoke on ``workers`` interpreters of
    1 thread (default one per CPU; ``kft.runtime.Classifier``). Each image's outputs are its
    batch-1 outputs (tests/test_export_speed.py)."""

    clf = Classifier(buf, num_threads=1, batch_size=PROBE_BATCH if batch_size is None else batch_size,
                     workers=workers or os.cpu_count() or 1)
    return clf.run(np.asarray(images, np.float32)).astype(np.float64)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) over rows of probabilities."""
    eps = 1e-7
    return float(np.mean(np.sum(p * (np.log(p + eps) - np.log(q + eps)), axis=1)))


def write_report(rows: list[dict], out_dir: Path, float_nodes=(), title: str = "") -> list[Path]:
    """``quantization_report.csv`` and ``.md`` in ``out_dir`` (atomically)."""

    float_nodes = set(float_nodes)
    rows = [{**r, "left_in_float": r["tensor_name"] in float_nodes} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    lines = [f"# Quantization report{': ' + title if title else ''}", "",
             f"Per-layer int8 error against float, from TFLite's QuantizationDebugger on the calibration images, "
             f"worst first. rmse/scale: RMSE in units of the tensor's int8 step; above {RMSE_PER_SCALE_LIMIT} "
             f"int8 represents the layer poorly (TensorFlow's guide), though that need not cost accuracy: the int8 "
             f"fallback chooses its float layers by what each costs the model's output instead. "
             f"Left in float by the written int8 model: {len(float_nodes)} layer(s).", "",
             "| # | op | tensor | scale | rmse/scale | max abs error | in float |", "|---:|---|---|---:|---:|---:|---|"]
    for i, r in enumerate(rows, 1):
        name = r["tensor_name"].split(";")[0]
        lines.append(f"| {i} | {r['op_name']} | `{name}` | {r['scale']:.3g} | {r['rmse_per_scale']:.3f} | "
                     f"{r['max_abs_error']:.3g} | {'yes' if r['left_in_float'] else ''} |")
    out_dir = Path(out_dir)
    return [atomic.write_text(out_dir / REPORT_CSV, buf.getvalue()),
            atomic.write_text(out_dir / REPORT_MD, "\n".join(lines) + "\n")]
