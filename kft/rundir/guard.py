"""Protect a run folder: one writer at a time, no silent overwrite, no write into a full disk.

- ``lock(path)``: an exclusive ``flock`` on ``<run>/.lock`` held until the process
  exits. The kernel drops it when the holder dies (even by SIGKILL), so a killed
  run never blocks its own ``--resume``; a second live process gets one line
  naming the holder's PID.
- ``check_new_run_folder(path, overwrite)``: a folder with files in it is refused
  unless ``--overwrite``, which clears it only if it is a kft run folder.
- ``ensure_space(path, nbytes)`` before large writes, and ``kft.errors.disk_full_error`` for
  ENOSPC: writing a checkpoint on a full disk crashed h5py with a segfault, so
  space is checked first and a failed write becomes one line; the previous
  checkpoint stays valid (writes are atomic), so ``--resume`` continues once
  space is freed.

TensorFlow-free.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kft.errors import KftError
from kft.rundir.layout import METRICS, is_run_dir

LOCK_FILE = ".lock"
SPACE_MARGIN = 1.2  # writers add headers and temporary copies: ask for 20% more than the payload
_held: dict[str, int] = {}  # resolved run path -> open lock file descriptor


def lock(path: str | os.PathLike) -> None:
    """Take the run folder's lock for the rest of this process (idempotent)."""
    import fcntl

    path = Path(path)
    key = str(path.resolve())
    if key in _held:
        return
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise KftError(f"{path} is in use by another kft process (pid {holder}); wait for it to finish "
                       f"or use another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd


def unlock(path: str | os.PathLike) -> None:
    """Release the lock early (tests; a process's locks go when it exits)."""
    fd = _held.pop(str(Path(path).resolve()), None)
    if fd is not None:
        os.close(fd)


def check_new_run_folder(path: str | os.PathLike, overwrite: bool = False, clear: bool = True) -> None:
    """Refuse to start a run in a folder that holds files (a finished or interrupted run).
    With ``overwrite`` a run folder is emptied (``clear=False``: only checked, nothing deleted)."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise KftError(f"{path} exists and is not a folder; choose another `out`")
    entries = [p for p in path.iterdir() if p.name != LOCK_FILE]
    if not entries:
        return
    if not overwrite:
        if (path / METRICS).is_file():
            raise KftError(f"{path} holds a finished run; choose another `out`, or pass `overwrite` to replace it")
        hint = f"continue it with `kft train --resume {path}`, " if is_run_dir(path) else ""
        raise KftError(f"{path} is not empty; {hint}choose another `out`, or pass `overwrite` to replace it")
    if not is_run_dir(path):
        raise KftError(f"{path} holds files that are not a kft run; `overwrite` only replaces a run folder")
    if not clear:
        return
    lock(path)  # never clear a folder another process is writing
    for p in entries:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def ensure_space(path: str | os.PathLike, nbytes: int) -> None:
    """Raise a one-line KftError unless the filesystem of ``path`` has room for ``nbytes``."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    need = int(nbytes * SPACE_MARGIN) + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise KftError(f"no space left on device while writing {path}: {need / 2**20:.0f} MB needed, "
                       f"{free / 2**20:.0f} MB free; free some space and resume (the last complete "
                       f"checkpoint is kept)")
