"""Staged fine-tuning: run a plan's stages one after another on one classifier.

For each stage: set ``trainable`` per block, build fresh optimizers (one per
learning-rate group, see ``kft.optim``), train until validation accuracy stops
improving for ``patience`` epochs, then restore the best weights. BatchNorm runs
in inference mode everywhere (the trunk always runs as ``model(x, training=False)``
would, with each BatchNorm folded into its convolution by ``kft.fold``; only the
head's dropout sees training), so moving statistics never change and a frozen
block is an exact fixed function, which is what lets ``kft.cache`` compute it once
per stage.

    model = build_classifier(...)
    for i, stage in enumerate(plan.stages):
        StageTrainer(model, plan, stage, i, data, seed).fit()   # sets trainable; early-stops, restores best

Everything but the steps is a callback (``kft.callbacks``): early stopping, the epoch
log, history.csv, TensorBoard, checkpoints, and a user's own Keras callbacks. A run's
state between epochs is typed (``kft.state``); ``train`` and ``resume`` both end in
``_run``, which starts from the run folder's last checkpoint when there is one.
"""

from __future__ import annotations

import logging
import dataclasses
import time

import numpy as np

from kft import fold, killpoints, optim, pipeline, selftrain
from kft.augment import TRAIN_BATCHES, batch_seeds, make_augmenter
from kft.backbones.registry import HEAD_BLOCK
from kft.cache import FeatureCache
from kft.callbacks import (Callback, CallbackList, Checkpoint, EarlyStopping, EpochLog, HistoryCSV,
                           KerasCallbacks, TensorBoardLog)
from kft.config import Plan, Stage, protocol
from kft.model import block_layers, block_of_variable, dropout_rng_variables, set_trainable_blocks
from kft.state import RunState, StageProgress, StageRecord

_log = logging.getLogger(__name__)


def balanced_class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """``n / (classes x count)`` per class (scikit-learn's "balanced"): every class then
    carries the same total weight in an epoch; an absent class gets 0."""
    counts = np.bincount(np.asarray(y, np.int64), minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (num_classes * np.maximum(counts, 1)), 0.0).astype(np.float32)


def _hard(y):
    """Class ids of a batch's targets: ``y`` itself (int32 labels), or the argmax of soft targets."""
    import tensorflow as tf

    return tf.argmax(y, 1, output_type=tf.int32) if y.dtype.is_floating else y


def _onehot(y, n: int):
    """The loss's targets: soft targets (float, (B, n)) as they are, int labels one-hot."""
    import tensorflow as tf

    return y if y.dtype.is_floating else tf.one_hot(y, n)


def _correct(logits, y):
    """How many of the batch's top-1 predictions equal the labels ``y`` (int32, or the
    argmax of soft targets)."""
    import tensorflow as tf

    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), _hard(y)), tf.int32))


def _scope(strategy):
    """``strategy.scope()``, or nothing without one."""
    import contextlib

    return strategy.scope() if strategy is not None else contextlib.nullcontext()


