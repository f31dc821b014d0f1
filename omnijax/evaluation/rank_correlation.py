"""Spearman's rank correlation, to hold a judge's ranking of bins against people's (paper §4,
Appendix G: does a model that scores the representatives, or an FID per bin, order the bins as
the annotators' r(z) does?).

ρ is Pearson's correlation of the two samples' ranks, ties given the mean of the ranks they
span (the usual definition, e.g. Kendall & Gibbons, "Rank Correlation Methods").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class RankCorrelation(NamedTuple):
    """rho: Spearman's ρ, NaN with fewer than two pairs or when either side is constant.
    n: the pairs it is taken over (those with both values known)."""

    rho: float
    n: int


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ascending; tied values share the mean of the ranks they span."""
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or np.isnan(x).any():
        raise ValueError(f"values must be a 1-D array without NaN, got shape {x.shape}")
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    group = np.cumsum(np.concatenate([[True], ordered[1:] != ordered[:-1]])) - 1 if x.size else np.zeros(0, int)
    positions = np.arange(1, x.size + 1, dtype=np.float64)
    mean_rank = np.bincount(group, positions) / np.bincount(group)
    ranks = np.empty(x.size)
    ranks[order] = mean_rank[group]
    return ranks


def spearman(x, y) -> RankCorrelation:
    """Spearman's ρ of x and y over the positions where both are finite (NaN marks a missing value)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D arrays of one length, got shapes {x.shape} and {y.shape}")
    both = np.isfinite(x) & np.isfinite(y)
    n = int(both.sum())
    if n < 2:
        return RankCorrelation(math.nan, n)
    rx, ry = (average_ranks(v[both]) for v in (x, y))
    dx, dy = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return RankCorrelation(math.nan if scale == 0 else float(dx @ dy) / scale, n)
