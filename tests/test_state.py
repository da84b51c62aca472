"""Typed run state (checkpoint JSON), the stage loop's callbacks on a stand-in trainer, and kft's logging."""

import logging

import numpy as np
import pytest

from kft.training.callbacks import CallbackList, EarlyStopping
from kft.rundir.state import RunState, StageProgress, StageRecord

RECORD = StageRecord("stage1", 3, 0.5, 2, 1.5, 100, True, 2.0)


def test_run_state_round_trips_through_json():
    progress = StageProgress(2, 0.5, 1, 1, 3.0, [{"epoch": 1}, {"epoch": 2}], [np.ones(2)], [np.zeros(1)], [np.ones(3)])
    state = RunState(1, [{"epoch": 1, "stage": "stage1"}], [RECORD], 9.5, progress)
    raw = state.to_json()
    arrays = {"best": progress.best_weights, "optimizer": progress.optimizer, "rng": progress.rng}
    back = RunState.from_json(raw, arrays)
    assert back == state and back.stage.best_weights is progress.best_weights
    boundary = state.after(RECORD, [{"epoch": 1, "stage": "stage2"}], 12.0, rng=[np.ones(3)])
    assert boundary.to_json()["next_epoch"] == 0 and "stage_history" not in boundary.to_json()
    assert [r["epoch"] for r in boundary.history] == [1, 2] and boundary.stage_index == 2
    assert RunState.from_json(boundary.to_json(), {"rng": boundary.rng}).rng is boundary.rng


def test_a_checkpoint_written_before_best_epoch_and_schema_version_still_loads():
    old = {"stage_index": 1, "next_epoch": 3, "best_val_accuracy": 0.4, "wait": 1, "seconds": 5.0,
           "stage_history": [{"val_accuracy": 0.3}, {"val_accuracy": 0.4}, {"val_accuracy": 0.35}],
           "history": [], "stages": [{"name": "stage1", "epochs": 2, "best_val_accuracy": 0.3, "seconds": 1.0,
                                      "trainable_params": 5, "cached": False, "cache_mb": 0.0}], "elapsed": 7.0}
    state = RunState.from_json(old)
    assert state.stage.best_epoch == 2 and state.stages[0].best_epoch == 0 and state.stage.next_epoch == 3


class _Var:
    def __init__(self, value):
        self.value = np.array(value, dtype=np.float32)

    def numpy(self):
        return self.value.copy()

    def assign(self, value):
        self.value = np.array(value, dtype=np.float32)


class _Trainer:
    """What callbacks read from ``kft.training.trainer.StageTrainer``, without TensorFlow."""

    def __init__(self, index=0, validates=True, incoming_score=0.0):
        self.index, self.validates, self.stop_training = index, validates, False
        self.starts_model = index == 0  # a model's first stage: no incoming score
        self.train_vars = [_Var([0.0])]
        self.progress = StageProgress()
        self._incoming = incoming_score

    def validate(self):
        return 1.0, self._incoming


def _run(trainer, scores, patience=2):
    cbs = CallbackList([EarlyStopping(patience)])
    cbs.on_stage_begin(trainer)
    seen = []
    for epoch, score in enumerate(scores):
        if trainer.stop_training:
            break
        trainer.train_vars[0].assign([epoch + 1.0])  # "training" moves the weight
        trainer.progress.next_epoch = epoch + 1
        cbs.on_epoch_end(trainer, {"val_accuracy": score})
        seen.append(epoch + 1)
    cbs.on_stage_end(trainer, RECORD)
    return seen


def test_early_stopping_stops_after_patience_and_restores_the_best():
    t = _Trainer()
    assert _run(t, [0.2, 0.5, 0.4, 0.45, 0.9]) == [1, 2, 3, 4]  # 2 epochs without a gain after epoch 2
    assert (t.progress.best_epoch, t.progress.best_val_accuracy) == (2, 0.5)
    assert t.train_vars[0].numpy()[0] == 2.0  # epoch 2's weights are back


def test_a_later_stage_keeps_its_incoming_weights_when_it_cannot_beat_them():
    t = _Trainer(index=1, incoming_score=0.6)
    _run(t, [0.5, 0.6])  # a tie is no gain
    assert t.progress.best_epoch == 0 and t.train_vars[0].numpy()[0] == 0.0


def test_a_stage_without_validation_keeps_its_last_epoch():
    t = _Trainer(validates=False)
    assert _run(t, [0.0, 0.0, 0.0]) == [1, 2, 3]
    assert t.progress.best_epoch == 3 and t.train_vars[0].numpy()[0] == 3.0


def test_a_resumed_stage_that_had_run_out_of_patience_trains_no_more():
    t = _Trainer()
    t.progress = StageProgress(4, 0.5, 2, 2, 1.0, [{}] * 4, [np.array([2.0])])
    assert _run(t, [0.99]) == []
    assert t.train_vars[0].numpy()[0] == 2.0


def test_library_messages_go_through_logging(capsys, caplog):
    from kft.log import show_messages

    logger = logging.getLogger("kft.training.run")
    root = logging.getLogger("kft")
    root.handlers.clear()  # as a fresh process has it (a CLI test may have run here before)
    root.propagate = True
    with caplog.at_level(logging.INFO, logger="kft"):
        logger.info("one line")
    assert [r.getMessage() for r in caplog.records] == ["one line"]
    capsys.readouterr()  # whatever the root logger's handlers (another library's) printed
    try:
        show_messages("stdout")
        logger.info("shown")
        logging.getLogger("kft.export").warning("careful")
        out, err = capsys.readouterr()
        assert out == "shown\n" and err == "careful\n"
    finally:
        root.handlers.clear()
        root.propagate = True
        root.setLevel(logging.NOTSET)


@pytest.mark.parametrize("module", ["kft.training.run", "kft.training.trainer", "kft.training.schedule", "kft.training.cache", "kft.export", "kft.compare.grid", "kft.bench.run"])
def test_library_modules_do_not_print(module):
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(module))
    assert "print(" not in source and "click" not in source