class StageTrainer:
    """Trains one stage of a plan on ``model`` in place: the steps; callbacks do the rest.

    Construction sets the stage's ``trainable`` flags, takes the stage's inputs from the
    feature cache (or the images), builds one optimizer per learning-rate group and traces
    the train and eval steps. ``fit`` runs the epochs (see ``kft.callbacks``).
    """

    def __init__(self, model, plan: Plan, stage: Stage, stage_index: int, data, seed: int,
                 features: FeatureCache | None = None, jit_compile: bool = False, strategy=None):
        import tensorflow as tf

        self.model, self.plan, self.stage, self.index = model, plan, stage, stage_index
        self.strategy = strategy  # tf.distribute (kft.distribute); None: the plain single-device loop
        self.jit_compile = jit_compile  # XLA: measured slower on CPU (benchmarks/cache_speed.py --xla)
        self.data, self.seed = data, seed
        # the first stage of a model (the run's, or a self-training student's) has no incoming score
        self.starts_model = stage_index % len(plan.stages) == 0
        self.num_classes = len(data.class_names)
        self.class_weights = (balanced_class_weights(data.train.y, self.num_classes)
                              if plan.class_weight == "balanced" else None)
        set_trainable_blocks(model, stage.trainable)
        self.train_vars = list(model.trainable_variables)
        self.trainable_params = int(sum(np.prod(v.shape) for v in self.train_vars))
        self.augmenter = make_augmenter(plan.augment)
        self.features = features or FeatureCache(model, plan, data, seed)  # a run shares one
        cached = self.features.for_stage(stage)
        self.cached = cached is not None
        self.cache_mb = cached.megabytes if cached else 0.0
        if cached:
            self.trunk, train_x, self.val_x = cached.suffix, cached.train, cached.val
        else:
            import keras

            self.trunk = keras.Model(model.input, model.get_layer("avg_pool").output, name="trunk")
            train_x, self.val_x = data.train.x, data.val.x
        self.train_x = pipeline.as_source(train_x)  # once per stage: the pipeline gathers from it
        targets = getattr(data, "targets", None)  # soft pseudo-labels (kft.selftrain), else the labels
        self.train_y = tf.convert_to_tensor(data.train.y.astype(np.int32) if targets is None
                                            else targets.astype(np.float32))
        steps = pipeline.n_batches(len(data.train.x), plan.batch_size)
        with _scope(strategy):  # optimizer variables live where the model's do
            self.groups = optim.build_groups(stage, self.train_vars, block_of_variable(model), steps)
        self.train_step, self.eval_step = self._compile_steps()
        # set by fit():
        self.validates = len(data.val.y) > 0
        self.last_epoch = stage.max_epochs
        self.progress = StageProgress()
        self.stop_training = False

    def _compile_steps(self):
        import keras
        import tensorflow as tf

        loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                       label_smoothing=self.stage.label_smoothing)
        trunk, n = self.trunk, self.num_classes
        logits_layer = self.model.get_layer("logits")
        weights = None if self.class_weights is None else tf.constant(self.class_weights, tf.float32)

        def mean_loss(y, logits):
            if weights is None:
                return loss_fn(_onehot(y, n), logits)
            # mean over the batch of each image's loss times its class's weight
            return loss_fn(_onehot(y, n), logits, sample_weight=tf.gather(weights, _hard(y)))

        if self.strategy is not None:
            train_step = self._distributed_train_step(weights)
        else:
            train_step = tf.function(lambda x, y: self._learn(x, y, mean_loss), reduce_retracing=True,
                                     jit_compile=self.jit_compile)

        @tf.function(reduce_retracing=True, jit_compile=self.jit_compile)
        def eval_step(x, y):
            logits = logits_layer(fold.call(trunk, tf.cast(x, tf.float32)))
            return loss_fn(tf.one_hot(y, n), logits), _correct(logits, y)

        return train_step, eval_step

    def _learn(self, x, y, loss_of):
        """One optimisation step on batch ``(x, y)`` with loss ``loss_of(y, logits)``:
        returns the loss and how many images the pre-step model got right."""
        import tensorflow as tf

        dropout, logits_layer = self.model.get_layer("dropout"), self.model.get_layer("logits")
        x = tf.cast(x, tf.float32)
        with tf.GradientTape() as tape:
            logits = logits_layer(dropout(fold.call(self.trunk, x), training=True))
            loss = loss_of(y, logits)
        grads = tape.gradient(loss, self.train_vars)
        optim.apply_gradients(self.groups, {id(v): g for v, g in zip(self.train_vars, grads)})
        return loss, _correct(logits, y)

    def _distributed_train_step(self, weights):
        """The train step under ``self.strategy``: the global batch split over the replicas; each
        replica's loss is its share of the global mean and the optimizers sum the gradients
        across replicas, so a step equals the single-device step on the same batch."""
        import keras
        import tensorflow as tf

        from kft.distribute import split_batch

        strategy, n = self.strategy, self.num_classes
        per_image = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.stage.label_smoothing,
                                                         reduction=None)

        def replica_step(x, y, global_batch):
            def share_of_global_mean(y, logits):
                losses = per_image(_onehot(y, n), logits)
                if weights is not None:
                    losses = losses * tf.gather(weights, _hard(y))
                return tf.reduce_sum(losses) / global_batch

            return self._learn(x, y, share_of_global_mean)

        @tf.function(reduce_retracing=True, jit_compile=self.jit_compile)
        def step(x, y, global_batch):
            loss, correct = strategy.run(replica_step, args=(x, y, global_batch))
            total = tf.distribute.ReduceOp.SUM
            return strategy.reduce(total, loss, axis=None), strategy.reduce(total, correct, axis=None)

        def train_step(x, y):
            return step(*split_batch(strategy, x, y), tf.cast(tf.shape(y)[0], tf.float32))

        return train_step

    # -- steps ----------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the training images (one cached view of each, or a fresh augmentation)."""
        n, bs = len(self.data.train.y), self.plan.batch_size
        rng = np.random.default_rng([self.seed, self.index, epoch])
        order = rng.permutation(n)
        view_of = rng.integers(0, self.train_x.shape[0], n) if self.cached else None
        # mixup's weights, drawn after everything else so that a plan without it draws what it always did
        mix = (None if not self.stage.mixup else
               pipeline.Mix(rng.beta(self.stage.mixup, self.stage.mixup, n).astype(np.float32), self.num_classes))
        if self.cached:
            batches = pipeline.view_batches(self.train_x, self.train_y, bs, order=order, view_of=view_of, mix=mix)
        else:
            seeds = batch_seeds(self.seed, TRAIN_BATCHES, self.index, epoch, n=pipeline.n_batches(n, bs))
            batches = pipeline.image_batches(self.train_x, self.train_y, bs, order=order,
                                             augmenter=self.augmenter, seeds=seeds, mix=mix)
        total_loss, correct = 0.0, 0
        for x, y in batches:
            loss, c = self.train_step(x, y)
            total_loss += float(loss) * int(y.shape[0])
            correct += int(c)
        return total_loss / n, correct / n

    def validate(self) -> tuple[float, float]:
        y = self.data.val.y.astype(np.int32)
        total_loss, correct = 0.0, 0
        for start in range(0, len(y), 256):
            loss, c = self.eval_step(self.val_x[start:start + 256], y[start:start + 256])
            total_loss += float(loss) * len(y[start:start + 256])
            correct += int(c)
        return total_loss / len(y), correct / len(y)

    def optimizer_variables(self) -> list:
        return [v for g in self.groups for v in g.optimizer.variables]

    def rng_variables(self) -> list:
        return dropout_rng_variables(self.model)

    # -- loop -----------------------------------------------------------------------------
    def fit(self, callbacks=None, epochs: int | None = None, resume: StageProgress | None = None) -> StageRecord:
        """Run the stage's epochs; returns its record (with its epoch rows in ``history``).

        ``callbacks`` (default: early stopping and the epoch log) do everything but the
        steps. ``epochs``: a refit: exactly this many epochs, no validation, the last kept.
        ``resume`` (a checkpoint's) continues mid-stage: counters, rows, optimizer and
        random-generator variables.
        """
        from kft.callbacks import CallbackList, EarlyStopping, EpochLog

        cbs = CallbackList([EarlyStopping(self.stage.patience), EpochLog()] if callbacks is None
                           else callbacks)
        self.validates = epochs is None and len(self.data.val.y) > 0
        self.last_epoch = self.stage.max_epochs if epochs is None else epochs
        self.progress = p = resume or StageProgress()
        self.stop_training = False
        t0 = time.time() - p.seconds
        if resume is not None:
            for v, a in zip(self.optimizer_variables(), resume.optimizer, strict=True):
                v.assign(a)
            for v, a in zip(self.rng_variables(), resume.rng, strict=True):
                v.assign(a)
        cbs.on_stage_begin(self)
        killpoints.reached(f"stage-start:{self.index}")
        for epoch in range(p.next_epoch, self.last_epoch):
            if self.stop_training:
                break
            cbs.on_epoch_begin(self, epoch)
            te = time.time()
            lr = optim.current_lr(self.groups)  # at the start of the epoch
            loss, acc = self.train_epoch(epoch)
            logs = {"loss": loss, "accuracy": acc, "lr": lr}
            row = {"epoch": epoch + 1, "stage": self.stage.name, "loss": round(loss, 5), "accuracy": round(acc, 5),
                   "lr": float(f"{lr:.3g}")}
            if self.validates:
                logs["val_loss"], logs["val_accuracy"] = self.validate()
                row.update(val_loss=round(logs["val_loss"], 5), val_accuracy=round(logs["val_accuracy"], 5))
            row["seconds"] = round(time.time() - te, 2)
            p.history.append(row)
            p.next_epoch, p.seconds = epoch + 1, time.time() - t0
            killpoints.reached(f"epoch-trained:{self.index}:{epoch}")
            cbs.on_epoch_end(self, logs)
        killpoints.reached(f"stage-done:{self.index}")
        score = round(float(max(p.best_val_accuracy, 0.0)), 5) if self.validates else None
        record = StageRecord(self.stage.name, len(p.history), score, p.best_epoch, round(time.time() - t0, 1),
                             self.trainable_params, self.cached, round(self.cache_mb, 1), p.history)
        cbs.on_stage_end(self, record)
        return record


