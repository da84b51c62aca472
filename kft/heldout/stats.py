"""How sure a held-out accuracy is: the Wilson score interval, and the line a person reads.

    wilson_interval(87, 100)            # (0.7902, 0.9224)
    accuracy_line(87, 100, "test photos")   # '87.0% (95% CI 79.0-92.2%, 100 test photos)'

The Wilson interval (Wilson 1927) keeps its coverage near 95% for the small test splits of a
user's photo folder (tens of images) and never leaves [0, 1], where the textbook
``p +- 1.96 sqrt(p(1-p)/n)`` does both badly. numpy only.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Z95", "accuracy_line", "per_class", "wilson_interval"]

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95% (``z``) Wilson score interval of a proportion ``correct / n``; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if correct == 0 else lo), (1.0 if correct == n else hi)  # exactly, not to rounding


def accuracy_line(correct: int, n: int, what: str = "test images") -> str:
    """``87.0% (95% CI 79.0-92.2%, 100 test photos)``."""
    if n <= 0:
        return f"no accuracy (0 {what})"
    lo, hi = wilson_interval(correct, n)
    return f"{100 * correct / n:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%, {n} {what})"


def per_class(y_true, y_pred, class_names: list[str]) -> list[dict]:
    """Per class: its test images, how many were right, accuracy and its 95% interval."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rows = []
    for c, name in enumerate(class_names):
        mask = y_true == c
        n, right = int(mask.sum()), int((y_pred[mask] == c).sum())
        lo, hi = wilson_interval(right, n)
        rows.append({"class": name, "images": n, "correct": right, "accuracy": right / n if n else None,
                     "ci95": [round(lo, 4), round(hi, 4)]})
    return rows
