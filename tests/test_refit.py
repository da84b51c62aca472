"""The refit label protocol: select epochs on the validation split, then train a fresh model on every label."""

import csv
import json

import pytest

from conftest import finished_run
from kft.plan import OptionError, labels_split, plan_from_dict, resolve_plan
from kft.errors import KftError
from test_run_safety import _assert_same_run, _cmd, _history, _kill_and_resume

def _refit_cmd(out):
    return _cmd(out) + ["--set", "protocol=refit"]


def _fixed_cmd(out):
    return _cmd(out) + ["--set", "protocol=fixed"]


@pytest.fixture(scope="module")
def holdout_and_refit(tmp_path_factory):
    return {name: finished_run(tmp_path_factory, name, cmd) for name, cmd in (("holdout", _cmd), ("refit", _refit_cmd))}


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory):
    return finished_run(tmp_path_factory, "fixed", _fixed_cmd)


def test_labels_is_an_inner_80_20_split_of_which_every_label_trains():
    assert labels_split(100) == (80, 20)
    assert labels_split(10) == (8, 2)
    assert labels_split(2) == (1, 1)
    plan = resolve_plan("mobilenet_v2", labels=25)
    assert (plan.samples_per_class, plan.val_per_class, plan.protocol) == (20, 5, "fixed")
    assert resolve_plan("mobilenet_v2", labels=25, protocol="refit").protocol == "refit"
    with pytest.raises(OptionError, match=r"labels must be an integer >= 2, got 1") as e:
        labels_split(1)
    assert e.value.key == "labels"
    with pytest.raises(KftError, match="not both"):
        resolve_plan("mobilenet_v2", labels=25, samples_per_class=10)
    with pytest.raises(OptionError, match="counts every label"):
        resolve_plan("mobilenet_v2", labels=25, protocol="holdout")


def test_refit_trains_every_label_for_the_selected_epochs(holdout_and_refit):
    (hold, _), (refit, out) = holdout_and_refit["holdout"], holdout_and_refit["refit"]
    m = json.loads((refit / "metrics.json").read_text())
    assert m["labels"] == {"protocol": "refit", "per_class": 7.0, "train_per_class": 4.0, "val_per_class": 3.0,
                           "final_model_trained_on": 70, "total": 70}
    assert json.loads((hold / "metrics.json").read_text())["labels"]["final_model_trained_on"] == 40
    selection, refits = m["stages"][:2], m["stages"][2:]
    assert [s["name"] for s in refits] == ["refit-stage1", "refit-stage2"]
    # the refit runs each stage for exactly the epochs selection kept, without validation
    assert [s["epochs"] for s in refits] == [s["best_epoch"] for s in selection]
    assert all(s["best_val_accuracy"] is None for s in refits)
    assert "training a fresh model on all 70 labelled images (40 train + 30 validation)" in out
    rows = list(csv.DictReader((refit / "history.csv").open()))
    assert all(r["val_accuracy"] == "" for r in rows if r["stage"].startswith("refit-"))
    # its selection phase is the holdout run, epoch for epoch (same seed, same split)
    sel_rows = [r for r in _history(refit) if not r["stage"].startswith("refit-")]
    assert sel_rows == _history(hold)
    assert m["val_accuracy"] == json.loads((hold / "metrics.json").read_text())["val_accuracy"]


@pytest.mark.parametrize("point", ["stage-done:1", pytest.param("epoch-trained:2:0", marks=pytest.mark.slow)])
def test_a_refit_resumed_after_a_kill_equals_the_uninterrupted_one(tmp_path, holdout_and_refit, point):
    run, _ = _kill_and_resume(tmp_path, point, cmd=_refit_cmd)
    _assert_same_run(run, holdout_and_refit["refit"][0])


def test_the_protocol_names_what_the_labels_did():
    assert resolve_plan("mobilenet_v2").protocol == "fixed"
    for protocol in ("fixed", "refit", "holdout"):
        assert resolve_plan("mobilenet_v2", protocol=protocol).protocol == protocol
    with pytest.raises(KftError, match=r"protocol: 'some' is not one of fixed, refit, holdout"):
        resolve_plan("mobilenet_v2", protocol="some")
    # the old refit/select booleans (flags, plans and run folders written before `protocol`) still read
    assert resolve_plan("mobilenet_v2", refit=True, select=True).protocol == "refit"
    assert resolve_plan("mobilenet_v2", refit=True, select=False).protocol == "fixed"
    assert resolve_plan("mobilenet_v2", labels=25, select=False).protocol == "fixed"
    assert resolve_plan("mobilenet_v2", refit=False).protocol == "holdout"  # a holdout run always selects
    with pytest.raises(KftError, match="select false needs refit"):
        resolve_plan("mobilenet_v2", refit=False, select=False)
    with pytest.raises(KftError, match="select must be true or false"):
        plan_from_dict({"backbone": "mobilenet_v2", "refit": True, "select": "no",
                        "stages": [{"name": "s", "trainable": ["head"]}]})


def test_fixed_trains_every_label_for_each_stages_planned_epochs_without_a_selection_run(fixed_run):
    run, out = fixed_run
    m = json.loads((run / "metrics.json").read_text())
    assert m["labels"] == {"protocol": "fixed", "per_class": 7.0, "train_per_class": 4.0, "val_per_class": 3.0,
                           "final_model_trained_on": 70, "total": 70}
    # no selection run: each stage once, for its planned (here: capped) epochs, on every label, unscored
    assert [(s["name"], s["epochs"], s["best_val_accuracy"]) for s in m["stages"]] == \
        [("stage1", 2, None), ("stage2", 2, None)]
    assert m["val_accuracy"] is None and m["test_images"] == 30
    assert "no selection run" in out and out.count("done: 2 epochs on 70 images") == 2
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert len(rows) == 4 and all(r["val_accuracy"] == "" for r in rows)


def test_a_fixed_run_resumed_after_a_kill_equals_the_uninterrupted_one(tmp_path, fixed_run):
    run, _ = _kill_and_resume(tmp_path, "epoch-trained:1:0", cmd=_fixed_cmd)
    _assert_same_run(run, fixed_run[0])
