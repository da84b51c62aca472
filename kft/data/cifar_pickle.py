"""Read the original CIFAR-10 python batches without letting the pickle run code.

A CIFAR batch is a pickled dict of bytes keys -> lists of ints / bytes and one
numpy uint8 array (``b'data'``, 10000 x 3072). ``pickle.load`` would import
and call whatever the file names, so a swapped file could run anything. Here
``find_class`` resolves no real class or function: the only names a numpy
array pickle needs (``_reconstruct``, ``ndarray``, ``dtype``, ``_frombuffer``,
``_codecs.encode``) map to small stand-ins defined below that only record
their arguments; arrays are rebuilt afterwards with ``np.frombuffer`` from
checked plain values. Every other name is refused with a ``KftError``.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np

from kft.errors import KftError

# Simple numeric dtypes only ('u1' for CIFAR); never object arrays.
_DTYPE_SPEC = re.compile(r"^[<>|=]?[biuf][1248]$")


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _DtypeStub:
    """Records ``numpy.dtype(spec, align, copy)`` and its pickled state."""

    def __init__(self, spec, align=False, copy=True):
        spec = _text(spec)
        if not _DTYPE_SPEC.match(spec):
            raise _Refused(f"dtype {spec!r} is not a plain numeric type")
        self.spec = spec.lstrip("<>|=")
        self.order = spec[0] if spec[0] in "<>|=" else "|"

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2:
            raise _Refused("malformed dtype state")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"malformed dtype byte order {order!r}")
        self.order = order

    def to_numpy(self) -> np.dtype:
        dt = np.dtype(self.spec)
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


class _ArrayStub:
    """Records an array pickled as ``_reconstruct(ndarray, (0,), 'b')`` + BUILD state."""

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused("malformed array state")
        _version, shape, dtype, fortran, raw = state
        self.array = _make_array(raw, dtype, shape, "F" if fortran else "C")


def _reconstruct(cls, shape, typecode):
    if cls is not _NdarrayMarker:
        raise _Refused("_reconstruct called for something other than an ndarray")
    return _ArrayStub()


def _frombuffer(buf, dtype, shape, order):
    stub = _ArrayStub()
    stub.array = _make_array(buf, dtype, shape, _text(order))
    return stub


def _codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or _text(encoding) != "latin1":
        raise _Refused("unexpected _codecs.encode call")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): _DtypeStub,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _codecs_encode,
}


class _Refused(Exception):
    """The pickle asked for something a CIFAR batch never contains."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        stand_in = _ALLOWED.get((module, name))
        if stand_in is None:
            raise _Refused(f"it asks for {module}.{name}, which a CIFAR batch never contains")
        return stand_in

    def persistent_load(self, pid):
        raise _Refused("it uses persistent ids")


def load_batch(path: str | Path) -> dict:
    """Decode one CIFAR python batch file into a dict (keys are bytes), arrays as numpy.

    Raises ``KftError`` if the file is not a pickle, or asks for any class or
    function beyond the numpy-array stand-ins above (nothing is executed).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KftError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
        obj = _materialize(obj)
    except _Refused as e:
        raise KftError(f"{path}: refusing to load this pickle: {e}") from None
    except Exception as e:  # noqa: BLE001 - any decoding failure means "not a CIFAR batch"
        raise KftError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise KftError(f"{path}: not a CIFAR-10 python batch (holds a {type(obj).__name__}, not a dict)")
    return obj


def _make_array(raw, dtype, shape, order) -> np.ndarray:
    if isinstance(raw, str):  # numpy writes the buffer as latin-1 text for protocol 2
        raw = raw.encode("latin1")
    if isinstance(raw, bytearray):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise _Refused("array data is not a byte string")
    if not isinstance(dtype, _DtypeStub):
        raise _Refused("array dtype is not a plain dtype")
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise _Refused("malformed array shape")
    if order not in ("C", "F"):
        raise _Refused(f"malformed array order {order!r}")
    dt = dtype.to_numpy()
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
        raise _Refused("array data length does not match its shape")
    return np.frombuffer(raw, dtype=dt).reshape(shape, order=order).copy()


def _materialize(obj):
    """Replace array stand-ins by numpy arrays inside plain dicts/lists/tuples."""
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise _Refused("array without data")
        return obj.array
    if isinstance(obj, dict):
        return {_materialize(k): _materialize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    if isinstance(obj, (bytes, str, int, float, bool, type(None))):
        return obj
    raise _Refused(f"unexpected {type(obj).__name__} object")


def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("latin1")
    if isinstance(v, str):
        return v
    raise _Refused(f"expected text, got {type(v).__name__}")
