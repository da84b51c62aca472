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

# Every file of a run folder, named once. Readers of other modules use these names.
CONFIG = "config.yaml"  # the resolved plan + seed + weights
SPLIT = "split.json"  # the data source and the sampled indices
LABELS = "labels.txt"
MODEL = "model.keras"
HISTORY = "history.csv"
METRICS = "metrics.json"  # written last: a run folder with it is finished
CURVES, CONFUSION = "curves.png", "confusion.png"
CHECKPOINT, TENSORBOARD = "checkpoint", "tensorboard"
MARKERS = (CONFIG, SPLIT)  # what makes a folder a run folder
FILES = (CONFIG, SPLIT, LABELS, MODEL, HISTORY, METRICS, CURVES, CONFUSION, CHECKPOINT, TENSORBOARD)

# 2: schema_version in config.yaml, split.json and metrics.json; split.json's data_source.
# 1: no schema_version (run folders written from d6acc48 on): still read.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class DataSource:
    """Where a run's images come from and how they were sampled: enough to load them again."""

    data_dir: str | None = None  # CIFAR-10 (None: $KFT_DATA_DIR / download)
    folder: str | None = None  # or an image folder, one sub-folder per class
    samples_per_class: int | None = None
    val_per_class: int | None = None
    seed: int = 0
    limit_test: int | None = None
    image_size: int | None = None  # folder images are resized to it when loaded

    def load(self, limit_test: int | None = None, memory_budget_mb: float | None = None):
        """The images, again; ``memory_budget_mb``: past it a folder's images stay on disk."""
        from dataclasses import asdict

        from kft.data import load_few_shot

        args = asdict(self)
        if limit_test is not None:
            args["limit_test"] = limit_test
        return load_few_shot(**args, memory_budget_mb=memory_budget_mb)

    @classmethod
    def from_split(cls, split: dict) -> DataSource | None:
        """From a split.json: ``data_source`` (schema 2) or the ``load_args`` of schema 1; None if neither."""
        raw = split.get("data_source", split.get("load_args"))
        if not isinstance(raw, dict):
            return None
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


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

    atomic.write_text(run / CONFIG, yaml.safe_dump({"schema_version": SCHEMA_VERSION, **plan_dict}, sort_keys=False))


def write_labels(run: Path, class_names: list[str]) -> None:
    atomic.write_text(run / LABELS, "".join(f"{c}\n" for c in class_names))


def weight_bytes(model) -> int:
    """Bytes of the model's weights (what a weights file or .keras archive mostly holds)."""
    import numpy as np

    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def save_model(run: Path, model) -> Path:
    from kft.runguard import ensure_space

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


def is_run_dir(path: Path) -> bool:
    return all((Path(path) / name).is_file() for name in MARKERS)


@dataclass
class Run:
    """A finished (or interrupted) run, for evaluate / export / resume."""

    path: Path
    config: dict  # the plan + seed + weights (no schema_version)
    split: dict
    class_names: list[str]
    source: DataSource | None = None  # None: split.json names none (an error once data is needed)
    schema_version: int = SCHEMA_VERSION
    _loaded: dict = field(default_factory=dict, repr=False)  # limit_test -> FewShotData

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def finished(self) -> bool:
        return (self.path / METRICS).is_file()

    def with_data_dir(self, data_dir) -> Run:
        """The same run, reading CIFAR-10 from ``data_dir`` (another machine's copy)."""
        from dataclasses import replace

        return replace(self, source=replace(self.source or DataSource(), data_dir=str(data_dir)), _loaded={})

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def data(self, limit_test=None):
        """The run's FewShotData, loaded once per ``limit_test`` (export asks for training and test images)."""
        if self.source is None:
            raise KftError(f"{self.path / SPLIT} names no data source")
        key = self.source.limit_test if limit_test is None else limit_test
        if key not in self._loaded:
            self._loaded[key] = self.source.load(limit_test, self.config.get("data_budget_mb"))
        return self._loaded[key]


    def train_images(self):
        return self.data().train.x

    def val_set(self):
        """The run's validation split (what selected its epochs): the held-out data of a folder run."""
        val = self.data().val
        return val.x, val.y

    def test_set(self, limit: int | None = None):
        test = self.data(limit).test
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

    try:
        config = yaml.safe_load((path / CONFIG).read_text())
        split = json.loads((path / SPLIT).read_text())
    except (yaml.YAMLError, ValueError) as e:
        raise KftError(f"{path}: {CONFIG} or {SPLIT} is corrupt ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(config, dict) or not isinstance(split, dict):
        raise KftError(f"{path}: {CONFIG} or {SPLIT} is not a mapping")
    version = config.pop("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise KftError(f"{path} was written by a newer kft (run schema {version}; this one reads up to "
                       f"{SCHEMA_VERSION}): upgrade kft")
    names = [line for line in (path / LABELS).read_text().splitlines() if line] \
        if (path / LABELS).is_file() else split.get("class_names", [])
    return Run(path, config, split, names, DataSource.from_split(split), version)


def write_split(run: Path, source: DataSource, split: dict) -> None:
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
