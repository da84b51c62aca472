"""Staged fine-tuning: run a plan's stages one after another on one classifier.

For each stage: set ``trainable`` per block, build fresh optimizers (one per
learning-rate group, see ``kft.optim``), train until validation accuracy stops
improving for ``patience`` epochs, then restore the best weights. BatchNorm runs
in inference mode everywhere (the trunk is always called with
``training=False``; only the head's dropout sees training), so moving
statistics never change and a frozen block is an exact fixed function, which is
what lets ``kft.cache`` compute it once per stage.

    model = build_classifier(...)
    for stage in plan.stages:
        set_trainable_blocks(model, stage.trainable)
        StageTrainer(model, plan, stage, data).fit()   # early-stops, restores best
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from kft import killpoints, optim, pipeline
from kft.augment import TRAIN_BATCHES, batch_seeds, make_augmenter
from kft.cache import FeatureCache
from kft.config import Plan, Stage
from kft.model import block_of_variable, set_trainable_blocks


@dataclass
class StageResult:
    name: str
    epochs: int
    best_val_accuracy: float | None  # None in a refit (no validation)
    seconds: float
    trainable_params: int
    cached: bool
    cache_mb: float
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # the epoch whose weights were kept (0: the stage's incoming weights)


def dropout_rng_variables(model) -> list:
    """Seed-generator state of the dropout layer (augmentation is stateless, see kft.augment):
    the only random state that carries from one epoch, or stage, to the next."""
    import keras

    dropout = model.get_layer("dropout")
    return [g.state for g in vars(dropout).values() if isinstance(g, keras.random.SeedGenerator)]


class StageTrainer:
    """Trains one stage of a plan on ``model`` in place."""

    jit_compile = False  # XLA: measured slower on CPU (benchmarks/cache_speed.py --xla)

    def __init__(self, model, plan: Plan, stage: Stage, stage_index: int, data, seed: int, log=print,
                 on_epoch_end=None, features: FeatureCache | None = None, epochs: int | None = None):
        self.model, self.plan, self.stage, self.index = model, plan, stage, stage_index
        self.epochs = epochs  # refit: train exactly this many epochs, no validation, keep the last weights
        self.data, self.seed, self.log = data, seed, log
        self.features = features  # shared by a run's stages; None: this stage builds its own
        self.on_epoch_end = on_epoch_end
        self.num_classes = len(data.class_names)

    # -- set-up -------------------------------------------------------------------------
    def _prepare(self):
        import keras
        import tensorflow as tf

        model, plan, stage = self.model, self.plan, self.stage
        set_trainable_blocks(model, stage.trainable)
        self.train_vars = list(model.trainable_variables)
        self.trainable_params = int(sum(np.prod(v.shape) for v in self.train_vars))
        self.augmenter = make_augmenter(plan.augment)
        self.dropout = model.get_layer("dropout")
        self.logits = model.get_layer("logits")
        if self.features is None:
            self.features = FeatureCache(model, plan, self.data, self.seed, self.log)
        cached = self.features.for_stage(stage)
        self.cached = cached is not None
        self.cache_mb = cached.megabytes if cached else 0.0
        if cached:
            self.trunk, train_x, self.val_x = cached.suffix, cached.train, cached.val
        else:
            self.trunk = keras.Model(model.input, model.get_layer("avg_pool").output, name="trunk")
            train_x, self.val_x = self.data.train.x, self.data.val.x
        self.train_x = tf.convert_to_tensor(train_x)  # once per stage: the pipeline gathers from it
        self.train_y = tf.convert_to_tensor(self.data.train.y.astype(np.int32))
        steps = pipeline.n_batches(len(self.data.train.x), plan.batch_size)
        self.groups = optim.build_groups(stage, self.train_vars, block_of_variable(model), steps)
        self._compile_steps()

    def _compile_steps(self):
        import keras
        import tensorflow as tf

        loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                       label_smoothing=self.stage.label_smoothing)
        trunk, dropout, logits_layer, groups = self.trunk, self.dropout, self.logits, self.groups
        train_vars, n = self.train_vars, self.num_classes

        @tf.function(reduce_retracing=True, jit_compile=self.jit_compile)
        def train_step(x, y):
            x = tf.cast(x, tf.float32)
            with tf.GradientTape() as tape:
                logits = logits_layer(dropout(trunk(x, training=False), training=True))
                loss = loss_fn(tf.one_hot(y, n), logits)
            grads = tape.gradient(loss, train_vars)
            optim.apply_gradients(groups, {id(v): g for v, g in zip(train_vars, grads)})
            return loss, tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.int32))

        @tf.function(reduce_retracing=True, jit_compile=self.jit_compile)
        def eval_step(x, y):
            logits = logits_layer(trunk(tf.cast(x, tf.float32), training=False))
            loss = loss_fn(tf.one_hot(y, n), logits)
            return loss, tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.int32))

        self.train_step, self.eval_step = train_step, eval_step

    # -- loop ---------------------------------------------------------------------------
    def _epoch(self, epoch: int) -> tuple[float, float]:
        n, bs = len(self.data.train.y), self.plan.batch_size
        rng = np.random.default_rng([self.seed, self.index, epoch])
        order = rng.permutation(n)
        if self.cached:  # one of the cached views of each image
            batches = pipeline.view_batches(self.train_x, self.train_y, bs, order=order,
                                            view_of=rng.integers(0, self.train_x.shape[0], n))
        else:
            seeds = batch_seeds(self.seed, TRAIN_BATCHES, self.index, epoch, n=pipeline.n_batches(n, bs))
            batches = pipeline.image_batches(self.train_x, self.train_y, bs, order=order,
                                             augmenter=self.augmenter, seeds=seeds)
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

    # -- state for checkpoints ------------------------------------------------------------
    def optimizer_variables(self) -> list:
        return [v for g in self.groups for v in g.optimizer.variables]

    def rng_variables(self) -> list:
        return dropout_rng_variables(self.model)

    def fit(self, state: dict | None = None) -> StageResult:
        """Train until validation accuracy plateaus; leaves the best weights in the model.

        ``state`` (from a checkpoint) resumes mid-stage: next epoch, best so far,
        patience counter, history, and the optimizer and random-generator variables.
        """
        stage = self.stage
        t0 = time.time() - (state or {}).get("seconds", 0.0)
        self._prepare()
        state = state or {}
        if "best_val_accuracy" in state:
            best, wait, epoch0 = state["best_val_accuracy"], state["wait"], state["next_epoch"]
            best_epoch = state.get("best_epoch", _best_epoch(state.get("history", []), best))
            best_weights = state["best_weights"]
            history = list(state.get("history", []))
            for v, a in zip(self.optimizer_variables(), state["optimizer"], strict=True):
                v.assign(a)
            for v, a in zip(self.rng_variables(), state["rng"], strict=True):
                v.assign(a)
        else:
            # Start from the incoming weights' score, so a stage can never make things worse.
            best = self.validate()[1] if self.index > 0 and self.epochs is None else -1.0
            best_weights, wait, epoch0, history = [v.numpy() for v in self.train_vars], 0, 0, []
            best_epoch = 0
        epoch = epoch0
        last = stage.max_epochs if self.epochs is None else self.epochs
        killpoints.reached(f"stage-start:{self.index}")
        for epoch in range(epoch0, last):
            if wait >= stage.patience:
                break
            te = time.time()
            lr = optim.current_lr(self.groups)  # at the start of the epoch
            loss, acc = self._epoch(epoch)
            row = {"epoch": epoch + 1, "stage": stage.name, "loss": round(loss, 5), "accuracy": round(acc, 5),
                   "lr": float(f"{lr:.3g}")}
            shown = f"[{stage.name}] epoch {epoch + 1}/{last}  loss {loss:.4f}  acc {acc:.4f}  "
            if self.epochs is None:
                val_loss, val_acc = self.validate()
                row.update(val_loss=round(val_loss, 5), val_accuracy=round(val_acc, 5))
                shown += f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  "
                if val_acc > best:
                    best, wait, best_epoch = val_acc, 0, epoch + 1
                    best_weights = [v.numpy() for v in self.train_vars]
                else:
                    wait += 1
            else:  # refit: the epoch count was chosen on validation data already; the last epoch is kept
                best_weights, best_epoch = [v.numpy() for v in self.train_vars], epoch + 1
            row["seconds"] = round(time.time() - te, 2)
            history.append(row)
            self.log(shown + f"lr {row['lr']:.2e}  {row['seconds']:.1f}s" + ("" if wait or self.epochs is not None else "  *"))
            killpoints.reached(f"epoch-trained:{self.index}:{epoch}")
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, {"next_epoch": epoch + 1, "best_val_accuracy": best, "wait": wait,
                                         "best_epoch": best_epoch,
                                         "best_weights": best_weights, "history": history,
                                         "seconds": time.time() - t0})
        for v, w in zip(self.train_vars, best_weights):
            v.assign(w)
        score = None if self.epochs is not None else round(float(max(best, 0.0)), 5)
        return StageResult(stage.name, len(history), score, round(time.time() - t0, 1),
                           self.trainable_params, self.cached, round(self.cache_mb, 1), history, best_epoch)


def _best_epoch(history: list[dict], best: float) -> int:
    """The first epoch of ``history`` that reached ``best`` (checkpoints from before
    ``best_epoch`` was saved); 0 when none did."""
    return next((i + 1 for i, r in enumerate(history) if r.get("val_accuracy") == round(best, 5)), 0)


def train(plan: Plan, *, seed: int = 0, weights: str = "imagenet", data_dir=None, folder=None,
          folder_counts: tuple[int | None, int | None] = (None, None), limit_test: int | None = None,
          out=None, log=print, overwrite: bool = False):
    """Run every stage of ``plan`` and leave a complete run directory; returns its path.

    Data: CIFAR-10 from ``data_dir``/``KFT_DATA_DIR`` (few-shot sampled with ``seed``)
    or a class-per-folder dataset ``folder`` (``folder_counts``: train/val images per
    class, None = all / about 20%). The test set is scored once, at the end.
    """
    from kft import runs
    from kft.data import load_few_shot

    runs.check_run_dir(out, overwrite)  # before minutes of loading: a folder in use is refused at once
    spc, vpc = folder_counts if folder else (plan.samples_per_class, plan.val_per_class)
    load_args = dict(data_dir=str(data_dir) if data_dir else None, folder=str(folder) if folder else None,
                     samples_per_class=spc, val_per_class=vpc, seed=seed,
                     limit_test=limit_test, image_size=plan.image_size if folder else None)
    data = load_few_shot(**load_args)
    for path, reason in getattr(data, "skipped", []):
        log(f"skipped {path}: {reason}")
    model = _initial_model(plan, data, seed, weights)
    run = runs.new_run_dir(out, plan.backbone, plan.strategy, overwrite)  # once data and weights are known good
    runs.write_config(run, {**plan.to_dict(), "seed": seed, "weights": weights})
    runs.write_split(run, runs.DataSource(**load_args), {"class_names": data.class_names, **data.split})
    runs.write_labels(run, data.class_names)
    log(f"run {run}: {plan.backbone} / {plan.strategy}, {len(data.train.y)} train, {len(data.val.y)} val, "
        f"{0 if data.test is None else len(data.test.y)} test images, input {data.train.x.shape[1]} px "
        f"-> {plan.image_size} px, weights {weights}")
    killpoints.reached("data-loaded")
    _execute(run, model, plan, data, seed, weights, {}, log)
    return run


def _initial_model(plan: Plan, data, seed: int, weights: str):
    """The classifier as a run starts: seeded head, backbone ``weights`` (imagenet/none/file)."""
    import keras

    from kft.model import build_classifier

    keras.utils.set_random_seed(seed)
    return build_classifier(plan.backbone, len(data.class_names), image_size=plan.image_size,
                            input_size=int(data.train.x.shape[1]), weights=weights, dropout=plan.dropout, seed=seed)


def resume(run_dir, log=print):
    """Continue an interrupted run from the end of its last completed epoch."""
    from kft import checkpoint, runs
    from kft.config import plan_from_dict
    from kft.errors import KftError
    from kft.model import build_classifier
    from kft.runguard import lock

    run = runs.load_run(run_dir)
    lock(run.path)
    if run.finished:
        raise KftError(f"{run.path} is finished already ({runs.METRICS} exists); nothing to resume")
    state = checkpoint.load_state(run.path)
    config = dict(run.config)
    seed, weights = config.pop("seed"), config.pop("weights")
    plan = plan_from_dict(config, str(run.path / runs.CONFIG))
    data = run.data()
    if state is None:  # killed before the first epoch ended: what Keras' BackupAndRestore does, start over
        log(f"{run.path} has no checkpoint yet (stopped before its first epoch ended): "
            f"starting it again from its saved config and split")
        _execute(run.path, _initial_model(plan, data, seed, weights), plan, data, seed, weights, {}, log)
        return run.path
    model = build_classifier(plan.backbone, len(data.class_names), image_size=plan.image_size,
                             input_size=int(data.train.x.shape[1]), weights="none", dropout=plan.dropout, seed=seed)
    model.load_weights(checkpoint.model_weights_path(run.path, state))
    stage = plan.stages[min(state["stage_index"], len(plan.stages) - 1)].name
    log(f"resuming {run.path}: stage {state['stage_index'] + 1}/{len(plan.stages)} ({stage}), "
        f"epoch {state.get('next_epoch', 0) + 1}")
    _execute(run.path, model, plan, data, seed, weights, state, log)
    return run.path


REFIT_PREFIX = "refit-"  # a refit stage's name: refit-<stage>


def _steps(plan: Plan) -> int:
    """Stages a run trains: the plan's, then (refit) each of them again on every label."""
    return len(plan.stages) * (2 if plan.refit else 1)


