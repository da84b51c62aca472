"""Load a .tflite model with the lightest interpreter installed.

Order: ``ai_edge_litert`` (LiteRT, the maintained runtime), ``tflite_runtime``
(its predecessor), then ``tensorflow.lite`` as a last resort, imported only
when the others are missing so a TensorFlow-free install never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from kft.errors import KftError


def interpreter_class():
    """The ``Interpreter`` class of the first available runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                import tensorflow as tf
            except ImportError:
                raise KftError("no TFLite interpreter installed: pip install ai-edge-litert") from None
            Interpreter = tf.lite.Interpreter
    return Interpreter


def load_interpreter(model: str | os.PathLike | bytes, num_threads: int | None = None):
    """An allocated interpreter for a .tflite path or its bytes; ``num_threads``
    None lets the runtime choose. A file that is not a TFLite model is a KftError."""
    Interpreter = interpreter_class()
    kwargs = {"num_threads": num_threads} if num_threads else {}
    source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else \
        {"model_path": os.fspath(model)}
    try:
        with _without_native_info_lines():
            try:
                interp = Interpreter(**source, **kwargs)
                interp.allocate_tensors()
            except RuntimeError as e:
                # XNNPACK refuses some int8 graphs (e.g. quantization scales out of its range,
                # seen with MobileNetV3); TFLite's built-in kernels still run them, slower.
                if "XNNPACK" not in str(e):
                    raise
                resolver = _builtin_without_delegates(Interpreter)
                if resolver is None:
                    raise
                interp = Interpreter(**source, **kwargs, experimental_op_resolver_type=resolver)
                interp.allocate_tensors()
                interp.kft_fallback = "builtin kernels (XNNPACK refused this graph)"
    except ValueError as e:
        name = "model bytes" if isinstance(model, (bytes, bytearray)) else os.fspath(model)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KftError(f"{name}: not a usable TFLite model ({first})") from None
    return interp


def _builtin_without_delegates(Interpreter):
    """The op-resolver flag that skips the default (XNNPACK) delegate, if the runtime has it."""
    import importlib

    module = importlib.import_module(Interpreter.__module__)
    resolvers = getattr(module, "OpResolverType", None)
    return getattr(resolvers, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None) if resolvers else None


@contextlib.contextmanager
def _without_native_info_lines():
    """Drop the runtime's C++ ``INFO:`` lines (``Created TensorFlow Lite XNNPACK
    delegate for CPU``) from file descriptor 2, so a command's stderr holds only
    its own messages; anything else the runtime prints there is passed on."""
    fd = 2  # where the C++ runtime writes, whatever Python's sys.stderr is bound to now
    try:
        sys.stderr.flush()
        saved = os.dup(fd)
    except (OSError, ValueError):  # no fd 2 (a daemon): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not line.startswith("INFO: ")]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
