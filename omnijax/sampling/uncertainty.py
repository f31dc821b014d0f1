"""Error bars of ln rho from a replica-exchange run that include what a bootstrap over groups
cannot see: a bias that every group shares.

All groups run the same ladder for the same burn-in. Half of them start from the middle of the
ladder and half from its ends (`estimate.opposite_starts`), so a transient of opposite sign
shows between groups; but whatever part of it the two kinds share, every group is wrong in the
same direction there, and the spread between groups (the bootstrap) misses it. A transient shows
as drift: the first half of the kept records is further from equilibrium than the second. Per
bin b (all in absolute ln rho):

* s_boot: standard deviation of ln rho over bootstrap resamples of the G groups, times
  sqrt(G / (G - 1)) (the bootstrap variance of a mean of G units is (G - 1)/G of the unbiased one).
* D = ln rho(second half) - ln rho(first half), each half its own MBAR solve; its noise s_D from
  the same resamples (both halves resampled with the same groups, so the pairing is kept).
* bias^2 = max(0, D^2 - s_D^2): the part of the drift beyond its own noise (an unbiased estimate
  of (E D)^2; zero on average for an equilibrated run, where E D = 0).

Why |E D| bounds the full run's bias: with an equilibration transient b(t) of one sign decaying
in time, the bias of an average over records is the average of b, so the full run's bias is
b = (b1 + b2) / 2 with b1, b2 the halves' biases and E D = b2 - b1. If the transient shrinks by at
least 3x from the first half to the second (|b2| <= |b1| / 3: a relaxation time up to ~0.9 of a
half's length), then |D|/2 <= |b| <= |E D|. A slower transient is not covered; it shows as the
diagnostics' drift warning and needs a longer run.

The few groups: s_boot is itself estimated from G groups, so (error / s_boot) follows a Student t
with G - 1 degrees of freedom, not a normal law. At G = 8, +-2 s_boot covers 91.5% instead of 95%,
and a bin beyond 4 s_boot has probability 0.5% instead of 0.006%. The reported s_boot is
therefore multiplied by t_{G-1}(97.5%) / 1.96 (1.21 at G = 8, 1.09 at G = 16, 1.04 at G = 32), so
that +-1.96 reported standard errors cover 95% of a normal bootstrap statistic.

The total: stderr^2 = s_boot^2 + bias^2; the 95% interval is the bootstrap percentile interval
(scaled by the same factors), each side widened in quadrature by 1.96 x bias. A bin filled by the full run but empty in one half
gets an infinite bias (its drift cannot be measured), so an infinite stderr.

Cost: every resample is three MBAR solves (the whole run and each half, each half on its own
samples), each warm-started at the full data's solution and iterated by chord steps with the full
data's Hessian (`reweighting._newton_step`): a step then costs one pass over the samples instead of
that pass and an N x R x R product. Above `max_resampled` samples the resamples (and the halves) use
every k-th record only, k the smallest thinning that fits, while ln rho itself comes from all
records. Records are non-negatively autocorrelated, so a thinned average varies at least as much as
the full one: the bootstrap part errs on the wide side, and the interval is the thinned one's
offsets about the full estimate. On the default MNIST MLP run's records (1,062,400 samples, 83
rungs, 16 groups; BUILD_NOTES.md) the 100 resamples take ~45 s, against ~210 s before the halves were
solved on their own samples and by chord steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from omnijax.sampling.diagnostics import t_two_sided
from omnijax.sampling.histogram import bin_counts
from omnijax.sampling.bootstrap import bootstrap_replicates
from omnijax.sampling.reweighting import log_rho_from_samples, log_rho_from_weights

Z_95 = 1.959964


class LogRhoErrorBars(NamedTuple):
    """ln rho per bin with error bars (arrays of shape (num_bins,)); see the module docstring."""

    log_rho: np.ndarray
    stderr: np.ndarray            # sqrt(stderr_bootstrap^2 + bias^2)
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_samples: np.ndarray
    stderr_bootstrap: np.ndarray  # spread between groups alone (small-G corrected)
    bias: np.ndarray              # drift between the halves beyond its noise (NaN: not split)
    drift: np.ndarray             # D = ln rho(second half) - ln rho(first half)
    drift_stderr: np.ndarray      # s_D
    bootstrap_seconds: float
    bootstrap_iterations: float   # mean MBAR iterations per replicate solve
    # The full data's MBAR solve as `reweighting.mbar_log_weights` of the records (flattened) gives it,
    # when the bootstrap solved all records (warm start, not thinned); else None.
    log_w: np.ndarray | None = None
    free_energies: np.ndarray | None = None


MAX_RESAMPLED = 200_000  # above this many records the bootstrap runs on every k-th record


def thinning(shape, max_resampled: int = MAX_RESAMPLED) -> int:
    """k of the every-k-th-record bootstrap of records of `shape` (records, groups, walkers); 1: all."""
    thin = max(1, -(-math.prod(shape) // max_resampled))
    return thin if thin > 1 and shape[0] // thin >= 2 else 1


def finite_std(replicates: np.ndarray) -> np.ndarray:
    """Standard deviation over axis 0 of the finite entries; +inf where fewer than 2 are finite."""
    finite = np.isfinite(replicates)
    count = finite.sum(axis=0)
    values = np.where(finite, replicates, 0.0)
    mean = values.sum(axis=0) / np.maximum(count, 1)
    squares = np.where(finite, (values - mean) ** 2, 0.0).sum(axis=0)
    return np.where(count >= 2, np.sqrt(squares / np.maximum(count - 1, 1)), np.inf)


def percentile_interval(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% order statistics over axis 0 (an empty bin's -inf counts as lowest)."""
    return (np.percentile(replicates, 2.5, axis=0, method="lower"),
            np.percentile(replicates, 97.5, axis=0, method="higher"))