def train(plan: Plan, *, seed: int = 0, weights: str = "imagenet", data_dir=None, folder=None,
          folder_counts: tuple[int | None, int | None] = (None, None), limit_test: int | None = None,
          out=None, overwrite: bool = False, callbacks=()):
    """Run every stage of ``plan`` and leave a complete run directory; returns its path.

    Data: CIFAR-10 from ``data_dir``/``KFT_DATA_DIR`` (few-shot sampled with ``seed``)
    or a class-per-folder dataset ``folder`` (``folder_counts``: train/val images per
    class, None = all / about 20%). The test set is scored once, at the end.
    ``callbacks``: ``kft.callbacks.Callback`` or ``keras.callbacks.Callback`` objects.
    """
    from kft import runs
    from kft.data import load_few_shot
    from kft.distribute import is_chief, make_strategy

    strategy = make_strategy(plan.distribute)  # first: a multi-worker strategy must exist before any TF op
    if not is_chief(strategy):  # every worker trains; the chief alone keeps the run folder
        import tempfile

        out, overwrite = tempfile.mkdtemp(prefix="kft-worker-"), True
    runs.check_run_dir(out, overwrite)  # before minutes of loading: a folder in use is refused at once
    spc, vpc = folder_counts if folder else (plan.samples_per_class, plan.val_per_class)
    source = runs.DataSource(data_dir=str(data_dir) if data_dir else None, folder=str(folder) if folder else None,
                             samples_per_class=spc, val_per_class=vpc, seed=seed, limit_test=limit_test,
                             image_size=plan.image_size if folder else None)
    if plan.unlabeled:  # a wrong pool is a user's mistake: say so before minutes of loading
        from kft.data.unlabeled import check_spec

        check_spec(plan.unlabeled, cifar=folder is None)
    data = load_few_shot(**dataclasses.asdict(source), memory_budget_mb=plan.data_budget_mb)
    for path, reason in getattr(data, "skipped", []):
        _log.warning(f"skipped {path}: {reason}")
    model = _initial_model(plan, data, seed, weights, strategy)
    run = runs.new_run_dir(out, plan.backbone, plan.strategy, overwrite)  # once data and weights are known good
    runs.write_config(run, {**plan.to_dict(), "seed": seed, "weights": weights})
    runs.write_split(run, source, {"class_names": data.class_names, **data.split,
                                   "git_revision": runs.git_revision()})  # the code the run started with
    runs.write_labels(run, data.class_names)
    _log.info(f"run {run}: {plan.backbone} / {plan.strategy}, {len(data.train.y)} train, {len(data.val.y)} val, "
        f"{0 if data.test is None else len(data.test.y)} test images, input {data.train.x.shape[1]} px "
        f"-> {plan.image_size} px, weights {weights}")
    killpoints.reached("data-loaded")
    _run(run, plan, data, seed, weights, callbacks, model, strategy)
    if not is_chief(strategy):
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    return run


def resume(run_dir, callbacks=()):
    """Continue an interrupted run from the end of its last completed epoch."""
    from kft import runs
    from kft.config import plan_from_dict
    from kft.errors import KftError
    from kft.runguard import lock

    run = runs.load_run(run_dir)
    lock(run.path)
    if run.finished:
        raise KftError(f"{run.path} is finished already ({runs.METRICS} exists); nothing to resume")
    config = dict(run.config)
    seed, weights = config.pop("seed"), config.pop("weights")
    plan = plan_from_dict(config, str(run.path / runs.CONFIG))
    from kft.distribute import make_strategy

    _run(run.path, plan, run.data(), seed, weights, callbacks, strategy=make_strategy(plan.distribute))
    return run.path


def _initial_model(plan: Plan, data, seed: int, weights: str, strategy=None):
    """The classifier as a run starts: seeded head, backbone ``weights`` (imagenet/none/file),
    its variables in ``strategy``'s scope when there is one."""
    import keras

    from kft.model import build_classifier

    keras.utils.set_random_seed(seed)
    with _scope(strategy):
        return build_classifier(plan.backbone, len(data.class_names), image_size=plan.image_size,
                                input_size=int(data.train.x.shape[1]), weights=weights, dropout=plan.dropout,
                                seed=seed)


REFIT_PREFIX = "refit-"  # a refit stage's name: refit-<stage>


