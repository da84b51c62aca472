"""Self-training from unlabelled images (--unlabeled): selection, the pool, a whole run, resume.

The kinds of student (top, fresh with the teacher's probe head, teacher, mixup and rate scale)
are in test_students.py: a file each, so the two test workers share them.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import finished_run, kft_env, tiny_run_cmd
from kft.training import selftrain
from kft.plan import resolve_plan
from kft.data.unlabeled import check_spec, load_pool
from kft.errors import KftError
from test_run_safety import _assert_same_run


def test_select_keeps_the_most_confident_per_predicted_class():
    probs = np.array([[0.9, 0.1, 0.0],   # 0: class 0, 0.9
                      [0.6, 0.4, 0.0],   # 1: class 0, 0.6
                      [0.8, 0.2, 0.0],   # 2: class 0, 0.8
                      [0.1, 0.5, 0.4],   # 3: class 1, 0.5
                      [0.2, 0.2, 0.6],   # 4: class 2, 0.6
                      [0.0, 0.3, 0.7]], np.float32)  # 5: class 2, 0.7
    assert selftrain.select(probs, 2).tolist() == [0, 2, 3, 4, 5]  # class 0: the top two; class 1 has one
    assert selftrain.select(probs, 1).tolist() == [0, 3, 5]
    assert selftrain.select(probs, 5, min_confidence=0.65).tolist() == [0, 2, 5]
    tie = np.array([[0.5, 0.5, 0.0]] * 3 + [[0.7, 0.3, 0.0]], np.float32)
    assert selftrain.select(tie, 2).tolist() == [0, 3]  # equal confidence: the lower row, every time


def test_which_stages_each_kind_of_student_trains():
    from kft.training.schedule import student_stages

    assert student_stages("fresh", 3) == [0, 1, 2]
    assert student_stages("top", 3) == [0]
    assert student_stages("teacher", 3) == [2]


def test_targets_are_the_teachers_probabilities_or_its_top1():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    np.testing.assert_array_equal(selftrain.targets_of(probs, "soft"), probs)
    np.testing.assert_array_equal(selftrain.targets_of(probs, "hard"), [[1, 0, 0], [0, 0, 1]])


def test_plan_keys_and_cli_overrides_are_checked():
    plan = resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", rounds=2, pseudo_per_class=50, pool_limit=300,
                        student_epochs=4, student="top")
    st = plan.self_training
    assert (plan.unlabeled, st.rounds, st.per_class, st.pool_limit, st.max_epochs, st.student) == (
        "cifar10-rest", 2, 50, 300, 4, "top")
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest").self_training.student == "fresh"
    # the teacher's stages keep the default plan's epochs
    assert [s.max_epochs for s in plan.stages] == [s.max_epochs for s in resolve_plan("mobilenet_v2").stages]
    with pytest.raises(KftError, match="self_training.max_epochs must be a positive integer, got 0"):
        resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_epochs=0)
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", protocol="refit").protocol == "refit"  # refit teacher
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", labels=100).every_label_trains
    with pytest.raises(KftError, match="self_training.rounds must be a positive integer, got 0"):
        resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", rounds=0)
    from kft.plan import plan_from_dict

    d = resolve_plan("mobilenet_v2").to_dict()
    d["self_training"]["treshold"] = 0.9
    with pytest.raises(KftError, match="self_training: unknown key 'treshold'"):
        plan_from_dict(d)
    d["self_training"] = {"targets": "fuzzy"}
    with pytest.raises(KftError, match="targets: 'fuzzy' is not one of soft, hard"):
        plan_from_dict(d)
    d["self_training"] = {"student": "bottom"}
    with pytest.raises(KftError, match="student: 'bottom' is not one of fresh, top"):
        plan_from_dict(d)
    d["self_training"] = {"probe": "borrow"}
    with pytest.raises(KftError, match="probe: 'borrow' is not one of train, teacher"):
        plan_from_dict(d)
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest").self_training.probe == "train"
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_probe="teacher").self_training.probe == "teacher"
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_mixup=0).self_training.mixup == 0
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_lr_scale=2).self_training.lr_scale == 2
    with pytest.raises(KftError, match=r"self_training.lr_scale must be a positive number, got 0"):
        resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_lr_scale=0)
    assert resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_mixup=0.4).self_training.mixup == 0.4
    with pytest.raises(KftError, match=r"self_training.mixup must be a number >= 0, got -1"):
        resolve_plan("mobilenet_v2", unlabeled="cifar10-rest", student_mixup=-1)
    d = resolve_plan("mobilenet_v2").to_dict()
    d["stages"][1]["mixup"] = "lots"
    with pytest.raises(KftError, match=r"stages\[1\] \(top\).mixup must be a number >= 0"):
        plan_from_dict(d)


def test_a_folder_pool_reads_every_image_below_it_and_skips_broken_ones(tmp_path):
    (tmp_path / "a" / "deeper").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a" / "one.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(tmp_path / "a" / "deeper" / "two.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "three.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    pool = load_pool(str(tmp_path), {}, (16, 16))
    assert pool.x.shape == (3, 16, 16, 3) and pool.held_back is None
    assert pool.source["files"] == ["a/deeper/two.jpg", "a/one.png", "three.png"]
    assert [p.endswith("broken.jpg") for p, _ in pool.skipped] == [True]
    assert tuple(pool.x[1, 8, 8]) == (255, 0, 0)
    limited = load_pool(str(tmp_path), {}, (16, 16), seed=1, limit=2)
    assert len(limited) == 2 and set(limited.source["files"]) <= set(pool.source["files"])
    from kft.data.ondisk import on_disk

    streamed = load_pool(str(tmp_path), {}, (16, 16), memory_budget_mb=1e-4)  # past the budget: on disk
    assert on_disk(streamed.x)
    np.testing.assert_array_equal(np.asarray(streamed.x), pool.x)


def test_a_wrong_pool_is_one_line_before_any_work(tmp_path):
    with pytest.raises(KftError, match="does not exist"):
        check_spec(str(tmp_path / "nowhere"), cifar=True)
    with pytest.raises(KftError, match="needs a CIFAR-10 run"):
        check_spec("cifar10-rest", cifar=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KftError, match="holds no images"):
        load_pool(str(tmp_path / "empty"), {}, (8, 8))
    out = tmp_path / "run"
    proc = subprocess.run(tiny_run_cmd(out, "--unlabeled", str(tmp_path / "nowhere")), env=kft_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unlabelled image folder" in proc.stderr and "does not exist" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def _st_cmd(out, *extra):
    return tiny_run_cmd(out, "--unlabeled", "cifar10-rest", "--set", "self_training.pool_limit=300", "--set", "self_training.per_class=6", *extra)


def _st_refit_cmd(out):
    return _st_cmd(out, "--set", "protocol=refit")


def _kill_and_resume(cmd, run, point):
    """Run ``cmd(run)`` killed at ``point``, then resume it to its end: what the resume printed."""
    killed = subprocess.run(cmd(run), env=kft_env(KFT_TEST_KILL_AT=point), capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -9, (point, killed.stderr[-1500:])
    resumed = subprocess.run([sys.executable, "-m", "kft", "train", "--resume", str(run)], env=kft_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return resumed.stdout + resumed.stderr


@pytest.fixture(scope="module")
def self_trained(tmp_path_factory):
    return finished_run(tmp_path_factory, "st", _st_cmd)


def test_a_self_training_run_records_each_round(self_trained):
    run, log = self_trained
    m = json.loads((run / "metrics.json").read_text())
    split = json.loads((run / "split.json").read_text())
    report = json.loads((run / "self-training.json").read_text())
    rows = json.loads((run / "self-training" / "pool.json").read_text())["rows"]
    # the pool is the rest of the CIFAR-10 training set: never a training or validation row
    assert report["pool_images"] == len(rows) == 300
    assert not set(rows) & set(split["train"]) and not set(rows) & set(split["val"])
    assert [s["name"] for s in m["stages"]] == ["stage1", "stage2", "student1-stage1", "student1-stage2"]
    st = m["self_training"]
    assert [r["round"] for r in st["rounds"]] == [0, 1]
    teacher, student = st["rounds"]
    assert 0 < student["kept"] <= 60 and sum(student["kept_per_class"]) == student["kept"]
    assert max(student["kept_per_class"]) <= 6
    assert 0 <= student["pseudo_label_accuracy"] <= 1
    assert teacher["test_accuracy"] == report["rounds"][0]["teacher_test_accuracy"]
    assert student["test_accuracy"] == m["test_accuracy"]
    assert m["labels"]["unlabeled_images"] == 300 and m["labels"]["pseudo_labelled_images"] == student["kept"]
    assert m["labels"]["total"] == 70  # the labels a user gave: the pool adds none
    # the final model is the student: its validation score is its own, not the teacher's
    assert m["val_accuracy"] == max(s["best_val_accuracy"] for s in m["stages"][2:])
    with np.load(run / "self-training" / "round-1.npz") as z:
        assert z["rows"].shape == (student["kept"],) and z["targets"].shape == (student["kept"], 10)
        np.testing.assert_allclose(z["targets"].sum(1), 1, rtol=1e-5)  # soft: the teacher's probabilities
    assert "round 1: kept" in log


@pytest.mark.parametrize("point", ["stage-start:2", pytest.param("epoch-trained:2:0", marks=pytest.mark.slow),
                                   pytest.param("stage-done:1", marks=pytest.mark.slow)])
def test_a_self_training_run_resumed_after_a_kill_equals_the_uninterrupted_one(tmp_path, self_trained, point):
    run = tmp_path / "run"
    _kill_and_resume(_st_cmd, run, point)
    _assert_same_run(run, self_trained[0])
    a, b = (json.loads((r / "metrics.json").read_text())["self_training"] for r in (run, self_trained[0]))
    assert a == b


@pytest.fixture(scope="module")
def refit_self_trained(tmp_path_factory):
    return finished_run(tmp_path_factory, "st-refit", _st_refit_cmd)


def test_after_a_refit_the_refit_model_teaches_and_the_student_learns_from_every_label(refit_self_trained):
    run, log = refit_self_trained
    m = json.loads((run / "metrics.json").read_text())
    st = m["self_training"]
    assert [s["name"] for s in m["stages"]] == ["stage1", "stage2", "refit-stage1", "refit-stage2",
                                                "student1-stage1", "student1-stage2"]
    # the refit model labels the pool: after its stages, before the student's
    assert log.index("[refit-stage1]") < log.index("round 1: kept") < log.index("[student1-stage1]")
    # no validation split is left: each student stage trains its fixed count and has no score
    assert [(s["epochs"], s["best_val_accuracy"]) for s in m["stages"][4:]] == [(2, None), (2, None)]
    kept = st["rounds"][1]["kept"]
    assert 0 < kept <= 60
    assert log.count(f"done: 2 epochs on {40 + 30 + kept} images") == 2  # 4 + 3 labels per class, then the pool's
    assert st["protocol"] == "refit" and st["rounds"][1]["val_accuracy"] is None
    assert st["rounds"][0]["val_accuracy"] == m["val_accuracy"] == max(s["best_val_accuracy"] for s in m["stages"][:2])
    assert st["rounds"][1]["test_accuracy"] == m["test_accuracy"]
    assert m["labels"]["protocol"] == "refit" and m["labels"]["final_model_trained_on"] == m["labels"]["total"] == 70


def test_a_refit_self_training_run_resumed_at_its_student_equals_the_uninterrupted_one(tmp_path, refit_self_trained):
    run = tmp_path / "run"
    out = _kill_and_resume(_st_refit_cmd, run, "stage-start:4")
    _assert_same_run(run, refit_self_trained[0])
    assert "round 1: kept" not in out  # the saved pseudo-labels, not a new teacher


def test_without_a_selection_run_the_fixed_model_teaches_and_the_student_follows(tmp_path_factory):
    run, log = finished_run(tmp_path_factory, "st-fixed", lambda out: _st_cmd(out, "--set", "protocol=fixed"))
    m = json.loads((run / "metrics.json").read_text())
    st = m["self_training"]
    assert [(s["name"], s["epochs"], s["best_val_accuracy"]) for s in m["stages"]] == [
        ("stage1", 2, None), ("stage2", 2, None), ("student1-stage1", 2, None), ("student1-stage2", 2, None)]
    assert log.index("[stage2]") < log.index("round 1: kept") < log.index("[student1-stage1]")
    kept = st["rounds"][1]["kept"]
    assert 0 < kept <= 60
    assert log.count("done: 2 epochs on 70 images") == 2 and log.count(f"done: 2 epochs on {70 + kept} images") == 2
    assert st["protocol"] == m["labels"]["protocol"] == "fixed"
    assert st["rounds"][0]["val_accuracy"] is None and st["rounds"][0]["test_accuracy"] is not None
    assert st["rounds"][1]["test_accuracy"] == m["test_accuracy"]


def test_the_teacher_scores_the_pool_from_cached_features_as_from_the_images(tmp_path):
    """The pool goes through the frozen prefix once (on disk past the budget); the teacher's
    probabilities from those features equal the whole model's on the images."""
    from kft.training.cache import FeatureCache
    from kft.plan import resolve_plan
    from kft.data.ondisk import on_disk
    from kft.model import build_classifier
    from conftest import make_data

    data = make_data(n_classes=3, per_class=6)
    plan = resolve_plan("resnet18", image_size=32)  # random ResNet weights give varied outputs
    model = build_classifier("resnet18", 3, image_size=32, input_size=32, weights="none", seed=0)
    base = FeatureCache(model, plan, data, 0).base
    assert base is not None
    pool_x = data.train.x
    feats = selftrain.pool_features(model, base, pool_x, budget_mb=1e-4)
    assert on_disk(feats) and feats.dtype == np.float16 and len(feats) == len(pool_x)
    in_memory = selftrain.pool_features(model, base, pool_x, budget_mb=4096)
    assert not on_disk(in_memory)
    np.testing.assert_array_equal(np.asarray(feats), in_memory)
    cached = selftrain.teacher_probabilities(model, base, feats, pool_x)
    direct = selftrain.teacher_probabilities(model, None, None, pool_x)
    assert (direct.max(0) - direct.min(0)).min() > 0.05  # the images get different probabilities
    np.testing.assert_allclose(cached, direct, atol=1e-3)  # float16 features: close, not equal
    np.testing.assert_allclose(cached.sum(1), 1, rtol=1e-5)
