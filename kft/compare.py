"""``kft compare``: the same few-shot training for every backbone x strategy x seed, then statistics.

Each combination is an ordinary ``kft.train.train`` run, in
``<out>/runs/<backbone>-<strategy>-s<seed>-n<samples_per_class>/``. A folder that
already holds a complete ``metrics.json`` is reused, so an interrupted compare
continues where it stopped; a folder without one (a run killed mid-way) is
deleted and trained again from scratch. The seed fixes the sampled training and
validation images, so strategies trained with the same seed see the same images
and can be compared pairwise, seed by seed (less noise than comparing means).

Writes into ``<out>`` (atomically): ``results.csv`` (one row per run),
``results.md`` (mean ± std per backbone x strategy, paired differences vs
``two_stage`` with 95% t intervals, the command that regenerates it, the
machine), ``compare.png`` and, for several samples-per-class, ``learning_curve.png``.
The statistics (``paired_summary``, ``t_quantile``) are plain numpy/stdlib.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kft import atomic
from kft.lists import parse_list  # noqa: F401  (kft.compare.parse_list, for callers)
from kft.runs import FILES as RUN_FILES
from kft.runs import METRICS
from kft.errors import KftError

BASELINE = "two_stage"
DEFAULT_BACKBONES = "mobilenet_v2,mobilenet_v3_small"
DEFAULT_STRATEGIES = "head_only,two_stage,three_stage,full"
DEFAULT_SEEDS = "0,1,2"
DEFAULT_SAMPLES = "100"
RANDOM_INIT = "random init"
CSV_COLUMNS = ("backbone", "strategy", "seed", "samples_per_class", "weights", "test_accuracy", "val_accuracy",
               "epochs", "seconds", "label_protocol", "labels_per_class", "run")
# metrics.json keys a finished run must have (the trainer writes the file last, atomically).
REQUIRED_METRICS = ("backbone", "strategy", "seed", "samples_per_class", "weights", "test_accuracy",
                    "val_accuracy", "stages", "seconds")
# Settings that must not change between invocations writing into the same folder.
FIXED_KEYS = ("weights", "val_per_class", "image_size", "max_epochs", "limit_test", "cache", "cache_views", "refit")


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
    refit: bool | None = None  # None: each plan's (holdout); True: retrain on train + validation labels

    def fixed(self) -> dict:
        return {k: getattr(self, k) for k in FIXED_KEYS}

    def command(self) -> str:
        """The ``kft compare`` command line that regenerates (or resumes) exactly this comparison."""
        args = ["kft", "compare", "--backbones", ",".join(self.backbones), "--strategies", ",".join(self.strategies),
                "--seeds", ",".join(map(str, self.seeds)),
                "--samples-per-class", ",".join(map(str, self.samples_per_class)), "--weights", self.weights]
        for key in ("val_per_class", "image_size", "max_epochs", "limit_test", "cache", "cache_views", "data_dir"):
            value = getattr(self, key)
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        if self.refit is not None:
            args.append("--refit" if self.refit else "--no-refit")
        return shlex.join([*args, "--out", str(self.out)])


def weights_label(weights: str | None) -> str:
    """How a run's weights are shown everywhere: ``imagenet``, ``random init`` or the file path."""
    return RANDOM_INIT if weights in (None, "none") else str(weights)