STUDENT_PREFIX = "student"  # a self-training student's stage name: student<round>-<stage>


def _rounds_start(plan: Plan) -> int:
    """The step where self-training's first student begins: after the teacher's stages (and
    their refit)."""
    return len(plan.stages) * (2 if protocol(plan) == "refit" else 1)


def _steps(plan: Plan) -> int:
    """Stages a run trains: the plan's, then (refit) each of them again on every label, then
    (unlabeled images) each of them again per self-training round."""
    rounds = plan.self_training.rounds if plan.unlabeled else 0
    return _rounds_start(plan) + len(plan.stages) * rounds


def _run(run, plan: Plan, data, seed: int, weights: str, callbacks=(), model=None, strategy=None) -> None:
    """Train the run in folder ``run`` to its end, from its last checkpoint if it has one: the
    one path of both ``train`` (fresh folder, ``model`` already built) and ``resume``.

    With ``plan.refit`` the plan's stages run twice: first on the training split, selecting
    each stage's epoch count on the validation split; then from the same initial weights on
    training + validation images for exactly those epochs (see ``Plan.refit``). Without
    ``plan.select`` only the second pass runs, each stage for its ``max_epochs``. With
    ``plan.unlabeled`` that model is the first teacher; each round's student then runs the
    stages again (``kft.selftrain``): on the training split, selected on the validation split,
    or after a refit on every label, for a fixed ``self_training.max_epochs`` per stage.
    """
    from kft import checkpoint
    from kft.distribute import replicas

    saved = checkpoint.load(run)
    state = saved[0] if saved else RunState()
    fresh = model is None
    if fresh or saved:
        model = _initial_model(plan, data, seed, "none" if saved else weights, strategy)
    if saved:
        model.load_weights(saved[1])
        i = state.stage_index
        _log.info(f"resuming {run}: stage {min(i, len(plan.stages) - 1) + 1}/{len(plan.stages)} "
            f"({plan.stages[min(i, len(plan.stages) - 1)].name}), "
            f"epoch {(state.stage.next_epoch if state.stage else 0) + 1}")
    elif fresh:  # killed before the first epoch ended: what Keras' BackupAndRestore does, start over
        _log.info(f"{run} has no checkpoint yet (stopped before its first epoch ended): "
            f"starting it again from its saved config and split")
    if strategy is not None:
        _log.info(f"distribute: {plan.distribute} over {replicas(strategy)} replicas, global batch {plan.batch_size}")
    t_start = time.time() - state.elapsed
    n, first = len(plan.stages), state.stage_index
    with _scope(strategy):
        features = FeatureCache(model, plan, data, seed)
    selection = data
    user_keras = [c for c in callbacks if not isinstance(c, Callback)]
    user_kft = [c for c in callbacks if isinstance(c, Callback)]

    teaching = None if not plan.unlabeled else _Teaching(run, plan, selection, seed, features.base)
    students = _rounds_start(plan)
    selects = protocol(plan) == "refit"  # a selection run, then every label for its epoch counts
    every_label = n if selects else 0  # the step where every label starts training (refit or fixed)
    for i in range(first, _steps(plan)):
        refit = plan.refit and every_label <= i < every_label + n
        stage, epochs, skip = plan.stages[i % n], None, "its selection run kept the incoming weights (0 epochs)"
        if teaching is not None and i >= students:  # self-training: round r's student
            r, st = (i - students) // n + 1, plan.self_training
            if i % n == 0 or i == first:  # entering the round (or resuming inside it)
                if i % n == 0 and state.stage is None:  # the model is the teacher: label the pool
                    teaching.label_pool(model, r, features)
                    if st.student != "teacher":  # a "teacher" student keeps its teacher's weights
                        _reset_to_initial(model, plan, data, seed, weights,
                                          blocks=plan.stages[0].trainable if st.student == "top" else None)
                data, features = teaching.student(model, r)
            stage = dataclasses.replace(stage, name=f"{STUDENT_PREFIX}{r}-{stage.name}",
                                        max_epochs=min(stage.max_epochs, st.max_epochs),
                                        patience=min(stage.patience, st.max_epochs), mixup=st.mixup,
                                        learning_rate=stage.learning_rate * st.lr_scale)
            if plan.refit:  # every label trains the student: no validation split is left to select on
                epochs = stage.max_epochs
            if i % n not in teaching.trained:
                epochs, skip = 0, selftrain.SKIPPED_STAGE[st.student]
            if i % n == 0 and state.stage is None and teaching.give_probe_head(model):
                epochs, skip = 0, ("its head starts as the teacher's probe head, learned on the same frozen "
                                   "network (self_training.probe)")
        if refit:
            epochs = state.stages[i - n].best_epoch if selects else stage.max_epochs
            if i == every_label or i == first:  # entering the refit phase (or resuming inside it)
                data = selection.for_refit()
                features.refit(data)
            if i == every_label and state.stage is None:  # not when resumed mid-stage
                labels = (f"all {len(data.train.y)} labelled images ({len(selection.train.y)} train + "
                          f"{len(selection.val.y)} validation)")
                if selects:
                    _reset_to_initial(model, plan, data, seed, weights)
                    _log.info(f"refit: training a fresh model on {labels} for the selected epochs: "
                              f"{', '.join(f'{s.name} {r.best_epoch}' for s, r in zip(plan.stages, state.stages))}")
                else:
                    _log.info(f"fixed epochs: training on {labels}, no selection run: "
                              f"{', '.join(f'{s.name} {s.max_epochs}' for s in plan.stages)}")
            if selects:
                stage = dataclasses.replace(stage, name=REFIT_PREFIX + stage.name)
        if i == first and i % n != 0 and state.stage is None and state.rng is not None:
            # resumed at a stage boundary: dropout's generator continues where the last stage left it
            for v, a in zip(dropout_rng_variables(model), state.rng, strict=True):
                v.assign(a)
        persist = [HistoryCSV(run, state), TensorBoardLog(run, state), Checkpoint(run, model, state, t_start)]
        if teaching is not None and teaching.shares_probe and i < students and i % n == 0:
            persist.insert(0, _SaveProbeHead(run, model))
        if epochs == 0:  # a refit stage whose selection kept its incoming weights, or a top student's later stage
            record = StageRecord(stage.name, 0, None, 0, 0.0, 0, False, 0.0)
            _log.info(f"[{stage.name}] skipped: {skip}")
            killpoints.reached(f"stage-done:{i}")
            CallbackList(persist).on_stage_end(None, record)
        else:
            trainer = StageTrainer(model, plan, stage, i, data, seed, features, strategy=strategy)
            stage_callbacks = [EarlyStopping(stage.patience), EpochLog(), *user_kft,
                               KerasCallbacks(user_keras, len(state.history)), *persist]
            record = trainer.fit(stage_callbacks, epochs, resume=state.stage if i == first else None)
        state = state.after(record, record.history, time.time() - t_start)
    _finish(run, model, plan, selection, seed, weights, state.history, [s.to_dict() for s in state.stages],
            t_start, replicas(strategy))


