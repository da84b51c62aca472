"""Time a .keras model (batch 1, ``model(x, training=False)`` in a ``tf.function``) for comparison.

TensorFlow's thread pools can be sized only once per process, before TF runs
anything, so each thread count runs in a fresh ``python -m
kft.bench.keras_timing`` subprocess: it sets intra-op threads to N and
inter-op threads to 1 (ops run one after another, as in LiteRT, using N
threads each), loads the model with ``safe_mode=True``, counts its MACs,
traces once, warms up, then times the call plus ``.numpy()`` of the output
(TF may hand back before the result is materialised); copying the input into a
tensor happens before the clock starts. The parent process never imports
TensorFlow. Request and result travel as files in a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from kft.bench.inputs import fit_to
from kft.bench.macs import keras_macs
from kft.errors import KftError
from kft.rundir import load_model


def time_keras(path, num_threads: int, images: list[np.ndarray], runs: int, warmup: int) -> dict:
    """Run the worker for one thread count; returns its result dict (see ``_measure``)."""
    with tempfile.TemporaryDirectory(prefix="kft-bench-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "images.npz", *images)
        request = {"model": os.fspath(Path(path).resolve()), "threads": num_threads, "runs": runs,
                   "warmup": warmup, "images": str(tmp / "images.npz"), "result": str(tmp / "result.json")}
        (tmp / "request.json").write_text(json.dumps(request))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        proc = subprocess.run([sys.executable, "-m", "kft.bench.keras_timing", str(tmp / "request.json")],
                              capture_output=True, text=True, env=env)
        result = tmp / "result.json"
        if proc.returncode != 0 or not result.is_file():
            raise KftError(_worker_error(path, proc))
        return json.loads(result.read_text())


def _worker_error(path, proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    return f"{path}: Keras benchmark worker failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}"


def _measure(request: dict) -> dict:
    """In the worker: set threads, load, count MACs, time. Returns the result dict."""
    import time

    import tensorflow as tf

    n = int(request["threads"])
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    import keras


    model = load_model(request["model"])
    shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[-1] != 3 or None in shape[1:3]:
        raise KftError(f"{request['model']}: expected one (None, H, W, 3) image input, the model has "
                       f"{[tuple(i.shape) for i in model.inputs]}")
    with np.load(request["images"]) as f:
        images = [f[k] for k in f.files]
    pixels = fit_to(images, int(shape[1]), int(shape[2])).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, shape[1], shape[2], 3], tf.float32)])
    def forward(x):
        return model(x, training=False)

    inputs = [tf.constant(p[None]) for p in pixels]
    forward(inputs[0]).numpy()  # trace outside warm-up
    runs, warmup = int(request["runs"]), int(request["warmup"])
    times = []
    for i in range(warmup + runs):
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        forward(x).numpy()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt * 1000.0)
    return {
        "times_ms": times,
        "threads_observed": tf.config.threading.get_intra_op_parallelism_threads(),
        "macs": keras_macs(model),
        "input_shape": [1, int(shape[1]), int(shape[2]), 3],
        "input_dtype": "float32",
        "runtime": f"tensorflow {tf.__version__} / keras {keras.__version__}",
    }


def _main(argv) -> int:
    request = json.loads(Path(argv[0]).read_text())
    try:
        result = _measure(request)
    except KftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    Path(request["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
