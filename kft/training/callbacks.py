"""Callbacks of the stage loop: everything ``StageTrainer`` does besides the training steps.

The trainer runs epochs and calls, in list order, ``on_stage_begin``,
``on_epoch_begin``/``on_epoch_end`` and ``on_stage_end`` of each callback
(Keras' ``CallbackList`` protocol, one "fit" per stage). kft's own behaviour is
built from them, in this order:

- ``EarlyStopping``: keeps the best trainable weights by validation accuracy,
  stops after ``patience`` epochs without a gain, restores the best at the end;
- ``EpochLog``: one line per epoch and per stage (the progress display);
- ``KerasCallbacks``: a user's own ``keras.callbacks.Callback`` objects;
- ``HistoryCSV``, ``TensorBoardLog``, ``Checkpoint``: the run folder's
  ``history.csv``, ``tensorboard/`` and ``checkpoint/`` (what ``--resume`` reads);
- ``SaveProbeHead``: the teacher's probe head, for its self-training students.

A callback reads the trainer: ``trainer.progress`` (a ``kft.rundir.state.StageProgress``:
epoch rows, early-stopping counters), ``trainer.model``, ``trainer.stage``;
setting ``trainer.stop_training`` ends the stage after the current epoch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from kft import rundir
from kft.model import dropout_rng_variables
from kft.rundir import checkpoint
from kft.rundir.state import RunState, StageRecord
from kft.training import selftrain

__all__ = ["Callback", "CallbackList", "Checkpoint", "EarlyStopping", "EpochLog", "HistoryCSV", "KerasCallbacks",
           "SaveProbeHead", "TensorBoardLog"]

_log = logging.getLogger(__name__)


class Callback:
    """Override the hooks you need. ``trainer`` is None in ``on_stage_end`` of a stage the
    run skipped (a refit stage whose selection kept its incoming weights)."""

    def on_stage_begin(self, trainer) -> None:
        pass

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        pass

    def on_epoch_end(self, trainer, logs: dict) -> None:
        """``logs``: this epoch's unrounded ``loss``, ``accuracy``, ``lr`` (and ``val_loss``,
        ``val_accuracy`` when the stage validates); the rounded row is ``trainer.progress.history[-1]``."""

    def on_stage_end(self, trainer, record: StageRecord) -> None:
        pass


class CallbackList(Callback):
    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def on_stage_begin(self, trainer):
        for c in self.callbacks:
            c.on_stage_begin(trainer)

    def on_epoch_begin(self, trainer, epoch):
        for c in self.callbacks:
            c.on_epoch_begin(trainer, epoch)

    def on_epoch_end(self, trainer, logs):
        for c in self.callbacks:
            c.on_epoch_end(trainer, logs)

    def on_stage_end(self, trainer, record):
        for c in self.callbacks:
            c.on_stage_end(trainer, record)


class EarlyStopping(Callback):
    """Stop when validation accuracy has not improved for ``patience`` epochs; restore the best.

    A stage after a model's first starts from its incoming weights' score, so it can never make
    the model worse (it may keep them: best epoch 0). A stage that does not validate (a
    refit, which trains a chosen number of epochs) keeps its last epoch.
    """

    def __init__(self, patience: int):
        self.patience = patience

    def on_stage_begin(self, trainer):
        p = trainer.progress
        if p.best_weights is None:  # a fresh stage (a resumed one carries its own)
            p.best_val_accuracy = trainer.validate()[1] if not trainer.starts_model and trainer.validates else -1.0
            p.best_weights = [v.numpy() for v in trainer.train_vars]
        trainer.stop_training = p.wait >= self.patience

    def on_epoch_end(self, trainer, logs):
        p = trainer.progress
        if not trainer.validates:
            p.best_weights, p.best_epoch = [v.numpy() for v in trainer.train_vars], p.next_epoch
            return
        if logs["val_accuracy"] > p.best_val_accuracy:
            p.best_val_accuracy, p.wait, p.best_epoch = logs["val_accuracy"], 0, p.next_epoch
            p.best_weights = [v.numpy() for v in trainer.train_vars]
        else:
            p.wait += 1
        if p.wait >= self.patience:
            trainer.stop_training = True

    def on_stage_end(self, trainer, record):
        for v, w in zip(trainer.train_vars, trainer.progress.best_weights):
            v.assign(w)


class EpochLog(Callback):
    """A line per epoch (``*``: a new best) and one when the stage is done (logged, see kft.log)."""

    def on_epoch_end(self, trainer, logs):
        row = trainer.progress.history[-1]
        shown = (f"[{trainer.stage.name}] epoch {row['epoch']}/{trainer.last_epoch}  loss {logs['loss']:.4f}  "
                 f"acc {logs['accuracy']:.4f}  ")
        if trainer.validates:
            shown += f"val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}  "
        best = trainer.validates and trainer.progress.wait == 0
        _log.info(shown + f"lr {row['lr']:.2e}  {row['seconds']:.1f}s" + ("  *" if best else ""))

    def on_stage_end(self, trainer, r):
        if not trainer.validates:
            _log.info(f"[{r.name}] done: {r.epochs} epochs on {len(trainer.data.train.y)} images, {r.seconds:.0f}s")
        else:
            _log.info(f"[{r.name}] done: {r.epochs} epochs, best val_acc {r.best_val_accuracy:.4f} "
                     f"(epoch {r.best_epoch}), {r.seconds:.0f}s, {r.trainable_params:,} trainable params"
                     + (f", cached ({r.cache_mb:.0f} MB)" if r.cached else ""))


class KerasCallbacks(Callback):
    """Runs a user's ``keras.callbacks.Callback`` objects: each stage is one Keras "fit"
    (``on_train_begin`` ... ``on_train_end``); epochs are numbered run-wide from
    ``first_epoch``. A Keras callback that sets ``model.stop_training`` ends the stage."""

    def __init__(self, callbacks, first_epoch: int = 0):
        self.callbacks, self.first_epoch = list(callbacks), first_epoch

    def on_stage_begin(self, trainer):
        trainer.model.stop_training = False
        for c in self.callbacks:
            c.set_model(trainer.model)
            c.on_train_begin({"stage": trainer.stage.name})

    def on_epoch_begin(self, trainer, epoch):
        for c in self.callbacks:
            c.on_epoch_begin(self.first_epoch + epoch)

    def on_epoch_end(self, trainer, logs):
        for c in self.callbacks:
            c.on_epoch_end(self.first_epoch + trainer.progress.next_epoch - 1, dict(logs))
        if getattr(trainer.model, "stop_training", False):
            trainer.stop_training = True

    def on_stage_end(self, trainer, record):
        if trainer is None:
            return
        for c in self.callbacks:
            c.on_train_end({})


class HistoryCSV(Callback):
    """``history.csv``: the run's epochs so far (``state``: the run before this stage)."""

    def __init__(self, run: Path, state: RunState):
        self.run, self.state = run, state

    def on_epoch_end(self, trainer, logs):
        rundir.write_history(self.run, self.state.rows(trainer.progress.history))

    def on_stage_end(self, trainer, record):
        rundir.write_history(self.run, self.state.rows(record.history))