class _SaveProbeHead(Callback):
    """Saves the head at the end of the teacher's probe stage, for its students: after early
    stopping restored the best epoch, before the checkpoint that marks the stage done."""

    def __init__(self, run, model):
        self.run, self.model = run, model

    def on_stage_end(self, trainer, record):

        selftrain.save_probe_head(self.run, self.model)


class _Teaching:
    """A run's self-training rounds (``kft.selftrain``): the pool, its cached features, and
    each round's pseudo-labels, made by the teacher or read back from the run folder."""

    def __init__(self, run, plan: Plan, data, seed: int, base: str | None):
        from kft.data.unlabeled import load_pool

        self.run, self.plan, self.data, self.seed, self.base = run, plan, data, seed, base
        st = plan.self_training
        self.pool = load_pool(plan.unlabeled, data.split, tuple(data.train.x.shape[1:3]), seed=seed,
                              limit=st.pool_limit, memory_budget_mb=plan.data_budget_mb)
        for path, reason in self.pool.skipped:
            _log.warning(f"skipped {path}: {reason}")
        selftrain.write_pool_info(run, self.pool, plan.unlabeled)
        self.features = None  # the pool's prefix features: computed when a teacher first needs them
        # the plan's first stage is a linear probe whose head the teacher saves for its fresh
        # students (SelfTraining.probe), and the plan goes on to train more blocks
        self.shares_probe = (st.student == "fresh" and st.probe == "teacher" and len(plan.stages) > 1
                             and list(plan.stages[0].trainable) == [HEAD_BLOCK])
        self.trained = selftrain.student_stages(st.student, len(plan.stages))  # the stages a student trains

    def label_pool(self, model, r: int, features: FeatureCache) -> None:
        """Round ``r``'s pseudo-labels from ``model`` (the teacher), unless a resumed run has them."""
        from kft.evaluate import evaluate_model

        if selftrain.load_round(self.run, r) is not None:
            return
        t = time.time()
        features.release()
        teacher_test = None
        if self.data.test is not None:  # for the report only: nothing is selected on it
            set_trainable_blocks(model, [])
            teacher_test = evaluate_model(model, self.data.test.x, self.data.test.y, len(self.data.class_names),
                                          desc=f"scoring round {r}'s teacher on the test set")["accuracy"]
        if self.features is None:
            self.features = selftrain.pool_features(model, self.base, self.pool.x, self.plan.cache_budget_mb)
        probs = selftrain.teacher_probabilities(model, self.base, self.features, self.pool.x)
        st = self.plan.self_training
        rows = selftrain.select(probs, st.per_class, st.min_confidence)
        summary = selftrain.round_summary(r, rows, probs[rows], self.pool.held_back, len(self.data.class_names),
                                          teacher_test, time.time() - t)
        selftrain.save_round(self.run, summary, rows, selftrain.targets_of(probs[rows], st.targets))
        right = summary.get("pseudo_label_accuracy")
        _log.info(f"round {r}: kept {len(rows)} of {len(self.pool)} unlabelled images "
                  f"(per class {summary['kept_per_class']}), mean confidence {summary['mean_confidence']}"
                  + (f", pseudo-labels right {right:.1%} (held-back labels, report only)" if right is not None else "")
                  + (f"; teacher test accuracy {teacher_test:.4f}" if teacher_test is not None else ""))

    def give_probe_head(self, model) -> bool:
        """Give a fresh student, at its initial weights, the teacher's probe head; False when the
        plan does not share it or the run has none (a run the older code began)."""

        if not self.shares_probe:
            return False
        if selftrain.load_probe_head(self.run, model):
            return True
        _log.info("no saved teacher probe head in this run: the student trains its own probe")
        return False

    def student(self, model, r: int):
        """Round ``r``'s student data (labelled + kept images) and its feature cache; after a
        refit the labelled images are training + validation, and no validation split is left."""
        from kft.augment import CACHE_STUDENT_VIEWS

        rows, targets = selftrain.load_round(self.run, r)
        labelled = self.data.for_refit() if self.plan.refit else self.data
        data = selftrain.student_data(labelled, self.pool, rows, targets)
        st = self.plan.self_training
        # the cache starts where the student's first trained stage does (top: through the teacher's lower blocks)
        stages = [self.plan.stages[k] for k in self.trained]
        plan = dataclasses.replace(self.plan, cache_views=st.views, stages=stages)
        with _scope(None):
            return data, FeatureCache(model, plan, data, self.seed, stream=(CACHE_STUDENT_VIEWS, r))


