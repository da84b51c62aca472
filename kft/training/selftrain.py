"""Self-training from unlabelled images: the teacher labels a pool, a fresh student learns from both.

The recipe is pseudo-labelling in the Noisy Student form (Xie et al. 2020), cut to
what 2 CPU cores can afford:

1. the teacher (the staged model, or the last round's student) scores every pool image
   once. The pool goes through the frozen prefix once per run (``pool_features``: clean
   images, float16 features at the cache's base cut, on disk past ``cache_budget_mb``);
   each round then runs only the trainable top of the teacher over them;
2. ``select`` keeps, per predicted class, the ``per_class`` most confident images (at least
   ``min_confidence``), so the pseudo-labelled set stays class-balanced even where the
   teacher favours some classes; the targets are the teacher's probabilities (``soft``)
   or its top-1 class (``hard``);
3. a student starts from the run's initial weights and trains with the plan's stages on
   labelled + kept images, with augmented cached views and dropout as its noise; early
   stopping and the restored best epoch are decided on the labelled validation split only.
   With ``Plan.refit`` (refit or fixed protocol) the model trained on every label teaches, and
   the student learns from every label plus the kept images for a fixed number of epochs: no
   labels are left to select on.
   A ``top`` student (``SelfTraining.student``) starts only the first stage's blocks afresh,
   keeps the teacher's lower blocks frozen and trains that one stage: the later stages'
   blocks are where a fresh student spends most of its time.
   A ``teacher`` student keeps the teacher's weights and trains the plan's last stage only
   (pseudo-labelling as Lee 2013 had it: the teacher fine-tuned on labelled + kept images).

``Teaching`` holds a run's rounds: the pool, its cached features, each round's pseudo-labels.
A round's selection is written to the run folder before its student trains
(``self-training/round-R.npz`` + ``self-training.json``), so a resumed run trains on the same
pseudo-labels without the teacher, whose weights are gone by then.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from kft.data import Dataset, ondisk
from kft.data.unlabeled import load_pool
from kft.evaluate import evaluate_model, predict_logits
from kft.backbones.registry import HEAD_BLOCK
from kft.model import block_layers, set_trainable_blocks
from kft.rundir import atomic
from kft.training.augment import CACHE_STUDENT_VIEWS
from kft.training.cache import FeatureCache, bridge, compute_features, feature_bytes, prefix_model
from kft.training.schedule import shares_probe_head, student_stages

__all__ = ["Teaching", "load_report", "pool_features", "round_summary", "select", "student_data", "targets_of"]

_log = logging.getLogger(__name__)

FOLDER = "self-training"
REPORT = "self-training.json"
POOL = "pool.json"  # the pool's CIFAR-10 rows or files, in the order row numbers refer to
PROBE_HEAD = "teacher-probe-head.npz"  # the head the teacher's probe stage learned (SelfTraining.probe)


def round_file(run: Path, r: int) -> Path:
    return Path(run) / FOLDER / f"round-{r}.npz"


def pool_features(model, base: str | None, pool_x, budget_mb: float) -> np.ndarray | None:
    """Float16 features of the clean pool images entering ``base`` (None: no cache, nothing)."""
    if base is None:
        return None
    t = time.time()
    mb = feature_bytes(model, base, len(pool_x)) / 2**20
    allocate = ondisk.empty if mb > budget_mb else np.empty
    feats = compute_features(prefix_model(model, base), pool_x, allocate=allocate,
                             desc=f"unlabelled pool through the frozen prefix (to {base})")
    _log.info(f"pool: {len(pool_x)} images, features entering {base}: {mb:.0f} MB float16"
              f"{' on disk' if allocate is not np.empty else ''}, {time.time() - t:.0f}s")
    return feats


def teacher_probabilities(model, base: str | None, features, pool_x) -> np.ndarray:
    """The teacher's softmax over the pool (inference mode), from the cached features when
    there are some, else from the images."""
    import keras

    if features is None:
        logits = predict_logits(model, pool_x, desc="teacher scoring the unlabelled pool")
    else:
        part = bridge(model, base, HEAD_BLOCK)
        top = keras.Model(part.input, model.get_layer("logits")(part.output), name="teacher_top")
        logits = compute_features(top, features, 256, dtype=np.float32, desc="teacher scoring the unlabelled pool")
    logits = logits.astype(np.float64)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def select(probs: np.ndarray, per_class: int, min_confidence: float = 0.0) -> np.ndarray:
    """Pool rows to keep: per predicted class, its ``per_class`` most confident rows (ties by
    row, so the choice is exact), at least ``min_confidence``; in class order."""
    top, conf = probs.argmax(1), probs.max(1)
    keep = []
    for c in range(probs.shape[1]):
        rows = np.flatnonzero((top == c) & (conf >= min_confidence))
        rows = rows[np.lexsort((rows, -conf[rows]))][:per_class]
        keep.append(np.sort(rows))
    return np.concatenate(keep).astype(np.int64)


def targets_of(probs: np.ndarray, kind: str) -> np.ndarray:
    """Training targets for kept rows: the probabilities (soft) or one-hot top-1 (hard)."""
    if kind == "soft":
        return probs.astype(np.float32)
    return np.eye(probs.shape[1], dtype=np.float32)[probs.argmax(1)]


def round_summary(r: int, rows: np.ndarray, probs: np.ndarray, held_back, num_classes: int,
                  teacher_test: float | None, seconds: float) -> dict:
    """What a round's selection did, for self-training.json: counts, confidence and (on
    cifar10-rest, from the held-back labels: report only) how many pseudo-labels were right."""
    top = probs.argmax(1)
    kept = np.bincount(top, minlength=num_classes)
    out = {"round": r, "kept": int(len(rows)), "kept_per_class": kept.tolist(),
           "mean_confidence": round(float(probs.max(1).mean()), 4) if len(rows) else None,
           "teacher_test_accuracy": teacher_test, "selection_seconds": round(seconds, 1)}
    if held_back is not None:
        right = top == held_back[rows]
        out["pseudo_label_accuracy"] = round(float(right.mean()), 4) if len(rows) else None
        out["pseudo_label_accuracy_per_class"] = [
            round(float(right[top == c].mean()), 4) if kept[c] else None for c in range(num_classes)]
    return out


def save_round(run: Path, summary: dict, rows: np.ndarray, targets: np.ndarray) -> None:
    """The round's kept rows and targets, then its line in self-training.json (both atomic)."""
    with atomic.atomic_path(round_file(run, summary["round"])) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, rows=rows, targets=targets)
    report = load_report(run)
    report["rounds"] = [s for s in report.get("rounds", []) if s["round"] != summary["round"]] + [summary]
    atomic.write_json(Path(run) / REPORT, report)


