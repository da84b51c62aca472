"""The grid of runs: plan every job, reuse finished run folders, train the rest (through the library)."""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from kft.compare.report import write_reports, write_tables
from kft.compare.settings import FIXED_KEYS, REQUIRED_METRICS, CompareSettings, check_weights, weights_label
from kft.errors import KftError
from kft.plan import resolve_plan
from kft.rundir import FILES as RUN_FILES
from kft.rundir import METRICS, atomic
from kft.training import train

_log = logging.getLogger(__name__)

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
    plans = {}
    for b in settings.backbones:
        for s in settings.strategies:
            for n in settings.samples_per_class:
                plans[b, s, n] = resolve_plan(b, s, settings={**settings.plan_settings(), "samples_per_class": n},
                                              max_epochs=settings.max_epochs)
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
                           f"{value!r}; use another `out`")
    protocol = metrics.get("labels", {}).get("protocol", "holdout")
    if protocol != job.plan.protocol:
        raise KftError(f"{job.path} is a finished {protocol} run, but this compare asks for the "
                       f"{job.plan.protocol} label protocol; use another `out`")


def _clear_unfinished(path: Path) -> None:
    """Delete an interrupted run folder; refuse to delete a folder that is not a kft run."""
    if not path.exists():
        return
    if not path.is_dir():
        raise KftError(f"{path} exists and is not a folder; remove it or use another `out`")
    entries = list(path.iterdir())
    if entries and not any((path / f).exists() for f in RUN_FILES):
        raise KftError(f"{path} holds files that are not a kft run; remove it or use another `out`")
    shutil.rmtree(path)


def _check_fixed_settings(settings: CompareSettings) -> None:
    """Runs in one folder must share their settings; record them in ``compare.json`` the first time."""
    path = Path(settings.out) / "compare.json"
    fixed = settings.fixed()
    if path.is_file():
        try:
            before = json.loads(path.read_text()).get("settings", {})
        except (OSError, ValueError, AttributeError):
            raise KftError(f"{path} is unreadable; remove it or use another `out`") from None
        diff = [k for k in FIXED_KEYS if before.get(k) != fixed[k]]
        if diff:
            k = diff[0]
            raise KftError(f"{settings.out} holds runs made with {k}={before.get(k)!r}, not {fixed[k]!r}; "
                           "use another `out` (runs with different settings cannot be pooled)")
    atomic.write_json(path, {"settings": fixed, "command": settings.command()})


@dataclass
class CompareResult:
    out: Path
    rows: list[dict]
    ran: list[str] = field(default_factory=list)  # run names trained by this invocation
    reused: list[str] = field(default_factory=list)  # finished runs found on disk
    files: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # print_jobs: a ``kft train`` line per missing run


def train_command(settings: CompareSettings, job: Job) -> list[str]:
    """``kft train`` arguments that make exactly ``job``'s run in its folder, from any working
    folder (absolute paths); ``--overwrite`` where an interrupted run left its folder."""
    options = settings.train_options()
    if settings.data_dir:
        options[options.index("--data-dir") + 1] = str(Path(settings.data_dir).resolve())
    return ["kft", "train", job.backbone, "--strategy", job.strategy, "--seed", str(job.seed),
            "--set", f"samples_per_class={job.samples_per_class}", "--weights", settings.weights, *options,
            "--out", str(job.path.resolve()), *(["--overwrite"] if job.path.exists() else [])]


def compare(settings: CompareSettings, jobs: int = 1, print_jobs: bool = False) -> CompareResult:
    """Train every missing combination and write the reports; returns what happened.

    ``jobs`` 1 trains in this process (``kft.training.train``); more runs that many ``kft train``
    processes at once, each logging to ``<out>/logs/<run>.log``. ``print_jobs`` trains
    nothing: ``result.commands`` holds a ``kft train`` line per missing run, for a cluster
    scheduler; the same ``kft compare`` afterwards finds those runs finished and reports.
    """
    if jobs < 1:
        raise KftError(f"`jobs` must be at least 1, got {jobs}")
    check_weights(settings.backbones, settings.weights)
    if settings.limit_test is not None and settings.limit_test <= 0:
        raise KftError(f"`limit_test` must be positive, got {settings.limit_test}")
    grid = plan_jobs(settings)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_fixed_settings(settings)
    result = CompareResult(out, [])
    todo = []
    for job in grid:
        metrics = finished_metrics(job.path)
        if metrics is None:
            todo.append(job)
        else:
            _check_matches(job, metrics, settings)
            result.reused.append(job.name)
    if print_jobs:
        result.commands = [shlex.join(train_command(settings, job)) for job in todo]
        return result
    _log.info(f"compare: {len(grid)} runs ({len(result.reused)} already finished, {len(todo)} to train) in {out}")
    if todo:
        _log.info(f"resume an interruption with: {settings.command()}")
    if jobs > 1:
        _train_in_processes(settings, grid, todo, jobs, result)
    else:
        _train_here(settings, grid, todo, result)
    result.rows = _rows(grid)
    result.files = write_reports(settings, result.rows)
    for f in result.files:
        _log.info(f"wrote {f}")
    return result


def _train_here(settings: CompareSettings, grid: list[Job], todo: list[Job], result: CompareResult) -> None:
    for i, job in enumerate(todo, 1):
        _clear_unfinished(job.path)
        _log.info(f"[{i}/{len(todo)}] {job.name}: {job.backbone} / {job.strategy}, seed {job.seed}, "
            f"{job.samples_per_class} per class, weights {weights_label(settings.weights)}")
        t = time.time()
        train(job.plan, seed=job.seed, weights=settings.weights, data_dir=settings.data_dir,
              limit_test=settings.limit_test, out=job.path)
        metrics = finished_metrics(job.path)
        if metrics is None:
            raise RuntimeError(f"{job.path}: the trainer returned without a complete metrics.json")
        result.ran.append(job.name)
        _log.info(f"[{i}/{len(todo)}] {job.name}: test accuracy {metrics['test_accuracy']:.4f} ({time.time() - t:.0f}s)")
        write_tables(settings, _rows(grid))  # partial results stay readable while the rest trains


def _train_in_processes(settings: CompareSettings, grid: list[Job], todo: list[Job], jobs: int,
                        result: CompareResult) -> None:
    """Each missing run as its own ``kft train`` process, ``jobs`` at a time. Every process
    uses TensorFlow's default thread pools (the same kernels, so the same numbers, as
    ``jobs`` 1), so on a small machine more jobs share the same cores."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor, as_completed

    logs = Path(settings.out) / "logs"
    logs.mkdir(exist_ok=True)

    def run(job: Job) -> tuple[Job, int, float, Path]:
        _clear_unfinished(job.path)
        log_file, t = logs / f"{job.name}.log", time.time()
        command = [sys.executable, "-m", "kft", *train_command(settings, job)[1:]]
        with open(log_file, "w") as f:
            code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        return job, code, time.time() - t, log_file

    _log.info(f"training {len(todo)} runs in {min(jobs, len(todo))} processes; logs in {logs}")
    failed = []
    with ThreadPoolExecutor(jobs) as pool:
        for done, future in enumerate(as_completed([pool.submit(run, job) for job in todo]), 1):
            job, code, seconds, log_file = future.result()
            metrics = finished_metrics(job.path)
            if code != 0 or metrics is None:
                failed.append(log_file)
                _log.info(f"[{done}/{len(todo)}] {job.name}: FAILED (exit {code}; see {log_file})")
                continue
            result.ran.append(job.name)
            _log.info(f"[{done}/{len(todo)}] {job.name}: test accuracy {metrics['test_accuracy']:.4f} "
                      f"({seconds:.0f}s)")
            write_tables(settings, _rows(grid))
    if failed:
        raise KftError(f"{len(failed)} of {len(todo)} runs failed (first: {failed[0]}); the same command "
                       "retries them and reuses the finished ones")


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
