"""One stage of a run: set ``trainable`` per block, build the stage's optimizers, train its epochs.

BatchNorm runs in inference mode everywhere (the trunk always runs as ``model(x, training=False)``
would, with each BatchNorm folded into its convolution by ``kft.training.fold``; only the head's
dropout sees training), so moving statistics never change and a frozen block is an exact fixed
function, which is what lets ``kft.training.cache`` compute it once per run.

    trainer = StageTrainer(model, plan, plan.stages[0], index=0, data=data, seed=0)
    record = trainer.fit()            # early-stops on validation, restores the best epoch

``train_step`` is the seam to override (as in Keras' trainers): one optimisation step on a batch.
Everything around the steps is a callback (``kft.training.callbacks``): early stopping, the epoch
log, history.csv, TensorBoard, checkpoints, and a user's own Keras callbacks.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from kft.model import block_of_variable, dropout_rng_variables, set_trainable_blocks
from kft.plan import Plan, Stage
from kft.rundir.state import StageProgress, StageRecord
from kft.training import fold, killpoints, optim, pipeline
from kft.training.augment import TRAIN_BATCHES, batch_seeds, make_augmenter
from kft.training.cache import FeatureCache
from kft.training.callbacks import CallbackList, EarlyStopping, EpochLog
from kft.training.tracing import any_batch

__all__ = ["StageTrainer", "balanced_class_weights", "scope"]


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


def scope(strategy):
    """``strategy.scope()``, or nothing without one."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


class StageTrainer:
    """Trains one stage of a plan on ``model`` in place: the steps; callbacks do the rest.

    Construction sets the stage's ``trainable`` flags, takes the stage's inputs from the
    feature cache (or the images), builds one optimizer per learning-rate group and traces
    the train and eval steps. ``fit`` runs the epochs (see ``kft.training.callbacks``).
    """

    def __init__(self, model, plan: Plan, stage: Stage, stage_index: int, data, seed: int,
                 features: FeatureCache | None = None, jit_compile: bool = False, strategy=None,
                 starts_model: bool | None = None):
        import tensorflow as tf

        self.model, self.plan, self.stage, self.index = model, plan, stage, stage_index
        self.strategy = strategy  # tf.distribute (kft.training.distribute); None: the plain single-device loop
        self.jit_compile = jit_compile  # XLA: measured slower on CPU (benchmarks/cache_speed.py --xla)
        self.data, self.seed = data, seed
        # the first stage of a model (the run's, or a self-training student's) has no incoming score;
        # the run's schedule says which (``kft.training.schedule``); alone, the plan's first stage
        self.starts_model = stage_index == 0 if starts_model is None else starts_model
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
        targets = getattr(data, "targets", None)  # soft pseudo-labels (kft.training.selftrain), else the labels
        self.train_y = tf.convert_to_tensor(data.train.y.astype(np.int32) if targets is None
                                            else targets.astype(np.float32))
        steps = pipeline.n_batches(len(data.train.x), plan.batch_size)
        with scope(strategy):  # optimizer variables live where the model's do
            self.groups = optim.build_groups(stage, self.train_vars, block_of_variable(model), steps)
        self.step, self.eval_step = self._compile_steps()
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

        self.mean_loss = mean_loss
        if self.strategy is not None:
            train_step = self._distributed_train_step(weights)
        else:
            train_step = any_batch(tf.function(self.train_step, reduce_retracing=True, jit_compile=self.jit_compile))

        @tf.function(reduce_retracing=True, jit_compile=self.jit_compile)
        def eval_step(x, y):
            logits = logits_layer(fold.call(trunk, tf.cast(x, tf.float32)))
            return loss_fn(tf.one_hot(y, n), logits), _correct(logits, y)

        return train_step, any_batch(eval_step)

    def train_step(self, x, y):
        """One optimisation step on batch ``(x, y)``: the seam to override, as in Keras' trainers.

        ``x``: the stage's inputs (cached features or images), ``y``: int labels or soft targets
        (float, (B, classes)). The default runs the trainable part with dropout in training mode,
        takes the stage's loss (``self.mean_loss``: label smoothing, class weights), and applies the
        gradients with each learning-rate group's optimizer. Returns ``(loss, correct)``: the mean
        loss and how many images the pre-step model got right. It runs inside ``tf.function``
        (``self.step``); a distributed run calls ``_learn`` once per replica with its share of the
        global mean instead.
        """
        return self._learn(x, y, self.mean_loss)

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

        from kft.training.distribute import split_batch

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
            loss, c = self.step(x, y)
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
