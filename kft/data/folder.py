"""Load a user's image folder as train / validation / test Datasets.

Two layouts:

- ``photos/<class>/<images>``: every class is split with the seed: first a **test split**
  (``test_fraction`` of each class, at least one image where the class has two or more), held
  out from everything but the final score, then validation (~20% of the rest) and training.
  Near-duplicate photos (``kft.data.dedup``: bursts, re-saves, small crops of one shot) are
  grouped and the test split takes whole groups, so no near-copy of a training photo is a test
  photo.
- ``photos/train/<class>/...`` and ``photos/test/<class>/...``: the user's own test set, used as
  given; validation comes from ``train/``.

Class names are the sorted sub-folder names; images are the files directly in each class
folder whose suffix is in ``kft.images.IMAGE_SUFFIXES``, decoded and resized (antialiased) to
``image_size`` by ``kft.images.load_rgb``. Unreadable images are skipped and returned as
``(path, reason)``. Past ``memory_budget_mb`` the decoded images are kept on disk
(``kft.data.ondisk``) and streamed per batch; the split and every pixel are the same either way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kft.data import ondisk
from kft.data.dedup import MAX_DISTANCE, near_duplicate_groups
from kft.data.sampling import check_int, split_counts
from kft.data.types import Dataset
from kft.errors import KftError
from kft.images import IMAGE_SUFFIXES, ImageError, load_rgb
from kft.progress import progress

__all__ = ["DEFAULT_VAL_FRACTION", "FolderData", "TEST_SEED_KEY", "load_folder", "choose_test_split"]

DEFAULT_VAL_FRACTION = 0.2
TEST_SEED_KEY = 7  # the test split's generator: (seed, TEST_SEED_KEY), apart from the train/val split's
SPLIT_LAYOUT, TRAIN_TEST_LAYOUT = "split", "train/test folders"
_log = logging.getLogger(__name__)


class FolderData(NamedTuple):
    """``train``/``val``/``test`` Datasets (indices point into ``files``; ``test`` None when nothing is
    held out), readable ``files`` relative to the folder, ``skipped`` = [(path, reason)] for
    unreadable ones, the ``layout``, and the near-duplicate ``groups`` of two or more (file indices)."""

    train: Dataset
    val: Dataset
    files: list[str]
    skipped: list[tuple[str, str]]
    test: Dataset | None = None
    layout: str = SPLIT_LAYOUT
    groups: list[list[int]] = []


def load_folder(
    path: str | os.PathLike,
    image_size: int,
    *,
    seed: int = 0,
    samples_per_class: int | None = None,
    val_per_class: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = 0.0,
    memory_budget_mb: float | None = None,
    max_distance: int = MAX_DISTANCE,
) -> FolderData:
    """Decode every image of the folder and split each class by ``seed`` (see the module docstring).

    Test: ``test_fraction`` of each class (0: none), whole near-duplicate groups (``max_distance``
    bits of the perceptual hash), or the ``test/`` folder of a train/test layout. Validation per
    class, from the rest: ``val_per_class`` if given, else ``round(n * val_fraction)`` clamped to
    [1, n - 1] for classes with n >= 2 images. Training: ``samples_per_class`` if given, else every
    remaining image. A class left with no readable image, or too few for what was asked, raises
    ``KftError``. ``memory_budget_mb``: when the decoded images would take more, they stay on disk.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise KftError(f"image size must be a positive integer, got {image_size!r}")
    if samples_per_class is not None:
        check_int("samples per class", samples_per_class, 1)
    if val_per_class is not None:
        check_int("validation images per class", val_per_class, 0)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise KftError(f"validation fraction must be in [0, 1), got {val_fraction!r}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise KftError(f"test fraction must be in [0, 1), got {test_fraction!r}")
    root = Path(path).expanduser()
    parts = _layout(root)
    class_names = list(parts["train"])
    x, y, files, is_test, skipped = _decode(root, parts, image_size, memory_budget_mb)
    groups = np.arange(len(y))
    if "test" in parts:
        layout, test_idx = TRAIN_TEST_LAYOUT, np.flatnonzero(is_test)
    else:
        layout = SPLIT_LAYOUT
        if test_fraction > 0:
            groups = near_duplicate_groups(x, y, max_distance)
        test_idx = choose_test_split(y, groups, float(test_fraction), seed, len(class_names))
    rest = np.setdiff1d(np.flatnonzero(~is_test) if "test" in parts else np.arange(len(y)), test_idx)
    train_idx, val_idx = _train_val(y, rest, class_names, seed, samples_per_class, val_per_class, float(val_fraction))
    full = Dataset(x, y, class_names, np.arange(len(y)))
    test = full.subset(test_idx) if len(test_idx) else None
    merged = [np.flatnonzero(groups == g).tolist() for g in np.unique(groups) if np.sum(groups == g) > 1]
    return FolderData(full.subset(train_idx), full.subset(val_idx), files, skipped, test, layout, merged)


def choose_test_split(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int, num_classes: int) -> np.ndarray:
    """Per class, whole groups in a seeded order until ``round(n * fraction)`` images (at least one
    where the class has 2+ images and 2+ groups) are held out; sorted indices."""
    if fraction <= 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng([seed, TEST_SEED_KEY])
    held = []
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        class_groups = np.unique(groups[members])
        if len(members) < 2 or len(class_groups) < 2:
            continue  # nothing can be held out without leaving the class untrained (or split a group)
        want = min(max(1, round(len(members) * fraction)), len(members) - 1)
        sizes = {g: int(np.sum(groups[members] == g)) for g in class_groups}
        order, taken = rng.permutation(class_groups), 0
        for g in order:  # whole groups while they fit; a later, smaller group may still fit
            if taken + sizes[g] <= want:
                held.append(members[groups[members] == g])
                taken += sizes[g]
        if taken == 0:  # every group is larger than the share: the smallest, if the class keeps photos to train
            g = min(order, key=lambda g: sizes[g])
            if sizes[g] < len(members):
                held.append(members[groups[members] == g])
    return np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, np.int64)


