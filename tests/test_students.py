"""The kinds of student a self-training run trains (``self_training.student``, ``.probe``,
``.mixup``, ``.lr_scale``): what each starts from, which stages it trains, and resume."""

import json

import numpy as np

from conftest import finished_run, tiny_run_cmd
from kft.training import selftrain
from kft.training.callbacks import Callback
from test_run_safety import _assert_same_run
from test_selftrain import _kill_and_resume


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
