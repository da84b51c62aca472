"""Load a user's image folder (one sub-folder per class) as train/val Datasets.

Class names are the sorted sub-folder names; images are the files directly in
each sub-folder whose suffix is in ``kft.images.IMAGE_SUFFIXES``, decoded and
resized (antialiased) to ``image_size`` by ``kft.images.load_rgb``. Unreadable
images are skipped and returned as ``(path, reason)`` for the CLI to print.
Past ``memory_budget_mb`` the decoded images are kept on disk (``kft.data.ondisk``)
and streamed per batch; the split and every pixel are the same either way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kft.data import ondisk
from kft.data.sampling import check_int, split_counts
from kft.data.types import Dataset
from kft.errors import KftError
from kft.images import IMAGE_SUFFIXES, ImageError, load_rgb
from kft.progress import progress

DEFAULT_VAL_FRACTION = 0.2
_log = logging.getLogger(__name__)


class FolderData(NamedTuple):
    """``train``/``val`` Datasets (indices point into ``files``), readable ``files``
    relative to the folder, and ``skipped`` = [(path, reason)] for unreadable ones."""

    train: Dataset
    val: Dataset
    files: list[str]
    skipped: list[tuple[str, str]]


def load_folder(
    path: str | os.PathLike,
    image_size: int,
    *,
    seed: int = 0,
    samples_per_class: int | None = None,
    val_per_class: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    memory_budget_mb: float | None = None,
) -> FolderData:
    """Decode every image under ``path/<class>/`` and split each class by ``seed``.

    Validation per class: ``val_per_class`` if given, else ``round(n *
    val_fraction)`` clamped to [1, n - 1] for classes with n >= 2 images (a
    one-image class goes to training). Training per class: ``samples_per_class``
    if given, else every remaining image. A class left with no readable image,
    or too few for what was asked, raises ``KftError``. ``memory_budget_mb``: when
    the decoded images would take more, they are kept on disk (None: no limit).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise KftError(f"image size must be a positive integer, got {image_size!r}")
    if samples_per_class is not None:
        check_int("samples per class", samples_per_class, 1)
    if val_per_class is not None:
        check_int("validation images per class", val_per_class, 0)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise KftError(f"validation fraction must be in [0, 1), got {val_fraction!r}")
    root = Path(path).expanduser()
    class_files = _list_classes(root)
    class_names = list(class_files)

    n_files = sum(len(paths) for paths in class_files.values())
    shape = (n_files, image_size, image_size, 3)
    megabytes = float(np.prod(shape)) / 2**20
    stream = memory_budget_mb is not None and megabytes > memory_budget_mb
    if stream:
        _log.info(f"{n_files} images at {image_size} px take {megabytes:.0f} MB > data budget {memory_budget_mb} MB: "
                  f"keeping them on disk (a temporary file in TMPDIR), read per batch")
    store = ondisk.empty(shape) if stream else np.empty(shape, np.uint8)
    labels, files, skipped = [], [], []
    with progress(f"decoding {root}", total=n_files, unit="img") as bar:
        for label, (name, paths) in enumerate(class_files.items()):
            readable = 0
            for p in paths:
                bar.update(1)
                try:
                    store[len(labels)] = load_rgb(p, (image_size, image_size))
                except ImageError as e:
                    skipped.append((str(p), _reason(e, p)))
                    continue
                labels.append(label)
                files.append(p.relative_to(root).as_posix())
                readable += 1
            if readable == 0:
                raise KftError(f"class folder {root / name} has no readable image ({len(paths)} unreadable)")

    x = store[:len(labels)]
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=len(class_names))
    val_counts, train_counts = [], []
    for name, n in zip(class_names, counts):
        v = val_per_class if val_per_class is not None else _default_val(int(n), float(val_fraction))
        t = samples_per_class if samples_per_class is not None else int(n) - v
        if t < 1:
            raise KftError(
                f"class {name!r} has {n} readable images; {v} for validation leaves none for training"
            )
        val_counts.append(v)
        train_counts.append(t)
    train_idx, val_idx = split_counts(y, train_counts, val_counts, seed, class_names, range(len(class_names)))
    full = Dataset(x, y, class_names, np.arange(len(y)))
    return FolderData(full.subset(train_idx), full.subset(val_idx), files, skipped)


def _list_classes(root: Path) -> dict[str, list[Path]]:
    if not root.exists():
        raise KftError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise KftError(f"image folder {root} is not a folder")
    dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if not dirs:
        raise KftError(f"image folder {root} has no class sub-folders; expected {root}/<class name>/<images>")
    if len(dirs) < 2:
        raise KftError(f"image folder {root} has only one class sub-folder ({dirs[0].name}); a classifier needs 2+")
    out = {}
    for d in dirs:
        paths = sorted((p for p in d.iterdir() if _is_image_file(p)), key=lambda p: p.name)
        if not paths:
            raise KftError(f"class folder {d} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        out[d.name] = paths
    return out


def _is_image_file(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()


def _default_val(n: int, fraction: float) -> int:
    if n < 2 or fraction <= 0:
        return 0
    return min(max(round(n * fraction), 1), n - 1)


def _reason(e: ImageError, p: Path) -> str:
    msg = str(e)
    prefix = f"{p}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg
