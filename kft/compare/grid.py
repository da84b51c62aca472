"""The grid of runs: plan every job, reuse finished run folders, train the rest (through the library)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
import json
import shutil
import time

from kft import atomic
from kft.compare.report import write_reports
from kft.compare.report import write_tables
from kft.compare.settings import CompareSettings
from kft.compare.settings import FIXED_KEYS
from kft.compare.settings import REQUIRED_METRICS
from kft.compare.settings import check_weights
from kft.compare.settings import weights_label
from kft.errors import KftError
from kft.runs import FILES as RUN_FILES
from kft.runs import METRICS

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