def check_weights(backbones: Iterable[str], weights: str) -> None:
    """Refuse ``imagenet`` for backbones whose ImageNet weights are not on disk, and a file for several backbones.

    A comparison of transfer strategies is meaningless from random weights, so
    that must be asked for explicitly (``--weights none``) and is labelled so.
    """
    from kft.backbones import registry
    from kft.backbones.weights import CACHE_DIR, local_imagenet_file, weights_dir

    backbones = list(backbones)
    specs = [registry.get(b) for b in backbones]  # unknown name -> error listing the valid ones
    if weights == "none":
        return
    if weights != "imagenet":
        if len(backbones) != 1:
            raise KftError(f"--weights {weights}: a weights file fits one backbone, but {len(backbones)} are listed; "
                           "compare one backbone at a time, or use --weights imagenet / none")
        if not Path(weights).is_file():
            raise KftError(f"weights file not found: {weights}")
        return
    missing = [s for s in specs if local_imagenet_file(s) is None]
    if missing:
        where = f"KFT_WEIGHTS_DIR={weights_dir()}" if weights_dir() else "KFT_WEIGHTS_DIR (unset)"
        raise KftError(
            f"no local ImageNet weights for {', '.join(s.name for s in missing)} (looked for "
            f"{', '.join(str(s.weights_file) for s in missing)} in {where} and {CACHE_DIR}); put them there "
            "(see docs/compare.md), leave those backbones out, or pass --weights none to train every backbone "
            "from random init (reported as 'random init', not as transfer results)")


# -- the grid of runs --------------------------------------------------------------------------------------------
@dataclass
class Job:
    backbone: str
    strategy: str
    seed: int
    samples_per_class: int
    plan: object
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def run_name(backbone: str, strategy: str, seed: int, samples_per_class: int) -> str:
    return f"{backbone}-{strategy}-s{seed}-n{samples_per_class}"


def plan_jobs(settings: CompareSettings) -> list[Job]:
    """Every combination with its validated plan; fails before any training if one is invalid.

    Order: samples per class, then seed, then backbone, then strategy, so an
    interrupted compare already holds complete paired sets for its first seeds.
    """
    from kft.config import resolve_plan

    plans = {}
    for b in settings.backbones:
        for s in settings.strategies:
            for n in settings.samples_per_class:
                plans[b, s, n] = resolve_plan(
                    b, s, None, samples_per_class=n, val_per_class=settings.val_per_class,
                    image_size=settings.image_size, cache=settings.cache, cache_views=settings.cache_views,
                    max_epochs=settings.max_epochs, refit=settings.refit)
    runs = Path(settings.out) / "runs"
    return [Job(b, s, seed, n, plans[b, s, n], runs / run_name(b, s, seed, n))
            for n in settings.samples_per_class for seed in settings.seeds
            for b in settings.backbones for s in settings.strategies]


