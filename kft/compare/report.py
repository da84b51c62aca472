"""The reports: results.csv, results.md (settings, command, machine, tables)."""

from __future__ import annotations

from pathlib import Path
import csv
import io
import math
import time

import numpy as np

from kft.rundir import atomic
from kft.compare.plots import plot_compare
from kft.compare.plots import plot_learning_curve
from kft.compare.settings import BASELINE
from kft.compare.settings import CSV_COLUMNS
from kft.compare.settings import CompareSettings
from kft.compare.settings import RANDOM_INIT
from kft.compare.stats import mean_std
from kft.compare.stats import paired_summary

# -- reports ------------------------------------------------------------------------------------------------------
def machine_description() -> str:
    """CPU model and core count, for the report."""
    from kft.machine import describe

    return describe()


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


PROTOCOLS = {"refit": "**refit** (after selection, the final model trains on training + validation labels)",
             "fixed": "**fixed** (no selection run: every label trains for each stage's planned epochs)",
             "holdout": "holdout (validation labels only select)"}


def _protocol(settings: CompareSettings, rows: list[dict]) -> str:
    """The label protocol the finished runs used (what ``--protocol`` asked, before any finished)."""
    used = sorted({r.get("label_protocol", "holdout") for r in rows})  # rows of old runs: holdout
    if not used:  # what the settings ask for
        used = [settings.protocol or "each plan's"]
    return " and ".join(PROTOCOLS.get(p, p) for p in used)


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
        "training images; label protocol: " + _protocol(settings, rows) + "; "
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
        # a fixed-protocol run has no validation split left to score on
        vals = [float(r["val_accuracy"]) for r in sel if r["val_accuracy"] not in (None, "")]
        val_mean, val_std = mean_std(vals) if vals else (None, None)
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