def _reset_to_initial(model, plan: Plan, data, seed: int, weights: str, blocks=None) -> None:
    """Give ``model`` the weights and dropout generator state a run starts with (seeded, so
    they equal the selection run's start); the frozen layers, hence the cache, are unchanged.
    ``blocks``: reset only these blocks' weights (a top student keeps the teacher's others)."""
    fresh = _initial_model(plan, data, seed, weights)
    if blocks is None:
        model.set_weights(fresh.get_weights())
    else:
        mine, initial = block_layers(model), block_layers(fresh)
        for block in blocks:
            for layer, start in zip(mine[block], initial[block], strict=True):
                layer.set_weights(start.get_weights())
    for v, a in zip(dropout_rng_variables(model), dropout_rng_variables(fresh), strict=True):
        v.assign(a.numpy())


def _finish(run, model, plan: Plan, data, seed, weights, history, stages, t_start, replicas: int = 1) -> None:
    from kft import runs
    from kft.evaluate import evaluate_model
    from kft.plots import plot_confusion, plot_curves

    set_trainable_blocks(model, [])
    killpoints.reached("final-eval")
    runs.save_model(run, model)
    metrics = {"backbone": plan.backbone, "strategy": plan.strategy, "seed": seed, "weights": weights,
               "image_size": plan.image_size, "input_size": int(data.train.x.shape[1]),
               "samples_per_class": plan.samples_per_class, "val_per_class": plan.val_per_class,
               "labels": label_accounting(plan, data), "class_names": data.class_names,
               "class_weight": plan.class_weight, "distribute": {"mode": plan.distribute, "replicas": replicas},
               "class_counts": {"train": np.bincount(data.train.y, minlength=len(data.class_names)).tolist(),
                                "val": np.bincount(data.val.y, minlength=len(data.class_names)).tolist()}}
    if data.test is not None:
        t = time.time()
        test = evaluate_model(model, data.test.x, data.test.y, len(data.class_names),
                              desc="scoring the test set")
        _log.info(f"test accuracy {test['accuracy']:.4f} on {test['n']} images ({time.time() - t:.0f}s)")
        metrics.update(test_accuracy=test["accuracy"], test_images=test["n"],
                       per_class_accuracy=test["per_class_accuracy"], confusion_matrix=test["confusion_matrix"])
    elif len(data.val.y) and not plan.refit:  # a folder dataset: per-class figures from its validation split
        val = evaluate_model(model, data.val.x, data.val.y, len(data.class_names), desc="scoring the validation split")
        metrics.update(val_per_class_accuracy=val["per_class_accuracy"], val_confusion_matrix=val["confusion_matrix"])
    # a holdout student starts afresh: its own stages' scores; a refit one has none (the selection's count)
    final = stages[-len(plan.stages):] if plan.unlabeled and not plan.refit else stages
    scores = [s["best_val_accuracy"] for s in final if s["best_val_accuracy"] is not None]
    if plan.unlabeled:
        metrics["self_training"] = self_training_summary(run, plan, stages, metrics.get("test_accuracy"))
        # on top of the labels: the pool, and the pseudo-labelled images the final student trained on too
        metrics["labels"]["unlabeled_images"] = metrics["self_training"]["pool_images"]
        metrics["labels"]["pseudo_labelled_images"] = metrics["self_training"]["rounds"][-1].get("kept")
    metrics.update(val_accuracy=max(scores, default=None), stages=stages,
                   seconds=round(time.time() - t_start, 1), versions=runs.library_versions(),
                   **runs.revisions(run))
    plot_curves(history, run / "curves.png", f"{plan.backbone} / {plan.strategy}")
    if "confusion_matrix" in metrics:
        plot_confusion(metrics["confusion_matrix"], data.class_names, run / "confusion.png",
                       f"test accuracy {metrics['test_accuracy']:.3f}")
    killpoints.reached("artifacts")
    runs.write_metrics(run, metrics)  # last: a run with metrics.json is complete