def student_factor(groups: int) -> float:
    """t_{G-1}(97.5%) / 1.96: how much wider a standard error estimated from G groups must be
    for +-1.96 of it to cover 95% (module docstring)."""
    if groups < 2:
        raise ValueError(f"a bootstrap over groups needs at least 2 groups, got {groups}")
    return t_two_sided(groups - 1, 0.05) / Z_95


def drift_bias(halves: np.ndarray, replicate_halves: np.ndarray, small_g: float) -> tuple:
    """(D, s_D, bias) per bin from the halves' full-data ln rho (2, bins) and their paired
    resamples (B, 2, bins); `small_g` = G / (G - 1) scales the resampled variance."""
    with np.errstate(invalid="ignore"):
        drift = halves[1] - halves[0]
        replicate_drift = replicate_halves[:, 1] - replicate_halves[:, 0]
    drift_stderr = finite_std(np.where(np.isfinite(replicate_drift), replicate_drift, np.nan)) * np.sqrt(small_g)
    with np.errstate(invalid="ignore"):
        bias = np.sqrt(np.maximum(drift ** 2 - drift_stderr ** 2, 0.0))
    one_half_only = np.isfinite(halves).sum(axis=0) == 1
    return drift, drift_stderr, np.where(one_half_only, np.inf, np.where(np.isfinite(drift), bias, 0.0))


