"""Training plans: validated dataclasses loaded from YAML.

A plan is model options + training options + a list of stages. Each stage names
the blocks it trains (``head``, ``layer4`` ... from the backbone's block map), its
optimizer, learning rate and per-block LR multipliers, and when to stop. Loading
rejects an unknown key, an unknown block or a bad value with one sentence that
names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

from kft.errors import KftError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
CACHE_MODES = ("auto", "off")
CLASS_WEIGHTS = ("none", "balanced")
DISTRIBUTE_MODES = ("none", "mirrored", "multiworker")  # kft.distribute
ALL = "all"  # samples_per_class: the whole training set minus validation
VAL_FRACTION = 0.2  # --labels-per-class N: the inner validation split's share of the N


@dataclass
class Augment:
    """Training-only augmentation of the raw images (stateless TF ops in a tf.data map, see kft.augment)."""

    translate: float = 0.1  # fraction of height/width (random shift, reflected border)
    flip: bool = True  # horizontal
    rotate: float = 0.03  # fraction of a full turn (0.03 = +-11 degrees)
    contrast: float = 0.2
    brightness: float = 0.1
    enabled: bool = True


@dataclass
class SelfTraining:
    """Self-training from unlabelled images (``Plan.unlabeled``, see ``kft.selftrain``).

    Each round, the current model (the teacher) labels the pool; per predicted class the
    ``per_class`` most confident images (at least ``min_confidence``) are kept, balanced
    across classes; a fresh student is trained on labelled + kept images, with the plan's
    stages and augmentation as noise, and selected on the labelled validation split.

    With ``Plan.refit`` (the refit or fixed protocol) the teacher is the model trained on
    every label, and each student trains on every label (training + validation) plus the kept
    images for exactly ``max_epochs`` per stage: no validation split is left to stop it early.

    ``student``: ``fresh`` trains every stage from the run's initial weights; ``top`` trains
    only the first stage's blocks (afresh) on the teacher's lower blocks, which it keeps
    frozen: one stage instead of all, and no student pass through the blocks the later
    stages train (the cheap student; see docs/results.md).
    ``teacher`` starts from the teacher's weights and trains only the plan's last stage (classic
    pseudo-labelling, Lee 2013: the teacher fine-tuned on labelled + pseudo-labelled images).

    ``probe``: where a fresh student's first stage trains the head alone (a linear probe of
    the initial network, as in ``lp_ft_top``), ``train`` probes again on the student's images;
    ``teacher`` gives it the head the teacher's own probe stage learned on that same frozen
    network and skips the stage: no pass of the student's images through the whole top for
    pooled features (about 40 s of a MobileNetV2 round on a slow day). It cost accuracy where it
    was measured (seed 0, holdout: student validation 86.4 vs 86.9%, test 85.69 vs 86.72%; see
    docs/results.md), so it is not the default.
    """

    rounds: int = 1
    per_class: int = 1000  # kept per predicted class and round
    min_confidence: float = 0.0  # teacher probability an image must reach to be kept
    targets: str = "soft"  # soft: the teacher's probabilities; hard: its top-1 class
    views: int = 2  # cached augmented views per image while a student trains
    max_epochs: int = 10  # cap of each student stage's epochs (its data is larger); refit: the count
    pool_limit: int | None = None  # use at most this many pool images (seeded sample)
    student: str = "fresh"  # fresh: all stages from the initial weights; top: the first stage's blocks only;
    # teacher: the last stage only, from the teacher's weights
    probe: str = "train"  # a fresh student's head-only first stage: train it, or the teacher's probe head (teacher)
    mixup: float = 0.0  # the students' stages' ``Stage.mixup`` (their own noise); the teacher's stages keep theirs
    # the students' stages' learning rates times this: a student has six times its teacher's images.
    # 3 was chosen on validation (seed 0, holdout: last-epoch student validation 86.7% at 1, 87.6 at 2,
    # 88.3 at 3, 87.2 at 5; docs/results.md)
    lr_scale: float = 3.0


@dataclass
class Stage:
    name: str
    trainable: list[str]
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_multipliers: dict[str, float] = field(default_factory=dict)  # block -> factor (default 1)
    schedule: str = "cosine"  # over max_epochs; early stopping may end the stage sooner
    max_epochs: int = 20
    patience: int = 4  # epochs without a new best validation accuracy
    weight_decay: float = 0.0
    label_smoothing: float = 0.1
    momentum: float = 0.9  # sgd only
    # Mixup (Zhang et al. 2018): each training input becomes lam * itself + (1 - lam) * another
    # of its batch, and so does its target, with lam ~ Beta(mixup, mixup) per input. On cached
    # features it mixes at the stage's cut, as manifold mixup does (Verma et al. 2019). 0: off.
    mixup: float = 0.0


@dataclass
class Plan:
    backbone: str
    strategy: str = "custom"
    image_size: int = 160  # the backbone's resolution (images are upsampled inside the model)
    dropout: float = 0.2
    batch_size: int = 32
    samples_per_class: int | str = 100  # or "all": every training image not drawn for validation
    val_per_class: int = 100
    class_weight: str = "none"  # "balanced": weight each class's loss by n / (classes x its count)
    distribute: str = "none"  # none | mirrored | multiworker (kft.distribute); batch_size is the global batch
    # Label protocol. False ("holdout"): the model is trained on the training split and the
    # validation split only selects. True ("refit", as VTAB-1k): after selection, a fresh model
    # is trained on training + validation images for each stage's selected epoch count, so
    # every label the user gave trains the final model.
    refit: bool = False
    # With refit, False skips the selection run (the "fixed" protocol): every label trains from
    # the start, each stage for exactly its max_epochs (counts chosen once on validation splits,
    # see kft.strategies). A holdout run (refit false) always selects: it is what its labels are for.
    select: bool = True
    cache: str = "auto"  # cache the frozen prefix's output (kft.cache)
    cache_views: int = 8  # augmented views per training image in the cache
    cache_budget_mb: int = 4096
    # An image folder whose decoded images exceed this stays on disk, read per batch (kft.data.ondisk).
    data_budget_mb: float = 4096
    augment: Augment = field(default_factory=Augment)
    # Unlabelled images for self-training: "cifar10-rest" (the CIFAR-10 training images not
    # drawn for training or validation; their labels are never read by training) or a folder.
    unlabeled: str | None = None
    self_training: SelfTraining = field(default_factory=SelfTraining)
    stages: list[Stage] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def protocol(plan: Plan) -> str:
    """The label protocol, as metrics.json and results tables name it: ``holdout`` (validation
    labels only select), ``refit`` (select, then every label trains a fresh model for the
    selected epochs) or ``fixed`` (every label trains for each stage's max_epochs; no selection)."""
    if not plan.refit:
        return "holdout"
    return "refit" if plan.select else "fixed"


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise KftError(message)


def _build(cls, data, where: str):
    """Construct dataclass ``cls`` from a dict, refusing unknown keys."""
    _check(isinstance(data, dict), f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise KftError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(known)}")
    kwargs = {}
    for k, v in data.items():
        if k == "augment":
            v = _build(Augment, v or {}, f"{where}.augment")
        elif k == "self_training":
            v = _build(SelfTraining, v or {}, f"{where}.self_training")
        elif k == "stages":
            _check(isinstance(v, list) and v, f"{where}.stages: expected a non-empty list of stages")
            v = [_build(Stage, s, f"{where}.stages[{i}]") for i, s in enumerate(v)]
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise KftError(f"{where}: {e}") from None


def validate(plan: Plan) -> Plan:
    """Check every value, and that stage blocks exist in the backbone's block map."""
    from kft.backbones import registry

    spec = registry.get(plan.backbone)
    blocks = registry.all_block_names(spec)
    _pos_int = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0  # noqa: E731
    for key in ("image_size", "batch_size", "cache_views", "cache_budget_mb"):
        _check(_pos_int(getattr(plan, key)), f"{key} must be a positive integer, got {getattr(plan, key)!r}")
    _check(_pos_int(plan.data_budget_mb) or (isinstance(plan.data_budget_mb, float) and plan.data_budget_mb > 0),
           f"data_budget_mb must be a positive number, got {plan.data_budget_mb!r}")
    _check(_pos_int(plan.samples_per_class) or plan.samples_per_class == ALL,
           f"samples_per_class must be a positive integer or {ALL!r}, got {plan.samples_per_class!r}")
    _check(plan.distribute in DISTRIBUTE_MODES,
           f"distribute: {plan.distribute!r} is not one of {', '.join(DISTRIBUTE_MODES)}")
    _check(plan.class_weight in CLASS_WEIGHTS,
           f"class_weight: {plan.class_weight!r} is not one of {', '.join(CLASS_WEIGHTS)}")
    _check(isinstance(plan.val_per_class, int) and plan.val_per_class >= 1,
           f"val_per_class must be a positive integer, got {plan.val_per_class!r}")
    _check(isinstance(plan.refit, bool), f"refit must be true or false, got {plan.refit!r}")
    _check(isinstance(plan.select, bool), f"select must be true or false, got {plan.select!r}")
    _check_self_training(plan, _pos_int)
    _check(plan.image_size >= 32, f"image_size must be at least 32, got {plan.image_size}")
    _check(0 <= plan.dropout < 1, f"dropout must be in [0, 1), got {plan.dropout}")
    _check(plan.cache in CACHE_MODES, f"cache: {plan.cache!r} is not one of {', '.join(CACHE_MODES)}")
    _check(bool(plan.stages), "a plan needs at least one stage")
    names = [s.name for s in plan.stages]
    _check(len(set(names)) == len(names), f"stage names must be unique, got {names}")
    for i, s in enumerate(plan.stages):
        where = f"stages[{i}] ({s.name})"
        _check(isinstance(s.trainable, list) and s.trainable, f"{where}.trainable: list the blocks to train")
        for b in [*s.trainable, *s.lr_multipliers]:
            _check(b in blocks, f"{where}: unknown block {b!r} for {plan.backbone}; blocks: {', '.join(blocks)}")
        extra = sorted(set(s.lr_multipliers) - set(s.trainable))
        if extra:
            raise KftError(f"{where}.lr_multipliers: block {extra[0]!r} is not trainable in this stage")
        _check("preprocess" not in s.trainable, f"{where}: the preprocess block has no weights to train")
        _check(s.optimizer in OPTIMIZERS, f"{where}.optimizer: {s.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        _check(s.schedule in SCHEDULES, f"{where}.schedule: {s.schedule!r} is not one of {', '.join(SCHEDULES)}")
        _check(isinstance(s.learning_rate, (int, float)) and s.learning_rate > 0,
               f"{where}.learning_rate must be > 0, got {s.learning_rate!r}")
        _check(all(isinstance(m, (int, float)) and m >= 0 for m in s.lr_multipliers.values()),
               f"{where}.lr_multipliers must be >= 0")
        _check(_pos_int(s.max_epochs), f"{where}.max_epochs must be a positive integer, got {s.max_epochs!r}")
        _check(_pos_int(s.patience), f"{where}.patience must be a positive integer, got {s.patience!r}")
        _check(s.weight_decay >= 0, f"{where}.weight_decay must be >= 0")
        _check(0 <= s.label_smoothing < 1, f"{where}.label_smoothing must be in [0, 1)")
        _check(_number(s.mixup) and s.mixup >= 0, f"{where}.mixup must be a number >= 0 (0: off), got {s.mixup!r}")
    return plan


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


TARGETS = ("soft", "hard")
STUDENTS = ("fresh", "top", "teacher")
PROBES = ("train", "teacher")
CIFAR_REST = "cifar10-rest"


def _check_self_training(plan: Plan, _pos_int) -> None:
    st = plan.self_training
    _check(plan.unlabeled is None or (isinstance(plan.unlabeled, str) and plan.unlabeled.strip() != ""),
           f"unlabeled must be {CIFAR_REST!r} or a folder of images, got {plan.unlabeled!r}")
    for key in ("rounds", "per_class", "views", "max_epochs"):
        _check(_pos_int(getattr(st, key)), f"self_training.{key} must be a positive integer, got {getattr(st, key)!r}")
    _check(st.pool_limit is None or _pos_int(st.pool_limit),
           f"self_training.pool_limit must be a positive integer or null, got {st.pool_limit!r}")
    _check(isinstance(st.min_confidence, (int, float)) and 0 <= st.min_confidence < 1,
           f"self_training.min_confidence must be in [0, 1), got {st.min_confidence!r}")
    _check(st.targets in TARGETS, f"self_training.targets: {st.targets!r} is not one of {', '.join(TARGETS)}")
    _check(st.student in STUDENTS, f"self_training.student: {st.student!r} is not one of {', '.join(STUDENTS)}")
    _check(st.probe in PROBES, f"self_training.probe: {st.probe!r} is not one of {', '.join(PROBES)}")
    _check(_number(st.mixup) and st.mixup >= 0, f"self_training.mixup must be a number >= 0 (0: off), got {st.mixup!r}")
    _check(_number(st.lr_scale) and st.lr_scale > 0,
           f"self_training.lr_scale must be a number > 0, got {st.lr_scale!r}")
    if plan.unlabeled is not None:
        _check(plan.distribute == "none", "unlabeled images: self-training runs with distribute none only")


def plan_from_dict(data: dict, where: str = "config") -> Plan:
    return validate(_build(Plan, data, where))


def load_plan(path: str | Path) -> Plan:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise KftError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise KftError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return plan_from_dict(data, str(path))


def strategy_plan(backbone: str, strategy: str | None = None) -> Plan:
    """The plan of ``strategy`` (default: ``kft.strategies.DEFAULT``) for ``backbone``; strategies
    are code, see ``kft.strategies``."""
    from kft import strategies

    return strategies.build_plan(backbone, strategy or strategies.DEFAULT)


SELF_TRAINING_OPTIONS = {"rounds": "rounds", "pseudo_per_class": "per_class", "pool_limit": "pool_limit",
                         "student_epochs": "max_epochs", "student": "student",
                         "student_probe": "probe", "student_mixup": "mixup",
                         "student_lr_scale": "lr_scale"}  # CLI -> self_training key


def with_overrides(plan: Plan, **overrides) -> Plan:
    """Apply CLI overrides (None = keep); ``max_epochs`` caps every stage."""
    max_epochs = overrides.pop("max_epochs", None)
    st = {key: overrides.pop(option) for option, key in SELF_TRAINING_OPTIONS.items()
          if overrides.get(option) is not None}
    changes = {k: v for k, v in overrides.items() if v is not None}
    plan = dataclasses.replace(plan, **changes)
    if st:
        plan.self_training = dataclasses.replace(plan.self_training, **st)
    if max_epochs is not None:
        plan.stages = [dataclasses.replace(s, max_epochs=min(s.max_epochs, max_epochs)) for s in plan.stages]
    return validate(plan)


def labels_split(labels_per_class: int) -> tuple[int, int]:
    """``labels_per_class`` labels in total -> (train, validation) per class for the inner
    selection split: 80/20, at least one of each (the refit then trains on all of them)."""
    if labels_per_class < 2:
        raise KftError(f"--labels-per-class must be at least 2 (one to train, one to validate), "
                       f"got {labels_per_class}")
    val = min(labels_per_class - 1, max(1, round(labels_per_class * VAL_FRACTION)))
    return labels_per_class - val, val


def resolve_plan(backbone: str, strategy: str | None = None, config_path=None, **overrides) -> Plan:
    """A shipped ``strategy`` plan or the ``config_path`` YAML, with the given overrides applied."""
    if config_path and strategy:
        raise KftError("give either --strategy or --config, not both")
    if config_path:
        plan = load_plan(config_path)
        if plan.backbone != backbone:
            raise KftError(f"{config_path} is a plan for {plan.backbone!r}, not {backbone!r}")
    else:
        plan = strategy_plan(backbone, strategy)
    counts = [k for k in SELF_TRAINING_OPTIONS if k not in ("student_mixup", "student_lr_scale")]  # not counts
    for key in ("samples_per_class", "val_per_class", "image_size", "cache_views", "max_epochs", "labels_per_class",
                *counts):
        v = overrides.get(key)
        if isinstance(v, int) and v <= 0:  # anything else is for validate() to name
            raise KftError(f"--{key.replace('_', '-')} must be positive, got {v}")
    labels = overrides.pop("labels_per_class", None)
    if labels is not None:  # "N labels in total": an inner 80/20 split selects, then all N train
        if overrides.get("samples_per_class") is not None or overrides.get("val_per_class") is not None:
            raise KftError("give either --labels-per-class or --samples-per-class/--val-per-class, not both")
        if overrides.get("refit") is False:
            raise KftError("--labels-per-class counts every label, so it always refits; drop --no-refit")
        overrides["samples_per_class"], overrides["val_per_class"] = labels_split(labels)
        overrides["refit"] = True
    plan = with_overrides(plan, **overrides)
    if overrides.get("select") is False and not plan.refit:
        raise KftError("--no-select needs refit: a holdout run (--no-refit) trains on the training split and "
                       "selects on the validation split, which is what its validation labels are for")
    return plan
