"""The run driver: make the run folder, then walk the plan's schedule step by step.

``train`` loads the data, builds the initial model and the run folder; ``resume`` reads a
folder back. Both end in ``_walk``, which starts at the folder's last checkpoint (an index
into the schedule, ``kft.training.schedule``) and, for each step, does what the step says
before it (switch data, reset, teach, take the probe head), trains it with a
``StageTrainer``, and checkpoints. ``kft.training.summary`` writes the end of the run.

    run = train(resolve_plan("mobilenet_v2"), seed=0)     # -> runs/mobilenet_v2-lp_ft_top-<time>/
"""

from __future__ import annotations

import dataclasses
import logging
import time

from kft import rundir
from kft.data import load_few_shot
from kft.data.checks import folder_warnings
from kft.data.unlabeled import check_spec
from kft.errors import KftError
from kft.model import dropout_rng_variables
from kft.plan import REFIT, Plan, plan_from_dict
from kft.rundir import checkpoint
from kft.rundir.guard import lock
from kft.rundir.state import RunState, StageRecord
from kft.training import killpoints, schedule, selftrain
from kft.training.cache import FeatureCache
from kft.training.callbacks import (Callback, CallbackList, Checkpoint, EarlyStopping, EpochLog, HistoryCSV,
                                    KerasCallbacks, SaveProbeHead, TensorBoardLog)
from kft.training.distribute import is_chief, make_strategy, replicas
from kft.training.initial import initial_model, reset_to_initial
from kft.training.augment import CACHE_ALL_VIEWS
from kft.training.schedule import (ALL_PHOTOS, ANNOUNCE, ENTER_DATA, EVERY_LABEL, PROBE_HEAD, RESET, RESET_FIRST_BLOCKS,
                                   SCORE_HELDOUT, STUDENT, TEACH, Step)
from kft.training.summary import finish, score_before_retraining
from kft.training.trainer import StageTrainer, scope

__all__ = ["resume", "train"]

_log = logging.getLogger(__name__)


def train(plan: Plan, *, seed: int = 0, weights: str = "imagenet", data_dir=None, folder=None,
          folder_counts: tuple[int | None, int | None] = (None, None), limit_test: int | None = None,
          out=None, overwrite: bool = False, callbacks=()):
    """Run every step of ``plan`` and leave a complete run folder; returns its path.

    Data: CIFAR-10 from ``data_dir``/``KFT_DATA_DIR`` (few-shot sampled with ``seed``)
    or a class-per-folder dataset ``folder`` (``folder_counts``: train/val images per
    class, None = all / about 20%). The test set is scored once, at the end.
    ``callbacks``: ``kft.training.callbacks.Callback`` or ``keras.callbacks.Callback`` objects.
    """
    strategy = make_strategy(plan.distribute)  # first: a multi-worker strategy must exist before any TF op
    if not is_chief(strategy):  # every worker trains; the chief alone keeps the run folder
        import tempfile

        out, overwrite = tempfile.mkdtemp(prefix="kft-worker-"), True
    rundir.check_run_dir(out, overwrite)  # before minutes of loading: a folder in use is refused at once
    spc, vpc = folder_counts if folder else (plan.samples_per_class, plan.val_per_class)
    source = rundir.DataSource(data_dir=str(data_dir) if data_dir else None, folder=str(folder) if folder else None,
                               samples_per_class=spc, val_per_class=vpc, seed=seed, limit_test=limit_test,
                               image_size=plan.image_size if folder else None,
                               test_split=plan.test_split if folder else None)
    if plan.unlabeled:  # a wrong pool is a user's mistake: say so before minutes of loading
        check_spec(plan.unlabeled, cifar=folder is None)
    if plan.retrain_on_all and not folder:
        raise KftError("retrain_on_all is for photo folders (`data`): CIFAR-10's test set never trains")
    data = load_few_shot(**dataclasses.asdict(source), memory_budget_mb=plan.data_budget_mb)
    for path, reason in getattr(data, "skipped", []):
        _log.warning(f"skipped {path}: {reason}")
    if folder:
        for line in folder_warnings(data):
            _log.warning(f"warning: {line}")
        if plan.retrain_on_all and data.test is None:
            raise KftError("retrain_on_all needs a test split to score first (test_split is 0)")
    model = _initial_model(plan, data, seed, weights, strategy)
    run = rundir.new_run_dir(out, plan.backbone, plan.strategy, overwrite)  # once data and weights are known good
    rundir.write_config(run, {**plan.to_dict(), "seed": seed, "weights": weights})
    rundir.write_split(run, source, {"class_names": data.class_names, **data.split,
                                     "git_revision": rundir.git_revision()})  # the code the run started with
    rundir.write_labels(run, data.class_names)
    _log.info(f"run {run}: {plan.backbone} / {plan.strategy}, {len(data.train.y)} train, {len(data.val.y)} val, "
              f"{0 if data.test is None else len(data.test.y)} test images, input {data.train.x.shape[1]} px "
              f"-> {plan.image_size} px, weights {weights}")
    killpoints.reached("data-loaded")
    _walk(run, plan, data, seed, weights, callbacks, model, strategy)
    if not is_chief(strategy):
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    return run


