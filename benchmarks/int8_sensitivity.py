"""Where int8 loses accuracy: a run's model quantized one op type (or one node) at a time.

    python benchmarks/int8_sensitivity.py runs/<run> [--test 1000] [--per-node]

Calibrates once, as `kft export` does (the same calibration subset), then quantizes with every
op type but one left in float and scores each model on the first --test CIFAR-10 test images
(bare model at the training resolution, float32 I/O). Rows: the float model, every op type
alone, all of them (plain int8), and all of them with each HARD_SWISH input's calibrated
minimum raised to -3 (exact for hard-swish, whose output is 0 below -3). --per-node does the
same per node for the CONV_2D, DEPTHWISE_CONV_2D and HARD_SWISH nodes and prints the worst.
Prints Markdown tables (issue 14: MobileNetV3-Small int8).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NODE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--test", type=int, default=1000, help="test images to score (the first N)")
    ap.add_argument("--per-node", action="store_true", help="also quantize one node at a time")
    args = ap.parse_args()

    from kft.native_logs import hide_native_logs

    hide_native_logs()
    from tensorflow.lite.python import convert as tflite_convert

    from kft import rundir
    from kft.export import DEFAULT_CALIBRATION_SAMPLES, calibration_subset
    from kft.export.convert import QuantizationConfig, build_converter
    from kft.export.quant_debug import calibrated_model, graph_nodes, probabilities

    run = rundir.load_run(args.run)
    model = rundir.load_model(run.path / "model.keras")
    data = run.data()
    x, y = data.test.x[:args.test].astype(np.float32), data.test.y[:args.test]
    calib = calibration_subset(run.train_images(), DEFAULT_CALIBRATION_SAMPLES, 0)  # kft export's
    size = int(x.shape[1])
    converter, _ = build_converter(model, QuantizationConfig.for_int8(calib), size)
    calibrated = calibrated_model(converter)
    nodes = graph_nodes(calibrated)
    types = sorted({op for op, _ in nodes})

    def score(model=calibrated, **denylist) -> float:
        """Accuracy of ``model`` quantized except the denylisted ops/nodes (all ops: ``model`` as is)."""
        buf = model if denylist.get("denylisted_ops") == types else tflite_convert.mlir_quantize(model, **denylist)
        return float((probabilities(buf, x).argmax(1) == y).mean())

    t = time.time()
    base = score(denylisted_ops=types)
    print(f"{run.path}: {len(y)} test images at {size} px, {len(calib)} calibration images\n")
    print("| quantized | nodes | accuracy | vs float |\n|---|---:|---:|---:|")
    print(f"| nothing (float) | 0 | {base:.2%} | |")
    for op in types:
        a = score(denylisted_ops=[o for o in types if o != op])
        print(f"| only {op} | {sum(o == op for o, _ in nodes)} | {a:.2%} | {100 * (a - base):+.1f} |", flush=True)
    a = score()
    print(f"| everything (plain int8) | {len(nodes)} | {a:.2%} | {100 * (a - base):+.1f} |")
    clamped, n = _clamp_hard_swish_inputs(calibrated)
    a = score(model=clamped)
    print(f"| everything, {n} hard-swish inputs from -3 | {len(nodes)} | {a:.2%} | {100 * (a - base):+.1f} |")
    if args.per_node:
        names = [name for _, name in nodes]
        rows = []
        for op, name in nodes:
            if op in NODE_OPS:
                rows.append((score(denylisted_nodes=[m for m in names if m != name]), op, name))
        print("\n| only this node | op | accuracy | vs float |\n|---|---|---:|---:|")
        for a, op, name in sorted(rows)[:12]:
            print(f"| `{name.split(';')[0]}` | {op} | {a:.2%} | {100 * (a - base):+.1f} |")
        costs = [100 * (base - a) for a, _, _ in rows]
        print(f"\n{len(rows)} nodes alone: median cost {np.median(costs):.1f} points, "
              f"{sum(c >= 1 for c in costs)} cost 1 point or more")
        print("\n| the K costliest nodes in float | accuracy | vs float |\n|---:|---:|---:|")
        worst = [name for _, _, name in sorted(rows)]
        for k in (4, 8, 16, 24, 32):
            a = score(denylisted_nodes=worst[:k])
            print(f"| {k} | {a:.2%} | {100 * (a - base):+.1f} |", flush=True)
    print(f"\n{time.time() - t:.0f} s")


def _clamp_hard_swish_inputs(buf: bytes) -> tuple[bytes, int]:
    """The calibrated model with each tensor that feeds only HARD_SWISH ops calibrated from -3 up."""
    from kft.export import tflite_model
    from kft.export.tflite_model import op_name

    tree = tflite_model.load(buf)
    graph = tree.subgraphs[0]
    consumers: dict[int, set] = {}
    for op in graph.operators:
        for i in op.inputs:
            consumers.setdefault(int(i), set()).add(op_name(tree, op))
    n = 0
    for op in graph.operators:
        t = int(op.inputs[0])
        q = graph.tensors[t].quantization
        if op_name(tree, op) == "HARD_SWISH" and consumers[t] == {"HARD_SWISH"} and q is not None and q.min is not None:
            q.min = np.maximum(q.min, -3.0).astype(q.min.dtype)
            n += 1
    return tflite_model.dump(tree), n


if __name__ == "__main__":
    main()
