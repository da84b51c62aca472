"""Scaling knobs: ``--samples-per-class all`` (the whole training set minus validation) and the plan keys
that go with big or imbalanced data. (``kft compare --jobs`` / ``--print-jobs``: tests/test_compare.py.)"""

import numpy as np
import pytest

from kft.plan import resolve_plan
from kft.data.sampling import few_shot_indices
from kft.errors import KftError


def test_all_takes_every_image_not_drawn_for_validation():
    y = np.repeat([0, 1, 2], [7, 5, 9])  # imbalanced classes
    train, val = few_shot_indices(y, "all", 2, seed=4)
    assert np.bincount(y[train]).tolist() == [5, 3, 7] and np.bincount(y[val]).tolist() == [2, 2, 2]
    assert not set(train) & set(val) and len(train) + len(val) == len(y)
    again = few_shot_indices(y, "all", 2, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again))
    other = few_shot_indices(y, "all", 2, seed=5)[1]
    assert not np.array_equal(val, other)  # the seed picks the validation images


def test_all_and_class_weight_are_plan_values():
    plan = resolve_plan("mobilenet_v3_small", samples_per_class="all", class_weight="balanced")
    assert (plan.samples_per_class, plan.class_weight) == ("all", "balanced")
    with pytest.raises(KftError, match="samples_per_class must be a positive integer or 'all'"):
        resolve_plan("mobilenet_v3_small", samples_per_class="lots")
    with pytest.raises(KftError, match="class_weight: 'inverse' is not one of none, balanced"):
        resolve_plan("mobilenet_v3_small", class_weight="inverse")


def test_the_cli_reads_all_or_a_number(capsys):
    from kft.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "mobilenet_v3_small", "--set", "samples_per_class=lots"])
    assert e.value.code == 2 and "samples_per_class must be a positive integer or 'all', got 'lots'" in \
        capsys.readouterr().err


def test_all_on_cifar10():
    from conftest import require_env
    from kft.data import load_few_shot

    data = load_few_shot(data_dir=require_env("KFT_DATA_DIR"), samples_per_class="all", val_per_class=100,
                         seed=0, limit_test=10)
    assert np.bincount(data.train.y).tolist() == [4900] * 10 and len(data.val.y) == 1000
    assert data.split["samples_per_class"] == "all" and not set(data.split["train"]) & set(data.split["val"])
