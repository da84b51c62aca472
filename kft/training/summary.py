"""The end of a run: score the test set once, and write metrics.json and the plots.

``metrics.json`` says what the run used and what it scored: the labels (counted plainly,
``label_accounting``), each stage's record, the test accuracy, and for self-training each
round's teacher and pseudo-labels (``self_training_summary``). It is written last, so a
run folder with it is complete.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np

from kft import rundir
from kft.rundir import atomic
from kft.evaluate import evaluate_model, predict_logits, scores, softmax
from kft.heldout.mistakes import write_mistakes
from kft.heldout.stats import accuracy_line, per_class, wilson_interval
from kft.model import set_trainable_blocks
from kft.plan import HOLDOUT, Plan
from kft.plots import plot_confusion, plot_curves
from kft.training import killpoints
from kft.training.schedule import Step, final_round
from kft.training.selftrain import load_report

__all__ = ["finish", "held_out_report", "score_before_retraining", "label_accounting", "self_training_summary", "test_set_name"]

_log = logging.getLogger(__name__)


def finish(run, model, plan: Plan, steps: list[Step], data, seed, weights, history, stages, t_start,
           replicas: int = 1) -> None:
    """Save the model, score the test set (once), write the plots and, last, metrics.json."""
    set_trainable_blocks(model, [])
    killpoints.reached("final-eval")
    rundir.save_model(run, model)
    metrics = {"backbone": plan.backbone, "strategy": plan.strategy, "seed": seed, "weights": weights,
               "image_size": plan.image_size, "input_size": int(data.train.x.shape[1]),
               "samples_per_class": plan.samples_per_class, "val_per_class": plan.val_per_class,
               "labels": label_accounting(plan, data), "class_names": data.class_names,
               "class_weight": plan.class_weight, "distribute": {"mode": plan.distribute, "replicas": replicas},
               "class_counts": {"train": np.bincount(data.train.y, minlength=len(data.class_names)).tolist(),
                                "val": np.bincount(data.val.y, minlength=len(data.class_names)).tolist()}}
    heldout = run / rundir.HELDOUT
    if heldout.is_file():  # retrain_on_all: the score of the model before the test split trained
        metrics.update(json.loads(heldout.read_text()))
        metrics["shipped_model"] = (f"retrained on every photo ({len(data.for_all().train.y)}, the test split "
                                    f"included) after the held-out score: test_accuracy estimates this recipe")
        _log.info(f"the shipped model trained on every photo; its recipe scored {metrics['test_summary']} "
                  f"before the test photos trained (the held-out estimate)")
    elif data.test is not None:
        metrics.update(held_out_report(run, model, data, keep_logits=True))
    elif len(data.val.y) and not plan.every_label_trains:  # a folder dataset: figures from its validation split
        val = evaluate_model(model, data.val.x, data.val.y, len(data.class_names), desc="scoring the validation split")
        metrics.update(val_per_class_accuracy=val["per_class_accuracy"], val_confusion_matrix=val["confusion_matrix"])
    # a holdout student starts afresh: its own stages' scores; with every label training it has none
    final = stages[-len(final_round(steps)):] if plan.unlabeled and plan.protocol == HOLDOUT else stages
    scores = [s["best_val_accuracy"] for s in final if s["best_val_accuracy"] is not None]
    if plan.unlabeled:
        metrics["self_training"] = self_training_summary(run, plan, steps, stages, metrics.get("test_accuracy"))
        # on top of the labels: the pool, and the pseudo-labelled images the final student trained on too
        metrics["labels"]["unlabeled_images"] = metrics["self_training"]["pool_images"]
        metrics["labels"]["pseudo_labelled_images"] = metrics["self_training"]["rounds"][-1].get("kept")
    metrics.update(val_accuracy=max(scores, default=None), stages=stages, seconds=round(time.time() - t_start, 1),
                   versions=rundir.library_versions(), **rundir.revisions(run))
    plot_curves(history, run / rundir.CURVES, f"{plan.backbone} / {plan.strategy}")
    if "confusion_matrix" in metrics:
        plot_confusion(metrics["confusion_matrix"], data.class_names, run / rundir.CONFUSION,
                       f"test accuracy {metrics['test_accuracy']:.3f}")
    killpoints.reached("artifacts")
    rundir.write_metrics(run, metrics)  # last: a run with metrics.json is complete


def test_set_name(data) -> str:
    """Which images the test accuracy is on, in words (every report names its test set)."""
    n, split = len(data.test.y), data.split
    if "files" in split:  # an image folder
        if split.get("layout") == "train/test folders":
            return f"the folder's test/ sub-folder ({n} photos the model never saw)"
        return f"the folder's test split ({n} photos the model never saw: never trained or selected on)"
    whole = split.get("limit_test") is None
    return f"the CIFAR-10 test set ({n} images{'' if whole else ', a stratified subset'}; never selected on)"


def held_out_report(run, model, data, keep_logits: bool = False) -> dict:
    """Score the test set once: accuracy with its 95% interval, per class, confusion, and the
    mistakes sheet (``mistakes.png``); the metrics.json keys. ``keep_logits``: the model is the
    one saved as ``model.keras``; keep its logits for ``kft export`` (``test_logits.npz``)."""
    t = time.time()
    logits = predict_logits(model, data.test.x, desc="scoring the test set")
    if keep_logits:
        rundir.write_test_logits(run, logits, data.test.x, data.test.y)
    y, names = data.test.y, data.class_names
    test = scores(y, logits.argmax(1), len(names))
    right, what = int(round(test["accuracy"] * test["n"])), test_set_name(data)
    lo, hi = wilson_interval(right, test["n"])
    photos = "test photos" if "photos" in what else "test images"
    _log.info(f"test accuracy {accuracy_line(right, test['n'], photos)} on {what} ({time.time() - t:.0f}s)")
    files = data.split.get("files")
    names_of = [files[i] for i in data.test.indices] if files and data.test.indices is not None else None
    write_mistakes(run / rundir.MISTAKES, data.test.x, y, softmax(logits), names, names=names_of)
    return {"test_accuracy": test["accuracy"], "test_images": test["n"], "test_ci95": [round(lo, 4), round(hi, 4)],
            "test_summary": accuracy_line(right, test["n"], photos), "test_set": what, "per_class_accuracy": test["per_class_accuracy"],
            "per_class": per_class(y, logits.argmax(1), names), "confusion_matrix": test["confusion_matrix"]}


def score_before_retraining(run, model, data) -> None:
    """retrain_on_all: score the held-out photos now, before they train (once: a resumed run keeps it)."""
    path = run / rundir.HELDOUT
    if path.is_file():
        return
    set_trainable_blocks(model, [])
    atomic.write_json(path, held_out_report(run, model, data))
    _log.info(f"retraining the recipe on all {len(data.for_all().train.y)} photos for the model to ship")


def self_training_summary(run, plan: Plan, steps: list[Step], stages: list[dict], final_test: float | None) -> dict:
    """Per round (0: the labelled-only teacher): validation and test accuracy of its model, and
    what its pseudo-labels were; from self-training.json and the stage records."""
    report = load_report(run)
    made = {s["round"]: s for s in report.get("rounds", [])}
    rows = []
    for r in range(plan.self_training.rounds + 1):
        # the teacher's score is its selection run's; with every label training, students have none
        vals = [rec["best_val_accuracy"] for rec, step in zip(stages, steps)
                if step.round == r and rec["best_val_accuracy"] is not None]
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
            "student_lr_scale": st.lr_scale, "protocol": plan.protocol,
            "targets": st.targets, "per_class": st.per_class, "min_confidence": st.min_confidence, "rounds": rows}


def label_accounting(plan: Plan, data) -> dict:
    """How many labels the run used, and what they did: every results table prints this."""
    train, val = len(data.train.y), len(data.val.y)
    k = max(len(data.class_names), 1)
    return {
        "protocol": plan.protocol,
        "per_class": round((train + val) / k, 1),  # labels a user must provide, per class
        "train_per_class": round(train / k, 1),
        "val_per_class": round(val / k, 1),
        "final_model_trained_on": train + val if plan.every_label_trains else train,
        "total": train + val,
    }