def _execute(run, model, plan: Plan, data, seed: int, weights: str, state: dict, log) -> None:
    """Stages from ``state`` on (fresh: all), then the final model, test score and artifacts.

    With ``plan.refit`` the plan's stages run twice: first on the training split, selecting
    each stage's epoch count on the validation split; then from the same initial weights on
    training + validation images for exactly those epochs (see ``Plan.refit``).
    """
    from kft import checkpoint, runs

    t_start = time.time() - state.get("elapsed", 0.0)
    history, stages = list(state.get("history", [])), list(state.get("stages", []))
    first = state.get("stage_index", 0)
    n = len(plan.stages)
    features = FeatureCache(model, plan, data, seed, log)
    selection = data

    for i in range(first, _steps(plan)):
        refit = i >= n
        stage = plan.stages[i % n]
        epochs = None
        if refit:
            epochs = stages[i - n]["best_epoch"]
            if i == n or i == first:  # entering the refit phase (or resuming inside it)
                data = selection.for_refit()
                features.refit(data)
            if i == n and (first < n or not state.get("next_epoch")):  # not when resumed mid-stage
                _reset_to_initial(model, plan, data, seed, weights)
                log(f"refit: training a fresh model on all {len(data.train.y)} labelled images "
                    f"({len(selection.train.y)} train + {len(selection.val.y)} validation) for the selected "
                    f"epochs: {', '.join(f'{s.name} {e}' for s, e in zip(plan.stages, _refit_epochs(stages, n)))}")
            stage = dataclasses.replace(stage, name=REFIT_PREFIX + stage.name)
        done_history = list(history)
        mid = None
        if i == first and not state.get("next_epoch") and state.get("files", {}).get("rng") and i != n:
            # resumed at a stage boundary: dropout's generator continues where the last stage left it
            for v, a in zip(dropout_rng_variables(model), checkpoint.load_arrays(run, state, "rng"), strict=True):
                v.assign(a)
        if i == first and state.get("next_epoch"):
            mid = {k: state[k] for k in ("next_epoch", "best_val_accuracy", "wait", "seconds")}
            mid["history"] = state["stage_history"]
            mid["best_weights"] = checkpoint.load_arrays(run, state, "best")
            mid["optimizer"] = checkpoint.load_arrays(run, state, "optimizer")
            mid["rng"] = checkpoint.load_arrays(run, state, "rng")
            if "best_epoch" in state:
                mid["best_epoch"] = state["best_epoch"]

        def on_epoch_end(trainer, s, i=i, done_history=done_history):
            rows = done_history + [{**r, "epoch": len(done_history) + k + 1} for k, r in enumerate(s["history"])]
            runs.write_history(run, rows)
            checkpoint.save(run, model, {
                "stage_index": i, "next_epoch": s["next_epoch"], "best_val_accuracy": s["best_val_accuracy"],
                "wait": s["wait"], "best_epoch": s["best_epoch"], "seconds": s["seconds"],
                "stage_history": s["history"], "history": done_history,
                "stages": stages, "elapsed": time.time() - t_start,
            }, best_weights=s["best_weights"], optimizer=[v.numpy() for v in trainer.optimizer_variables()],
                rng=[v.numpy() for v in trainer.rng_variables()])

        if epochs == 0:  # selection kept this stage's incoming weights: the refit skips it too
            result = StageResult(stage.name, 0, None, 0.0, 0, False, 0.0, [], 0)
            log(f"[{stage.name}] skipped: its selection run kept the incoming weights (0 epochs)")
        else:
            result = StageTrainer(model, plan, stage, i, data, seed, log, on_epoch_end=on_epoch_end,
                                  features=features, epochs=epochs).fit(mid)
        killpoints.reached(f"stage-done:{i}")
        stages.append({"name": result.name, "epochs": result.epochs, "best_val_accuracy": result.best_val_accuracy,
                       "best_epoch": result.best_epoch, "seconds": result.seconds,
                       "trainable_params": result.trainable_params, "cached": result.cached,
                       "cache_mb": result.cache_mb})
        history = done_history + [{**r, "epoch": len(done_history) + k + 1} for k, r in enumerate(result.history)]
        runs.write_history(run, history)
        runs.write_tensorboard(run, history[len(done_history):])
        # A finished stage is never retrained: the checkpoint now points at the next one.
        # Everything the next stage starts from: weights (best restored) and dropout's generator state.
        checkpoint.save(run, model, {"stage_index": i + 1, "next_epoch": 0, "history": history, "stages": stages,
                                     "elapsed": time.time() - t_start},
                        rng=[v.numpy() for v in dropout_rng_variables(model)])
        if refit:
            log(f"[{stage.name}] done: {result.epochs} epochs on {len(data.train.y)} images, "
                f"{result.seconds:.0f}s")
        else:
            log(f"[{stage.name}] done: {result.epochs} epochs, best val_acc {result.best_val_accuracy:.4f} "
                f"(epoch {result.best_epoch}), {result.seconds:.0f}s, {result.trainable_params:,} trainable params"
                + (f", cached ({result.cache_mb:.0f} MB)" if result.cached else ""))
    _finish(run, model, plan, selection, seed, weights, history, stages, t_start, log)


