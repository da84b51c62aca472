"""A run folder as an object: where its images come from, its plan, its split; made, locked, loaded.

    run = load_run("runs/mobilenet_v2-lp_ft_top-20261207-101500")
    run.config["protocol"], run.class_names, run.test_set()
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from kft.errors import KftError
from kft.rundir.guard import check_new_run_folder, lock
from kft.rundir.layout import CONFIG, LABELS, METRICS, MODEL, SCHEMA_VERSION, SPLIT, is_run_dir

__all__ = ["DataSource", "Run", "check_run_dir", "load_run", "new_run_dir"]


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
    test_split: float | None = None  # a folder's held-out share per class (None: none, as runs before it)

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
        check_new_run_folder(out, overwrite, clear=False)


def new_run_dir(out: str | Path | None, backbone: str, strategy: str, overwrite: bool = False) -> Path:
    """``out`` if given, else a fresh ``runs/<backbone>-<strategy>-<timestamp>``; checked writable,
    refused if it holds files (unless ``overwrite``), and locked for this process."""
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