def _train_val(y, rest, class_names, seed, samples_per_class, val_per_class, val_fraction):
    counts = np.bincount(y[rest], minlength=len(class_names))
    val_counts, train_counts = [], []
    for name, n in zip(class_names, counts):
        v = val_per_class if val_per_class is not None else _default_val(int(n), val_fraction)
        t = samples_per_class if samples_per_class is not None else int(n) - v
        if t < 1:
            raise KftError(f"class {name!r} has {n} readable images"
                           + (" besides its test split" if len(rest) < len(y) else "")
                           + f"; {v} for validation leaves none for training")
        val_counts.append(v)
        train_counts.append(t)
    train, val = split_counts(y[rest], train_counts, val_counts, seed, class_names, range(len(class_names)))
    return rest[train], rest[val]


def _layout(root: Path) -> dict[str, dict[str, list[Path]]]:
    """``{"train": {class: files}}``, plus ``"test"`` for a train/test layout."""
    if not root.exists():
        raise KftError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise KftError(f"image folder {root} is not a folder")
    subdirs = {d.name for d in _dirs(root)}
    if subdirs == {"train", "test"}:
        train, test = _list_classes(root / "train"), _list_classes(root / "test")
        extra = sorted(set(test) - set(train))
        if extra:
            raise KftError(f"{root / 'test'} has class {extra[0]!r}, which {root / 'train'} does not have")
        missing = sorted(set(train) - set(test))
        if missing:
            _log.warning(f"warning: {root / 'test'} has no {', '.join(missing)}: those classes are not tested")
        return {"train": train, "test": test}
    return {"train": _list_classes(root)}


def _dirs(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def _decode(root: Path, parts: dict, image_size: int, memory_budget_mb):
    """Every image of every part decoded into one array: (x, y, files, is_test, skipped)."""
    class_names = list(parts["train"])
    entries = [(part, name, p) for part, classes in parts.items() for name, paths in classes.items() for p in paths]
    shape = (len(entries), image_size, image_size, 3)
    megabytes = float(np.prod(shape)) / 2**20
    stream = memory_budget_mb is not None and megabytes > memory_budget_mb
    if stream:
        _log.info(f"{len(entries)} images at {image_size} px take {megabytes:.0f} MB > data budget {memory_budget_mb} "
                  f"MB: keeping them on disk (a temporary file in TMPDIR), read per batch")
    store = ondisk.empty(shape) if stream else np.empty(shape, np.uint8)
    labels, files, is_test, skipped = [], [], [], []
    readable = {(part, name): 0 for part, name, _ in entries}
    with progress(f"decoding {root}", total=len(entries), unit="img") as bar:
        for part, name, p in entries:
            bar.update(1)
            try:
                store[len(labels)] = load_rgb(p, (image_size, image_size))
            except ImageError as e:
                skipped.append((str(p), _reason(e, p)))
                continue
            labels.append(class_names.index(name))
            files.append(p.relative_to(root).as_posix())
            is_test.append(part == "test")
            readable[part, name] += 1
    for (part, name), n in readable.items():
        if n == 0:
            folder = parts[part][name][0].parent
            raise KftError(f"class folder {folder} has no readable image ({len(parts[part][name])} unreadable)")
    return (store[:len(labels)], np.asarray(labels, dtype=np.int64), files, np.asarray(is_test, bool), skipped)


def _list_classes(root: Path) -> dict[str, list[Path]]:
    dirs = _dirs(root)
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
