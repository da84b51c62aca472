"""The run directory: what a training run leaves behind, written atomically.

Layout of ``runs/<backbone>-<strategy>-<timestamp>/``:
``config.yaml`` (the resolved plan), ``split.json`` (data source, seed and the
sampled indices), ``labels.txt``, ``model.keras`` (the whole classifier),
``history.csv``, ``metrics.json``, ``curves.png``, ``confusion.png``,
``tensorboard/`` and ``checkpoint/`` (for ``--resume``).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kft import atomic
from kft.errors import KftError

HISTORY_COLUMNS = ("epoch", "stage", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def check_run_dir(out: str | Path | None, overwrite: bool = False) -> None:
    """Before any work: ``out`` must be new or empty (or a run folder, with ``overwrite``)."""
    if out:
        from kft.runguard import check_new_run_folder

        check_new_run_folder(out, overwrite, clear=False)


def new_run_dir(out: str | Path | None, backbone: str, strategy: str, overwrite: bool = False) -> Path:
    """``out`` if given, else a fresh ``runs/<backbone>-<strategy>-<timestamp>``; checked writable,
    refused if it holds files (unless ``overwrite``), and locked for this process."""
    from kft.runguard import check_new_run_folder, lock

    path = Path(out) if out else Path("runs") / f"{backbone}-{strategy}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_new_run_folder(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise KftError(f"output folder {path} is not writable ({e.strerror})") from None
    lock(path)
    return path


def write_config(run: Path, plan_dict: dict) -> None:
    import yaml

    atomic.write_text(run / "config.yaml", yaml.safe_dump(plan_dict, sort_keys=False))


def write_labels(run: Path, class_names: list[str]) -> None:
    atomic.write_text(run / "labels.txt", "".join(f"{c}\n" for c in class_names))


def weight_bytes(model) -> int:
    """Bytes of the model's weights (what a weights file or .keras archive mostly holds)."""
    import numpy as np

    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def save_model(run: Path, model) -> Path:
    from kft.runguard import ensure_space

    path = run / "model.keras"
    ensure_space(path, weight_bytes(model))
    with atomic.atomic_path(path) as tmp:
        model.save(tmp)
    return path


def write_history(run: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic.write_text(run / "history.csv", buf.getvalue())


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


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / "split.json").is_file()


@dataclass
class Run:
    """A finished (or interrupted) run, for evaluate / export / resume."""

    path: Path
    config: dict
    split: dict
    class_names: list[str]
    _loaded: dict = field(default_factory=dict, repr=False)  # limit_test -> FewShotData

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def _data(self, limit_test=None):
        from kft.data import load_few_shot

        args = dict(self.split["load_args"])
        if limit_test is not None:
            args["limit_test"] = limit_test
        key = args.get("limit_test")
        if key not in self._loaded:  # export asks for training and test images: load once
            self._loaded[key] = load_few_shot(**args)
        return self._loaded[key]

    def train_images(self):
        return self._data().train.x

    def val_set(self):
        """The run's validation split (what selected its epochs): the held-out data of a folder run."""
        val = self._data().val
        return val.x, val.y

    def test_set(self, limit: int | None = None):
        test = self._data(limit).test
        if test is None:
            raise KftError(f"{self.path}: this run was trained on a folder dataset with no test set")
        return test.x, test.y


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise KftError(f"{path} is not a folder")
    if not is_run_dir(path):
        raise KftError(f"{path} is not a kft run folder (no config.yaml and split.json)")
    import yaml

    config = yaml.safe_load((path / "config.yaml").read_text())
    split = json.loads((path / "split.json").read_text())
    names = [line for line in (path / "labels.txt").read_text().splitlines() if line] \
        if (path / "labels.txt").is_file() else split.get("class_names", [])
    return Run(path, config, split, names)


def write_split(run: Path, split: dict) -> None:
    atomic.write_json(run / "split.json", split)


def write_metrics(run: Path, metrics: dict) -> None:
    atomic.write_json(run / "metrics.json", metrics)


def write_tensorboard(run: Path, rows: list[dict]) -> None:
    """Append epoch scalars to ``<run>/tensorboard`` (one event file per stage)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(run / "tensorboard"))
    with writer.as_default():
        for r in rows:
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
                if r.get(key) is not None:  # a refit's epochs have no validation scores
                    tf.summary.scalar(key, float(r[key]), step=int(r["epoch"]))
    writer.close()
