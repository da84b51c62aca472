"""A training plan: model options + training options + a list of stages, as dataclasses.

Every field is declared once, with its default, allowed values, help and (for the old
``kft train`` flags) its flag (``kft.plan.options``); validation, ``kft train --set``, the
deprecated flags and the key reference are derived from these declarations. Each stage
names the blocks it trains (``head``, ``layer4`` ... from the backbone's block map), its
optimizer, learning rate and per-block multipliers, and how long it trains.

    plan = Plan("mobilenet_v2", stages=[Stage("probe", ["head"]), Stage("top", ["layer4", "head"])])

Defaults are those of the shipped plans (``kft.plan.strategies``), so a YAML plan that leaves
a key out gets what ``kft train`` uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kft.data.unlabeled import CIFAR_REST
from kft.plan.options import BLOCKS, BOOL, COUNT, COUNT_OR_ALL, MULTIPLIERS, NUMBER, SECTION, TEXT, option

__all__ = ["Augment", "Plan", "SelfTraining", "Stage", "PROTOCOLS", "FIXED", "REFIT", "HOLDOUT", "CIFAR_REST"]

FIXED, REFIT, HOLDOUT = "fixed", "refit", "holdout"
PROTOCOLS = (FIXED, REFIT, HOLDOUT)


@dataclass
class Augment:
    """Training-only augmentation of the raw images (stateless TF ops, see ``kft.training.augment``)."""

    translate: float = option(0.1, "Random shift, as a fraction of height/width (reflected border).",
                              kind=NUMBER, minimum=0, below=1)
    flip: bool = option(True, "Random horizontal flips.", kind=BOOL)
    rotate: float = option(0.03, "Random rotation, as a fraction of a full turn (0.03: +-11 degrees).",
                           kind=NUMBER, minimum=0, below=1)
    contrast: float = option(0.2, "Random contrast change, as a fraction.", kind=NUMBER, minimum=0, below=1)
    brightness: float = option(0.1, "Random brightness change, as a fraction of 255.", kind=NUMBER, minimum=0,
                               below=1)
    enabled: bool = option(True, "false: no augmentation at all.", kind=BOOL)


@dataclass
class SelfTraining:
    """Self-training from unlabelled images (``Plan.unlabeled``, see ``kft.training.selftrain``).

    Each round the current model (the teacher) labels the pool; per predicted class the
    ``per_class`` most confident images are kept; a student then learns from the labels and
    the kept images with the plan's stages (augmentation and dropout as its noise). With the
    fixed or refit protocol the teacher is the model trained on every label, and each student
    trains on every label plus the kept images for a fixed number of epochs per stage.
    """

    rounds: int = option(1, "Self-training rounds (teacher -> student).", kind=COUNT, minimum=1, flag="--rounds")
    per_class: int = option(1000, "Unlabelled images kept per predicted class and round (the most confident).",
                            kind=COUNT, minimum=1, flag="--pseudo-per-class")
    min_confidence: float = option(0.0, "Teacher probability an unlabelled image must reach to be kept.",
                                   kind=NUMBER, minimum=0, below=1)
    targets: str = option("soft", "The students' targets: the teacher's probabilities (soft) or its top-1 class "
                          "(hard).", choices=("soft", "hard"))
    views: int = option(2, "Cached augmented views per image while a student trains.", kind=COUNT, minimum=1)
    max_epochs: int = option(10, "Cap of each student stage's epochs (with every label training: the count).",
                             kind=COUNT, minimum=1, flag="--student-epochs")
    pool_limit: int | None = option(None, "Use a seeded sample of at most this many unlabelled images.",
                                    kind=COUNT, minimum=1, nullable=True, flag="--pool-limit")
    student: str = option("fresh", "fresh: every stage from the initial weights; top: only the first stage's "
                          "blocks anew, on the teacher's frozen lower blocks; teacher: the teacher's weights, "
                          "trained further in the plan's last stage only (Lee 2013).",
                          choices=("fresh", "top", "teacher"), flag="--student")
    probe: str = option("train", "A fresh student's head-only first stage: train it (train), or start from the "
                        "head the teacher's probe stage learned and skip it (teacher: faster; it cost accuracy "
                        "where measured).", choices=("train", "teacher"), flag="--student-probe")
    mixup: float = option(0.0, "Mixup for the students' stages (their Stage.mixup); 0: off.", kind=NUMBER,
                          minimum=0, flag="--student-mixup")
    # 0.6: the students' top stage at 3e-4, the rate chosen for them when the plan's top stage ran at 1e-4
    # (x3); with the plan's top stage at 5e-4 (issue 41), x3 fell below the teacher on choice seed 10
    # (84.57% vs 85.25%) and x0.6 scored 86.98%. docs/notebook.md.
    lr_scale: float = option(0.6, "The students' learning rates times this (0.6 puts lp_ft_top's students at "
                             "3e-4, chosen on choice seeds; see docs/notebook.md).", kind=NUMBER,
                             above=0, flag="--student-lr-scale")


@dataclass
class Stage:
    """One stage: which blocks train, with which optimizer, for how long."""

    name: str = option(help="The stage's name (unique in the plan; history.csv's stage column).", kind=TEXT)
    trainable: list[str] = option(help="The blocks this stage trains (`kft backbones` lists them; head included).",
                                  kind=BLOCKS)
    optimizer: str = option("adam", "adam, adamw or sgd; each stage builds its own.",
                            choices=("adam", "adamw", "sgd"))
    learning_rate: float = option(1e-3, "The head's learning rate; blocks get it times their multiplier.",
                                  kind=NUMBER, above=0)
    lr_multipliers: dict[str, float] = option(help="block -> factor of learning_rate (default 1; 0 freezes).",
                                              default_factory=dict, kind=MULTIPLIERS)
    schedule: str = option("cosine", "Learning-rate schedule over max_epochs.", choices=("cosine", "constant"))
    max_epochs: int = option(20, "Epochs (selection protocols may stop sooner).", kind=COUNT, minimum=1)
    patience: int = option(4, "Epochs without a new best validation accuracy before a selecting stage stops.",
                           kind=COUNT, minimum=1)
    weight_decay: float = option(0.0, "Decoupled weight decay (adamw) or L2 (others).", kind=NUMBER, minimum=0)
    label_smoothing: float = option(0.1, "Label smoothing of the cross-entropy.", kind=NUMBER, minimum=0, below=1)
    momentum: float = option(0.9, "SGD momentum (sgd only).", kind=NUMBER, minimum=0, below=1)
    # Mixup (Zhang et al. 2018); on cached features it mixes at the stage's cut (manifold mixup).
    mixup: float = option(0.0, "Mixup: Beta(a, a) mixing of pairs of training inputs and targets; 0: off.",
                          kind=NUMBER, minimum=0)


@dataclass
class Plan:
    """Everything a run trains with, but the data source and seed."""

    backbone: str = option(help="The backbone (`kft backbones`).", kind=TEXT)
    strategy: str = option("custom", "The strategy that made the plan (a name only).", kind=TEXT)
    image_size: int = option(160, "The backbone's resolution; images are upsampled inside the model.", kind=COUNT,
                             minimum=32, flag="--image-size")
    dropout: float = option(0.5, "Dropout before the classifier head.", kind=NUMBER, minimum=0, below=1)
    batch_size: int = option(32, "Images per step (the global batch when distributed).", kind=COUNT, minimum=1)
    samples_per_class: int | str = option(80, "CIFAR-10 training images per class, or all; with val_per_class the "
                                          "labels per class in total (80 + 20 = 100; `kft train --labels N` splits N "
                                          "the same way); a folder dataset trains on all its images by default.",
                                          kind=COUNT_OR_ALL, minimum=1, flag="--samples-per-class")
    val_per_class: int = option(20, "CIFAR-10 validation images per class, drawn apart from the training ones; "
                                "they select epochs under refit and holdout, and train too unless holdout.",
                                kind=COUNT, minimum=1, flag="--val-per-class")
    test_split: float = option(0.2, "Folder datasets: the share of each class held out as the test split, never "
                               "trained or selected on (near-duplicate photos kept together); 0: none, and no "
                               "accuracy is reported. A folder with train/ and test/ sub-folders uses its own.",
                               kind=NUMBER, minimum=0, below=1, cli="--test-split")
    retrain_on_all: bool = option(False, "Folder datasets: after scoring the test split, train the same recipe "
                                  "again on every photo, test split included, for the model you ship; the "
                                  "reported accuracy is then the held-out estimate of that recipe.", kind=BOOL,
                                  cli="--retrain-on-all")
    protocol: str = option(FIXED, "fixed: every label trains each stage for max_epochs, no selection; refit: the "
                           "validation labels select each stage's epochs, then a fresh model trains on every label "
                           "for them; holdout: the validation labels only select.", choices=PROTOCOLS)
    class_weight: str = option("none", "balanced: weight each class's loss by n / (classes x its count).",
                               choices=("none", "balanced"), flag="--class-weight")
    distribute: str = option("none", "tf.distribute: mirrored over local devices, multiworker via TF_CONFIG.",
                             choices=("none", "mirrored", "multiworker"), flag="--distribute")
    cache: str = option("auto", "Cache the frozen prefix's output (auto) or train uncached (off).",
                        choices=("auto", "off"), flag="--cache")
    cache_views: int = option(16, "Augmented views per training image in the cache.", kind=COUNT, minimum=1,
                              flag="--cache-views")
    cache_budget_mb: int = option(4096, "Past this size the feature cache is not kept in memory.", kind=COUNT,
                                  minimum=1)
    data_budget_mb: float = option(4096, "Past this many MB of decoded images, a folder stays on disk, read per "
                                   "batch.", kind=NUMBER, above=0, flag="--data-budget-mb")
    augment: Augment = option(help="Augmentation (keys below).", default_factory=Augment, kind=SECTION)
    unlabeled: str | None = option(None, f"Self-training pool: {CIFAR_REST} (the CIFAR-10 training images a run "
                                   "did not draw) or a folder of images.", kind=TEXT, nullable=True)
    self_training: SelfTraining = option(help="Self-training (keys below).", default_factory=SelfTraining,
                                         kind=SECTION)
    stages: list[Stage] = option(help="The stages, in order.", default_factory=list, kind=SECTION)

    @property
    def every_label_trains(self) -> bool:
        """The final model trains on training + validation labels (fixed and refit protocols)."""
        return self.protocol != HOLDOUT

    @property
    def selects(self) -> bool:
        """A run on the training split selects each stage's epochs on the validation split first
        (refit and holdout protocols)."""
        return self.protocol != FIXED

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"augment": Augment, "self_training": SelfTraining}

