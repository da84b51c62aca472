"""The unlabelled pool a self-training run draws pseudo-labels from (numpy + Pillow only).

``cifar10-rest``: every CIFAR-10 training image the run did not draw for training or
validation. Their true labels are kept beside the pool (``held_back``) for the report
only (how accurate were the pseudo-labels?); training never reads them.

A folder: every image file under it, sub-folders included (their names are ignored:
nothing here is a label), decoded and resized (antialiased) to the labelled images'
size. Unreadable files are skipped and listed, as for a labelled folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kft.data import ondisk
from kft.data.cifar10 import load_cifar10_with_source
from kft.errors import KftError
from kft.images import IMAGE_SUFFIXES, ImageError, load_rgb
from kft.progress import progress

CIFAR_REST = "cifar10-rest"  # the CIFAR-10 training images a run did not draw (their labels unread)

POOL_SEED = 7  # with the run seed: which images a pool_limit keeps


@dataclass
class Pool:
    x: np.ndarray  # uint8 (N, H, W, 3), the labelled images' size
    source: dict  # JSON-able: kind, and the CIFAR-10 rows or the files
    held_back: np.ndarray | None = None  # true labels (cifar10-rest), for the report only
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


def check_spec(spec: str, cifar: bool) -> None:
    """A one-line error for a pool that cannot work: cifar10-rest without CIFAR-10, a missing folder."""
    if spec == CIFAR_REST:
        if not cifar:
            raise KftError(f"`unlabeled` {CIFAR_REST} needs a CIFAR-10 run; with `data` give a folder of "
                           f"unlabelled images")
        return
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise KftError(f"unlabelled image folder {root} {'is not a folder' if root.exists() else 'does not exist'}"
                       f" (`unlabeled` takes {CIFAR_REST} or a folder)")


def load_pool(spec: str, split: dict, image_hw: tuple[int, int], *, seed: int = 0,
              limit: int | None = None, memory_budget_mb: float | None = None) -> Pool:
    """The pool named by ``spec`` (``cifar10-rest`` or a folder) for a run whose ``split``
    (``FewShotData.split``) holds its labelled rows; ``limit``: a seeded sample of that many.
    A folder's decoded images past ``memory_budget_mb`` stay on disk (``kft.data.ondisk``)."""
    if spec == CIFAR_REST:
        pool = _cifar_rest(split)
    else:
        pool = _folder(Path(spec).expanduser(), image_hw, memory_budget_mb)
    if limit is not None and limit < len(pool):
        keep = np.sort(np.random.default_rng([seed, POOL_SEED]).choice(len(pool), limit, replace=False))
        rows = pool.source.get("rows", pool.source.get("files"))
        key = "rows" if "rows" in pool.source else "files"
        x = ondisk.take(pool.x, keep) if ondisk.on_disk(pool.x) else pool.x[keep]
        pool = Pool(x, {**pool.source, key: [rows[i] for i in keep], "limit": int(limit)},
                    None if pool.held_back is None else pool.held_back[keep], pool.skipped)
    if len(pool) == 0:
        raise KftError(f"the unlabelled pool {spec!r} holds no images")
    return pool


def _cifar_rest(split: dict) -> Pool:
    source = split.get("source") or {}
    if source.get("kind") != "cifar10":
        raise KftError(f"`unlabeled` {CIFAR_REST} needs a CIFAR-10 run; for an image folder give a folder "
                       f"of unlabelled images")
    # the files the labelled rows came from (the python batches' folder sits inside cifar10/)
    root = source.get("path")
    if root is not None and source.get("layout") == "python-batches":
        root = str(Path(root).parent)
    train, _test, _source = load_cifar10_with_source(root)
    used = np.zeros(len(train), bool)
    used[np.asarray(split["train"], np.int64)] = True
    used[np.asarray(split["val"], np.int64)] = True
    rows = np.flatnonzero(~used)
    return Pool(train.x[rows], {"kind": CIFAR_REST, "rows": rows.tolist()}, train.y[rows].copy())


def _folder(root: Path, image_hw: tuple[int, int], memory_budget_mb: float | None = None) -> Pool:
    if not root.is_dir():
        raise KftError(f"unlabelled image folder {root} {'is not a folder' if root.exists() else 'does not exist'}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not paths:
        raise KftError(f"unlabelled image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    shape = (len(paths), *image_hw, 3)
    big = memory_budget_mb is not None and np.prod(shape) / 2**20 > memory_budget_mb
    x = (ondisk.empty if big else np.empty)(shape, np.uint8)
    files, skipped = [], []
    with progress(f"decoding unlabelled {root}", total=len(paths), unit="img") as bar:
        for p in paths:
            bar.update(1)
            try:
                x[len(files)] = load_rgb(p, image_hw)
            except ImageError as e:
                skipped.append((str(p), str(e)))
                continue
            files.append(p.relative_to(root).as_posix())
    return Pool(x[:len(files)], {"kind": "folder", "path": str(root.resolve()), "files": files}, None, skipped)
