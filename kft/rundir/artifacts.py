"""One opener for what a user points kft at: a run folder, a ``.keras`` file or a ``.tflite`` file.

``evaluate``, ``export``, ``predict`` and ``bench`` all take "a model" on the
command line; this decides once what it is, finds the model file and the class
names, and turns every wrong path into one readable line. TensorFlow-free.

    art = open_artifact("runs/mobilenet_v2-two_stage-...")   # kind "run"
    art.model_path, art.labels, art.run.test_set()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kft import rundir
from kft.errors import KftError
from kft.runtime.classifier import labels_beside

RUN, KERAS, TFLITE = "run", "keras", "tflite"
ALL = (TFLITE, KERAS, RUN)
_WHAT = {TFLITE: ".tflite", KERAS: ".keras"}


@dataclass(frozen=True)
class Artifact:
    path: Path  # as given
    kind: str  # RUN, KERAS or TFLITE
    model_path: Path  # the model file (a run folder's model.keras)
    run: object | None = None  # kft.rundir.Run of a run folder, else None
    labels: list[str] | None = None  # the run's classes or a labels.txt beside the file (a .tflite: its metadata)

    def load_keras(self):
        """The Keras classifier (safe mode). A run folder's config names its backbone
        (``kft.model.spec_of``); a bare ``.keras`` file has only its model name for that."""

        model = rundir.load_model(self.model_path)
        if self.run is not None and self.run.config.get("backbone"):
            model.kft_backbone = self.run.config["backbone"]
        return model


def describe(kinds=ALL) -> str:
    """``a .tflite or .keras model, or a run folder`` for ``kinds``."""
    files = [_WHAT[k] for k in ALL if k in kinds and k in _WHAT]
    text = f"a {' or '.join(files)} model" if files else ""
    if RUN in kinds:
        text = f"{text}, or a run folder" if text else "a run folder"
    return text


def open_artifact(path, kinds=ALL, data_dir=None) -> Artifact:
    """What ``path`` is, among ``kinds``; a KftError (one line) when it is none of them.

    A folder that holds ``model.keras`` but is not a run folder (no config.yaml and
    split.json) opens as that ``.keras`` file. ``data_dir``: where a run folder's
    CIFAR-10 lives on this machine, when not where it was trained.
    """

    path = Path(path)
    if not path.exists():
        raise KftError(f"{path}: no such file or folder (expected {describe(kinds)})")
    if path.is_dir():
        model = path / rundir.MODEL
        if rundir.is_run_dir(path) and RUN in kinds:
            run = rundir.load_run(path)
            if data_dir:
                run = run.with_data_dir(data_dir)
            if not model.is_file():
                raise KftError(f"{path}: no {rundir.MODEL} in this run folder (did the run finish?)")
            return Artifact(path, RUN, model, run, run.class_names)
        if KERAS in kinds and model.is_file():
            return Artifact(path, KERAS, model, None, labels_beside(model))
        raise KftError(f"{path}: no {rundir.MODEL} in this folder (expected {describe(kinds)})")
    kind = {".tflite": TFLITE, ".keras": KERAS}.get(path.suffix.lower())
    if kind not in kinds:
        raise KftError(f"{path}: unsupported model type {path.suffix or '(no suffix)'!r}; "
                       f"expected {describe(kinds)}")
    return Artifact(path, kind, path, None, labels_beside(path) if kind == KERAS else None)
