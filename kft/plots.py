"""Plots for a run: training curves with stage boundaries, and the confusion matrix."""

from __future__ import annotations

import numpy as np

from kft.rundir.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=str(path).rsplit(".", 1)[-1])
    _plt().close(fig)


def plot_curves(history: list[dict], path, title: str = "") -> None:
    """Train and validation accuracy per epoch; dashed lines where a stage starts."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(1, len(history) + 1)
    ax.plot(x, [h["accuracy"] for h in history], label="train accuracy")
    ax.plot(x, [np.nan if h.get("val_accuracy") in (None, "") else h["val_accuracy"] for h in history],
            label="validation accuracy")  # a refit's epochs have none
    prev = None
    for i, h in enumerate(history):
        if h["stage"] != prev:
            ax.axvline(i + 0.5, color="grey", ls="--", lw=0.8)
            ax.text(i + 0.6, 0.02, h["stage"], transform=ax.get_xaxis_transform(), fontsize=8, color="grey")
            prev = h["stage"]
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_confusion(cm, class_names: list[str], path, title: str = "") -> None:
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * n, 1 + 0.55 * n))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_figure(fig, path)
