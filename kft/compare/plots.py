"""The figures: accuracy by strategy, and the learning curve over samples per class."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kft.compare.settings import RANDOM_INIT
from kft.compare.stats import GroupStats
from kft.plots import _plt, save_figure


def _series_label(backbone: str, weights: str) -> str:
    return f"{backbone} ({RANDOM_INIT})" if weights == RANDOM_INIT else f"{backbone} ({weights})"


def plot_compare(groups: list[GroupStats], path) -> Path:
    """One panel per backbone: mean test accuracy per strategy, error bar = std, dots = single seeds."""

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
