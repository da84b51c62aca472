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

from kft import atomic

_log = logging.getLogger(__name__)

FOLDER = "self-training"
REPORT = "self-training.json"
POOL = "pool.json"  # the pool's CIFAR-10 rows or files, in the order row numbers refer to
PROBE_HEAD = "teacher-probe-head.npz"  # the head the teacher's probe stage learned (SelfTraining.probe)


def round_file(run: Path, r: int) -> Path:
    return Path(run) / FOLDER / f"round-{r}.npz"


def pool_features(model, base: str | None, pool_x, budget_mb: float) -> np.ndarray | None:
    """Float16 features of the clean pool images entering ``base`` (None: no cache, nothing)."""
    from kft.cache import compute_features, feature_bytes, prefix_model
    from kft.data import ondisk

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

    from kft.cache import HEAD_BLOCK, bridge, compute_features
    from kft.evaluate import predict_logits

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
    from kft.backbones.registry import HEAD_BLOCK
    from kft.model import block_layers

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


def student_stages(student: str, n: int) -> list[int]:
    """Which of a plan's ``n`` stages a student (``SelfTraining.student``) trains: a fresh one
    every stage, a ``top`` one the first, a ``teacher`` one the last."""
    return {"top": [0], "teacher": [n - 1]}.get(student, list(range(n)))


SKIPPED_STAGE = {"top": "a top student trains the first stage's blocks only (self_training.student)",
                 "teacher": "a student that starts as its teacher trains the last stage only (self_training.student)"}


def student_data(data, pool, rows: np.ndarray, targets: np.ndarray):
    """Labelled training images (one-hot targets) followed by the kept pool images (their
    pseudo-targets); validation and test unchanged."""
    from kft.data import Dataset

    n = len(data.class_names)
    kept = Dataset(pool.x[rows], targets.argmax(1), list(data.class_names), rows)
    labelled = np.eye(n, dtype=np.float32)[data.train.y]
    train = data.train.concat(kept)
    train.indices = None  # two index spaces (labelled rows, pool rows): see self-training.json
    return dataclasses.replace(data, train=train, targets=np.concatenate([labelled, targets]))
