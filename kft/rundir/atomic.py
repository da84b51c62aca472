"""Atomic file writes: write to a temporary name in the same folder, then rename.

A killed process never leaves a truncated file under the final name: either the
old file (or nothing) or the complete new one is there. No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from kft.errors import disk_full_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffix (``.keras``, ``.tflite`` ...) by
    default, since some writers insist on it. On error the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    if path.name.endswith(".weights.h5"):
        suffix = ".weights.h5"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers create the file themselves
    try:
        try:
            yield Path(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
        except OSError as e:  # a full disk is a user's situation, not a crash: one line
            error = disk_full_error(path, e)
            if error is None:
                raise
            raise error from None
        _fsync(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _fsync(path) -> None:
    """Flush a file's data, or a folder's entries (a rename), to disk; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
