"""Seeded, class-balanced index selection: few-shot train/val splits and test subsets.

All functions return sorted int64 index arrays into ``y``; the same arguments
give the same indices on every machine (``np.random.default_rng(seed)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kft.errors import KftError


ALL = "all"


def few_shot_indices(
    y,
    samples_per_class: int | str,
    val_per_class: int,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, draw ``samples_per_class`` training and ``val_per_class`` validation
    indices (disjoint: validation comes from the images not drawn for training).

    ``samples_per_class`` must be >= 1 or ``"all"`` (every image of the class not
    drawn for validation) and ``val_per_class`` >= 0 (0: empty validation set).
    Classes are ``range(len(class_names))`` when names are given (so an absent
    class is an error), else the labels present in ``y``. A class with too few
    images raises ``KftError`` naming it.
    """
    check_int("validation images per class", val_per_class, 0)
    y, classes = _labels(y, class_names)
    k = len(classes)
    if samples_per_class == ALL:
        train = [max(int(np.sum(y == c)) - val_per_class, 1) for c in classes]
        return split_counts(y, train, [val_per_class] * k, seed, class_names, classes)
    check_int("samples per class", samples_per_class, 1)
    return split_counts(y, [samples_per_class] * k, [val_per_class] * k, seed, class_names, classes)


def split_counts(y, train_counts, val_counts, seed: int, class_names=None, classes=None):
    """Per class ``classes[i]``: ``train_counts[i]`` train and ``val_counts[i]`` val indices.

    One generator walks the classes in order and draws one permutation per
    class; train takes its head and val the next ``val_counts[i]`` entries.
    Because each class's permutation depends only on the seed and the class
    sizes, a smaller ``train_counts`` gives a subset of a larger one.
    """
    check_int("seed", seed, 0)
    y_arr, found = _labels(y, class_names)
    classes = found if classes is None else classes
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c, t, v in zip(classes, train_counts, val_counts, strict=True):
        members = np.flatnonzero(y_arr == c)
        if len(members) < t + v:
            raise KftError(
                f"class {_name(c, class_names)!r} has {len(members)} images, but {t} training"
                + (f" + {v} validation" if v else "")
                + f" = {t + v} were asked for; lower the samples/validation per class"
            )
        perm = rng.permutation(len(members))
        train.append(members[perm[:t]])
        val.append(members[perm[t : t + v]])
    return _sorted(train), _sorted(val)


def stratified_subset(y, n: int, seed: int, class_names: Sequence[str] | None = None) -> np.ndarray:
    """About ``n`` / classes indices per class (for ``--limit-test N``), sorted.

    ``n >= len(y)`` returns every index. ``n`` below the number of classes is
    an error (some class would go untested). If a class has fewer images than
    its share, the rest is spread over the other classes; the remainder of
    ``n / classes`` goes to classes picked by the seed.
    """
    check_int("test limit", n, 1)
    check_int("seed", seed, 0)
    y_arr = np.asarray(y)
    if n >= len(y_arr):
        return np.arange(len(y_arr), dtype=np.int64)
    classes = np.unique(y_arr)
    if n < len(classes):
        raise KftError(
            f"test limit {n} is smaller than the number of classes ({len(classes)}); "
            f"use at least {len(classes)} so every class is tested"
        )
    counts = np.array([np.count_nonzero(y_arr == c) for c in classes])
    rng = np.random.default_rng(seed)
    quota = _fair_quota(counts, n, rng)
    picks = [rng.choice(np.flatnonzero(y_arr == c), q, replace=False) for c, q in zip(classes, quota)]
    return _sorted(picks)


def _fair_quota(counts: np.ndarray, n: int, rng) -> np.ndarray:
    """Split ``n`` (< counts.sum()) over classes as evenly as their sizes allow."""
    quota = np.zeros_like(counts)
    remaining = n
    while remaining > 0:
        open_ = np.flatnonzero(quota < counts)
        share = remaining // len(open_)
        if share == 0:  # fewer left than open classes: seeded pick of who gets one more
            quota[rng.permutation(open_)[:remaining]] += 1
            break
        add = np.minimum(share, counts[open_] - quota[open_])
        quota[open_] += add
        remaining -= int(add.sum())
    return quota


def _labels(y, class_names):
    y = np.asarray(y)
    if y.ndim != 1 or (len(y) and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    classes = np.arange(len(class_names)) if class_names is not None else np.unique(y)
    return y, classes


def _name(c, class_names) -> str:
    return str(class_names[c]) if class_names is not None else str(c)


def _sorted(parts) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(parts)).astype(np.int64)


def check_int(what: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise KftError(f"{what} must be an integer >= {minimum}, got {value!r}")
