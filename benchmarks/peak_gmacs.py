"""This machine's practical peak GMAC/s through the LiteRT interpreter, to put `kft bench` numbers in context.

Builds two compute-bound graphs with TensorFlow, converts each to float32 and
to full-integer int8 .tflite (int8 in/out, calibrated on a representative
dataset), and times them with the same interpreter loader and timing loop as
``kft bench`` (XNNPACK, explicit num_threads, warm-up excluded, invoke() only):

* ``conv1x1``: a 1x1 convolution 56x56x256 -> 256 (205.5 M MACs), the bulk of
  a MobileNet's work;
* ``fc``: a fully connected 1024 -> 1024 layer on a batch of 64 (67.1 M MACs).

MACs are counted from the converted flatbuffer by ``kft.bench.macs`` (and
checked against the closed form). A real classifier reaches a fraction of this
peak: depthwise convolutions, small feature maps and per-op overhead do not
vectorise as well. Runs in well under a minute on 2 cores::

    python benchmarks/peak_gmacs.py [--threads 1,2] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

CONV = dict(size=56, cin=256, cout=256)
FC = dict(batch=64, din=1024, dout=1024)


def graphs():
    """(name, tf.function with a fixed signature, input shape, closed-form MACs)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w_conv = tf.constant(rng.normal(0, 0.06, (1, 1, CONV["cin"], CONV["cout"])).astype(np.float32))
    b_conv = tf.constant(rng.normal(0, 0.1, CONV["cout"]).astype(np.float32))
    w_fc = tf.constant(rng.normal(0, 0.03, (FC["din"], FC["dout"])).astype(np.float32))
    b_fc = tf.constant(rng.normal(0, 0.1, FC["dout"]).astype(np.float32))
    conv_shape = [1, CONV["size"], CONV["size"], CONV["cin"]]
    fc_shape = [FC["batch"], FC["din"]]

    @tf.function(input_signature=[tf.TensorSpec(conv_shape, tf.float32)])
    def conv1x1(x):
        return tf.nn.relu(tf.nn.conv2d(x, w_conv, 1, "SAME") + b_conv)

    @tf.function(input_signature=[tf.TensorSpec(fc_shape, tf.float32)])
    def fc(x):
        return tf.nn.relu(tf.matmul(x, w_fc) + b_fc)

    conv_macs = CONV["size"] ** 2 * CONV["cin"] * CONV["cout"]
    fc_macs = FC["batch"] * FC["din"] * FC["dout"]
    return [("conv1x1", conv1x1, conv_shape, conv_macs), ("fc", fc, fc_shape, fc_macs)]


def convert(fn, shape, int8: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if int8:
        rng = np.random.default_rng(1)

        def representative():
            for _ in range(8):
                yield [np.maximum(rng.normal(0.5, 0.5, shape), 0).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def measure(path: Path, threads: int, runs: int, warmup: int) -> tuple[float, bool]:
    """Median ms of invoke() and whether XNNPACK took the graph."""
    from kft.bench.tflite_timing import load_interpreter, time_invoke

    interp = load_interpreter(path, threads)
    inp = interp.get_input_details()[0]
    rng = np.random.default_rng(2)
    if np.dtype(inp["dtype"]).kind == "f":
        feeds = [np.maximum(rng.normal(0.5, 0.5, inp["shape"]), 0).astype(np.float32) for _ in range(4)]
    else:
        feeds = [rng.integers(-128, 128, inp["shape"]).astype(inp["dtype"]) for _ in range(4)]
    times = time_invoke(interp, inp["index"], feeds, runs, warmup, interp.get_output_details()[0]["index"])
    ops = [o.get("op_name") for o in interp._get_ops_details()]
    return float(np.median(times)), "DELEGATE" in ops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]

    from kft.bench.macs import tflite_macs
    from kft.bench.report import cpu_info
    from kft.bench.tflite_timing import runtime_name

    cpu = cpu_info()
    print(f"CPU: {cpu['cpu']} ({cpu['cores']} cores, {cpu['usable_cores']} usable); runtime: {runtime_name()}")
    print(f"{'graph':8}  {'dtype':7}  {'threads':>7}  {'MMACs':>7}  {'median ms':>9}  {'GMAC/s':>7}  xnnpack")
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="kft-peak-") as tmp:
        for name, fn, shape, closed_form in graphs():
            for int8 in (False, True):
                path = Path(tmp) / f"{name}_{'int8' if int8 else 'float32'}.tflite"
                path.write_bytes(convert(fn, shape, int8))
                macs = tflite_macs(path)
                if macs != closed_form:
                    print(f"MAC count mismatch for {path.name}: {macs} != {closed_form}", file=sys.stderr)
                    return 1
                for n in threads:
                    median, xnnpack = measure(path, n, args.runs, args.warmup)
                    print(f"{name:8}  {'int8' if int8 else 'float32':7}  {n:>7}  {macs / 1e6:>7.1f}  "
                          f"{median:>9.3f}  {macs / median / 1e6:>7.1f}  {'yes' if xnnpack else 'no'}")
    print(f"({time.time() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
