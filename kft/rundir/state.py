"""A run's training state as typed values: what a checkpoint saves and ``--resume`` restores.

``StageProgress`` is one stage after some epochs (early-stopping counters, its
epoch rows, and the arrays that continue it exactly); ``RunState`` is the whole
run at an epoch or stage boundary. Both turn into the JSON of
``checkpoint/state.json`` and back; the arrays travel beside it in ``.npz``
files (``kft.rundir.checkpoint``). The JSON keys are those written since d6acc48, so
checkpoints of older runs still resume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SCHEMA_VERSION = 1  # of state.json (absent in checkpoints written before it: read as 1)


@dataclass
class StageProgress:
    """One stage, after ``next_epoch`` epochs."""

    next_epoch: int = 0
    best_val_accuracy: float = -1.0  # -1: nothing scored yet
    wait: int = 0  # epochs since the best one (early stopping)
    best_epoch: int = 0  # the epoch whose weights are kept (0: the stage's incoming weights)
    seconds: float = 0.0  # spent in this stage so far
    history: list[dict] = field(default_factory=list)  # one row per epoch, numbered within the stage
    # Arrays, saved as .npz beside the JSON: the trainable weights to restore at the end,
    # every LR group's optimizer variables, dropout's random-generator state.
    best_weights: list | None = field(default=None, repr=False, compare=False)
    optimizer: list | None = field(default=None, repr=False, compare=False)
    rng: list | None = field(default=None, repr=False, compare=False)

    ARRAYS = ("best_weights", "optimizer", "rng")


@dataclass
class StageRecord:
    """A finished stage, as ``metrics.json`` lists it."""

    name: str
    epochs: int
    best_val_accuracy: float | None  # None in a refit (no validation)
    best_epoch: int
    seconds: float
    trainable_params: int
    cached: bool
    cache_mb: float
    history: list[dict] = field(default_factory=list, repr=False, compare=False)  # its epoch rows

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "history"}

    @classmethod
    def from_dict(cls, d: dict) -> StageRecord:
        return cls(**{k: d.get(k, 0 if k == "best_epoch" else None) for k in cls.__dataclass_fields__
                      if k != "history"})


@dataclass
class RunState:
    """The run between two epochs: finished stages, and the stage in progress (if any)."""

    stage_index: int = 0  # the stage to train next (or in progress)
    history: list[dict] = field(default_factory=list)  # epoch rows of the finished stages, numbered run-wide
    stages: list[StageRecord] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of training so far, across resumes
    stage: StageProgress | None = None  # None at a stage boundary
    rng: list | None = field(default=None, repr=False, compare=False)  # dropout's generator at a boundary

    def rows(self, stage_rows: list[dict]) -> list[dict]:
        """The run's history with ``stage_rows`` (the current stage's) appended and numbered."""
        done = len(self.history)
        return self.history + [{**r, "epoch": done + k + 1} for k, r in enumerate(stage_rows)]

    def after(self, record: StageRecord, stage_rows: list[dict], elapsed: float, rng=None) -> RunState:
        """The state at the boundary after this stage finished."""
        return RunState(self.stage_index + 1, self.rows(stage_rows), [*self.stages, record], elapsed, None, rng)

    def to_json(self) -> dict:
        out = {"schema_version": SCHEMA_VERSION, "stage_index": self.stage_index,
               "next_epoch": self.stage.next_epoch if self.stage else 0}
        if self.stage is not None:
            s = self.stage
            out.update(best_val_accuracy=s.best_val_accuracy, wait=s.wait, best_epoch=s.best_epoch,
                       seconds=s.seconds, stage_history=s.history)
        out.update(history=self.history, stages=[s.to_dict() for s in self.stages], elapsed=self.elapsed)
        return out

    @classmethod
    def from_json(cls, d: dict, arrays: dict | None = None) -> RunState:
        """From ``state.json`` and its arrays (``best``, ``optimizer``, ``rng``; see kft.rundir.checkpoint)."""
        arrays = arrays or {}
        stage = None
        if d.get("next_epoch"):
            history = list(d.get("stage_history", []))
            best = d["best_val_accuracy"]
            stage = StageProgress(d["next_epoch"], best, d["wait"], d.get("best_epoch", _best_epoch(history, best)),
                                  d.get("seconds", 0.0), history, arrays.get("best"), arrays.get("optimizer"),
                                  arrays.get("rng"))
        return cls(d.get("stage_index", 0), list(d.get("history", [])),
                   [StageRecord.from_dict(s) for s in d.get("stages", [])], d.get("elapsed", 0.0), stage,
                   None if stage else arrays.get("rng"))


def _best_epoch(history: list[dict], best: float) -> int:
    """The first epoch of ``history`` that reached ``best`` (checkpoints from before
    ``best_epoch`` was saved); 0 when none did."""
    return next((i + 1 for i, r in enumerate(history) if r.get("val_accuracy") == round(best, 5)), 0)
