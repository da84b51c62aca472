"""Self-training from unlabelled images (--unlabeled): selection, the pool, a whole run, resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import finished_run, kft_env, tiny_run_cmd
from kft.training import selftrain
from kft.training.callbacks import Callback
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


class _BlockWeights(Callback):
    """Each block's weights as every stage begins and ends, by stage name."""

    def __init__(self):
        self.seen = {}

    def _keep(self, trainer, when):
        from kft.model import block_layers

        if trainer is not None:
            self.seen[(trainer.stage.name, when)] = {
                block: [w.copy() for layer in layers for w in layer.get_weights()]
                for block, layers in block_layers(trainer.model).items()}

    def on_stage_begin(self, trainer):
        self._keep(trainer, "begin")

    def on_stage_end(self, trainer, record):
        self._keep(trainer, "end")


def _tiny_lp_ft_top(**options):
    """A tiny fixed-protocol lp_ft_top self-training run through the API (random weights, 32 px,
    2 epochs a stage, 200 pool images): its folder. Needs the real CIFAR-10."""
    from conftest import require_env
    from kft import api

    require_env("KFT_DATA_DIR")
    return api.train("mobilenet_v3_small", strategy="lp_ft_top", refit=True, select=False, weights="none", seed=3,
                     samples_per_class=4, val_per_class=3, limit_test=30, image_size=32, max_epochs=2,
                     cache_views=2, unlabeled="cifar10-rest", pool_limit=200, pseudo_per_class=5, **options)


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_top_student_trains_a_fresh_top_on_the_teachers_lower_blocks(tmp_path):
    """--student top: the student's first-stage blocks start from the run's initial weights,
    the blocks only later stages train stay the teacher's, and the later stages are skipped."""
    from conftest import require_env
    from kft import api

    require_env("KFT_DATA_DIR")
    require_env("KFT_WEIGHTS_DIR")  # ImageNet weights learn in 2 epochs, so the teacher's layer3 moves
    seen = _BlockWeights()
    run = api.train("mobilenet_v3_small", strategy="two_stage", refit=False, seed=3, samples_per_class=10,
                    val_per_class=5, limit_test=30, image_size=32, max_epochs=2, cache_views=1,
                    unlabeled="cifar10-rest", pool_limit=200, pseudo_per_class=5, student="top",
                    out=tmp_path / "run", callbacks=[seen])
    m = json.loads((run / "metrics.json").read_text())
    assert [(s["name"], s["epochs"]) for s in m["stages"]][2:] == [("student1-stage1", 2), ("student1-stage2", 0)]
    assert m["self_training"]["student"] == "top"
    w = seen.seen
    teacher, start, student = w[("stage2", "end")], w[("stage1", "begin")], w[("student1-stage1", "begin")]
    assert not _same(teacher["layer3"], start["layer3"])  # the teacher's stage 2 trained layer3
    assert _same(student["layer3"], teacher["layer3"])  # ... and the student keeps it
    for block in ("layer4", "head"):  # the student's top starts where the teacher's did
        assert _same(student[block], start[block]) and not _same(teacher[block], start[block])
    final = w[("student1-stage1", "end")]
    assert _same(final["layer3"], teacher["layer3"]) and not _same(final["head"], start["head"])


def _top_cmd(out):
    """A tiny top-student run whose teacher really moves layer3 (ImageNet weights learn in 2 epochs)."""
    return tiny_run_cmd(out, "--weights", "imagenet", "--set", "samples_per_class=10", "--set", "val_per_class=5",
                        "--set", "cache_views=1", "--unlabeled", "cifar10-rest", "--set", "self_training.pool_limit=200",
                        "--set", "self_training.per_class=5", "--set", "self_training.student=top")


def test_a_top_student_resumed_at_its_round_equals_the_uninterrupted_one(tmp_path_factory, tmp_path):
    """Killed as the student's stage starts, the resumed run takes the teacher's layer3 from the
    checkpoint and resets only the top, as the uninterrupted run did."""
    from conftest import require_env
    from kft.model import block_layers, build_classifier
    from kft.rundir import load_model

    require_env("KFT_WEIGHTS_DIR")
    reference, _ = finished_run(tmp_path_factory, "top", _top_cmd)
    final, start = load_model(reference / "model.keras"), build_classifier(
        "mobilenet_v3_small", 10, image_size=32, input_size=32, weights="imagenet", seed=3)
    moved = [not np.array_equal(a, b) for x, y in zip(block_layers(final)["layer3"], block_layers(start)["layer3"])
             for a, b in zip(x.get_weights(), y.get_weights())]
    assert any(moved)  # the teacher's layer3, not ImageNet's: a resume that reset it would differ
    run = tmp_path / "run"
    out = _kill_and_resume(_top_cmd, run, "stage-start:2")
    _assert_same_run(run, reference)
    assert "[student1-stage2] skipped: a top student" in out


def _probe_cmd(out, *extra):
    """A tiny fixed-protocol lp_ft_top run whose fresh student starts from the teacher's probe head."""
    return tiny_run_cmd(out, "--strategy", "lp_ft_top", "--set", "protocol=fixed", "--unlabeled", "cifar10-rest",
                        "--set", "self_training.pool_limit=200", "--set", "self_training.per_class=5", "--set", "self_training.probe=teacher", *extra)