def finished_metrics(path: Path) -> dict | None:
    """A run folder's ``metrics.json`` if the run finished (file present, readable, complete), else None."""
    try:
        metrics = json.loads((Path(path) / METRICS).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or any(k not in metrics for k in REQUIRED_METRICS):
        return None
    return metrics


def _check_matches(job: Job, metrics: dict, settings: CompareSettings) -> None:
    """A finished run is reused only if it is the run this compare asks for."""
    want = {"backbone": job.backbone, "strategy": job.strategy, "seed": job.seed,
            "samples_per_class": job.samples_per_class, "weights": settings.weights,
            "image_size": job.plan.image_size, "val_per_class": job.plan.val_per_class}
    for key, value in want.items():
        if key in metrics and metrics[key] != value:
            raise KftError(f"{job.path} is a finished run with {key}={metrics[key]!r}, but this compare asks for "
                           f"{value!r}; use another --out")
    protocol = metrics.get("labels", {}).get("protocol", "holdout")
    if protocol != ("refit" if job.plan.refit else "holdout"):
        raise KftError(f"{job.path} is a finished {protocol} run, but this compare asks for the other label "
                       f"protocol; use another --out")


def _clear_unfinished(path: Path) -> None:
    """Delete an interrupted run folder; refuse to delete a folder that is not a kft run."""
    if not path.exists():
        return
    if not path.is_dir():
        raise KftError(f"{path} exists and is not a folder; remove it or use another --out")
    entries = list(path.iterdir())
    if entries and not any((path / f).exists() for f in RUN_FILES):
        raise KftError(f"{path} holds files that are not a kft run; remove it or use another --out")
    shutil.rmtree(path)


def _check_fixed_settings(settings: CompareSettings) -> None:
    """Runs in one folder must share their settings; record them in ``compare.json`` the first time."""
    path = Path(settings.out) / "compare.json"
    fixed = settings.fixed()
    if path.is_file():
        try:
            before = json.loads(path.read_text()).get("settings", {})
        except (OSError, ValueError, AttributeError):
            raise KftError(f"{path} is unreadable; remove it or use another --out") from None
        diff = [k for k in FIXED_KEYS if before.get(k) != fixed[k]]
        if diff:
            k = diff[0]
            raise KftError(f"{settings.out} holds runs made with {k}={before.get(k)!r}, not {fixed[k]!r}; "
                           "use another --out (runs with different settings cannot be pooled)")
    atomic.write_json(path, {"settings": fixed, "command": settings.command()})


@dataclass
class CompareResult:
    out: Path
    rows: list[dict]
    ran: list[str] = field(default_factory=list)  # run names trained by this invocation
    reused: list[str] = field(default_factory=list)  # finished runs found on disk
    files: list[Path] = field(default_factory=list)


def compare(settings: CompareSettings, *, log: Callable[[str], None] = print) -> CompareResult:
    """Train every missing combination (via ``kft.train.train``) and write the reports; returns what happened."""
    check_weights(settings.backbones, settings.weights)
    if settings.limit_test is not None and settings.limit_test <= 0:
        raise KftError(f"--limit-test must be positive, got {settings.limit_test}")
    jobs = plan_jobs(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_fixed_settings(settings)
    result = CompareResult(out, [])
    todo = []
    for job in jobs:
        metrics = finished_metrics(job.path)
        if metrics is None:
            todo.append(job)
        else:
            _check_matches(job, metrics, settings)
            result.reused.append(job.name)
    log(f"compare: {len(jobs)} runs ({len(result.reused)} already finished, {len(todo)} to train) in {out}")
    if todo:
        log(f"resume an interruption with: {settings.command()}")

    from kft.train import train

    for i, job in enumerate(todo, 1):
        _clear_unfinished(job.path)
        log(f"[{i}/{len(todo)}] {job.name}: {job.backbone} / {job.strategy}, seed {job.seed}, "
            f"{job.samples_per_class} per class, weights {weights_label(settings.weights)}")
        t = time.time()
        train(job.plan, seed=job.seed, weights=settings.weights, data_dir=settings.data_dir,
              limit_test=settings.limit_test, out=job.path, log=lambda m: log(f"    {m}"))
        metrics = finished_metrics(job.path)
        if metrics is None:
            raise RuntimeError(f"{job.path}: the trainer returned without a complete metrics.json")
        result.ran.append(job.name)
        log(f"[{i}/{len(todo)}] {job.name}: test accuracy {metrics['test_accuracy']:.4f} ({time.time() - t:.0f}s)")
        write_tables(settings, _rows(jobs))  # partial results stay readable while the rest trains

    result.rows = _rows(jobs)
    result.files = write_reports(settings, result.rows)
    for f in result.files:
        log(f"wrote {f}")
    return result


def _rows(jobs: list[Job]) -> list[dict]:
    rows = []
    for job in jobs:
        metrics = finished_metrics(job.path)
        if metrics is not None:
            rows.append(row_from_metrics(metrics, f"runs/{job.name}"))
    return rows


def row_from_metrics(metrics: dict, run: str = "") -> dict:
    """One results.csv row from a run's ``metrics.json``."""
    return {
        "backbone": metrics["backbone"], "strategy": metrics["strategy"], "seed": int(metrics["seed"]),
        "samples_per_class": int(metrics["samples_per_class"]), "weights": weights_label(metrics["weights"]),
        "test_accuracy": metrics["test_accuracy"], "val_accuracy": metrics["val_accuracy"],
        "epochs": ";".join(f"{s['name']}:{s['epochs']}" for s in metrics["stages"]),
        "seconds": metrics["seconds"],
        # runs from before the refit protocol were all holdout: 'samples + val' labels per class
        "label_protocol": metrics.get("labels", {}).get("protocol", "holdout"),
        "labels_per_class": metrics.get("labels", {}).get(
            "per_class", int(metrics["samples_per_class"]) + int(metrics.get("val_per_class") or 0)),
        "run": run,
    }


# -- statistics (numpy + stdlib only) -----------------------------------------------------------------------------
def _t_cdf(t: float, dof: int) -> float:
    """Student t CDF for integer ``dof``, in closed form (Abramowitz & Stegun 26.7.3 / 26.7.4)."""
    theta = math.atan(t / math.sqrt(dof))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if dof == 1:
        a = 2 * theta / math.pi
    elif dof % 2:  # odd: (2/pi) [theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ... up to cos^(dof-3))]
        term, total = 1.0, 1.0
        for k in range(1, dof - 2, 2):
            term *= c2 * (k + 1) / (k + 2)
            total += term
        a = 2 / math.pi * (theta + s * math.cos(theta) * total)
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(dof-2))
        term, total = 1.0, 1.0
        for k in range(0, dof - 2, 2):
            term *= c2 * (k + 1) / (k + 2)
            total += term
        a = s * total
    return 0.5 * (1 + a)


def t_quantile(p: float, dof: int) -> float:
    """Quantile of Student's t with integer ``dof`` >= 1, without scipy.

    Up to 300 dof: bisection on the exact closed-form CDF (to ~1e-12). Above:
    the Cornish-Fisher expansion around the normal quantile (error < 1e-8 there).
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if int(dof) != dof or dof < 1:
        raise ValueError(f"dof must be a positive integer, got {dof}")
    dof = int(dof)
    if p < 0.5:
        return -t_quantile(1 - p, dof)
    if p == 0.5:
        return 0.0
    return _t_expansion(p, dof) if dof > 300 else _t_bisect(p, dof)


def _t_expansion(p: float, dof: int) -> float:
    """Cornish-Fisher expansion of the t quantile in powers of 1/dof (for large dof)."""
    z, v = statistics.NormalDist().inv_cdf(p), float(dof)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))


def _t_bisect(p: float, dof: int) -> float:
    """The t quantile for p > 0.5 by bisection on the exact CDF."""
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, dof) < p:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass
class GroupStats:
    """Accuracy of one backbone x weights x samples-per-class x strategy over its seeds."""

    backbone: str
    weights: str
    samples_per_class: int
    strategy: str
    seeds: list[int]
    values: list[float]
    n: int
    mean: float
    std: float  # ddof=1; nan for a single seed


@dataclass
class PairedDiff:
    """``strategy - baseline`` seed by seed (same seed = same training images), with a 95% t interval."""

    backbone: str
    weights: str
    samples_per_class: int
    strategy: str
    baseline: str
    seeds: list[int]
    diffs: list[float]
    n: int
    mean: float
    std: float  # ddof=1; nan for one pair
    ci_low: float  # nan for fewer than two pairs
    ci_high: float


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; nan when there is one value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its two-sided t confidence interval (n-1 dof); nan bounds for n < 2."""
    v = np.asarray(values, dtype=float)
    mean, std = mean_std(v)
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(0.5 + level / 2, len(v) - 1) * std / math.sqrt(len(v))
    return mean, mean - half, mean + half


def paired_summary(rows: Iterable[dict], baseline: str = BASELINE, metric: str = "test_accuracy",
                   level: float = 0.95) -> tuple[list[GroupStats], list[PairedDiff]]:
    """Per group mean ± std, and each strategy's paired difference to ``baseline`` over their shared seeds.

    ``rows``: dicts with backbone, weights, samples_per_class, strategy, seed and ``metric``
    (rows whose metric is None are ignored). Groups keep the order in which they first appear.
    """
    by_group: dict[tuple, dict[int, float]] = {}
    for r in rows:
        if r.get(metric) is None:
            continue
        key = (r["backbone"], r["weights"], int(r["samples_per_class"]), r["strategy"])
        seeds = by_group.setdefault(key, {})
        if int(r["seed"]) in seeds:
            raise ValueError(f"two rows for {key} seed {r['seed']}")
        seeds[int(r["seed"])] = float(r[metric])
    groups, paired = [], []
    for key, by_seed in by_group.items():
        seeds = sorted(by_seed)
        values = [by_seed[s] for s in seeds]
        mean, std = mean_std(values)
        groups.append(GroupStats(*key, seeds, values, len(values), mean, std))
    for (b, w, n, s), by_seed in by_group.items():
        base = by_group.get((b, w, n, baseline))
        if s == baseline or base is None:
            continue
        seeds = sorted(set(by_seed) & set(base))
        if not seeds:
            continue
        diffs = [by_seed[x] - base[x] for x in seeds]
        mean, low, high = mean_ci(diffs, level)
        paired.append(PairedDiff(b, w, n, s, baseline, seeds, diffs, len(diffs), mean, mean_std(diffs)[1],
                                 low, high))
    return groups, paired


# -- reports ------------------------------------------------------------------------------------------------------
def machine_description() -> str:
    """CPU model (from /proc/cpuinfo) and core count, for the report."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    extra = f" ({usable} usable by this process)" if usable != cores else ""
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{model}, {cores} cores{extra}; {system}"


def write_tables(settings: CompareSettings, rows: list[dict]) -> list[Path]:
    """results.csv and results.md (no plots; cheap, so rewritten after every run)."""
    out = Path(settings.out)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return [atomic.write_text(out / "results.csv", buf.getvalue()),
            atomic.write_text(out / "results.md", format_markdown(settings, rows))]


def write_reports(settings: CompareSettings, rows: list[dict]) -> list[Path]:
    """All outputs: tables, compare.png and (several samples per class) learning_curve.png."""
    files = write_tables(settings, rows)
    groups, _ = paired_summary(rows)
    if groups:
        files.append(plot_compare(groups, Path(settings.out) / "compare.png"))
        if len({g.samples_per_class for g in groups}) > 1:
            files.append(plot_learning_curve(groups, Path(settings.out) / "learning_curve.png"))
    return files


def _pct(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:+.2f}" if signed else f"{100 * x:.2f}"


def _weights_cell(label: str) -> str:
    return f"**{RANDOM_INIT}**" if label == RANDOM_INIT else label


def _mean_epochs(rows: list[dict]) -> str:
    per_stage: dict[str, list[int]] = {}
    for r in rows:
        for item in filter(None, r["epochs"].split(";")):
            name, epochs = item.rsplit(":", 1)
            per_stage.setdefault(name, []).append(int(epochs))
    return ", ".join(f"{name} {np.mean(v):.1f}" for name, v in per_stage.items())


def format_markdown(settings: CompareSettings, rows: list[dict]) -> str:
    """The human report: settings, command, machine, mean ± std table, paired-difference table."""
    groups, paired = paired_summary(rows)
    planned = len(settings.backbones) * len(settings.strategies) * len(settings.seeds) * len(settings.samples_per_class)
    lines = ["# kft compare: fine-tuning strategies on few-shot CIFAR-10", ""]
    lines += [
        f"{len(rows)} finished runs of {planned} "
        f"(backbones {', '.join(settings.backbones)}; strategies {', '.join(settings.strategies)}; "
        f"seeds {', '.join(map(str, settings.seeds))}; training images per class "
        f"{', '.join(map(str, settings.samples_per_class))}).",
        ("Weights: **random init** (`--weights none`): these rows are NOT transfer-learning results"
         if settings.weights == "none" else f"Weights: {settings.weights}")
        + ". Test set: " + (f"a class-balanced {settings.limit_test}-image subset of the CIFAR-10 test set (the "
                            "same images for every run)" if settings.limit_test
                            else "the full CIFAR-10 test set (10,000 images)")
        + f". Validation images per class: {settings.val_per_class or 'plan default (100)'}, on top of the "
        "training images; label protocol: " + ("**refit** (after selection, the final model trains on training + "
                                               "validation labels)" if settings.refit else
                                               "holdout (validation labels only select)") + "; "
        f"image size: {settings.image_size or 'plan default'}; "
        f"epochs per stage capped at: {settings.max_epochs or 'no cap (plan values, early stopping)'}.",
        "A seed fixes the sampled training/validation images: every strategy and backbone with the same seed "
        "trains on the same images.",
        "", "Regenerate (finished runs in the folder are reused, missing ones trained):", "",
        f"    {settings.command()}", "",
        f"Machine: {machine_description()}. Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
        f"total training time of these runs {sum(float(r['seconds']) for r in rows) / 60:.1f} min.", "",
    ]
    lines += ["## Test accuracy (%), mean ± std over seeds", "",
              "std: sample standard deviation (ddof=1). Epochs: mean per stage, after early stopping.", "",
              "| backbone | weights | samples/class | strategy | seeds | test accuracy | val accuracy | epochs | "
              "seconds/run |", "|---|---|---:|---|---:|---:|---:|---|---:|"]
    for g in groups:
        sel = [r for r in rows if (r["backbone"], r["weights"], int(r["samples_per_class"]), r["strategy"])
               == (g.backbone, g.weights, g.samples_per_class, g.strategy)]
        val_mean, val_std = mean_std([float(r["val_accuracy"]) for r in sel])
        lines.append(f"| {g.backbone} | {_weights_cell(g.weights)} | {g.samples_per_class} | {g.strategy} | {g.n} | "
                     f"{_pct(g.mean)} ± {_pct(g.std)} | {_pct(val_mean)} ± {_pct(val_std)} | {_mean_epochs(sel)} | "
                     f"{np.mean([float(r['seconds']) for r in sel]):.0f} |")
    lines += ["", f"## Paired difference vs {BASELINE} (percentage points)", ""]
    if not paired:
        lines.append(f"No paired comparison: {BASELINE} is not among the strategies, or no seed is shared."
                     if BASELINE not in settings.strategies else "No paired comparison yet (no shared seeds).")
    else:
        lines += [f"For each seed, accuracy(strategy) − accuracy({BASELINE}) on the same sampled training images; "
                  "mean, sample std and a 95% confidence interval mean ± t(0.975, n−1)·std/√n. The t quantile is "
                  "computed without scipy, by bisection on the exact closed-form Student-t CDF for integer degrees "
                  "of freedom (Abramowitz & Stegun 26.7.3–4). With few seeds the interval is wide; it says whether "
                  "the difference is distinguishable from seed-to-seed noise, not how large it is for certain.", "",
                  "| backbone | weights | samples/class | strategy | pairs | mean diff | std | 95% CI | per seed |",
                  "|---|---|---:|---|---:|---:|---:|---|---|"]
        for p in paired:
            ci = "–" if math.isnan(p.ci_low) else f"[{_pct(p.ci_low, True)}, {_pct(p.ci_high, True)}]"
            per_seed = ", ".join(f"s{s}: {_pct(d, True)}" for s, d in zip(p.seeds, p.diffs))
            lines.append(f"| {p.backbone} | {_weights_cell(p.weights)} | {p.samples_per_class} | {p.strategy} | "
                         f"{p.n} | {_pct(p.mean, True)} | {_pct(p.std)} | {ci} | {per_seed} |")
    lines += ["", "Per-run numbers: results.csv. Each run's folder (runs/<backbone>-<strategy>-s<seed>-n<samples>/) "
              "holds its metrics.json, split.json (the sampled indices), history and curves.", ""]
    return "\n".join(lines)


def _series_label(backbone: str, weights: str) -> str:
    return f"{backbone} ({RANDOM_INIT})" if weights == RANDOM_INIT else f"{backbone} ({weights})"


def plot_compare(groups: list[GroupStats], path) -> Path:
    """One panel per backbone: mean test accuracy per strategy, error bar = std, dots = single seeds."""
    from kft.plots import _plt, save_figure

    plt = _plt()
    panels = list(dict.fromkeys((g.backbone, g.weights) for g in groups))
    sizes = list(dict.fromkeys(g.samples_per_class for g in groups))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.0 + 4.2 * len(panels), 4.2), squeeze=False, sharey=True)
    rng = np.random.default_rng(0)
    for ax, (backbone, weights) in zip(axes[0], panels):
        mine = [g for g in groups if (g.backbone, g.weights) == (backbone, weights)]
        strategies = list(dict.fromkeys(g.strategy for g in mine))
        width = 0.7 / len(sizes)
        for j, n in enumerate(sizes):
            sel = {g.strategy: g for g in mine if g.samples_per_class == n}
            xs = [i - 0.35 + width * (j + 0.5) for i, s in enumerate(strategies) if s in sel]
            gs = [sel[s] for s in strategies if s in sel]
            label = f"{n}/class" + (f", {RANDOM_INIT}" if weights == RANDOM_INIT else f", {weights}")
            err = [0 if math.isnan(g.std) else g.std for g in gs]
            line = ax.errorbar(xs, [g.mean for g in gs], yerr=err, fmt="o", ms=7, capsize=4, label=label)
            for x, g in zip(xs, gs):
                jitter = rng.uniform(-width / 4, width / 4, len(g.values))
                ax.scatter(x + jitter, g.values, s=12, color=line[0].get_color(), alpha=0.5, zorder=3)
        ax.set_xticks(range(len(strategies)), strategies, rotation=20)
        ax.set_title(_series_label(backbone, weights))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("test accuracy (mean ± std; dots: seeds)")
    save_figure(fig, path)
    return Path(path)


def plot_learning_curve(groups: list[GroupStats], path) -> Path:
    """Test accuracy against training images per class, one line per backbone x strategy."""
    from kft.plots import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for backbone, weights, strategy in dict.fromkeys((g.backbone, g.weights, g.strategy) for g in groups):
        sel = sorted((g for g in groups if (g.backbone, g.weights, g.strategy) == (backbone, weights, strategy)),
                     key=lambda g: g.samples_per_class)
        ax.errorbar([g.samples_per_class for g in sel], [g.mean for g in sel],
                    yerr=[0 if math.isnan(g.std) else g.std for g in sel], marker="o", capsize=3,
                    ls="--" if weights == RANDOM_INIT else "-",
                    label=f"{_series_label(backbone, weights)} / {strategy}")
    sizes = sorted({g.samples_per_class for g in groups})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training images per class")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)
    return Path(path)


# -- CLI glue -------------------------------------------------------------------------------------------------------
def run_compare_cli(backbones, strategies, seeds, samples_per_class, weights, val_per_class, image_size, data_dir,
                    max_epochs, limit_test, cache, cache_views, out, refit=None) -> CompareResult:
    """``kft compare``: parse the comma lists, then ``compare``."""
    import click

    settings = CompareSettings(
        backbones=parse_list(backbones, "backbones"), strategies=parse_list(strategies, "strategies"),
        seeds=parse_list(seeds, "seeds", int, minimum=0),
        samples_per_class=parse_list(samples_per_class, "samples-per-class", int, minimum=0),
        out=Path(out) if out else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}",
        weights=weights, val_per_class=val_per_class, image_size=image_size, max_epochs=max_epochs,
        limit_test=limit_test, cache=cache, cache_views=cache_views, data_dir=str(data_dir) if data_dir else None,
        refit=refit)
    if any(n < 1 for n in settings.samples_per_class):
        raise KftError("--samples-per-class: every value must be at least 1")
    result = compare(settings, log=click.echo)
    click.echo(f"compare folder: {result.out} ({len(result.ran)} trained, {len(result.reused)} reused)")
    return result


__all__ = ["CompareResult", "CompareSettings", "GroupStats", "PairedDiff", "check_weights", "compare",
           "finished_metrics", "mean_ci", "mean_std", "paired_summary", "parse_list", "plan_jobs",
           "row_from_metrics", "run_compare_cli", "t_quantile", "weights_label", "write_reports"]
