"""Choosing the beta ladder of a replica-exchange run from a short pilot.

The pilot runs replica exchange on a wide geometric grid of betas (both signs and zero,
scaled by the spread of outputs of uniformly random inputs). Its mean output m(beta) says
which betas reach the ends of the requested bin range; its spread s(beta) sets the rung
spacing: neighbouring rungs are one unit of "thermodynamic length" ∫ s(beta) dbeta apart,
which keeps the swap acceptance near one half along the whole ladder.

During burn-in the ladder is then re-placed from the swap acceptance it measured
(`respace_ladder`): for two rungs whose outputs are Gaussian with spread s, a swap is
accepted with probability a = erfc(L / 2), L = |Δβ| s, so each measured pair gives its length
L = 2 erfc⁻¹(a) — additive along the ladder, near zero where the samples no longer change,
large across a gap. New rungs sit at equal steps of the accumulated length, as many as the
target acceptance asks for (plus beta = 0, kept as a rung for the normalisation): no cap,
so a gap gets rungs and a saturated stretch loses them.
"""

from __future__ import annotations

import statistics
import warnings
from typing import NamedTuple

import numpy as np


class PilotSummary(NamedTuple):
    betas: np.ndarray  # (P,) pilot betas, ascending
    mean: np.ndarray   # (P,) mean output at each pilot beta
    std: np.ndarray    # (P,) standard deviation of the output at each pilot beta
    low: np.ndarray    # (P,) smallest output seen at each pilot beta
    high: np.ndarray   # (P,) largest output seen at each pilot beta


def pilot_grid(output_scale: float, num_magnitudes: int = 12) -> np.ndarray:
    """Betas 0, ±(0.25 .. 0.25*2^(n-1)) / output_scale."""
    magnitudes = 0.25 * 2.0 ** np.arange(num_magnitudes) / max(output_scale, 1e-12)
    return np.concatenate([-magnitudes[::-1], [0.0], magnitudes])


def summarize_pilot(betas: np.ndarray, z: np.ndarray, slot: np.ndarray) -> PilotSummary:
    """Per-beta statistics of pilot records z, slot (records, C, R)."""
    stats = []
    for r in range(len(betas)):
        at_r = z[slot == r]
        stats.append((at_r.mean(), at_r.std(), at_r.min(), at_r.max()))
    mean, std, low, high = map(np.asarray, zip(*stats))
    return PilotSummary(np.asarray(betas), mean, std, low, high)


def ladder_from_pilot(pilot: PilotSummary, bin_edges: np.ndarray, num_replicas: int | None = None,
                      spacing: float = 1.0, max_replicas: int = 64) -> np.ndarray:
    """A ladder that spans the bin range (and beta = 0, for normalisation), evenly spaced in
    thermodynamic length; `num_replicas` overrides the count."""
    top_target, bottom_target = bin_edges[-2], bin_edges[1]
    positive = pilot.betas > 0
    negative = pilot.betas < 0
    resolution = float(np.min(np.diff(bin_edges)))
    beta_max = _first_reaching(pilot.betas[positive], pilot.mean[positive], pilot.mean[positive] >= top_target,
                               resolution)
    beta_min = _first_reaching(pilot.betas[negative][::-1], pilot.mean[negative][::-1],
                               pilot.mean[negative][::-1] <= bottom_target, resolution)
    if pilot.high.max() < top_target:
        warnings.warn(f"no pilot walker reached the top bin (z >= {top_target:.4g}; highest seen "
                      f"{pilot.high.max():.4g}): the top bins may stay empty", stacklevel=3)
    if pilot.low.min() > bottom_target:
        warnings.warn(f"no pilot walker reached the bottom bin (z <= {bottom_target:.4g}; lowest seen "
                      f"{pilot.low.min():.4g}): the bottom bins may stay empty", stacklevel=3)
    beta_min, beta_max = min(beta_min, 0.0), max(beta_max, 0.0)
    inside = (pilot.betas >= beta_min) & (pilot.betas <= beta_max)
    grid, spread = pilot.betas[inside], np.maximum(pilot.std[inside], 1e-12)
    # Thermodynamic length along the grid, trapezoid rule; spread in log space between grid points
    # would be finer, but the grid is dense enough that the count of rungs is what matters.
    length = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (spread[1:] + spread[:-1]) / 2)])
    if num_replicas is None:
        num_replicas = int(np.clip(np.ceil(length[-1] / spacing) + 1, 4, max_replicas))
    targets = np.linspace(0.0, length[-1], num_replicas)
    ladder = np.unique(np.interp(targets, length, grid))
    return ladder if len(ladder) >= 2 else np.array([beta_min, beta_max])


