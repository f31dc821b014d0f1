"""Precision, recall, ROC and AUPR over the input space, from per-bin ρ and r (paper §2.2, §2.3,
§3.2, Appendices A and B).

Every metric is a sum over output bins b of ρ_b (the fraction of ALL inputs whose output falls
in b, given as ln ρ_b because the interesting bins hold tiny fractions) weighted by r_b (the
precision of bin b: the weighted mean over its scored representative inputs of each input's
mean annotation score in [0, 1]; `bin_precision` is the one place that computes it):

    precision(λ) = Σ_{b positive} r_b ρ_b / Σ_{b positive} ρ_b              (Eq. 3)
    recall(λ)    ∝ Σ_{b positive} r_b ρ_b, reported as ln Σ r_b ρ_b         (Eq. 4)

"b positive" means the bin lies on the predicted-positive side of the threshold λ: z ≥ λ with
positive="high" (a logit), z ≤ λ with positive="low" (an NLL). Thresholds sit at bin edges.

Missing annotations: a bin with ρ_b > 0 and r_b = NaN has no annotated inputs; it is left out
of every sum (numerator and denominator), named in `excluded_bins` and in a
MissingAnnotationWarning. It is never scored 0: that would claim its inputs are all wrong.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Sequence

import numpy as np

from omnijax.sampling.histogram import validate_bin_edges
from omnijax.util.validation import check_positive_int


class MissingAnnotationWarning(UserWarning):
    """Some populated bins have no annotation (r = NaN) and were left out of the sums."""


class PrecisionRecall(NamedTuple):
    """A PR curve over the input space, one entry per threshold, strictest threshold first.

    thresholds: λ, a bin edge; the predicted positives are the bins on the positive side.
    precision: Eq. 3; NaN where no annotated, populated bin is predicted positive yet.
    log_recall: ln Σ r ρ over the predicted-positive bins (Eq. 4, unnormalised); -inf until
      some true positive weight is included. Non-decreasing along the array.
    log_predicted_positive: ln Σ ρ over the same bins (the denominator of Eq. 3).
    excluded_bins: indices of populated bins with r = NaN, left out of every sum.
    positive: "high" (z ≥ λ is positive) or "low" (z ≤ λ).
    """

    thresholds: np.ndarray
    precision: np.ndarray
    log_recall: np.ndarray
    log_predicted_positive: np.ndarray
    excluded_bins: np.ndarray
    positive: str


class ROC(NamedTuple):
    """ROC over the input space (Appendix A), strictest threshold first, from (0, 0) to (1, 1).

    thresholds: the B + 1 bin edges, from the one that predicts no bin positive to the one
      that predicts every bin positive.
    fpr: Σ (1 - r) ρ over predicted positives / the same sum over every bin.
    tpr: Σ r ρ over predicted positives / the same sum over every bin.
    excluded_bins: as in PrecisionRecall.
    """

    thresholds: np.ndarray
    fpr: np.ndarray
    tpr: np.ndarray
    excluded_bins: np.ndarray


class BinPrecision(NamedTuple):
    """r(z) per bin (`bin_precision`, the one definition), with its standard error and a percentile
    interval over samples and annotators. Arrays of shape (B,).

    r: weighted mean over the bin's scored samples of each sample's mean score; NaN where unknown.
    stderr: standard error of r over samples; NaN with fewer than two scored samples.
    ci_low, ci_high: the bootstrap interval; NaN where r is, or when no bootstrap was asked for.
    n_scores: scores counted (one per sample and annotator).
    n_scored: samples with at least one score.
    n_samples: samples given (rows), scored or not.
    replicates: (num_bootstrap, B) the replicates of r the interval was taken from (a Bayesian
      bootstrap of the samples with a pseudo-sample of unknown score, plus a draw of the
      annotators' leniency, see `bin_precision`), NaN where r is; None when no bootstrap was
      asked for.
      `precision_recall_band` turns the same replicates into a PR band.
    """

    r: np.ndarray
    stderr: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_scores: np.ndarray
    n_scored: np.ndarray
    n_samples: np.ndarray
    replicates: np.ndarray | None = None


class PRBand(NamedTuple):
    """A pointwise percentile band of a PR curve and an interval of its AUPR, from bootstrap
    replicates of r (`precision_recall_band`).

    thresholds: as in the PrecisionRecall of the point estimate.
    precision_low, precision_high: (T,) the band at each threshold; NaN where no replicate has a
      precision there.
    aupr_low, aupr_high: the interval of `aupr` (over each replicate's own log-recall span).
    num_replicates: replicates used; the others (num_dropped) are NaN in some bin the point
      estimate has annotations for (replicates from elsewhere; `bin_precision`'s are NaN only where r is), so their
      curve would leave that bin out.
    """

    thresholds: np.ndarray
    precision_low: np.ndarray
    precision_high: np.ndarray
    aupr_low: float
    aupr_high: float
    num_replicates: int
    num_dropped: int


class CrossModelNormalisation(NamedTuple):
    """Cross-model normalisation of two models' sampled output distributions (Eq. 5, 6).

    z_range: Z = [z-, z+]; X is the set of inputs that BOTH models map into Z.
    num_in_range: (2,) for each model, the (weighted) number of its samples with its own output
      in Z: Σ_z H_Mi(z) over Z.
    num_shared: (2,) of those, the (weighted) number that the other model also maps into Z:
      |X_Mi|.
    sampled_proportion: (2,) num_in_range / num_shared, Eq. 5 and 6 summed over Z: it
      estimates (number of inputs model i maps into Z) / |X|, a count in units of |X|.
    log_ratio: ln(sampled_proportion[0] / sampled_proportion[1]), model 1's count in Z
      relative to model 2's.
    """

    z_range: tuple[float, float]
    num_in_range: np.ndarray
    num_shared: np.ndarray
    sampled_proportion: np.ndarray
    log_ratio: float


class PRConvergence(NamedTuple):
    """PR curves from the first n annotated samples per bin, one row per n (Fig. 5).

    sample_counts: (N,) the n used, in the order given.
    thresholds: (T,) as in PrecisionRecall.
    precision, log_recall: (N, T).
    aupr: (N,) AUPR of each curve over `log_recall_range`, the log-recall range common to
      all N curves, so the numbers are comparable.
    """

    sample_counts: np.ndarray
    thresholds: np.ndarray
    precision: np.ndarray
    log_recall: np.ndarray
    aupr: np.ndarray
    log_recall_range: tuple[float, float]


# --------------------------------------------------------------------------------------------
# Precision, recall and ROC.


def precision_recall(bin_edges, log_rho, r, positive: str = "high") -> PrecisionRecall:
    """Precision (Eq. 3) and log unnormalised recall (Eq. 4) at every bin edge.

    Args:
      bin_edges: (B + 1,) strictly increasing edges.
      log_rho: (B,) ln of the fraction of all inputs in each bin; -inf for an empty bin.
      r: (B,) precision per bin in [0, 1]; NaN where a bin has no annotations (excluded, with
        a MissingAnnotationWarning when the bin is populated).
      positive: "high" if inputs with z ≥ λ are predicted positive, "low" if z ≤ λ.

    Returns a PrecisionRecall with B thresholds, from the strictest (one bin predicted positive)
    to the loosest (all bins): edges[B-1] … edges[0] for "high", edges[1] … edges[B] for "low".
    Raises ValueError naming the argument on bad input.
    """
    thresholds, log_rho_o, r_o, excluded = _prepare(bin_edges, log_rho, r, positive)
    log_tp, log_pp = _cumulative_log_sums(log_rho_o, r_o)
    return PrecisionRecall(thresholds[1:], _precision(log_tp, log_pp), log_tp, log_pp, excluded, positive)


def precision_recall_band(bin_edges, log_rho, r, replicates, positive: str = "high",
                          confidence: float = 0.95) -> PRBand:
    """The PR curve's band from bootstrap replicates of r: each replicate's curve by Eq. 3 and 4,
    then the percentile interval of precision at each threshold and of the AUPR.

    Args as for `precision_recall`, plus replicates: (R, B) replicates of r, e.g. the
    `replicates` of `bin_precision`, so that r's interval and this band come from one
    resampling. A bin with r = NaN is excluded from every replicate, as from the curve; a
    replicate that is NaN in a bin where r is known is dropped (counted in num_dropped).
    """
    thresholds, log_rho_o, _, _ = _prepare(bin_edges, log_rho, r, positive)
    r = np.asarray(r, np.float64)
    reps = np.asarray(replicates, np.float64)
    if reps.ndim != 2 or reps.shape[1] != len(r):
        raise ValueError(f"replicates must have shape (replicates, {len(r)}), one r per bin in each "
                         f"row, got shape {reps.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    bad = ~np.isnan(reps) & ~((reps >= 0) & (reps <= 1))
    if bad.any():
        raise ValueError(f"replicates must lie in [0, 1] or be NaN; got {reps[bad][:5].tolist()}")
    known = ~np.isnan(r)
    usable = ~np.isnan(reps[:, known]).any(axis=1)
    reps = np.where(known, reps, 0.0)[usable]
    if positive == "high":
        reps = reps[:, ::-1]
    log_tp, log_pp = _cumulative_log_sums(log_rho_o, reps)
    precision = _precision(log_tp, log_pp)
    tail = 100 * (1 - confidence) / 2
    low, high = np.full(len(log_pp), np.nan), np.full(len(log_pp), np.nan)
    aupr_low = aupr_high = math.nan
    if reps.shape[0]:
        some = np.isfinite(log_pp)
        low[some], high[some] = np.percentile(precision[:, some], [tail, 100 - tail], axis=0)
        areas = [aupr(PrecisionRecall(thresholds[1:], p, t, log_pp, np.zeros(0, np.int64), positive))
                 for p, t in zip(precision, log_tp)]
        aupr_low, aupr_high = (float(v) for v in np.percentile(areas, [tail, 100 - tail]))
    return PRBand(thresholds[1:], low, high, aupr_low, aupr_high, int(usable.sum()), int((~usable).sum()))


def roc_input_space(bin_edges, log_rho, r, positive: str = "high") -> ROC:
    """ROC over the input space (Appendix A): true positives weigh r ρ, false positives (1 - r) ρ.

    Both rates are normalised by their totals over all bins given (the sampled range): the
    input space's totals are unknown constants, so this is the ROC restricted to that range.
    A rate is NaN when its total is 0 (r ≡ 0 leaves no positives, r ≡ 1 no negatives).
    Arguments as for `precision_recall`.
    """
    thresholds, log_rho_o, r_o, excluded = _prepare(bin_edges, log_rho, r, positive)
    log_tp, _ = _cumulative_log_sums(log_rho_o, r_o)
    log_fp, _ = _cumulative_log_sums(log_rho_o, 1.0 - r_o)
    return ROC(thresholds, _rate(log_fp), _rate(log_tp), excluded)


def _rate(log_cumulative: np.ndarray) -> np.ndarray:
    """exp(cumulative - total), with a leading 0 for the threshold that predicts nothing."""
    total = log_cumulative[-1]
    if not np.isfinite(total):
        return np.full(len(log_cumulative) + 1, np.nan)
    return np.concatenate([[0.0], np.exp(np.minimum(log_cumulative - total, 0.0))])


def _prepare(bin_edges, log_rho, r, positive):
    """Validate; return the B + 1 thresholds and ln ρ, r ordered strictest bin first, with
    excluded bins' ln ρ set to -inf, and the excluded bin indices (after warning about them)."""
    edges = validate_bin_edges(bin_edges, "bin_edges")
    num_bins = len(edges) - 1
    log_rho = _vector("log_rho", log_rho, num_bins)
    r = _vector("r", r, num_bins)
    if np.isnan(log_rho).any():
        raise ValueError(f"log_rho must not be NaN; NaN in bins {_indices(np.isnan(log_rho))}")
    if (log_rho > 0).any():
        bad = log_rho > 0
        raise ValueError(f"log_rho must be <= 0 (ln of a fraction of all inputs); bins "
                         f"{_indices(bad)} hold {log_rho[bad].tolist()}")
    bad = ~np.isnan(r) & ~((r >= 0) & (r <= 1))
    if bad.any():
        raise ValueError(f"r must lie in [0, 1] (NaN for an unannotated bin); bins {_indices(bad)} "
                         f"hold {r[bad].tolist()}")
    if positive not in ("high", "low"):
        raise ValueError(f"positive must be 'high' or 'low', got {positive!r}")
    excluded = np.flatnonzero(np.isnan(r) & np.isfinite(log_rho))
    if excluded.size:
        warnings.warn(f"r is NaN (no annotations) in populated bins {excluded.tolist()}: they are "
                      f"excluded from precision and recall, not scored 0",
                      MissingAnnotationWarning, stacklevel=3)
    log_rho = np.where(np.isnan(r), -np.inf, log_rho)
    r = np.where(np.isnan(r), 0.0, r)
    if positive == "high":
        return edges[::-1], log_rho[::-1], r[::-1], excluded
    return edges, log_rho, r, excluded


def _vector(name: str, value, length: int) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), one value per bin "
                         f"(len(bin_edges) - 1), got shape {a.shape}")
    return a


def _indices(mask: np.ndarray) -> list[int]:
    return np.flatnonzero(mask).tolist()


def _cumulative_log_sums(log_rho: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running ln Σ weight·ρ and ln Σ ρ along the bins (the last axis), in log space (no underflow).
    `weight` may be (replicates, B): one running sum per row."""
    with np.errstate(divide="ignore"):
        log_weighted = np.log(weight) + log_rho
    return np.logaddexp.accumulate(log_weighted, axis=-1), np.logaddexp.accumulate(log_rho)


def _precision(log_tp: np.ndarray, log_pp: np.ndarray) -> np.ndarray:
    """Eq. 3 from the running log sums; NaN where nothing is predicted positive yet."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(log_pp), np.exp(np.minimum(log_tp - log_pp, 0.0)), np.nan)


# --------------------------------------------------------------------------------------------
# AUPR.


def aupr(pr: PrecisionRecall, log_recall_range=None) -> float:
    """Area under precision plotted against natural-log recall (§3.2).

    The paper integrates the PR curve "for the (log-scale) recall (x-axis)", with precision
    linearly interpolated at each recall. So the x-axis is ln recall: precision is interpolated
    linearly in ln recall between thresholds and the area is the exact integral of that
    piecewise-linear curve (the trapezoid rule). On this axis the unknown normalisation of the
    recall (Eq. 4) is a shift, which leaves the area unchanged; on a linear axis it would scale
    it. Units are nats of recall: divide by ln 10 for decades.

    Points with log_recall = -inf (no true positive yet) are not on the curve. A curve with
    fewer than two points has area 0. `log_recall_range` (lo, hi) restricts the integral; it
    must lie inside the curve's log-recall span.
    """
    x, y = _curve(pr)
    if log_recall_range is None:
        if len(x) < 2:
            return 0.0
        lo, hi = x[0], x[-1]
    else:
        lo, hi = (float(v) for v in log_recall_range)
        if not lo <= hi:
            raise ValueError(f"log_recall_range must be (lo, hi) with lo <= hi, got {log_recall_range}")
        if len(x) == 0 or lo < x[0] or hi > x[-1]:
            span = (x[0], x[-1]) if len(x) else "empty"
            raise ValueError(f"log_recall_range {log_recall_range} is outside the curve's "
                             f"log-recall span {span}")
    return _area(x, y, lo, hi)


def aupr_ratio(pr_a: PrecisionRecall, pr_b: PrecisionRecall) -> float:
    """AUPR of model a / AUPR of model b over their common log-recall range (§3.2).

    The range runs from the larger of the two minimum recalls to the smaller of the two
    maximum recalls; both areas are taken as in `aupr`. The recalls must be on one scale:
    both ρ's absolute fractions of the same input space, or put on one scale with
    `cross_model_log_offsets`. inf or NaN when model b's area is 0.
    """
    lo, hi = common_log_recall_range([pr_a, pr_b])
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(aupr(pr_a, (lo, hi)), aupr(pr_b, (lo, hi))))


def common_log_recall_range(curves: Sequence[PrecisionRecall]) -> tuple[float, float]:
    """(largest minimum, smallest maximum) finite log-recall of the curves; ValueError if empty."""
    spans = [_curve(pr)[0] for pr in curves]
    if any(len(x) == 0 for x in spans):
        raise ValueError("a curve has no point with recall > 0, so there is no common recall range")
    lo, hi = max(x[0] for x in spans), min(x[-1] for x in spans)
    if lo > hi:
        raise ValueError(f"the curves share no log-recall range: largest minimum {lo} > "
                         f"smallest maximum {hi}")
    return float(lo), float(hi)


def _curve(pr: PrecisionRecall) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(pr.log_recall)
    return np.asarray(pr.log_recall)[keep], np.asarray(pr.precision)[keep]


def _area(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the piecewise-linear curve through (x, y), x non-decreasing.

    Each segment is clipped to [lo, hi] with y interpolated at the cut; vertical segments
    (equal x: a bin that adds no true positives) have no width and add nothing.
    """
    x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
    a, b = np.clip(x0, lo, hi), np.clip(x1, lo, hi)
    width = x1 - x0
    safe = np.where(width > 0, width, 1.0)
    ya = y0 + (y1 - y0) * (a - x0) / safe
    yb = y0 + (y1 - y0) * (b - x0) / safe
    return float(np.sum((b - a) * (ya + yb) / 2))


# --------------------------------------------------------------------------------------------
# Precision per bin from annotation scores: THE definition of r(z).
#
# Every r(z) of omnijax — the annotation store's table, `python -m omnijax.annotation precision`,
# the PR curves of `experiments.pr` and their intervals — is computed by `bin_precision` below.


def bin_precision(scores_per_bin, *, weights_per_bin=None, num_bootstrap: int | None = 1000, seed=0,
                  confidence: float = 0.95) -> BinPrecision:
    """r(z) per bin: the weighted mean over the bin's scored samples of each sample's mean score.

    Args:
      scores_per_bin: a sequence, one entry per bin, each a 2-D array (samples, annotators)
        of scores in [0, 1], NaN where an annotator did not score a sample. A 1-D array is
        one annotator. A bin with no samples (shape (0,) or (0, A)) gets r = NaN.
      weights_per_bin: optional, per bin a (samples,) array of nonnegative sample weights:
        samples.npz's `weight`, the inclusion weights that make a bin's representatives a
        uniform sample of the bin's inputs. Equal weights when None.
      num_bootstrap: bootstrap replicates for the interval; None computes no interval
        (ci_low = ci_high = NaN), for callers that need r alone.
      seed: int or numpy Generator for the resampling.
      confidence: level of the percentile interval.

    The definition. A sample is scored when at least one annotator scored it; its score s_i is
    the mean of its annotators' scores. Each scored sample counts once, with its weight w_i:

        r_b = Σ_i w_i s_i / Σ_i w_i        over the scored samples i of bin b.

    So r_b estimates the fraction of the bin's inputs that are positive, whatever the number of
    annotators per sample (a sample scored by three people does not count three times). It is
    NaN where no sample is scored (or the scored samples' weights sum to 0): unknown, never 0.

    stderr is the standard error of that weighted mean over samples (ratio estimator:
    sqrt(n/(n-1) Σ w̃_i² (s_i - r)²), w̃ = w / Σ w; NaN with fewer than two scored samples).
    The interval is the percentile interval of `replicates`, which carry two errors of r:

    * the samples: each replicate reweights every bin's scored samples by a Bayesian bootstrap
      with one pseudo-sample of unknown score, the annotators held fixed (a sample keeps the mean
      of all its scores): the sampling error of a finite set of representatives, with the noise of
      each person's score on each sample. The pseudo-sample (`_replicates`) keeps a bin whose
      samples all score 1 (or 0) from a zero-width interval (21% of bins of 15 samples at
      r = 0.9 score all ones): with 0/1 scores the samples part's interval is exactly the mid-p
      interval of a proportion;
    * the annotators: the people who scored are a few of those who could have, each with a
      leniency of their own that shifts every bin they score. This part is not a bootstrap over
      the people: a bootstrap over n = 2 or 3 of them understates their spread ((n-1)/n of its
      variance, and a mean of n leniencies over their spread is t-distributed on n - 1 degrees
      of freedom, not normal: a 95% band from 3 people covered 87-91%), and their mean scores'
      spread also holds the noise of their scores on a bin's few samples, which the samples
      part counts already. `_annotator_effects` measures each one's leniency within samples (who
      scores the same sample higher), shared by all bins and each bin's own, with the noise of
      those fits taken out; each replicate adds a draw of the annotators' mean leniency with the
      law of a variance estimated from n people (Student's t on n - 1 degrees of freedom, the
      unbiased variance; the shared part by its generalized pivotal quantity, so what is noise
      drops out, the bins' own part shrunk by its pooled variance beyond noise). Its coverage:
      `python -m benchmarks.pr_band_coverage`. One draw per replicate for all bins keeps an
      annotator's leniency common to every bin of a replicate, as it is in the data, so the PR
      curves of the replicates (`precision_recall_band`) carry it, and their band and AUPR
      interval the same small-number law. Replicates are clipped to [0, 1].

    With one annotator in a bin (or a single column) there is no spread between annotators to
    measure: that bin's interval is the samples part alone and does NOT include how much another
    person would disagree. Leniency is measured on samples scored by two or more people: where
    the annotators shared out a bin's samples (one score each), the bin borrows the leniencies
    measured in the other bins, and with none measured anywhere the interval is the samples part.

    Column j is the same annotator in every bin (as `Store.bin_scores` gives them); a bin with
    fewer columns was not scored by the later ones (a 1-D array is annotator 0).
    """
    bins = _shared_columns(_check_scores_per_bin(scores_per_bin))
    weights = _check_weights_per_bin(weights_per_bin, bins)
    if num_bootstrap is not None:
        num_bootstrap = check_positive_int("num_bootstrap", num_bootstrap)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    n = len(bins)
    r, stderr, low, high = (np.full(n, np.nan) for _ in range(4))
    n_scores = np.array([int(np.sum(~np.isnan(s))) for s in bins], dtype=np.int64)
    n_scored = np.array([int(np.sum((~np.isnan(s)).any(axis=1))) for s in bins], dtype=np.int64)
    for b, s in enumerate(bins):
        if n_scores[b]:
            r[b], stderr[b] = _bin_r(s, weights[b])
    replicates = None
    if num_bootstrap is not None:
        replicates = _replicates(bins, weights, num_bootstrap, np.random.default_rng(seed))
        tail = 100 * (1 - confidence) / 2
        some = ~np.isnan(r) & ~np.isnan(replicates).all(axis=0)
        if some.any():   # (numpy's nanpercentile of no column is not two empty rows)
            low[some], high[some] = np.nanpercentile(replicates[:, some], [tail, 100 - tail], axis=0)
    return BinPrecision(r, stderr, low, high, n_scores, n_scored, np.array([s.shape[0] for s in bins]),
                        replicates)


def annotator_precision(scores_per_bin, *, weights_per_bin=None) -> list[BinPrecision]:
    """r(z) of each annotator alone (Fig. 6: one curve per person): `bin_precision` of column j of
    every bin, for each column j (columns as in `bin_precision`), without an interval."""
    bins = _shared_columns(_check_scores_per_bin(scores_per_bin))
    width = bins[0].shape[1] if bins else 0
    return [bin_precision([s[:, j] for s in bins], weights_per_bin=weights_per_bin, num_bootstrap=None)
            for j in range(width)]


def _scored_rows(scores: np.ndarray, weights: np.ndarray):
    """The scored samples of one bin: (their per-sample mean scores, their weights)."""
    known = ~np.isnan(scores)
    count = known.sum(axis=1)
    scored = count > 0
    means = np.where(known, scores, 0.0).sum(axis=1)[scored] / count[scored]
    return means, weights[scored]


def _bin_r(scores: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(r, stderr) of one bin's (samples, annotators) block, as defined in `bin_precision`."""
    means, w = _scored_rows(scores, weights)
    total = w.sum()
    if means.size == 0 or total <= 0:
        return math.nan, math.nan
    w = w / total
    # A weighted mean lies between the smallest and largest sample mean; clipping removes the rounding
    # that could otherwise put r a hair outside [0, 1] (e.g. 1.0000000000000002 for all-1 scores).
    r = float(np.clip(w @ means, means.min(), means.max()))
    n = means.size
    stderr = math.sqrt(n / (n - 1) * float(np.sum(w ** 2 * (means - r) ** 2))) if n > 1 else math.nan
    return r, stderr


def _replicates(bins: list[np.ndarray], weights: list[np.ndarray], num_bootstrap: int, rng) -> np.ndarray:
    """(num_bootstrap, B) replicates of r, as `bin_precision` describes, from checked bins of one width.

    Replicate k of bin b is clip(r*_kb + a_kb, 0, 1). r*_kb is the samples part: a Bayesian
    bootstrap of the bin's scored samples (the annotators held fixed) with one pseudo-sample of
    unknown score, 0 or 1 at even odds (v_kb), standing for the samples not drawn:

        r*_kb = (sum_i g_ki w_i s_i + c_b h_kb v_kb) / (sum_i g_ki w_i + c_b h_kb),

    s_i the sample's mean score, w_i its weight, g_ki ~ Gamma(alpha_b), h_kb ~ Gamma(phi)
    (`_binary_share`'s phi) and c_b = sum w^2 / sum w (the weight of an effective sample; c_b = w
    with equal weights). With 0/1 scores (phi = 1, alpha = 1) and equal weights r* is the even
    mixture of Beta(k, n - k + 1) and Beta(k + 1, n - k), whose percentile interval is exactly the
    mid-p interval of k positives in n: an all-ones bin of 15 samples gets [0.82, 1] instead of
    [1, 1] (and still covers a true r of 1). Scores averaged over annotators spread less than 0/1
    scores of the same mean (phi < 1); the pseudo-sample is then phi of a sample (one 0/1 trial),
    so it does not widen those bins much. Their spread is not fixed by their mean but estimated
    from the n samples, and a Bayesian bootstrap's variance of a mean, v / (n alpha + 1) (v the
    plug-in variance), falls short of the unbiased v / (n - 1) at alpha = 1 (interior bins of 15
    samples averaged over 10 annotators covered 0.93): alpha_b = max(1/2, 1 - 2 (1 - phi) / n_b)
    goes from 1 for 0/1 scores (mid-p, whose variance is a function of the mean) to (n - 2) / n,
    the unbiased variance, for continuous scores. Interior bins of many samples keep the
    nonparametric bootstrap's interval (they differ from it by O(1/n)).

    a_kb is the annotators' part,

        a_kb = scale_b (sqrt(max(0, u_kb - rho)) xi_k . shared_b + sqrt(kappa_b u_kb) xi_k . own_b),

    with `_annotator_effects`' shared and own effects, one standard normal xi_kj per replicate and
    annotator (the same in every bin) and u_kb = nu_b / chi2_k(nu_b), chi2_k(nu) the sum of the
    first nu of one row of squared standard normals per replicate (nested: bins of one nu share
    it). With rho = 0 and kappa_b = 1, a_kb is Student's t on nu_b degrees of freedom with the
    unbiased variance of the annotators' mean: the generalized pivotal quantity of a variance
    estimated from nu_b + 1 people. The shared effects keep, in each replicate, the variance that
    quantity draws for them less their noise (rho: the noise's share of their energy); the own
    effects, mostly noise in a bin of few samples, are shrunk by the pooled bin-specific variance
    (kappa_b, estimated from all bins) and drawn on t."""
    width = bins[0].shape[1] if bins else 0
    out = np.full((num_bootstrap, len(bins)), np.nan)
    if width == 0:
        return out
    rows = []
    for b, (scores, w) in enumerate(zip(bins, weights)):
        known = ~np.isnan(scores)
        scored = known.any(axis=1)
        if scored.any():
            known, s, w = known[scored], np.where(known, scores, 0.0)[scored], w[scored]
            rows.append((b, known, s, s.sum(axis=1) / known.sum(axis=1), w))
    phi = _binary_share([(means, w) for _, _, _, means, w in rows])
    raters = []
    for b, known, s, means, w in rows:
        total = w.sum()
        if total <= 0:
            continue
        alpha = max(0.5, 1.0 - 2.0 * (1.0 - phi) / len(w))
        g = rng.standard_gamma(alpha, (num_bootstrap, len(w))) * w
        num, den = g @ means, g.sum(axis=1)
        lo, hi = means.min(), means.max()
        if phi > 0:
            h = float(w @ w) / total * rng.standard_gamma(phi, num_bootstrap)
            num, den, lo, hi = num + h * (rng.random(num_bootstrap) < 0.5), den + h, 0.0, 1.0
        # Clipped to the values averaged, as in `_bin_r`: all-equal means and no pseudo-sample give that value.
        out[:, b] = np.clip(num / den, lo, hi)
        raters.append(_bin_annotators(b, known, s, means, w / total))
    shared, own, rho, kappa, scale, dof = _annotator_effects(raters, len(bins), width)
    if np.any(shared != 0) or np.any(own != 0):
        xi = rng.standard_normal((num_bootstrap, width))
        chi2 = np.cumsum(rng.standard_normal((num_bootstrap, int(dof.max()))) ** 2, axis=1)
        u = dof / chi2[:, dof - 1]
        part = np.sqrt(np.maximum(0.0, u - rho)) * (xi @ shared.T) + np.sqrt(kappa * u) * (xi @ own.T)
        out = np.clip(out + scale * part, 0.0, 1.0)
    return out


def _binary_share(bins: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """phi in [0, 1], the size of `_replicates`' pseudo-sample: how much of the spread of 0/1
    scores the samples' mean scores s have, pooled over the bins. A mean score in [0, 1] has
    variance at most m (1 - m), m its mean, with equality for 0/1 scores; means over several annotators who err
    independently spread less. Per bin, sigma^2 = v + se^2 (v = sum w~ (s - m)^2, se^2 `_bin_r`'s
    stderr^2) estimates the variance of s and m (1 - m) + se^2 estimates m (1 - m) without the
    bias of a plug-in m; phi is the ratio of their sums weighted by n - 1, exactly 1 for 0/1
    scores. Only bins of two or more samples with 0 < m < 1 say anything: all-ones bins leave phi
    to the others, and with none (say one bin, all ones) phi = 1, as for 0/1 scores."""
    spread = bound = 0.0
    for means, w in bins:
        n, total = len(means), w.sum()
        if n < 2 or total <= 0:
            continue
        w = w / total
        m = min(max(float(w @ means), 0.0), 1.0)
        dev2 = (means - m) ** 2
        se2 = n / (n - 1) * float(w ** 2 @ dev2)
        spread += (n - 1) * (float(w @ dev2) + se2)
        bound += (n - 1) * (m * (1 - m) + se2)
    return min(1.0, spread / bound) if bound > 0 else 1.0


class _BinAnnotators(NamedTuple):
    """One bin's annotators (`_bin_annotators`): the columns `cols` who scored in it, their shares
    `phi` of r, and its samples scored by two or more of them: mask `known` and scores less the
    sample's mean `centred` (rows, cols), weights `w` (those of all the bin's scored samples sum to
    1); `lap` = sum_i w_i (diag K_i - K_i K_i' / k_i) and `score` = sum_i w_i centred_i, the normal
    equations of the annotators' leniencies within samples (`_annotator_effects`)."""

    bin: int
    cols: np.ndarray
    phi: np.ndarray
    known: np.ndarray
    centred: np.ndarray
    w: np.ndarray
    lap: np.ndarray
    score: np.ndarray


def _bin_annotators(b: int, known: np.ndarray, s: np.ndarray, means: np.ndarray, w: np.ndarray) -> _BinAnnotators:
    """`_BinAnnotators` of bin b from its scored rows (mask, scores with NaN as 0, each row's mean
    score, weights summing to 1). phi_j = sum_i w_i K_ij / k_i (k_i: the scores of sample i): a
    leniency a_j of each annotator moves r by sum_j phi_j a_j."""
    count = known.sum(axis=1)
    cols = np.flatnonzero(known.any(axis=0))
    known, s = known[:, cols], s[:, cols]
    phi = w @ (known / count[:, None])
    multi = count >= 2
    k, w_m = known[multi].astype(np.float64), w[multi]
    centred = np.where(k > 0, s[multi] - means[multi, None], 0.0)
    lap = np.diag(w_m @ k) - (k * (w_m / count[multi])[:, None]).T @ k
    return _BinAnnotators(b, cols, phi, k, centred, w_m, lap, w_m @ centred)


def _annotator_effects(raters: list[_BinAnnotators], num_bins: int, width: int):
    """The annotators' effects on r without the noise of their scores: (shared, own (B, A), rho,
    kappa, scale, dof (B,)) for `_replicates`.

    Leniencies are measured within samples: the additive model y_ij = theta_i + a_j + e_ij over
    the samples scored by two or more (theta_i is free, so a sample scored by one person says
    nothing of their leniency, though it carries it into r: phi). alpha, each annotator's
    leniency shared by all bins, is its least-squares fit over every bin (alpha = L^+ sum_b
    score_b, L = sum_b lap_b); beta_b, bin b's own, the fit of the rest in bin b (beta_b =
    lap_b^+ (score_b - lap_b alpha): 0 for whoever is compared with no one there). Their effects on
    r_b relative to the annotators' mean: shared_b = Gamma_b alpha, own_b = Gamma_b beta_b,
    Gamma_b = diag(phi_b) - phi_b phi_b'. Both hold the noise of the scores of a few samples, which
    the samples part already counts. Its covariance over the sampling of the rows is linearised
    (row i moves a fit by lap^+ w_i eps_i, eps_i its residual; the sum of eps eps' times
    pairs / (pairs - rank), pairs = sum_i (k_i - 1) the comparisons and rank that of lap_b: the
    freedom the fit took, n/(n-1) with every sample scored by all; a bin whose fit leaves no
    freedom takes the residual variance pooled over the bins, on its own design). Then

    * rho = tr(Q Cov(alpha)) / alpha'Q alpha (Q = sum_b Gamma_b^2): the noise's share of the
      shared effects' energy, small when many bins average the noise out;
    * tau^2 = max(0, (sum_b |own_b|^2 / (1 - 1/B) - sum_b tr psi_b) / sum_b tr Gamma_b^2) with psi_b
      the noise of own_b: the pooled variance of the bin-specific leniency beyond its noise; and
      kappa_b = tau^2 tr Gamma_b^2 / ((1 - 1/B)(tr psi_b + tau^2 tr Gamma_b^2)), what of own_b is
      not noise (B: the bins with two or more annotators; own is 0 with fewer than two).

    scale_b = sqrt(S2 / tr Gamma_b^2) (S2 = sum_j phi_bj^2; tr Gamma_b^2 = S2 - 2 sum_j phi_bj^3 +
    S2^2) makes the variance of a draw of xi . shared_b the unbiased variance of sum_j phi_bj a_j
    for independent leniencies a_j: sqrt(n/(n-1)) with n equal shares. dof_b = (tr Gamma_b^2)^2 /
    tr Gamma_b^4 rounded, at least 1 (Satterthwaite's for that variance; n - 1 with n equal
    shares). A bin with one annotator has Gamma_b = 0: no annotator part."""
    shared, own = np.zeros((num_bins, width)), np.zeros((num_bins, width))
    kappa, scale, dof = np.zeros(num_bins), np.zeros(num_bins), np.ones(num_bins, np.int64)
    lap, score, q = np.zeros((width, width)), np.zeros(width), np.zeros((width, width))
    used = []
    for a in raters:
        s2 = float(a.phi @ a.phi)
        tr_gamma2 = s2 - 2 * float(np.sum(a.phi ** 3)) + s2 ** 2
        if tr_gamma2 <= 1e-12:
            continue
        scale[a.bin] = math.sqrt(s2 / tr_gamma2)
        gamma = np.diag(a.phi) - np.outer(a.phi, a.phi)
        gamma2 = gamma @ gamma
        dof[a.bin] = max(1, round(tr_gamma2 ** 2 / float(np.sum(gamma2 * gamma2))))
        ix = np.ix_(a.cols, a.cols)
        lap[ix] += a.lap
        score[a.cols] += a.score
        q[ix] += gamma2
        used.append((a, gamma, tr_gamma2))
    if not used:
        return shared, own, 1.0, kappa, scale, dof
    lap_inv, _ = _pinv_rank(lap)
    alpha = lap_inv @ score
    tr_gamma2 = np.array([t for _, _, t in used])
    fits, rss, dfs = [], 0.0, 0
    for a, gamma, _ in used:
        bin_inv, rank = _pinv_rank(a.lap)
        beta = bin_inv @ (a.score - a.lap @ alpha[a.cols])
        shared[a.bin, a.cols] = gamma @ alpha[a.cols]
        own[a.bin, a.cols] = gamma @ beta
        fit = alpha[a.cols] + beta
        resid = a.known * (a.centred - (fit - (a.known @ fit)[:, None] / a.known.sum(axis=1, keepdims=True)))
        pairs = int(a.known.sum()) - len(a.known)           # sum_i (k_i - 1): the within-sample comparisons
        df = pairs - rank                                    # what the fit leaves to the residual
        fits.append((bin_inv, resid, pairs, df))
        if df > 0:
            rss, dfs = rss + float(np.sum(resid ** 2)), dfs + df
    alpha_noise = np.zeros((width, width))
    tr_psi = np.zeros(len(used))
    for u, ((a, gamma, _), (bin_inv, resid, pairs, df)) in enumerate(zip(used, fits)):
        if df > 0:   # sandwich of the rows' influences, with the residual's lost freedom put back
            eps = resid * a.w[:, None]
            meat = (eps.T @ eps) * (pairs / df)
        else:        # no freedom left in this bin: the pooled residual variance, on this bin's design
            k = a.known
            meat = (rss / dfs if dfs else 0.0) * (np.diag((a.w ** 2) @ k) - (k * (a.w ** 2 / k.sum(axis=1))[:, None]).T @ k)
        alpha_noise[np.ix_(a.cols, a.cols)] += meat
        side = bin_inv @ gamma
        tr_psi[u] = float(np.sum(side * (meat @ side)))
    signal = float(alpha @ q @ alpha)
    rho = float(np.sum(q * (lap_inv @ alpha_noise @ lap_inv))) / signal if signal > 0 else 1.0
    if len(used) >= 2:
        idx = [a.bin for a, _, _ in used]
        keep = 1.0 - 1.0 / len(used)
        energy = float(np.sum(own[idx] ** 2))
        tau2 = max(0.0, (energy / keep - float(tr_psi.sum())) / float(tr_gamma2.sum()))
        bottom = keep * (tr_psi + tau2 * tr_gamma2)
        kappa[idx] = np.divide(tau2 * tr_gamma2, bottom, out=np.zeros(len(used)), where=bottom > 0)
    else:
        own[:] = 0.0
    return shared, own, rho, kappa, scale, dof


def _pinv_rank(m: np.ndarray) -> tuple[np.ndarray, int]:
    """Pseudo-inverse and rank of a symmetric positive semi-definite matrix (eigenvalues below
    1e-10 of the largest count as 0)."""
    if m.size == 0:
        return m.copy(), 0
    values, vectors = np.linalg.eigh(m)
    keep = values > 1e-10 * max(float(values.max()), 0.0)
    if not keep.any():
        return np.zeros_like(m), 0
    return (vectors[:, keep] / values[keep]) @ vectors[:, keep].T, int(keep.sum())


def _shared_columns(bins: list[np.ndarray]) -> list[np.ndarray]:
    """The bins padded with NaN columns to one width: column j is annotator j in every bin."""
    width = max((s.shape[1] for s in bins), default=0)
    return [np.pad(s, ((0, 0), (0, width - s.shape[1])), constant_values=np.nan) for s in bins]


def _check_weights_per_bin(weights_per_bin, bins: list[np.ndarray]) -> list[np.ndarray]:
    """Each bin's sample weights as a float (samples,) array (ones when None); ValueError naming the bin."""
    if weights_per_bin is None:
        return [np.ones(s.shape[0]) for s in bins]
    if len(weights_per_bin) != len(bins):
        raise ValueError(f"weights_per_bin must hold one array per bin ({len(bins)}), got {len(weights_per_bin)}")
    checked = []
    for b, (w, s) in enumerate(zip(weights_per_bin, bins)):
        w = np.asarray(w, np.float64)
        if w.shape != (s.shape[0],) or not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError(f"weights_per_bin[{b}] must hold {s.shape[0]} finite nonnegative weights, "
                             f"got shape {w.shape}")
        checked.append(w)
    return checked


def _check_scores_per_bin(scores_per_bin) -> list[np.ndarray]:
    """Each bin's scores as a float (samples, annotators) array; ValueError naming the bin."""
    if isinstance(scores_per_bin, np.ndarray) and scores_per_bin.ndim < 2:
        raise ValueError("scores_per_bin must be a sequence with one (samples, annotators) "
                         f"array per bin, got an array of shape {scores_per_bin.shape}")
    bins = []
    for b, scores in enumerate(scores_per_bin):
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim == 1:
            s = s[:, None]
        if s.ndim != 2:
            raise ValueError(f"scores_per_bin[{b}] must be 1-D (samples) or 2-D (samples, "
                             f"annotators), got shape {s.shape}")
        bad = ~np.isnan(s) & ~((s >= 0) & (s <= 1))
        if bad.any():
            raise ValueError(f"scores_per_bin[{b}] must hold scores in [0, 1] or NaN; got "
                             f"{s[bad][:5].tolist()}")
        bins.append(s)
    return bins


def pr_convergence(bin_edges, log_rho, scores_per_bin, sample_counts, *, weights_per_bin=None,
                   positive: str = "high") -> PRConvergence:
    """PR curves as the number of annotated samples per bin grows (Fig. 5).

    For each n in `sample_counts`, r_b is `bin_precision`'s r of bin b's first n scored samples
    (in the order given; a bin with fewer than n uses all it has) and the PR curve follows from
    `precision_recall`. Scores and weights are given as in `bin_precision`; a bin with no scores
    is excluded as usual. Each curve's AUPR is taken over the log-recall range common to all
    curves.
    """
    bins = _check_scores_per_bin(scores_per_bin)
    weights = _check_weights_per_bin(weights_per_bin, bins)
    counts = np.asarray(sample_counts)
    if (counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer)
            or (counts < 1).any()):
        raise ValueError(f"sample_counts must be a non-empty list of positive ints, got {sample_counts!r}")
    scored = [(~np.isnan(s)).any(axis=1) for s in bins]
    bins = [s[keep] for s, keep in zip(bins, scored)]
    weights = [w[keep] for w, keep in zip(weights, scored)]
    curves = []
    for n in counts:
        r = np.array([_bin_r(s[:n], w[:n])[0] for s, w in zip(bins, weights)])
        curves.append(precision_recall(bin_edges, log_rho, r, positive))
    lo, hi = common_log_recall_range(curves)
    return PRConvergence(counts, curves[0].thresholds, np.stack([c.precision for c in curves]),
                         np.stack([c.log_recall for c in curves]),
                         np.array([aupr(c, (lo, hi)) for c in curves]), (lo, hi))


# --------------------------------------------------------------------------------------------
# Cross-model normalisation (Eq. 5, 6; Appendix B).


def cross_model_normalisation(outputs_1, outputs_2, z_range, *, weights_1=None,
                              weights_2=None) -> CrossModelNormalisation:
    """Relative normalisation of two models' output distributions over a shared range Z (§2.3).

    Args:
      outputs_1: (n1, 2) model 1's samples evaluated by both models: column 0 is model 1's
        output, column 1 model 2's. Rows whose model-1 output is outside Z are ignored.
      outputs_2: (n2, 2) model 2's samples, same columns (model 1's output, then model 2's).
        Rows whose model-2 output is outside Z are ignored.
      z_range: (z-, z+), the closed range Z shared by both models.
      weights_1, weights_2: optional non-negative weight per sample. The paper's samples are
        uniform over the inputs a model maps into Z (weight 1, the default). Representatives
        kept per bin instead of in proportion to ρ need weight ρ_b / (samples of bin b).

    Each model's samples in Z estimate which fraction of its inputs in Z lie in X (both models
    in Z); its inverse, Eq. 5/6 summed over Z, is the model's count in Z in units of |X|. X is
    the same set for both models, so the two proportions compare like the true counts.
    """
    lo, hi = _check_z_range(z_range)
    counted, shared = [], []
    for i, (outputs, weights) in enumerate([(outputs_1, weights_1), (outputs_2, weights_2)]):
        name = f"outputs_{i + 1}"
        z = np.asarray(outputs, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != 2:
            raise ValueError(f"{name} must have shape (n, 2): (model 1's output, model 2's), got {z.shape}")
        if np.isnan(z).any():
            raise ValueError(f"{name} must not hold NaN")
        w = np.ones(len(z)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(z),) or not np.all(w >= 0):
            raise ValueError(f"weights_{i + 1} must be {len(z)} non-negative numbers, one per row of {name}")
        inside = (z >= lo) & (z <= hi)
        own, both = inside[:, i], inside.all(axis=1)
        counted.append(w[own].sum())
        shared.append(w[both].sum())
        if shared[-1] == 0:
            raise ValueError(f"no sample in {name} is mapped into z_range {(lo, hi)} by both models, "
                             f"so the models cannot be normalised against each other; sample more "
                             f"or widen z_range")
    counted, shared = np.array(counted), np.array(shared)
    proportion = counted / shared
    return CrossModelNormalisation((lo, hi), counted, shared, proportion,
                                   float(np.log(proportion[0]) - np.log(proportion[1])))


def cross_model_log_offsets(norm: CrossModelNormalisation, bin_edges_1, log_rho_1, bin_edges_2,
                            log_rho_2) -> np.ndarray:
    """Offsets (2,) that put both models' ln ρ, and so their log-recalls, in units of |X|.

    ln ρ̂_i = ln ρ_i + offset_i is Eq. 5/6 per bin: ρ_i rescaled so that its sum over Z equals
    norm.sampled_proportion[i]. Each ln ρ_i may carry any constant of its own (a sampler that
    does not know the absolute fraction); the offsets remove both. Compare models with
    `pr_i._replace(log_recall=pr_i.log_recall + offset_i)`. Z must start and end on bin edges
    of each model; the bins between them are the ones summed.
    """
    offsets = []
    for i, (edges, log_rho) in enumerate([(bin_edges_1, log_rho_1), (bin_edges_2, log_rho_2)]):
        edges = validate_bin_edges(edges, f"bin_edges_{i + 1}")
        log_rho = np.asarray(log_rho, dtype=np.float64)
        if log_rho.shape != (len(edges) - 1,) or np.isnan(log_rho).any():
            raise ValueError(f"log_rho_{i + 1} must be {len(edges) - 1} non-NaN values, one per bin")
        first, last = (_edge_at(edges, z, norm.z_range, i) for z in norm.z_range)
        log_in_z = np.logaddexp.reduce(log_rho[first:last])
        if not np.isfinite(log_in_z):
            raise ValueError(f"log_rho_{i + 1} has no weight inside z_range {norm.z_range}")
        offsets.append(math.log(norm.sampled_proportion[i]) - log_in_z)
    return np.array(offsets)


def _edge_at(edges: np.ndarray, z: float, z_range, model: int) -> int:
    hit = np.flatnonzero(np.isclose(edges, z, rtol=1e-9, atol=1e-12))
    if hit.size == 0:
        raise ValueError(f"z_range {z_range} must start and end on bin edges; {z} is not an edge "
                         f"of bin_edges_{model + 1}")
    return int(hit[0])


def _check_z_range(z_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in z_range)
    except (TypeError, ValueError) as err:
        raise ValueError(f"z_range must be (z-, z+), got {z_range!r}") from err
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"z_range must be finite with z- < z+, got {z_range!r}")
    return lo, hi
