"""Writing a run folder's files (atomically) and reading its model back.

    write_config(run, plan.to_dict() | {"seed": 0, "weights": "imagenet"})
    write_metrics(run, {...})      # last: a folder with metrics.json is finished
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

from kft.errors import KftError
from kft.rundir import atomic
from kft.rundir.guard import ensure_space
from kft.rundir.layout import (CONFIG, HISTORY, HISTORY_COLUMNS, LABELS, METRICS, MODEL, SCHEMA_VERSION, SPLIT,
                               TENSORBOARD)

__all__ = ["git_revision", "library_versions", "load_model", "revisions", "save_model", "weight_bytes",
           "write_config", "write_history", "write_labels", "write_metrics", "write_split", "write_tensorboard"]


def write_config(run: Path, plan_dict: dict) -> None:
    import yaml

    atomic.write_text(run / CONFIG, yaml.safe_dump({"schema_version": SCHEMA_VERSION, **plan_dict}, sort_keys=False))


def write_labels(run: Path, class_names: list[str]) -> None:
    atomic.write_text(run / LABELS, "".join(f"{c}\n" for c in class_names))


def weight_bytes(model) -> int:
    """Bytes of the model's weights (what a weights file or .keras archive mostly holds)."""
    import numpy as np

    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def save_model(run: Path, model) -> Path:
    path = run / MODEL
    ensure_space(path, weight_bytes(model))
    with atomic.atomic_path(path) as tmp:
        model.save(tmp)
    return path


def write_history(run: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic.write_text(run / HISTORY, buf.getvalue())


def library_versions() -> dict:
    import keras
    import numpy
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": numpy.__version__}


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def revisions(run: Path) -> dict:
    """``git_revision``: the commit the run started with (recorded in split.json when its folder
    was made; runs made before that have none, and get the current one); and
    ``git_revision_at_finish`` when a resume under other code finished it."""
    now = git_revision()
    try:
        started = json.loads((Path(run) / SPLIT).read_text()).get("git_revision", now)
    except (OSError, ValueError):
        started = now
    return {"git_revision": started, **({"git_revision_at_finish": now} if now != started else {})}


def load_model(path: str | Path):
    """Load a ``.keras`` classifier with Keras' safe mode on (no code from Lambda layers)."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise KftError(f"no model at {path}")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # a corrupt or foreign file
        raise KftError(f"{path}: cannot load the model ({str(e).splitlines()[0][:200]})") from None


def write_split(run: Path, source, split: dict) -> None:
    """split.json: ``source`` (a ``DataSource``: enough to load the images again) and the split itself."""
    from dataclasses import asdict

    atomic.write_json(run / SPLIT, {"schema_version": SCHEMA_VERSION, "data_source": asdict(source), **split})


def write_metrics(run: Path, metrics: dict) -> None:
    atomic.write_json(run / METRICS, {"schema_version": SCHEMA_VERSION, **metrics})


def write_tensorboard(run: Path, rows: list[dict]) -> None:
    """Append epoch scalars to ``<run>/tensorboard`` (one event file per stage)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(run / TENSORBOARD))
    with writer.as_default():
        for r in rows:
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
                if r.get(key) is not None:  # a refit's epochs have no validation scores
                    tf.summary.scalar(key, float(r[key]), step=int(r["epoch"]))
    writer.close()
