"""Find and load CIFAR-10 (numpy + the restricted unpickler; Keras only as a download fallback).

Where the data comes from, in order:
  1. the ``data_dir`` argument (``--data-dir``), else the ``KFT_DATA_DIR`` variable:
     ``<dir>/cifar10/cifar10_train.npz`` + ``cifar10_test.npz`` (arrays
     x_train, y_train / x_test, y_test), or the original python batches in
     ``<dir>/cifar10/cifar-10-batches-py/``; ``<dir>`` may also be the
     ``cifar10`` folder itself. A given folder without either layout is an error.
  2. neither given: ``keras.datasets.cifar10.load_data()`` (cached in
     ``~/.keras/datasets``, downloads otherwise).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from kft.data.cifar_pickle import load_batch
from kft.data.types import Dataset
from kft.errors import KftError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
ENV_VAR = "KFT_DATA_DIR"
TRAIN_NPZ = "cifar10_train.npz"
TEST_NPZ = "cifar10_test.npz"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"

_FIX = (
    f"set {ENV_VAR} or pass --data-dir to a folder holding cifar10/{TRAIN_NPZ} and "
    f"cifar10/{TEST_NPZ} (or the python batches in cifar10/{BATCHES_DIR}/)"
)


def load_cifar10(data_dir: str | os.PathLike | None = None) -> tuple[Dataset, Dataset]:
    """Return the full CIFAR-10 (train 50000, test 10000) as uint8 NHWC Datasets."""
    train, test, _source = load_cifar10_with_source(data_dir)
    return train, test


def load_cifar10_with_source(data_dir=None) -> tuple[Dataset, Dataset, dict]:
    """Like ``load_cifar10``, plus a JSON-able description of where the data came from."""
    root, origin = _resolve_root(data_dir)
    if root is None:
        (x_tr, y_tr), (x_te, y_te), source = _from_keras()
    else:
        (x_tr, y_tr), (x_te, y_te), source = _from_dir(root, origin)
    names = list(CIFAR10_CLASSES)
    train = Dataset(x_tr, y_tr, names, np.arange(len(y_tr)))
    test = Dataset(x_te, y_te, list(names), np.arange(len(y_te)))
    return train, test, source


def _resolve_root(data_dir) -> tuple[Path | None, str]:
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "--data-dir"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser(), ENV_VAR
    return None, ""


def _from_dir(root: Path, origin: str):
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise KftError(f"data folder {root} (from {origin}) {what}; {_FIX}")
    looked = []
    for base in (root / "cifar10", root):
        train_npz, test_npz = base / TRAIN_NPZ, base / TEST_NPZ
        looked.append(f"{train_npz} + {TEST_NPZ}")
        if train_npz.exists() or test_npz.exists():
            _require_all(base, [train_npz, test_npz], "npz files")
            train = _read_npz(train_npz, "x_train", "y_train")
            test = _read_npz(test_npz, "x_test", "y_test")
            return train, test, {"kind": "cifar10", "layout": "npz", "path": str(base.resolve())}
        batches = base / BATCHES_DIR
        looked.append(f"{batches}/")
        if batches.is_dir():
            train, test = _read_batches(batches)
            return train, test, {"kind": "cifar10", "layout": "python-batches", "path": str(batches.resolve())}
    raise KftError(
        f"no CIFAR-10 data in {root} (from {origin}); looked for {'; '.join(looked)}; "
        f"expected cifar10/{TRAIN_NPZ} (x_train, y_train) and cifar10/{TEST_NPZ} (x_test, y_test), "
        f"or cifar10/{BATCHES_DIR}/ with {', '.join(TRAIN_BATCHES)}, {TEST_BATCH}"
    )


def _require_all(base: Path, paths, what: str) -> None:
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise KftError(f"incomplete CIFAR-10 {what} in {base}: missing {', '.join(missing)}")


def _read_npz(path: Path, x_key: str, y_key: str):
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise KftError(f"{path}: unreadable .npz ({type(e).__name__}: {e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a plain .npy array
        raise KftError(f"{path}: not an .npz archive")
    with z:
        keys = list(z.files)
        if x_key not in keys or y_key not in keys:
            raise KftError(f"{path}: expected arrays {x_key}, {y_key}; found {', '.join(keys) or 'none'}")
        try:
            x, y = z[x_key], z[y_key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # object arrays, corrupt members
            raise KftError(f"{path}: unreadable .npz ({type(e).__name__}: {e})") from None
    return _check_arrays(x, y, str(path))


def _read_batches(folder: Path):
    _require_all(folder, [folder / n for n in (*TRAIN_BATCHES, TEST_BATCH)], "python batches")
    if (folder / META_FILE).is_file():
        meta = load_batch(folder / META_FILE)
        names = [n.decode("latin1") if isinstance(n, bytes) else n for n in meta.get(b"label_names", [])]
        if tuple(names) != CIFAR10_CLASSES:
            raise KftError(f"{folder / META_FILE}: label names {names} are not CIFAR-10's")
    parts = [_batch_arrays(folder / n) for n in TRAIN_BATCHES]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    train = _check_arrays(x_tr, y_tr, f"{folder}/{TRAIN_BATCHES[0]}..5")
    test = _check_arrays(*_batch_arrays(folder / TEST_BATCH), str(folder / TEST_BATCH))
    return train, test


def _batch_arrays(path: Path):
    """One batch dict -> x uint8 (N, 32, 32, 3), y int64 (N,)."""
    d = load_batch(path)
    data, labels = d.get(b"data"), d.get(b"labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise KftError(f"{path}: not a CIFAR-10 batch (needs b'data' array and b'labels')")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise KftError(f"{path}: b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if not isinstance(labels, (list, tuple)) or not all(type(v) is int for v in labels):
        raise KftError(f"{path}: b'labels' must be a list of ints")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes R, G, B -> NHWC
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


def _check_arrays(x: np.ndarray, y: np.ndarray, where: str):
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise KftError(f"{where}: images must be uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        raise KftError(f"{where}: labels must be {len(x)} integers, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= len(CIFAR10_CLASSES)):
        raise KftError(f"{where}: labels must be 0..9, found {y.min()}..{y.max()}")
    return x, y.astype(np.int64)


def _keras_load_data():
    """Keras's own loader (imports TensorFlow's Keras only here)."""
    import keras

    return keras.datasets.cifar10.load_data()


def _from_keras():
    try:
        (x_tr, y_tr), (x_te, y_te) = _keras_load_data()
    except Exception as e:  # noqa: BLE001 - no network, broken cache, no keras: all mean "no data"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KftError(
            f"CIFAR-10 not found: {ENV_VAR} is unset and keras.datasets.cifar10 could not load it "
            f"from ~/.keras/datasets or download it ({reason}); {_FIX}"
        ) from None
    train = _check_arrays(np.asarray(x_tr), np.asarray(y_tr), "keras.datasets.cifar10 train")
    test = _check_arrays(np.asarray(x_te), np.asarray(y_te), "keras.datasets.cifar10 test")
    return train, test, {"kind": "cifar10", "layout": "keras.datasets", "path": "~/.keras/datasets"}
