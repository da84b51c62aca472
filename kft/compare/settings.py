"""Settings of one comparison: the grid, the fixed knobs, the weights check."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kft.backbones import registry
from kft.backbones.weights import CACHE_DIR, local_imagenet_file, weights_dir
from kft.errors import KftError
from kft.plan.strategies import names as strategy_names

BASELINE = "two_stage"
DEFAULT_BACKBONES = "mobilenet_v2,mobilenet_v3_small"
DEFAULT_STRATEGIES = ",".join(strategy_names())  # every registered strategy
DEFAULT_SEEDS = "0,1,2"
DEFAULT_SAMPLES = "100"
RANDOM_INIT = "random init"
CSV_COLUMNS = ("backbone", "strategy", "seed", "samples_per_class", "weights", "test_accuracy", "val_accuracy",
               "epochs", "seconds", "label_protocol", "labels_per_class", "run")
# metrics.json keys a finished run must have (the trainer writes the file last, atomically).
REQUIRED_METRICS = ("backbone", "strategy", "seed", "samples_per_class", "weights", "test_accuracy",
                    "val_accuracy", "stages", "seconds")
# Settings that must not change between invocations writing into the same folder.
FIXED_KEYS = ("weights", "val_per_class", "image_size", "max_epochs", "limit_test", "cache", "cache_views", "protocol")
PLAN_KEYS = ("val_per_class", "image_size", "cache", "cache_views", "protocol")  # passed as `kft train --set`



# -- settings --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareSettings:
    """One comparison: the grid (backbones x strategies x seeds x samples per class) and the smoke-run knobs."""

    backbones: tuple[str, ...]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    samples_per_class: tuple[int, ...]
    out: Path
    weights: str = "imagenet"  # imagenet | none | a weights file (one backbone only)
    val_per_class: int | None = None
    image_size: int | None = None
    max_epochs: int | None = None
    limit_test: int | None = None
    cache: str | None = None
    cache_views: int | None = None
    data_dir: str | None = None
    protocol: str | None = None  # None: each plan's (the shipped ones: fixed); refit or holdout

    def fixed(self) -> dict:
        return {k: getattr(self, k) for k in FIXED_KEYS}

    def command(self) -> str:
        """The ``kft compare`` command line that regenerates (or resumes) exactly this comparison."""
        args = ["kft", "compare", "--backbones", ",".join(self.backbones), "--strategies", ",".join(self.strategies),
                "--seeds", ",".join(map(str, self.seeds)),
                "--samples-per-class", ",".join(map(str, self.samples_per_class)), "--weights", self.weights]
        return shlex.join([*args, *self.shared_options(), "--out", str(self.out)])

    def plan_settings(self) -> dict:
        """The plan keys every run of the grid sets (None: each plan's own)."""
        return {k: getattr(self, k) for k in PLAN_KEYS if getattr(self, k) is not None}

    def shared_options(self) -> list[str]:
        """The options that every run of the grid shares, as ``kft compare`` spells them."""
        args = []
        for key in ("val_per_class", "image_size", "max_epochs", "limit_test", "cache", "cache_views", "data_dir",
                    "protocol"):
            value = getattr(self, key)
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        return args

    def train_options(self) -> list[str]:
        """The same, as ``kft train`` spells them (plan keys through ``--set``)."""
        args = []
        for key, value in self.plan_settings().items():
            args += ["--set", f"{key}={value}"]
        for key in ("max_epochs", "limit_test", "data_dir"):
            value = getattr(self, key)
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        return args


def weights_label(weights: str | None) -> str:
    """How a run's weights are shown everywhere: ``imagenet``, ``random init`` or the file path."""
    return RANDOM_INIT if weights in (None, "none") else str(weights)


def check_weights(backbones: Iterable[str], weights: str) -> None:
    """Refuse ``imagenet`` for backbones whose ImageNet weights are not on disk, and a file for several backbones.

    A comparison of transfer strategies is meaningless from random weights, so
    that must be asked for explicitly (``--weights none``) and is labelled so.
    """

    backbones = list(backbones)
    specs = [registry.get(b) for b in backbones]  # unknown name -> error listing the valid ones
    if weights == "none":
        return
    if weights != "imagenet":
        if len(backbones) != 1:
            raise KftError(f"`weights` {weights}: a weights file fits one backbone, but {len(backbones)} are listed; "
                           "compare one backbone at a time, or use `weights` imagenet / none")
        if not Path(weights).is_file():
            raise KftError(f"weights file not found: {weights}")
        return
    missing = [s for s in specs if local_imagenet_file(s) is None]
    if missing:
        where = f"KFT_WEIGHTS_DIR={weights_dir()}" if weights_dir() else "KFT_WEIGHTS_DIR (unset)"
        raise KftError(
            f"no local ImageNet weights for {', '.join(s.name for s in missing)} (looked for "
            f"{', '.join(str(s.weights_file) for s in missing)} in {where} and {CACHE_DIR}); put them there "
            "(see docs/compare.md), leave those backbones out, or pass `weights` none to train every backbone "
            "from random init (reported as 'random init', not as transfer results)")