def load_round(run: Path, r: int) -> tuple[np.ndarray, np.ndarray] | None:
    path = round_file(run, r)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return z["rows"], z["targets"]


def load_report(run: Path) -> dict:
    path = Path(run) / REPORT
    return json.loads(path.read_text()) if path.exists() else {}


def write_pool_info(run: Path, pool, spec: str) -> None:
    """Where the pool came from (its rows or files): the report's header, written once."""
    listing = {k: v for k, v in pool.source.items() if k in ("rows", "files")}
    atomic.write_text(Path(run) / FOLDER / POOL, json.dumps(listing, separators=(",", ":")) + "\n")
    report = load_report(run)
    report.update(unlabeled=spec, pool_images=len(pool),
                  pool_source={**{k: v for k, v in pool.source.items() if k not in listing},
                               "listing": f"{FOLDER}/{POOL}"},
                  pool_skipped=[[p, why] for p, why in pool.skipped])
    atomic.write_json(Path(run) / REPORT, report)


def _head_weights(model) -> list:
    return [w for layer in block_layers(model)[HEAD_BLOCK] for w in layer.weights]


def save_probe_head(run: Path, model) -> None:
    """The head's weights after the teacher's probe stage, for its students (atomic)."""
    with atomic.atomic_path(Path(run) / FOLDER / PROBE_HEAD) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *[np.asarray(w) for w in _head_weights(model)])