def widen(log_rho, ci_low, ci_high, scale, bias) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval scaled about log_rho by `scale`, each side widened in quadrature by 1.96 x bias."""
    with np.errstate(invalid="ignore"):
        low = log_rho - np.hypot(scale * (log_rho - ci_low), Z_95 * bias)
        high = log_rho + np.hypot(scale * (ci_high - log_rho), Z_95 * bias)
    empty = ~np.isfinite(log_rho)
    return np.where(empty | np.isneginf(ci_low), -np.inf, low), np.where(empty, -np.inf, high)


def record_halves(num_records: int) -> np.ndarray:
    """0 for the first half of the records, 1 for the second (the middle record goes second)."""
    return (np.arange(num_records) >= num_records // 2).astype(np.int32)


def log_rho_with_error_bars(z, slot, betas, bin_edges, key, *, num_bootstrap: int = 100,
                            warm_start: bool = True, max_resampled: int = MAX_RESAMPLED,
                            progress: bool = False, log_w=None) -> LogRhoErrorBars:
    """ln rho of the kept records z, slot (records, G groups, walkers) with the error bars of the
    module docstring. One bootstrap draws the groups for the full data and both halves at once;
    above `max_resampled` samples it runs on every k-th record (module docstring). progress: the
    solves report on stderr (`bootstrap.bootstrap_replicates`). log_w: the records' MBAR log-weights
    (`reweighting.mbar_log_weights` of z, slot flattened), when the caller has them: a thinned run's
    ln rho of all records is then binned from them instead of solved for again."""
    z, slot = np.asarray(z), np.asarray(slot)
    if z.ndim != 3 or slot.shape != z.shape:
        raise ValueError(f"z and slot must be (records, groups, walkers) arrays of one shape, got "
                         f"{z.shape} and {slot.shape}")
    thin = thinning(z.shape, max_resampled)
    if thin > 1:
        bars = log_rho_with_error_bars(z[::thin], slot[::thin], betas, bin_edges, key, num_bootstrap=num_bootstrap,
                                       warm_start=warm_start, max_resampled=z.size, progress=progress)
        return _recentred(bars, z, slot, betas, bin_edges, log_w)
    records, groups, _ = z.shape
    group = np.broadcast_to(np.arange(groups)[None, :, None], z.shape)
    split = records >= 2
    part = np.broadcast_to(record_halves(records)[:, None, None], z.shape).reshape(-1) if split else None
    boot = bootstrap_replicates(z.reshape(-1), slot.reshape(-1), group.reshape(-1), betas, bin_edges, key,
                                num_bootstrap=num_bootstrap, part=part, warm_start=warm_start,
                                progress=progress)
    small_g = groups / (groups - 1)
    few_groups = student_factor(groups)
    log_rho = np.asarray(boot.log_rho[0], np.float64)
    replicates = np.asarray(boot.replicates[:, 0], np.float64)
    stderr_boot = finite_std(replicates) * np.sqrt(small_g) * few_groups
    num_bins = log_rho.size
    if split:
        drift, drift_stderr, bias = drift_bias(boot.log_rho[1:3].astype(np.float64),
                                               boot.replicates[:, 1:3].astype(np.float64), small_g)
    else:
        drift = drift_stderr = bias = np.full(num_bins, np.nan)
    bias_term = np.where(np.isnan(bias), 0.0, bias)
    stderr = np.where(np.isfinite(log_rho), np.hypot(stderr_boot, bias_term), np.inf)
    ci_low, ci_high = widen(log_rho, *percentile_interval(replicates), np.sqrt(small_g) * few_groups, bias_term)
    return LogRhoErrorBars(log_rho, stderr, ci_low, ci_high, np.asarray(boot.n_samples), stderr_boot, bias,
                           drift, drift_stderr, boot.seconds, float(np.mean(boot.iterations)), boot.log_w,
                           boot.free_energies)


def without_error_bars(log_rho: np.ndarray, n_samples: np.ndarray) -> LogRhoErrorBars:
    """ln rho and its counts with no error bars (num_bootstrap = 0: a pilot that reads only the point
    estimate); every error-bar field is NaN, which says "not computed", never "exact"."""
    nan = np.full(np.shape(log_rho), np.nan)
    return LogRhoErrorBars(np.asarray(log_rho, np.float64), nan, nan, nan, np.asarray(n_samples), nan, nan, nan,
                           nan, 0.0, float("nan"))


def _recentred(bars: LogRhoErrorBars, z, slot, betas, bin_edges, log_w=None) -> LogRhoErrorBars:
    """Error bars of a thinned bootstrap about ln rho (and counts) of all records (binned from their
    log-weights log_w when given)."""
    if log_w is None:
        log_rho = np.asarray(log_rho_from_samples(z.reshape(-1), slot.reshape(-1), betas, bin_edges), np.float64)
    else:
        log_rho = log_rho_from_weights(log_w, z, bin_edges)
    n_samples = bin_counts(z, bin_edges)
    with np.errstate(invalid="ignore"):
        ci_low = np.where(np.isneginf(bars.ci_low), -np.inf, log_rho + (bars.ci_low - bars.log_rho))
        ci_high = log_rho + (bars.ci_high - bars.log_rho)
    filled = np.isfinite(log_rho)
    both = filled & np.isfinite(bars.log_rho)
    stderr = np.where(both, bars.stderr, np.where(filled, np.inf, bars.stderr))
    return bars._replace(log_rho=log_rho, stderr=stderr, ci_low=np.where(both, ci_low, np.where(filled, -np.inf, ci_low)),
                         ci_high=np.where(both, ci_high, np.where(filled, np.inf, -np.inf)), n_samples=n_samples,
                         log_w=None, free_energies=None)  # the thinned records' solve, not all records