def _refit_epochs(stages: list[dict], n: int) -> list[int]:
    return [s["best_epoch"] for s in stages[:n]]


def _reset_to_initial(model, plan: Plan, data, seed: int, weights: str) -> None:
    """Give ``model`` the weights and dropout generator state a run starts with (seeded, so
    they equal the selection run's start); the frozen layers, hence the cache, are unchanged."""
    fresh = _initial_model(plan, data, seed, weights)
    model.set_weights(fresh.get_weights())
    for v, a in zip(dropout_rng_variables(model), dropout_rng_variables(fresh), strict=True):
        v.assign(a.numpy())


def _finish(run, model, plan: Plan, data, seed, weights, history, stages, t_start, log) -> None:
    from kft import runs
    from kft.evaluate import evaluate_model
    from kft.plots import plot_confusion, plot_curves

    set_trainable_blocks(model, [])
    killpoints.reached("final-eval")
    runs.save_model(run, model)
    metrics = {"backbone": plan.backbone, "strategy": plan.strategy, "seed": seed, "weights": weights,
               "image_size": plan.image_size, "input_size": int(data.train.x.shape[1]),
               "samples_per_class": plan.samples_per_class, "val_per_class": plan.val_per_class,
               "labels": label_accounting(plan, data), "class_names": data.class_names}
    if data.test is not None:
        t = time.time()
        test = evaluate_model(model, data.test.x, data.test.y, len(data.class_names),
                              desc="scoring the test set")
        log(f"test accuracy {test['accuracy']:.4f} on {test['n']} images ({time.time() - t:.0f}s)")
        metrics.update(test_accuracy=test["accuracy"], test_images=test["n"],
                       per_class_accuracy=test["per_class_accuracy"], confusion_matrix=test["confusion_matrix"])
    scores = [s["best_val_accuracy"] for s in stages if s["best_val_accuracy"] is not None]
    metrics.update(val_accuracy=max(scores, default=None), stages=stages,
                   seconds=round(time.time() - t_start, 1), versions=runs.library_versions(),
                   git_revision=runs.git_revision())
    plot_curves(history, run / "curves.png", f"{plan.backbone} / {plan.strategy}")
    if "confusion_matrix" in metrics:
        plot_confusion(metrics["confusion_matrix"], data.class_names, run / "confusion.png",
                       f"test accuracy {metrics['test_accuracy']:.3f}")
    killpoints.reached("artifacts")
    runs.write_metrics(run, metrics)  # last: a run with metrics.json is complete


def label_accounting(plan: Plan, data) -> dict:
    """How many labels the run used, and what they did: every results table prints this."""
    train, val = len(data.train.y), len(data.val.y)
    k = max(len(data.class_names), 1)
    return {
        "protocol": "refit" if plan.refit else "holdout",
        "per_class": round((train + val) / k, 1),  # labels a user must provide, per class
        "train_per_class": round(train / k, 1),
        "val_per_class": round(val / k, 1),
        "final_model_trained_on": train + val if plan.refit else train,
        "total": train + val,
    }