def resume(run_dir, callbacks=()):
    """Continue an interrupted run from the end of its last completed epoch."""
    run = rundir.load_run(run_dir)
    lock(run.path)
    if run.finished:
        raise KftError(f"{run.path} is finished already ({rundir.METRICS} exists); nothing to resume")
    config = dict(run.config)
    seed, weights = config.pop("seed"), config.pop("weights")
    plan = plan_from_dict(config, str(run.path / rundir.CONFIG))
    _walk(run.path, plan, run.data(), seed, weights, callbacks, strategy=make_strategy(plan.distribute))
    return run.path


def _initial_model(plan: Plan, data, seed: int, weights: str, strategy=None):
    return initial_model(plan, len(data.class_names), int(data.train.x.shape[1]), seed, weights, strategy)


class _Walk:
    """What changes while a run walks its schedule: the model, the data and feature cache of the
    current step, the self-training rounds; ``prepare`` does what a step needs before it trains."""

    def __init__(self, run, plan: Plan, data, seed: int, weights: str, model, strategy):
        self.run, self.plan, self.selection, self.seed, self.weights = run, plan, data, seed, weights
        self.model, self.strategy = model, strategy
        with scope(strategy):
            self.features = FeatureCache(model, plan, data, seed)
        self.data, self.data_key = data, None
        self.teaching = None if not plan.unlabeled else selftrain.Teaching(run, plan, data, seed, self.features.base)

    def prepare(self, step: Step, fresh: bool, resumed_here: bool, records: list[StageRecord]) -> str | None:
        """Do what comes before ``step``: switch its data (always, when it changes or the run resumes
        here), and, when it starts afresh (not resumed mid-stage), teach, reset, announce (``records``:
        the stages finished so far). Returns why the step trains nothing where that was decided now
        (the teacher's probe head), else None."""
        skip = None
        for action in step.before:
            if action == ENTER_DATA:
                if resumed_here or self.data_key != (step.data, step.round):
                    self._enter(step)
            elif not fresh:
                continue
            elif action == TEACH:
                self.teaching.label_pool(self.model, step.round, self.features)
            elif action in (RESET, RESET_FIRST_BLOCKS):
                blocks = self.plan.stages[0].trainable if action == RESET_FIRST_BLOCKS else None
                reset_to_initial(self.model, self.plan, self.selection, self.seed, self.weights, blocks=blocks)
            elif action == ANNOUNCE:
                self._announce(records)
            elif action == SCORE_HELDOUT:
                score_before_retraining(self.run, self.model, self.selection)
            elif action == PROBE_HEAD and self.teaching.give_probe_head(self.model):
                skip = ("its head starts as the teacher's probe head, learned on the same frozen network "
                        "(self_training.probe)")
        return skip

    def _enter(self, step: Step) -> None:
        if step.data == EVERY_LABEL:
            self.data = self.selection.for_refit()
            self.features.refit(self.data)
        elif step.data == ALL_PHOTOS:
            if self.plan.every_label_trains and self.data_key is None:  # resumed here: the cache replays its refit
                self.features.refit(self.selection.for_refit())
            self.data = self.selection.for_all()
            self.features.refit(self.data, stream=(CACHE_ALL_VIEWS,))
        elif step.data == STUDENT:
            self.data, self.features = self.teaching.student(self.model, step.round)
        else:
            self.data = self.selection
        self.data_key = (step.data, step.round)

    def _announce(self, records: list[StageRecord]) -> None:
        sel, plan = self.selection, self.plan
        labels = (f"all {len(self.data.train.y)} labelled images ({len(sel.train.y)} train + "
                  f"{len(sel.val.y)} validation)")
        if plan.protocol == REFIT:
            _log.info(f"refit: training a fresh model on {labels} for the selected epochs: "
                      f"{', '.join(f'{s.name} {r.best_epoch}' for s, r in zip(plan.stages, records))}")
        else:
            _log.info(f"fixed epochs: training on {labels}, no selection run: "
                      f"{', '.join(f'{s.name} {s.max_epochs}' for s in plan.stages)}")


