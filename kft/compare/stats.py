"""Statistics, numpy + stdlib only: Student t quantiles, mean ± std / CI, paired differences."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import math
import statistics

import numpy as np

from kft.compare.settings import BASELINE

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
