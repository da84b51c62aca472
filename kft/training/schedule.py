"""A run as an explicit schedule: the flat list of steps it trains, computed once from the plan.

Each :class:`Step` is one stage as the run trains it: which of the plan's stages, on which
data, for how many epochs, and what happens before it (reset to the initial weights, the
teacher labels the unlabelled pool, the student takes the teacher's probe head) or why it
trains nothing. The run driver (``kft.training.run``) walks the list; ``--resume`` starts at
an index into it; summaries read it. Protocols and self-training are short functions that
*build* schedules, as fastai's ``fine_tune`` composes ``fit_one_cycle``:

    holdout(plan)   probe, top                          on the training split, selected on validation
    fixed(plan)     probe, top                          on every label, max_epochs each
    refit(plan)     probe, top, refit-probe, refit-top  select, then every label for the selected epochs
    + students      student1-probe, student1-top        after the teacher: labelled + pseudo-labelled

    steps = build_schedule(plan)
    [s.stage.name for s in steps]      # ['probe', 'top'] for the default plan
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kft.backbones.registry import HEAD_BLOCK
from kft.plan import FIXED, REFIT, Plan, Stage

__all__ = ["EVERY_LABEL", "REFIT_PREFIX", "STUDENT", "STUDENT_PREFIX", "TRAIN_SPLIT", "Step", "build_schedule",
           "fixed", "holdout", "refit", "shares_probe_head", "student_round", "student_stages"]

# What a step trains on
TRAIN_SPLIT = "train split"  # the training split, scored on the validation split (selection)
EVERY_LABEL = "every label"  # training + validation images, no validation left
STUDENT = "student"  # labelled images + the round's pseudo-labelled pool images
ALL_PHOTOS = "all photos"  # a folder's every photo, its test split included (retrain_on_all)

# What happens before a step (in order), when it starts afresh (not when resumed inside it)
ENTER_DATA = "data"  # switch to the step's data (also on resume)
RESET = "reset"  # every weight back to the run's initial ones
RESET_FIRST_BLOCKS = "reset first stage's blocks"  # a top student: the first stage's blocks only
TEACH = "teach"  # the model (the teacher) labels the unlabelled pool
PROBE_HEAD = "probe head"  # the student takes the teacher's probe head and skips this step
ANNOUNCE = "announce"  # log what the every-label phase trains
SCORE_HELDOUT = "score held-out"  # score the test split now, before it trains (retrain_on_all)

REFIT_PREFIX = "refit-"  # a refit stage's name: refit-<stage>
STUDENT_PREFIX = "student"  # a self-training student's stage name: student<round>-<stage>
ALL_PREFIX = "all-"  # a stage retrained on every photo: all-<stage>
SELECTION_KEPT = "its selection run kept the incoming weights (0 epochs)"
SKIPPED_BY_STUDENT = {"top": "a top student trains the first stage's blocks only (self_training.student)",
                      "teacher": "a student that starts as its teacher trains the last stage only "
                                 "(self_training.student)"}


@dataclass(frozen=True)
class Step:
    """One stage as a run trains it (see the module docstring)."""

    index: int  # position in the schedule: the run's stage_index, and the stage's random streams
    stage: Stage  # as trained: named, capped and scaled for its phase
    plan_stage: int  # which of the plan's stages it is
    round: int  # 0: the labelled-only model; r: self-training round r's student
    data: str  # TRAIN_SPLIT, EVERY_LABEL or STUDENT
    epochs: int | None  # None: until early stopping on validation; else exactly this many
    epochs_of: int | None = None  # a refit step trains for the epochs this selection step kept
    before: tuple[str, ...] = (ENTER_DATA,)  # see the constants above
    skip: str | None = None  # why the step trains nothing, when its epochs come to 0
    save_probe_head: bool = False  # after it: the head is kept for the students (self_training.probe)

    @property
    def starts_model(self) -> bool:
        """The first stage of a model (the run's, a refit's or a student's): no incoming score."""
        return self.plan_stage == 0


def _steps(plan: Plan, start: int, data: str, epochs_of_stage, name=lambda s: s.name, first=(ENTER_DATA,),
           round_: int = 0) -> list[Step]:
    return [Step(start + k, dataclasses.replace(s, name=name(s)), k, round_, data, *epochs_of_stage(k, s),
                 before=first if k == 0 else (ENTER_DATA,)) for k, s in enumerate(plan.stages)]


def holdout(plan: Plan, start: int = 0) -> list[Step]:
    """The plan's stages on the training split, each early-stopped on the validation split."""
    return _steps(plan, start, TRAIN_SPLIT, lambda k, s: (None,))


def fixed(plan: Plan, start: int = 0) -> list[Step]:
    """The plan's stages on every label, each for exactly its ``max_epochs``: no selection run."""
    return _steps(plan, start, EVERY_LABEL, lambda k, s: (s.max_epochs,), first=(ENTER_DATA, ANNOUNCE))


def refit(plan: Plan, start: int = 0) -> list[Step]:
    """A selection run (holdout), then from the initial weights every label for each stage's selected
    epochs (the VTAB-1k protocol)."""
    n = len(plan.stages)
    select = holdout(plan, start)
    again = _steps(plan, start + n, EVERY_LABEL, lambda k, s: (None, start + k), name=lambda s: REFIT_PREFIX + s.name,
                   first=(ENTER_DATA, RESET, ANNOUNCE))
    return select + [dataclasses.replace(s, skip=SELECTION_KEPT) for s in again]


def student_stages(student: str, n: int) -> list[int]:
    """Which of a plan's ``n`` stages a student (``SelfTraining.student``) trains: a fresh one
    every stage, a ``top`` one the first, a ``teacher`` one the last."""
    return {"top": [0], "teacher": [n - 1]}.get(student, list(range(n)))


def shares_probe_head(plan: Plan) -> bool:
    """The teacher keeps its probe head for its fresh students (``self_training.probe: teacher``), where
    the plan's first stage is a linear probe and more stages follow."""
    st = plan.self_training
    return (st.student == "fresh" and st.probe == "teacher" and len(plan.stages) > 1
            and list(plan.stages[0].trainable) == [HEAD_BLOCK])


def student_round(plan: Plan, r: int, start: int) -> list[Step]:
    """Round ``r``'s student: the teacher labels the pool, the student is reset (all of it, its first
    stage's blocks, or nothing: ``self_training.student``) and trains the plan's stages on labelled +
    kept images, renamed ``student<r>-<stage>``, capped at ``self_training.max_epochs``, at its
    ``mixup`` and ``lr_scale``; with every label training there is nothing to select on, so each
    trains its capped epochs."""
    st = plan.self_training
    trained = student_stages(st.student, len(plan.stages))
    reset = {"fresh": (RESET,), "top": (RESET_FIRST_BLOCKS,), "teacher": ()}[st.student]
    steps = []
    for k, s in enumerate(plan.stages):
        stage = dataclasses.replace(s, name=f"{STUDENT_PREFIX}{r}-{s.name}", max_epochs=min(s.max_epochs, st.max_epochs),
                                    patience=min(s.patience, st.max_epochs), mixup=st.mixup,
                                    learning_rate=s.learning_rate * st.lr_scale)
        epochs, skip = (stage.max_epochs if plan.every_label_trains else None), None
        if k not in trained:
            epochs, skip = 0, SKIPPED_BY_STUDENT[st.student]
        before = (TEACH, *reset, ENTER_DATA) if k == 0 else (ENTER_DATA,)
        if k == 0 and shares_probe_head(plan):
            before += (PROBE_HEAD,)
        steps.append(Step(start + k, stage, k, r, STUDENT, epochs, None, before, skip))
    return steps


def retrain_on_all(plan: Plan, steps: list[Step]) -> list[Step]:
    """After the held-out score, the same recipe again from the initial weights on every photo: each
    stage for the epochs its last step trained (planned, or as its selection kept)."""
    last = {s.plan_stage: s for s in steps}
    out = []
    for k, s in enumerate(plan.stages):
        done = last[k]
        epochs, epochs_of = (done.epochs, None) if done.epochs is not None else \
            (None, done.epochs_of if done.epochs_of is not None else done.index)
        out.append(Step(len(steps) + k, dataclasses.replace(s, name=ALL_PREFIX + s.name), k, done.round, ALL_PHOTOS,
                        epochs, epochs_of, (SCORE_HELDOUT, RESET, ENTER_DATA) if k == 0 else (ENTER_DATA,),
                        skip="its recipe kept the incoming weights (0 epochs)"))
    return out


def build_schedule(plan: Plan) -> list[Step]:
    """Every step of a run of ``plan``: its protocol's steps, then each self-training round's student,
    then (``retrain_on_all``) the recipe again on every photo."""
    steps = {FIXED: fixed, REFIT: refit}.get(plan.protocol, holdout)(plan)
    if plan.unlabeled and shares_probe_head(plan):  # the teacher keeps its probe head for the students
        steps = [dataclasses.replace(s, save_probe_head=s.plan_stage == 0) for s in steps]
    if plan.unlabeled:
        for r in range(1, plan.self_training.rounds + 1):
            steps += student_round(plan, r, len(steps))
    if plan.retrain_on_all:
        steps += retrain_on_all(plan, steps)
    return steps


def final_round(steps: list[Step]) -> list[Step]:
    """The steps that trained the final model's round (the last student, or the labelled-only model)."""
    last = steps[-1].round
    return [s for s in steps if s.round == last]
