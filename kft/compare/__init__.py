"""``kft compare``: the same few-shot training for every backbone x strategy x seed, then statistics.

Each combination is an ordinary ``kft.training.train`` run, in
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

import importlib

# name -> the module that defines it; loaded on first use, so `from kft.compare import settings`
# (the CLI's defaults) stays light.
_EXPORTS = {
    **dict.fromkeys(("CompareResult", "Job", "_clear_unfinished", "compare", "finished_metrics", "plan_jobs",
                     "row_from_metrics", "run_name"), "grid"),
    **dict.fromkeys(("format_markdown", "machine_description", "write_reports", "write_tables"), "report"),
    **dict.fromkeys(("BASELINE", "CSV_COLUMNS", "DEFAULT_BACKBONES", "DEFAULT_SAMPLES", "DEFAULT_SEEDS",
                     "DEFAULT_STRATEGIES", "CompareSettings", "check_weights", "weights_label"), "settings"),
    **dict.fromkeys(("GroupStats", "PairedDiff", "_t_bisect", "_t_expansion", "mean_ci", "mean_std",
                     "paired_summary", "t_quantile"), "stats"),
    **dict.fromkeys(("plot_compare", "plot_learning_curve"), "plots"),
}
__all__ = sorted(n for n in (*_EXPORTS, "parse_list") if not n.startswith("_"))


def __getattr__(name: str):
    if name == "parse_list":
        from kft.lists import parse_list

        return parse_list
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"kft.compare.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'kft.compare' has no attribute {name!r}")