class TensorBoardLog(Callback):
    """``tensorboard/``: the stage's epoch scalars, one event file per stage."""

    def __init__(self, run: Path, state: RunState):
        self.run, self.state = run, state

    def on_stage_end(self, trainer, record):
        rundir.write_tensorboard(self.run, self.state.rows(record.history)[len(self.state.history):])


class Checkpoint(Callback):
    """``checkpoint/`` after every epoch and at the end of the stage, like Keras' ``BackupAndRestore``:
    a kill loses at most one epoch, and a finished stage is never trained again."""

    def __init__(self, run: Path, model, state: RunState, started: float):
        self.run, self.model, self.state, self.started = run, model, state, started

    def on_epoch_end(self, trainer, logs):
        p = trainer.progress
        p.optimizer = [v.numpy() for v in trainer.optimizer_variables()]
        p.rng = [v.numpy() for v in trainer.rng_variables()]
        s = self.state
        checkpoint.save(self.run, self.model, RunState(s.stage_index, s.history, s.stages,
                                                       time.time() - self.started, p))

    def on_stage_end(self, trainer, record):
        # Everything the next stage starts from: weights (best restored) and dropout's generator state.
        rng = [v.numpy() for v in dropout_rng_variables(self.model)]
        checkpoint.save(self.run, self.model, self.state.after(record, record.history,
                                                               time.time() - self.started, rng))


class SaveProbeHead(Callback):
    """Saves the head at the end of the teacher's probe stage, for its students: after early
    stopping restored the best epoch, before the checkpoint that marks the stage done."""

    def __init__(self, run, model):
        self.run, self.model = run, model

    def on_stage_end(self, trainer, record):
        selftrain.save_probe_head(self.run, self.model)
