"""Time a .tflite model with the LiteRT interpreter (XNNPACK, explicit ``num_threads``).

One interpreter per thread count, created and allocated once, then reused for
warm-up and every timed run. The timed region is ``invoke()`` alone:
``set_tensor`` (copying the next image in) happens before the clock starts,
and reading the output after it stops, for every run alike. Images cycle
through the benchmark set so caches see changing inputs. No TensorFlow here
(unless the interpreter loader has to fall back to it).
"""

from __future__ import annotations

import os
import time

import numpy as np

from kft.errors import KftError


def load_interpreter(path: str | os.PathLike, num_threads: int):
    """An allocated interpreter for ``path`` using ``num_threads`` threads (kft.runtime's loader)."""
    try:
        from kft.runtime.interpreter import load_interpreter as _load
    except ImportError:  # kft.runtime not importable yet: the same order, LiteRT first
        _load = _fallback_load
    return _load(path, num_threads=num_threads)


def _fallback_load(path, num_threads: int):
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_path=os.fspath(path), num_threads=num_threads)
        interp.allocate_tensors()
    except ValueError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise KftError(f"{path}: not a usable TFLite model ({first})") from None
    return interp


def runtime_name() -> str:
    """Which interpreter package runs .tflite models, with its version."""
    from importlib import metadata

    for module, dist in (("ai_edge_litert", "ai-edge-litert"), ("tflite_runtime", "tflite-runtime"),
                         ("tensorflow", "tensorflow")):
        try:
            __import__(module)
        except ImportError:
            continue
        try:
            return f"{module} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            return module
    return "none"


def os_thread_count() -> int | None:
    """Threads of this process right now (Linux), to see the interpreter's thread pool appear."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def time_tflite(path, num_threads: int, images: list[np.ndarray], runs: int, warmup: int) -> dict:
    """Latencies (ms, one image per run) of ``path`` at ``num_threads``, plus what was observed.

    ``threads_observed`` is 1 + the OS threads that appeared while the
    interpreter was built (XNNPACK's pool has ``num_threads - 1`` workers; the
    caller is the last one); None where /proc is unavailable.
    """
    before = os_thread_count()
    interp = load_interpreter(path, num_threads)
    after = os_thread_count()
    (inp,) = _single(interp.get_input_details(), path, "input")
    out_index = _single(interp.get_output_details(), path, "output")[0]["index"]
    batch = _image_batch(inp, images, path)

    times = time_invoke(interp, inp["index"], batch, runs, warmup, out_index)
    ops = [op.get("op_name") for op in _ops(interp)]
    return {
        "times_ms": times,
        "threads_observed": None if before is None or after is None else 1 + after - before,
        "xnnpack": "DELEGATE" in ops,
        # >1: XNNPACK took the graph in pieces, the ops between run on the slower built-in kernels
        "xnnpack_partitions": ops.count("DELEGATE"),
        "input_shape": [int(d) for d in inp["shape"]],
        "input_dtype": np.dtype(inp["dtype"]).name,
    }


def time_invoke(interp, input_index: int, feeds: list[np.ndarray], runs: int, warmup: int,
                output_index: int | None = None) -> list[float]:
    """Milliseconds of ``invoke()`` for ``runs`` runs after ``warmup`` untimed ones; each run
    first sets the next feed (cycling), outside the clock, and reads the output after it."""
    times = []
    for i in range(warmup + runs):
        interp.set_tensor(input_index, feeds[i % len(feeds)])
        t0 = time.perf_counter()
        interp.invoke()
        dt = time.perf_counter() - t0
        if output_index is not None:
            interp.get_tensor(output_index)
        if i >= warmup:
            times.append(dt * 1000.0)
    return times


def _single(details, path, what):
    if len(details) != 1:
        raise KftError(f"{path}: expected a model with one {what}, it has {len(details)}")
    return details


def _ops(interp) -> list[dict]:
    try:
        return interp._get_ops_details()
    except Exception:  # private API; only used to report whether XNNPACK took the graph
        return []


def _image_batch(inp: dict, images: list[np.ndarray], path) -> list[np.ndarray]:
    """The images as this input wants them: (1, H, W, 3), float pixels 0..255 or quantized."""
    from kft.bench.inputs import fit_to

    shape = [int(d) for d in inp["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise KftError(f"{path}: expected an image input shaped [1, H, W, 3], the model has {shape}")
    pixels = fit_to(images, shape[1], shape[2]).astype(np.float32)
    dtype = np.dtype(inp["dtype"])
    if dtype.kind == "f":
        data = pixels.astype(dtype)
    else:
        scale, zero = inp.get("quantization", (0.0, 0))
        if scale:
            pixels = np.round(pixels / scale + zero)
        info = np.iinfo(dtype)
        data = np.clip(pixels, info.min, info.max).astype(dtype)
    return [np.ascontiguousarray(d[None]) for d in data]