def self_training_summary(run, plan: Plan, stages: list[dict], final_test: float | None) -> dict:
    """Per round (0: the labelled-only teacher): validation and test accuracy of its model, and
    what its pseudo-labels were; from self-training.json and the stage records."""
    from kft import selftrain

    report, n = selftrain.load_report(run), len(plan.stages)
    made = {s["round"]: s for s in report.get("rounds", [])}
    rows = []
    for r in range(plan.self_training.rounds + 1):
        # the teacher's score is its selection run's; after a refit, students have none (no validation split)
        start = 0 if r == 0 else _rounds_start(plan) + (r - 1) * n
        vals = [s["best_val_accuracy"] for s in stages[start:start + n] if s["best_val_accuracy"] is not None]
        test = made[r + 1]["teacher_test_accuracy"] if r + 1 in made else final_test
        row = {"round": r, "model": "teacher (labelled only)" if r == 0 else f"student {r}",
               "val_accuracy": max(vals, default=None), "test_accuracy": test}
        if r in made:
            row.update({k: made[r].get(k) for k in ("kept", "kept_per_class", "mean_confidence",
                                                    "pseudo_label_accuracy")})
        rows.append(row)
    st = plan.self_training
    return {"unlabeled": plan.unlabeled, "pool_images": report.get("pool_images"), "student": st.student,
            "student_probe": st.probe if st.student == "fresh" else None, "student_mixup": st.mixup,
            "student_lr_scale": st.lr_scale,
            "protocol": protocol(plan),
            "targets": st.targets, "per_class": st.per_class, "min_confidence": st.min_confidence, "rounds": rows}


def label_accounting(plan: Plan, data) -> dict:
    """How many labels the run used, and what they did: every results table prints this."""
    train, val = len(data.train.y), len(data.val.y)
    k = max(len(data.class_names), 1)
    return {
        "protocol": protocol(plan),
        "per_class": round((train + val) / k, 1),  # labels a user must provide, per class
        "train_per_class": round(train / k, 1),
        "val_per_class": round(val / k, 1),
        "final_model_trained_on": train + val if plan.refit else train,
        "total": train + val,
    }