def load_probe_head(run: Path, model) -> bool:
    """Give ``model`` the teacher's probe head; False (and nothing changed) when the run has none."""
    path = Path(run) / FOLDER / PROBE_HEAD
    if not path.exists():
        return False
    with np.load(path, allow_pickle=False) as z:
        saved = [z[f"arr_{k}"] for k in range(len(z.files))]
    weights = _head_weights(model)
    if [w.shape for w in saved] != [tuple(v.shape) for v in weights]:
        raise ValueError(f"{path}: saved head shapes {[w.shape for w in saved]} do not fit this model")
    for v, w in zip(weights, saved):
        v.assign(w)
    return True


def student_data(data, pool, rows: np.ndarray, targets: np.ndarray):
    """Labelled training images (one-hot targets) followed by the kept pool images (their
    pseudo-targets); validation and test unchanged."""
    n = len(data.class_names)
    kept = Dataset(pool.x[rows], targets.argmax(1), list(data.class_names), rows)
    labelled = np.eye(n, dtype=np.float32)[data.train.y]
    train = data.train.concat(kept)
    train.indices = None  # two index spaces (labelled rows, pool rows): see self-training.json
    return dataclasses.replace(data, train=train, targets=np.concatenate([labelled, targets]))


class Teaching:
    """A run's self-training rounds (``kft.training.selftrain``): the pool, its cached features, and
    each round's pseudo-labels, made by the teacher or read back from the run folder."""

    def __init__(self, run, plan, data, seed: int, base: str | None):
        self.run, self.plan, self.data, self.seed, self.base = run, plan, data, seed, base
        st = plan.self_training
        self.pool = load_pool(plan.unlabeled, data.split, tuple(data.train.x.shape[1:3]), seed=seed,
                              limit=st.pool_limit, memory_budget_mb=plan.data_budget_mb)
        for path, reason in self.pool.skipped:
            _log.warning(f"skipped {path}: {reason}")
        write_pool_info(run, self.pool, plan.unlabeled)
        self.features = None  # the pool's prefix features: computed when a teacher first needs them
        self.shares_probe = shares_probe_head(plan)
        self.trained = student_stages(st.student, len(plan.stages))  # the stages a student trains

    def label_pool(self, model, r: int, features: FeatureCache) -> None:
        """Round ``r``'s pseudo-labels from ``model`` (the teacher), unless a resumed run has them."""
        if load_round(self.run, r) is not None:
            return
        t = time.time()
        features.release()
        teacher_test = None
        if self.data.test is not None:  # for the report only: nothing is selected on it
            set_trainable_blocks(model, [])
            teacher_test = evaluate_model(model, self.data.test.x, self.data.test.y, len(self.data.class_names),
                                          desc=f"scoring round {r}'s teacher on the test set")["accuracy"]
        if self.features is None:
            self.features = pool_features(model, self.base, self.pool.x, self.plan.cache_budget_mb)
        probs = teacher_probabilities(model, self.base, self.features, self.pool.x)
        st = self.plan.self_training
        rows = select(probs, st.per_class, st.min_confidence)
        summary = round_summary(r, rows, probs[rows], self.pool.held_back, len(self.data.class_names),
                                          teacher_test, time.time() - t)
        save_round(self.run, summary, rows, targets_of(probs[rows], st.targets))
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
        if load_probe_head(self.run, model):
            return True
        _log.info("no saved teacher probe head in this run: the student trains its own probe")
        return False

    def student(self, model, r: int):
        """Round ``r``'s student data (labelled + kept images) and its feature cache; after a
        refit the labelled images are training + validation, and no validation split is left."""
        rows, targets = load_round(self.run, r)
        labelled = self.data.for_refit() if self.plan.every_label_trains else self.data
        data = student_data(labelled, self.pool, rows, targets)
        st = self.plan.self_training
        # the cache starts where the student's first trained stage does (top: through the teacher's lower blocks)
        stages = [self.plan.stages[k] for k in self.trained]
        plan = dataclasses.replace(self.plan, cache_views=st.views, stages=stages)
        return data, FeatureCache(model, plan, data, self.seed, stream=(CACHE_STUDENT_VIEWS, r))
