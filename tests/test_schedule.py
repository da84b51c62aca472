"""A run's schedule, built once from the plan: what each step trains, on what, for how long, and what
happens before it. No TensorFlow: these are plain values."""

import pytest

from kft.plan import resolve_plan
from kft.training.schedule import (ANNOUNCE, ENTER_DATA, EVERY_LABEL, PROBE_HEAD, RESET, RESET_FIRST_BLOCKS, STUDENT,
                                   TEACH, TRAIN_SPLIT, build_schedule, final_round)


def _plan(**keys):
    return resolve_plan("mobilenet_v2", **keys)  # lp_ft_top: probe (head, 20 epochs), top (20 epochs)


def _summary(steps):
    return [(s.index, s.stage.name, s.data, s.epochs, s.epochs_of, s.round) for s in steps]


def test_fixed_trains_every_label_once_for_the_planned_epochs():
    steps = build_schedule(_plan())
    assert _summary(steps) == [(0, "probe", EVERY_LABEL, 20, None, 0), (1, "top", EVERY_LABEL, 20, None, 0)]
    assert steps[0].before == (ENTER_DATA, ANNOUNCE) and steps[1].before == (ENTER_DATA,)
    assert [s.starts_model for s in steps] == [True, False]


def test_holdout_selects_on_the_training_split():
    steps = build_schedule(_plan(protocol="holdout"))
    assert _summary(steps) == [(0, "probe", TRAIN_SPLIT, None, None, 0), (1, "top", TRAIN_SPLIT, None, None, 0)]


def test_refit_selects_then_trains_a_fresh_model_on_every_label_for_the_selected_epochs():
    steps = build_schedule(_plan(protocol="refit"))
    assert _summary(steps) == [(0, "probe", TRAIN_SPLIT, None, None, 0), (1, "top", TRAIN_SPLIT, None, None, 0),
                               (2, "refit-probe", EVERY_LABEL, None, 0, 0), (3, "refit-top", EVERY_LABEL, None, 1, 0)]
    assert steps[2].before == (ENTER_DATA, RESET, ANNOUNCE) and steps[2].starts_model
    assert "kept the incoming weights" in steps[3].skip  # why it trains nothing if its selection kept 0 epochs


@pytest.mark.parametrize("protocol,teacher_steps,epochs", [("fixed", 2, 10), ("refit", 4, 10), ("holdout", 2, None)])
def test_a_fresh_student_follows_the_teacher(protocol, teacher_steps, epochs):
    steps = build_schedule(_plan(protocol=protocol, unlabeled="cifar10-rest"))
    students = steps[teacher_steps:]
    assert [(s.index, s.stage.name, s.data, s.epochs, s.round) for s in students] == [
        (teacher_steps, "student1-probe", STUDENT, epochs, 1), (teacher_steps + 1, "student1-top", STUDENT, epochs, 1)]
    assert students[0].before == (TEACH, RESET, ENTER_DATA)  # the teacher labels the pool, then the reset
    # capped at self_training.max_epochs (10), at self_training.lr_scale (0.6) times the stage's rate
    assert [s.stage.max_epochs for s in students] == [10, 10]
    assert students[1].stage.learning_rate == pytest.approx(0.6 * steps[1].stage.learning_rate)
    assert final_round(steps) == students


def test_top_and_teacher_students_skip_the_stages_they_do_not_train():
    top = build_schedule(_plan(unlabeled="cifar10-rest", student="top"))[2:]
    assert top[0].before == (TEACH, RESET_FIRST_BLOCKS, ENTER_DATA) and top[0].epochs == 10
    assert top[1].epochs == 0 and "first stage's blocks only" in top[1].skip
    teacher = build_schedule(_plan(unlabeled="cifar10-rest", student="teacher"))[2:]
    assert teacher[0].before == (TEACH, ENTER_DATA)  # no reset: it starts as the teacher
    assert teacher[0].epochs == 0 and teacher[1].epochs == 10


def test_a_shared_probe_head_is_saved_by_the_teacher_and_taken_by_the_student():
    steps = build_schedule(_plan(unlabeled="cifar10-rest", student_probe="teacher"))
    assert [s.save_probe_head for s in steps] == [True, False, False, False]
    assert steps[2].before == (TEACH, RESET, ENTER_DATA, PROBE_HEAD)
    assert not any(s.save_probe_head for s in build_schedule(_plan(student_probe="teacher")))  # no students


def test_rounds_follow_one_another_with_their_own_pseudo_labels():
    steps = build_schedule(_plan(unlabeled="cifar10-rest", rounds=2))
    assert [(s.stage.name, s.round) for s in steps] == [("probe", 0), ("top", 0), ("student1-probe", 1),
                                                       ("student1-top", 1), ("student2-probe", 2), ("student2-top", 2)]
    assert [s.index for s in steps] == list(range(6)) and steps[4].before[0] == TEACH
