"""Per-epoch checkpoints in ``<run>/checkpoint/``, so ``kft train --resume`` loses at most one epoch.

A checkpoint holds the whole model's weights, the stage's best weights so far,
every LR group's optimizer variables (Adam moments, step count, hence the LR
schedule position), the dropout layer's random-generator state (augmentation is
seeded per batch and needs none) and the early-stopping state. Files carry a serial number; ``state.json``, written
last and atomically, names the complete set, so a kill at any moment leaves the
previous checkpoint valid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kft.errors import KftError
from kft.rundir import atomic
from kft.rundir.files import weight_bytes
from kft.rundir.guard import ensure_space
from kft.rundir.layout import CHECKPOINT
from kft.rundir.state import RunState

FOLDER = CHECKPOINT


def _save_arrays(path: Path, arrays: list) -> None:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *[np.asarray(a) for a in arrays])


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def save(run: Path, model, state: dict | RunState, best_weights=None, optimizer=None, rng=None) -> None:
    """Write one checkpoint: ``state`` (a RunState, or its JSON) and the arrays that continue it."""
    if isinstance(state, RunState):
        progress = state.stage
        best_weights, optimizer = (progress.best_weights, progress.optimizer) if progress else (None, None)
        rng = progress.rng if progress else state.rng
        state = state.to_json()
    folder = Path(run) / FOLDER
    folder.mkdir(exist_ok=True)
    extra = sum(int(np.asarray(a).nbytes) for arrays in (best_weights, optimizer, rng) for a in (arrays or []))
    ensure_space(folder, weight_bytes(model) + extra)  # h5py segfaults on a full disk: check first
    old = load_state(run)
    serial = (old or {}).get("serial", 0) + 1
    files = {"model": f"model-{serial}.weights.h5"}
    with atomic.atomic_path(folder / files["model"]) as tmp:
        model.save_weights(tmp)
    for key, arrays in (("best", best_weights), ("optimizer", optimizer), ("rng", rng)):
        if arrays is not None:
            files[key] = f"{key}-{serial}.npz"
            _save_arrays(folder / files[key], arrays)
    atomic.write_json(folder / "state.json", {**state, "serial": serial, "files": files})
    for name in (old or {}).get("files", {}).values():
        (folder / name).unlink(missing_ok=True)


def load(run: Path) -> tuple[RunState, Path] | None:
    """The last complete checkpoint: its state (with arrays) and the model weights file; None if none."""
    raw = load_state(run)
    if raw is None:
        return None
    arrays = {key: load_arrays(run, raw, key) for key in ("best", "optimizer", "rng")}
    return RunState.from_json(raw, arrays), model_weights_path(run, raw)


def load_state(run: Path) -> dict | None:
    path = Path(run) / FOLDER / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise KftError(f"{path} is corrupt; the run cannot be resumed") from None


def load_arrays(run: Path, state: dict, key: str) -> list[np.ndarray] | None:
    name = state.get("files", {}).get(key)
    return None if name is None else _load_arrays(Path(run) / FOLDER / name)


def model_weights_path(run: Path, state: dict) -> Path:
    return Path(run) / FOLDER / state["files"]["model"]
