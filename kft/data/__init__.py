"""The data layer: CIFAR-10 or an image folder -> seeded few-shot train/val/test Datasets.

numpy + Pillow only (Keras is imported solely by the CIFAR-10 download
fallback). ``load_few_shot`` is the one entry point the trainer uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kft.data.cifar10 import CIFAR10_CLASSES, load_cifar10, load_cifar10_with_source
from kft.data.dedup import MAX_DISTANCE
from kft.data.folder import FolderData, load_folder
from kft.data.sampling import ALL, check_int, few_shot_indices, split_counts, stratified_subset
from kft.data.types import Dataset, FewShotData
from kft.errors import KftError

CIFAR_SAMPLES_PER_CLASS = 80  # + 20 validation: 100 labels per class in total, kft's default (kft.plan.schema)
CIFAR_VAL_PER_CLASS = 20
TEST_SUBSET_SEED = 0  # --limit-test picks the same test images whatever the training seed

__all__ = [
    "CIFAR10_CLASSES",
    "Dataset",
    "FewShotData",
    "FolderData",
    "few_shot_indices",
    "load_cifar10",
    "load_cifar10_with_source",
    "load_few_shot",
    "load_folder",
    "split_counts",
    "stratified_subset",
]


def load_few_shot(
    *,
    data_dir: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    samples_per_class: int | None = None,
    val_per_class: int | None = None,
    seed: int = 0,
    limit_test: int | None = None,
    image_size: int | None = None,
    memory_budget_mb: float | None = None,
    test_split: float | None = None,
) -> FewShotData:
    """Load the few-shot split a training run uses; the same arguments give identical arrays.

    CIFAR-10 (default; ``data_dir`` / ``KFT_DATA_DIR`` / Keras download):
    ``samples_per_class`` (default 80, or ``"all"``: every image not drawn for
    validation) training and ``val_per_class``
    (default 20, may be 0) validation images per class, both drawn from the
    training file and disjoint; test = the test file, or a class-balanced
    ``limit_test`` subset of it (chosen with a fixed seed so runs with
    different seeds are scored on the same images). Images stay 32x32; the
    model resizes internally, so ``image_size`` is not used.

    ``folder``: one sub-folder per class (or ``train/`` and ``test/`` holding them),
    resized to ``image_size`` (required); per class a ``test_split`` share held out as the
    test set (whole near-duplicate groups; None or 0: none), then ~20% validation (or
    ``val_per_class``) and all the rest (or ``samples_per_class``) for training
    (``kft.data.folder``). Past ``memory_budget_mb`` of decoded images, they stay on disk
    and are streamed.
    """
    check_int("seed", seed, 0)
    if folder is not None and data_dir is not None:
        raise KftError("give either an image folder or a CIFAR-10 data dir, not both")
    if folder is not None:
        spc = None if samples_per_class == ALL else samples_per_class  # a folder trains on all by default
        return _from_folder(folder, image_size, spc, val_per_class, seed, limit_test, memory_budget_mb, test_split)
    return _from_cifar(data_dir, samples_per_class, val_per_class, seed, limit_test)


def _from_cifar(data_dir, samples_per_class, val_per_class, seed, limit_test) -> FewShotData:
    spc = CIFAR_SAMPLES_PER_CLASS if samples_per_class is None else samples_per_class
    vpc = CIFAR_VAL_PER_CLASS if val_per_class is None else val_per_class
    if spc != ALL:
        check_int("samples per class", spc, 1)
    check_int("validation images per class", vpc, 0)
    if limit_test is not None:
        check_int("test limit", limit_test, 1)
    full_train, full_test, source = load_cifar10_with_source(data_dir)
    names = list(CIFAR10_CLASSES)
    train_idx, val_idx = few_shot_indices(full_train.y, spc, vpc, seed, names)
    if limit_test is None:
        test_idx = np.arange(len(full_test), dtype=np.int64)
    else:
        test_idx = stratified_subset(full_test.y, limit_test, TEST_SUBSET_SEED, names)
    split = {
        "source": source,
        "index_space": "train/val: rows of the CIFAR-10 training set; test: rows of its test set",
        "seed": int(seed),
        "samples_per_class": spc if spc == ALL else int(spc),
        "val_per_class": int(vpc),
        "limit_test": None if limit_test is None else int(limit_test),
        "test_subset_seed": None if limit_test is None else TEST_SUBSET_SEED,
        "class_names": names,
        "train": train_idx.tolist(),
        "val": val_idx.tolist(),
        "test": test_idx.tolist(),
    }
    return FewShotData(
        train=full_train.subset(train_idx),
        val=full_train.subset(val_idx),
        test=full_test.subset(test_idx),
        class_names=names,
        split=split,
    )


def _from_folder(folder, image_size, samples_per_class, val_per_class, seed, limit_test,
                 memory_budget_mb=None, test_split=None) -> FewShotData:
    if limit_test is not None:
        raise KftError("a test limit applies only to CIFAR-10; an image folder has no test set")
    if image_size is None:
        raise KftError("an image size is needed to load an image folder")
    data = load_folder(
        folder, image_size, seed=seed, samples_per_class=samples_per_class, val_per_class=val_per_class,
        memory_budget_mb=memory_budget_mb, test_fraction=test_split or 0.0,
    )
    names = list(data.train.class_names)
    split = {
        "source": {"kind": "folder", "path": str(Path(folder).expanduser().resolve())},
        "index_space": "train/val/test: positions in 'files' (readable images, relative to the folder)",
        "seed": int(seed),
        "samples_per_class": samples_per_class,
        "val_per_class": val_per_class,
        "image_size": int(image_size),
        "class_names": names,
        "files": data.files,
        "layout": data.layout,
        "test_split": None if data.layout != "split" else (test_split or 0.0),
        "train": data.train.indices.tolist(),
        "val": data.val.indices.tolist(),
        "test": None if data.test is None else data.test.indices.tolist(),
        "near_duplicates": {"max_distance": MAX_DISTANCE, "groups": data.groups},
        "skipped": [[p, r] for p, r in data.skipped],
    }
    return FewShotData(
        train=data.train, val=data.val, test=data.test, class_names=names, split=split, skipped=list(data.skipped)
    )