def test_a_fresh_student_starts_from_the_teachers_probe_head_and_skips_its_probe(tmp_path):
    """lp_ft_top's students: the probe stage is not trained again; the top stage starts from the
    run's initial blocks with the head the teacher's probe stage ended with."""
    seen = _BlockWeights()
    run = _tiny_lp_ft_top(student_probe="teacher", out=tmp_path / "run", callbacks=[seen])
    m = json.loads((run / "metrics.json").read_text())
    assert [(s["name"], s["epochs"]) for s in m["stages"]] == [
        ("probe", 2), ("top", 2), ("student1-probe", 0), ("student1-top", 2)]
    assert m["self_training"]["student_probe"] == "teacher"
    w = seen.seen
    start, probed, taught = w[("probe", "begin")], w[("probe", "end")], w[("top", "end")]
    student = w[("student1-top", "begin")]
    assert not _same(probed["head"], start["head"]) and not _same(taught["head"], probed["head"])
    assert _same(student["head"], probed["head"])  # the teacher's probe head, not its final one
    for block in ("layer3", "layer4"):  # the rest of the student is the run's initial network
        assert _same(student[block], start[block]) and not _same(taught[block], start[block])
    with np.load(run / "self-training" / selftrain.PROBE_HEAD) as z:
        assert _same([z[f"arr_{k}"] for k in range(len(z.files))], probed["head"])
    # the default, --student-probe train: the student probes again on its own images
    again = _tiny_lp_ft_top(out=tmp_path / "again")
    m = json.loads((again / "metrics.json").read_text())
    assert [(s["name"], s["epochs"]) for s in m["stages"]][2:] == [("student1-probe", 2), ("student1-top", 2)]
    assert m["self_training"]["student_probe"] == "train"
    assert not (again / "self-training" / selftrain.PROBE_HEAD).exists()


def test_a_student_resumed_at_its_skipped_probe_equals_the_uninterrupted_one(tmp_path_factory, tmp_path):
    """Killed as the skipped probe stage ends (before its checkpoint), the resumed run resets
    the student and loads the teacher's probe head from the run folder again."""
    from conftest import require_env

    require_env("KFT_DATA_DIR")
    reference, log = finished_run(tmp_path_factory, "probe-head", _probe_cmd)
    assert "[student1-probe] skipped: its head starts as the teacher's probe head" in log
    run = tmp_path / "run"
    out = _kill_and_resume(_probe_cmd, run, "stage-done:2")
    _assert_same_run(run, reference)
    assert "round 1: kept" not in out and "[student1-probe] skipped" in out


class _StageSettings(Callback):
    def __init__(self):
        self.mixup, self.lr = {}, {}

    def on_stage_begin(self, trainer):
        self.mixup[trainer.stage.name] = trainer.stage.mixup
        self.lr[trainer.stage.name] = trainer.stage.learning_rate


def test_student_mixup_and_lr_scale_are_the_students_and_leave_the_teacher_alone(tmp_path):
    """--student-mixup and --student-lr-scale: the students' stages mix and scale their rates,
    the teacher's do not; the teacher (and so the pseudo-labels) is the same as without them,
    the student is not."""
    runs = {}
    for alpha, scale in ((0.0, 1.0), (1.0, 3.0)):
        weights, settings = _BlockWeights(), _StageSettings()
        run = _tiny_lp_ft_top(student_mixup=alpha, student_lr_scale=scale, out=tmp_path / f"mixup-{alpha}",
                              callbacks=[weights, settings])
        runs[alpha] = (run, weights.seen, settings)
    (plain, seen0, set0), (mixed, seen1, set1) = runs[0.0], runs[1.0]
    assert set0.mixup == {"probe": 0.0, "top": 0.0, "student1-probe": 0.0, "student1-top": 0.0}
    assert set1.mixup == {"probe": 0.0, "top": 0.0, "student1-probe": 1.0, "student1-top": 1.0}
    assert set1.lr == {"probe": set0.lr["probe"], "top": set0.lr["top"],
                       "student1-probe": 3 * set0.lr["student1-probe"], "student1-top": 3 * set0.lr["student1-top"]}
    assert all(_same(seen0[("top", "end")][b], seen1[("top", "end")][b]) for b in seen0[("top", "end")])
    with np.load(plain / "self-training" / "round-1.npz") as a, np.load(mixed / "self-training" / "round-1.npz") as b:
        np.testing.assert_array_equal(a["rows"], b["rows"])
    assert not _same(seen0[("student1-top", "end")]["head"], seen1[("student1-top", "end")]["head"])
    assert json.loads((mixed / "metrics.json").read_text())["self_training"]["student_mixup"] == 1.0
    assert json.loads((plain / "metrics.json").read_text())["self_training"]["student_mixup"] == 0.0
    assert json.loads((mixed / "metrics.json").read_text())["self_training"]["student_lr_scale"] == 3.0


def test_a_teacher_student_trains_the_last_stage_on_from_the_teachers_weights(tmp_path):
    """--student teacher: no reset; the first stage is skipped and the last stage starts from
    every weight the teacher ended with."""
    seen = _BlockWeights()
    run = _tiny_lp_ft_top(student="teacher", out=tmp_path / "run", callbacks=[seen])
    m = json.loads((run / "metrics.json").read_text())
    assert [(s["name"], s["epochs"]) for s in m["stages"]] == [
        ("probe", 2), ("top", 2), ("student1-probe", 0), ("student1-top", 2)]
    assert m["self_training"]["student"] == "teacher"
    taught, student = seen.seen[("top", "end")], seen.seen[("student1-top", "begin")]
    assert all(_same(student[b], taught[b]) for b in taught)
    assert not _same(seen.seen[("student1-top", "end")]["head"], taught["head"])