def _walk(run, plan: Plan, data, seed: int, weights: str, callbacks=(), model=None, strategy=None) -> None:
    """Train the run in folder ``run`` to its end, from its last checkpoint if it has one: the
    one path of both ``train`` (fresh folder, ``model`` already built) and ``resume``."""
    saved = checkpoint.load(run)
    state = saved[0] if saved else RunState()
    steps = schedule.build_schedule(plan)
    fresh_model = model is None
    if fresh_model or saved:
        model = _initial_model(plan, data, seed, "none" if saved else weights, strategy)
    if saved:
        model.load_weights(saved[1])
        at = steps[min(state.stage_index, len(steps) - 1)]
        _log.info(f"resuming {run}: stage {at.plan_stage + 1}/{len(plan.stages)} ({plan.stages[at.plan_stage].name}), "
                  f"epoch {(state.stage.next_epoch if state.stage else 0) + 1}")
    elif fresh_model:  # killed before the first epoch ended: what Keras' BackupAndRestore does, start over
        _log.info(f"{run} has no checkpoint yet (stopped before its first epoch ended): "
                  f"starting it again from its saved config and split")
    if strategy is not None:
        _log.info(f"distribute: {plan.distribute} over {replicas(strategy)} replicas, global batch {plan.batch_size}")
    t_start = time.time() - state.elapsed
    first = state.stage_index
    walk = _Walk(run, plan, data, seed, weights, model, strategy)
    user_keras = [c for c in callbacks if not isinstance(c, Callback)]
    user_kft = [c for c in callbacks if isinstance(c, Callback)]
    for step in steps[first:]:
        i, here = step.index, step.index == first
        fresh = not (here and state.stage is not None)
        skip = walk.prepare(step, fresh, here, state.stages)
        epochs = state.stages[step.epochs_of].best_epoch if step.epochs_of is not None else step.epochs
        if here and not step.starts_model and state.stage is None and state.rng is not None:
            # resumed at a stage boundary: dropout's generator continues where the last stage left it
            for v, a in zip(dropout_rng_variables(model), state.rng, strict=True):
                v.assign(a)
        persist = [HistoryCSV(run, state), TensorBoardLog(run, state), Checkpoint(run, model, state, t_start)]
        if step.save_probe_head:
            persist.insert(0, SaveProbeHead(run, model))
        if skip or epochs == 0:
            record = StageRecord(step.stage.name, 0, None, 0, 0.0, 0, False, 0.0)
            _log.info(f"[{step.stage.name}] skipped: {skip or step.skip}")
            killpoints.reached(f"stage-done:{i}")
            CallbackList(persist).on_stage_end(None, record)
        else:
            trainer = StageTrainer(model, plan, step.stage, i, walk.data, seed, walk.features, strategy=strategy,
                                   starts_model=step.starts_model)
            stage_callbacks = [EarlyStopping(step.stage.patience), EpochLog(), *user_kft,
                               KerasCallbacks(user_keras, len(state.history)), *persist]
            record = trainer.fit(stage_callbacks, epochs, resume=state.stage if here else None)
        state = state.after(record, record.history, time.time() - t_start)
    finish(run, model, plan, steps, walk.selection, seed, weights, state.history, [s.to_dict() for s in state.stages],
           t_start, replicas(strategy))
