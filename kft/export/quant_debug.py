"""Per-layer int8 error with TFLite's QuantizationDebugger: the quantization report and selective int8.

``layer_statistics`` runs the calibration images through a debug-mode int8
conversion and returns, per quantized tensor, its op, scale and error against
float (the debugger compares each layer's int8 output with the float output
computed from the same quantized input). ``rmse/scale`` — the RMSE in units of
the tensor's int8 step — is the measure TensorFlow's quantization-debugger guide
uses to find layers int8 cannot represent; above ``RMSE_PER_SCALE_LIMIT`` a layer
is left in float by ``selective_int8`` (the export guard's int8 fallback).
``write_report`` writes the table as CSV and Markdown (``kft export
--quantization-report``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

RMSE_PER_SCALE_LIMIT = 0.7  # TensorFlow's quantization-debugger guide's threshold
REPORT_CSV = "quantization_report.csv"
REPORT_MD = "quantization_report.md"
COLUMNS = ("op_name", "tensor_name", "scale", "zero_point", "rmse_per_scale", "mean_error", "max_abs_error",
           "left_in_float")


def layer_statistics(converter, dataset) -> list[dict]:
    """Per-layer int8 error of the conversion ``converter`` is set up for, worst first."""
    return _debug(converter, dataset)[0]


def _debug(converter, dataset) -> tuple[list[dict], bytes]:
    """``layer_statistics`` and the calibrated model the debugger made on the way (the
    float model with the activation ranges seen on ``dataset``: what int8 quantizes)."""
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
    return rows, debugger.calibrated_model


def worst_layers(rows: list[dict], limit: float | None = None) -> list[str]:
    limit = RMSE_PER_SCALE_LIMIT if limit is None else limit
    return [r["tensor_name"] for r in rows if r["rmse_per_scale"] > limit]


def selective_int8(converter, dataset, limit: float | None = None) -> tuple[bytes, list[str]]:
    """An int8 model of ``converter``'s conversion with the layers over ``limit`` left in
    float, and their tensor names.

    One debugger pass calibrates and measures; its calibrated model is then quantized here
    with the denylist, through the quantizer the debugger itself calls. Not through the
    debugger's ``get_nondebug_quantized_model``: that always gives float32 input and output,
    whatever the converter asked for, and ``kft export --int8-io`` needs uint8.
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    rows, calibrated = _debug(converter, dataset)
    nodes = worst_layers(rows, limit)
    io_types = [t if t in (tf.uint8, tf.int8) else tf.float32
                for t in (converter.inference_input_type, converter.inference_output_type)]
    # fully_quantize=True would make the I/O int8 whatever is asked; False honours the types
    buf = tflite_convert.mlir_quantize(
        calibrated, disable_per_channel=converter._experimental_disable_per_channel,  # as the debugger does
        input_data_type=io_types[0], output_data_type=io_types[1], denylisted_nodes=nodes)
    return buf, nodes


def write_report(rows: list[dict], out_dir: Path, float_nodes=(), title: str = "") -> list[Path]:
    """``quantization_report.csv`` and ``.md`` in ``out_dir`` (atomically)."""
    from kft import atomic

    float_nodes = set(float_nodes)
    rows = [{**r, "left_in_float": r["tensor_name"] in float_nodes} for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    lines = [f"# Quantization report{': ' + title if title else ''}", "",
             f"Per-layer int8 error against float, from TFLite's QuantizationDebugger on the calibration images, "
             f"worst first. rmse/scale: RMSE in units of the tensor's int8 step; above {RMSE_PER_SCALE_LIMIT} "
             f"int8 cannot represent the layer well, and the int8 fallback keeps such layers in float. "
             f"Left in float by the written int8 model: {len(float_nodes)} layer(s).", "",
             "| # | op | tensor | scale | rmse/scale | max abs error | in float |", "|---:|---|---|---:|---:|---:|---|"]
    for i, r in enumerate(rows, 1):
        name = r["tensor_name"].split(";")[0]
        lines.append(f"| {i} | {r['op_name']} | `{name}` | {r['scale']:.3g} | {r['rmse_per_scale']:.3f} | "
                     f"{r['max_abs_error']:.3g} | {'yes' if r['left_in_float'] else ''} |")
    out_dir = Path(out_dir)
    return [atomic.write_text(out_dir / REPORT_CSV, buf.getvalue()),
            atomic.write_text(out_dir / REPORT_MD, "\n".join(lines) + "\n")]
