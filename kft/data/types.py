"""Plain containers for labelled images (numpy only), shared by every data source."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from kft.data import ondisk


@dataclass
class Dataset:
    """Labelled images: ``x`` uint8 (N, H, W, 3) RGB, ``y`` int64 (N,) class ids.

    ``indices`` records where each row came from in the source arrays (CIFAR
    file order, or the sorted list of readable files of an image folder), so a
    run can say exactly which images it was trained on. ``x`` may live on disk
    (``kft.data.ondisk``, for folders past the data budget); it stays there through
    ``subset`` and ``concat``.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    indices: np.ndarray | None = None

    def __post_init__(self):
        self.y = np.asarray(self.y, dtype=np.int64)
        if self.x.dtype != np.uint8 or self.x.ndim != 4 or self.x.shape[-1] != 3:
            raise ValueError(f"Dataset.x must be uint8 (N, H, W, 3), got {self.x.dtype} {self.x.shape}")
        if self.y.shape != (len(self.x),):
            raise ValueError(f"Dataset.y must have shape ({len(self.x)},), got {self.y.shape}")
        if self.indices is not None:
            self.indices = np.asarray(self.indices, dtype=np.int64)
            if self.indices.shape != self.y.shape:
                raise ValueError("Dataset.indices must have one entry per image")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= len(self.class_names)):
            raise ValueError("Dataset.y holds a label outside class_names")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, idx) -> Dataset:
        """Rows ``idx`` (positions in this Dataset) as a new Dataset with copied arrays."""
        idx = np.asarray(idx, dtype=np.int64)
        src = self.indices[idx] if self.indices is not None else idx
        x = ondisk.take(self.x, idx) if ondisk.on_disk(self.x) else self.x[idx]
        return Dataset(x, self.y[idx], list(self.class_names), src)

    def concat(self, other: Dataset) -> Dataset:
        """This Dataset's rows followed by ``other``'s (same classes)."""
        if other.class_names != self.class_names:
            raise ValueError("cannot join Datasets with different class names")
        idx = None if self.indices is None or other.indices is None else np.concatenate([self.indices, other.indices])
        disk = ondisk.on_disk(self.x) or ondisk.on_disk(other.x)
        x = ondisk.join(self.x, other.x) if disk else np.concatenate([self.x, other.x])
        return Dataset(x, np.concatenate([self.y, other.y]),
                       list(self.class_names), idx)

    def class_counts(self) -> np.ndarray:
        """Number of images per class, shape (num_classes,)."""
        return np.bincount(self.y, minlength=self.num_classes)


@dataclass
class FewShotData:
    """Everything a training run needs from the data layer.

    ``test`` is None for folder data (no separate test set). ``split`` is
    JSON-able (source, seed, index lists) and is saved in the run folder.
    ``skipped`` lists ``(path, reason)`` for unreadable folder images.
    """

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]
    split: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Training targets (N, classes) float32 where they are not the one-hot labels: a
    # self-training student's pseudo-labels (kft.training.selftrain). None: one-hot ``train.y``.
    targets: np.ndarray | None = None

    def for_refit(self) -> FewShotData:
        """The data of a refit: training + validation images all train (in that order), no
        validation split; the test set is unchanged."""
        empty = self.val.subset(np.zeros(0, dtype=np.int64))
        return FewShotData(self.train.concat(self.val), empty, self.test, self.class_names, self.split,
                           self.skipped)

    def for_all(self) -> FewShotData:
        """Every image trains: training, validation, then test (``retrain_on_all``, a photo folder's
        shipped model after its held-out score); no validation split; ``test`` stays for reference."""
        refit = self.for_refit()
        return dataclasses.replace(refit, train=refit.train.concat(self.test))
