"""Decoded images kept on disk: uint8 arrays memory-mapped from unlinked temporary files.

A large image folder does not fit in memory once decoded (100,000 images at 160 px
are 7.7 GB). Past the plan's ``data_budget_mb`` the folder loader decodes into
such an array instead; a ``Dataset`` whose ``x`` is on disk stays on disk through
``subset`` and ``concat``, and the input pipeline reads each batch's rows inside
its ``tf.data`` map (``kft.training.pipeline``), so memory holds a few batches, not the
data set; the operating system's page cache keeps whatever fits.

The files live in the temporary folder (``TMPDIR``) and are unlinked as soon as
they are mapped: the mapping keeps the data, and the disk space comes back when
the process ends, however it ends (a SIGKILL included). numpy only.
"""

from __future__ import annotations

import atexit
import os
import tempfile

import numpy as np

CHUNK_ROWS = 1024  # rows copied at a time between on-disk arrays


def empty(shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """A new zero-filled array of ``shape`` backed by an anonymous temporary file."""
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)  # nothing to map (mmap refuses an empty file)
    fd, path = tempfile.mkstemp(prefix="kft-images-", suffix=".u8")
    os.close(fd)
    try:
        return np.memmap(path, dtype=dtype, mode="w+", shape=shape)
    finally:
        if os.name == "posix":
            os.unlink(path)  # the mapping outlives the name
        else:  # pragma: no cover -- Windows cannot unlink a mapped file
            atexit.register(_remove, path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def on_disk(x) -> bool:
    """Whether ``x`` is a memory-mapped array (rows read from disk on demand)."""
    return isinstance(x, np.memmap) and getattr(x, "_mmap", None) is not None


def take(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of on-disk ``x`` as a new on-disk array, copied a chunk at a time."""
    out = empty((len(idx), *x.shape[1:]), x.dtype)
    for start in range(0, len(idx), CHUNK_ROWS):
        out[start:start + CHUNK_ROWS] = x[np.asarray(idx[start:start + CHUNK_ROWS])]
    return out


def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a``'s rows followed by ``b``'s, on disk."""
    out = empty((len(a) + len(b), *a.shape[1:]), a.dtype)
    for offset, part in ((0, a), (len(a), b)):
        for start in range(0, len(part), CHUNK_ROWS):
            rows = part[start:start + CHUNK_ROWS]
            out[offset + start:offset + start + len(rows)] = rows
    return out
