"""The run folder's layout: every file of ``runs/<backbone>-<strategy>-<timestamp>/``, named once.

``config.yaml`` (the resolved plan + seed + weights), ``split.json`` (data source, seed and the
sampled indices), ``labels.txt``, ``model.keras`` (the whole classifier), ``history.csv``,
``metrics.json`` (written last: a folder with it is finished), ``curves.png``, ``confusion.png``,
``mistakes.png`` (the misclassified test images), ``test_logits.npz`` (the final model's test logits),
``tensorboard/`` and ``checkpoint/`` (for ``--resume``). Readers elsewhere use these names.
"""

from __future__ import annotations

from pathlib import Path

HISTORY_COLUMNS = ("epoch", "stage", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")

# Every file of a run folder, named once. Readers of other modules use these names.
CONFIG = "config.yaml"  # the resolved plan + seed + weights
SPLIT = "split.json"  # the data source and the sampled indices
LABELS = "labels.txt"
MODEL = "model.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"  # written last: a run folder with it is finished
CURVES, CONFUSION, MISTAKES = "curves.png", "confusion.png", "mistakes.png"
HELDOUT = "heldout.json"  # retrain_on_all: the test split's score, taken before it trained
TEST_LOGITS = "test_logits.npz"  # the final model's test logits, for kft export (kft.rundir.scores)
CHECKPOINT, TENSORBOARD = "checkpoint", "tensorboard"
MARKERS = (CONFIG, SPLIT)  # what makes a folder a run folder
FILES = (CONFIG, SPLIT, LABELS, MODEL, HISTORY, METRICS, CURVES, CONFUSION, MISTAKES, TEST_LOGITS, CHECKPOINT,
         TENSORBOARD)

# 3: config.yaml names the label ``protocol`` (fixed, refit or holdout) instead of refit/select.
# 2: schema_version in config.yaml, split.json and metrics.json; split.json's data_source.
# 1: no schema_version (run folders written from d6acc48 on): still read.
SCHEMA_VERSION = 3


def is_run_dir(path) -> bool:
    """A folder that holds a run's markers (config.yaml and split.json)."""
    return all((Path(path) / name).is_file() for name in MARKERS)