def _first_reaching(betas: np.ndarray, mean: np.ndarray, reached: np.ndarray, resolution: float) -> float:
    """Smallest-magnitude beta (betas ordered by magnitude) whose pilot mean reached the target.

    When none did, the bins reach past the model's outputs: the ladder ends at the first beta
    whose mean is within `resolution` (one bin width) of the most extreme mean on that side,
    since a larger beta would only move the chains by less than a bin.
    """
    if reached.any():
        return float(betas[np.argmax(reached)])
    extreme = mean[np.argmax(np.abs(mean - mean[0]))]
    return float(betas[np.argmax(np.abs(mean - extreme) <= resolution)])


def check_ladder_reaches(pilot: PilotSummary, bin_edges: np.ndarray, name: str = "betas") -> None:
    """Raise ValueError naming `name` when the pilot's extreme replicas never entered the end bins."""
    top_target, bottom_target = bin_edges[-2], bin_edges[1]
    if pilot.high[-1] < top_target:
        raise ValueError(
            f"{name} cannot reach the requested range: at the largest beta {pilot.betas[-1]:.4g} the pilot's "
            f"outputs stayed below {pilot.high[-1]:.4g}, but bin_edges ask for bins up to {bin_edges[-1]:.4g} "
            f"(top bin starts at {top_target:.4g}); raise the largest beta or lower the top bin edges")
    if pilot.low[0] > bottom_target:
        raise ValueError(
            f"{name} cannot reach the requested range: at the smallest beta {pilot.betas[0]:.4g} the pilot's "
            f"outputs stayed above {pilot.low[0]:.4g}, but bin_edges ask for bins down to {bin_edges[0]:.4g} "
            f"(bottom bin ends at {bottom_target:.4g}); lower the smallest beta or raise the bottom bin edges")


# Acceptances are clipped to [_MIN_ACCEPTANCE, 1 - 1e-9] before inversion: a pair that never
# swapped is a gap of length >= 2 erfc^-1(_MIN_ACCEPTANCE) ~ 7.4, not an infinite one.
_MIN_ACCEPTANCE = 1e-7


def pair_lengths(acceptance) -> np.ndarray:
    """Thermodynamic length 2 erfc⁻¹(a) of each neighbouring pair from its swap acceptance a."""
    a = np.clip(np.asarray(acceptance, np.float64), _MIN_ACCEPTANCE, 1.0 - 1e-9)
    normal = statistics.NormalDist()
    return np.array([-2.0 * normal.inv_cdf(x / 2.0) / np.sqrt(2.0) for x in a.reshape(-1)]).reshape(a.shape)


def respace_ladder(betas, acceptance, *, target_acceptance: float = 0.5, num_replicas: int | None = None,
                   min_replicas: int = 4, max_replicas: int = 1024) -> np.ndarray:
    """Betas over the same range as `betas`, at equal steps of the thermodynamic length measured
    by the pairs' swap `acceptance`; their count makes every pair's expected acceptance
    `target_acceptance` (or is `num_replicas`). Beta = 0 stays a rung when the range holds it."""
    betas = np.asarray(betas, np.float64)
    if not 0.0 < target_acceptance < 1.0:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {target_acceptance!r}")
    length = np.concatenate([[0.0], np.cumsum(pair_lengths(acceptance))])
    if num_replicas is None:
        step = float(pair_lengths(target_acceptance))
        num_replicas = int(np.ceil(length[-1] / step - 1e-9)) + 1
    if length[-1] <= 0.0:
        return np.linspace(betas[0], betas[-1], max(num_replicas, 2))
    count = int(np.clip(num_replicas, min_replicas, max_replicas))
    new = np.interp(np.linspace(0.0, length[-1], count), length, betas)
    new[0], new[-1] = betas[0], betas[-1]
    if betas[0] <= 0.0 <= betas[-1]:
        new = np.append(new, 0.0)  # an added rung only shortens the pair it splits
    return np.unique(new)


def extend_ladder(betas, acceptance, *, top: bool = False, bottom: bool = False, factor: float = 2.0) -> np.ndarray:
    """The ladder with its top (and/or bottom) end pushed `factor` times further from zero, the new
    stretch filled with rungs as long as the end pair's (at least one), so respacing can place them."""
    betas = np.asarray(betas, np.float64)
    lengths = pair_lengths(acceptance)
    parts = [betas]
    if top:
        beta_max = betas[-1] if betas[-1] > 0 else 1.0
        parts.append(_stretch(betas[-1], beta_max * factor, betas[-1] - betas[-2], lengths[-1]))
    if bottom:
        beta_min = betas[0] if betas[0] < 0 else -1.0
        parts.append(_stretch(betas[0], beta_min * factor, betas[1] - betas[0], lengths[0]))
    return np.unique(np.concatenate(parts))


def _stretch(start: float, end: float, step: float, length: float) -> np.ndarray:
    """Rungs from `start` (excluded) to `end`: a pair of `length` >= 1 gets spacing step / length."""
    spacing = abs(step) / max(length, 1.0)
    count = int(np.clip(np.ceil(abs(end - start) / max(spacing, 1e-12)), 1, 64))
    return np.linspace(start, end, count + 1)[1:]
