"""Input-space metrics: precision/recall, ROC, AUPR, r(z) with bootstrap intervals,
cross-model normalisation and PR convergence, checked by hand, by properties and against an
exactly enumerated space."""

import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import omnijax as oj
from omnijax import evaluation as ev
from omnijax.evaluation import pr_plots as evaluation_plots
from tests.models import random_mlp

# --------------------------------------------------------------------------------------------
# Strategies: B bins with edges, ln ρ (possibly -inf) and r (possibly NaN).


@st.composite
def binned(draw, allow_nan_r=True, max_bins=12):
    num_bins = draw(st.integers(1, max_bins))
    steps = draw(st.lists(st.floats(0.01, 5.0), min_size=num_bins, max_size=num_bins))
    start = draw(st.floats(-20, 20))
    edges = start + np.concatenate([[0.0], np.cumsum(steps)])
    log_rho = np.array(draw(st.lists(st.one_of(st.floats(-60, 0), st.just(-np.inf)),
                                     min_size=num_bins, max_size=num_bins)))
    r_values = st.floats(0, 1) | st.just(np.nan) if allow_nan_r else st.floats(0, 1)
    r = np.array(draw(st.lists(r_values, min_size=num_bins, max_size=num_bins)))
    return edges, log_rho, r


POSITIVE = st.sampled_from(["high", "low"])
PROPERTY = settings(max_examples=150, deadline=None)


def quiet_pr(*args, **kwargs):
    """precision_recall with MissingAnnotationWarning silenced (property tests draw NaN r)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ev.MissingAnnotationWarning)
        return ev.precision_recall(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Precision and recall.


def test_hand_computed_three_bins():
    edges = [0.0, 1.0, 2.0, 3.0]
    rho = np.array([0.5, 0.3, 0.2])
    r = np.array([0.1, 0.5, 0.9])
    pr = ev.precision_recall(edges, np.log(rho), r, positive="high")
    np.testing.assert_array_equal(pr.thresholds, [2.0, 1.0, 0.0])
    tp = np.array([0.2 * 0.9, 0.2 * 0.9 + 0.3 * 0.5, 0.2 * 0.9 + 0.3 * 0.5 + 0.5 * 0.1])
    np.testing.assert_allclose(pr.precision, tp / np.array([0.2, 0.5, 1.0]), rtol=1e-12)
    np.testing.assert_allclose(pr.log_recall, np.log(tp), rtol=1e-12)
    low = ev.precision_recall(edges, np.log(rho), r, positive="low")
    np.testing.assert_array_equal(low.thresholds, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(low.precision, [0.1, (0.05 + 0.15) / 0.8, 0.38], rtol=1e-12)


def test_tiny_rho_stays_finite_in_log_space():
    """ρ of 1e-300 and below would underflow as a fraction; the log-space sums do not."""
    log_rho = np.array([-800.0, -700.0, -690.0])
    pr = ev.precision_recall([0, 1, 2, 3], log_rho, [0.5, 0.5, 1.0])
    expected = np.logaddexp.accumulate(np.array([-690.0, -700 + math.log(0.5), -800 + math.log(0.5)]))
    np.testing.assert_allclose(pr.log_recall, expected, rtol=1e-14)
    assert np.all((pr.precision > 0.5) & (pr.precision <= 1))


@PROPERTY
@given(binned(), POSITIVE)
def test_precision_in_unit_interval(case, positive):
    pr = quiet_pr(*case, positive=positive)
    defined = np.isfinite(pr.log_predicted_positive)
    assert np.all((pr.precision[defined] >= 0) & (pr.precision[defined] <= 1))
    assert np.all(np.isnan(pr.precision[~defined])), "precision is undefined only with no positives"


@PROPERTY
@given(binned(), POSITIVE)
def test_log_recall_non_decreasing_as_threshold_loosens(case, positive):
    pr = quiet_pr(*case, positive=positive)
    assert np.all(np.diff(pr.log_recall[np.isfinite(pr.log_recall)]) >= 0)
    assert np.all(np.isneginf(pr.log_recall[:np.argmax(np.isfinite(pr.log_recall))]))
    assert np.all(np.diff(pr.log_predicted_positive[np.isfinite(pr.log_predicted_positive)]) >= 0)


@PROPERTY
@given(binned(allow_nan_r=False), POSITIVE)
def test_perfect_annotator_gives_precision_one(case, positive):
    edges, log_rho, _ = case
    pr = ev.precision_recall(edges, log_rho, np.ones_like(log_rho), positive=positive)
    defined = np.isfinite(pr.log_predicted_positive)
    np.testing.assert_array_equal(pr.precision[defined], 1.0)
    np.testing.assert_array_equal(pr.log_recall, pr.log_predicted_positive)


@PROPERTY
@given(binned(), POSITIVE, st.floats(-40, 0))
def test_constant_in_log_rho_shifts_log_recall_only(case, positive, c):
    edges, log_rho, r = case
    pr = quiet_pr(edges, log_rho, r, positive=positive)
    shifted = quiet_pr(edges, log_rho + c, r, positive=positive)
    finite = np.isfinite(pr.log_recall)
    np.testing.assert_array_equal(np.isfinite(shifted.log_recall), finite)
    np.testing.assert_allclose(shifted.log_recall[finite], pr.log_recall[finite] + c, rtol=0, atol=1e-10)
    np.testing.assert_allclose(shifted.precision, pr.precision, rtol=0, atol=1e-12)


@PROPERTY
@given(binned())
def test_low_equals_high_on_mirrored_bins(case):
    edges, log_rho, r = case
    low = quiet_pr(edges, log_rho, r, positive="low")
    high = quiet_pr(-edges[::-1], log_rho[::-1], r[::-1], positive="high")
    np.testing.assert_array_equal(low.thresholds, -high.thresholds)
    np.testing.assert_array_equal(low.precision, high.precision)
    np.testing.assert_array_equal(low.log_recall, high.log_recall)


def test_unannotated_bins_are_excluded_and_reported_not_zero():
    edges = np.arange(5.0)
    log_rho = np.log([0.4, 0.3, 0.2, 0.1])
    r = np.array([0.2, np.nan, 0.6, np.nan])
    with pytest.warns(ev.MissingAnnotationWarning, match=r"bins \[1, 3\]"):
        pr = ev.precision_recall(edges, log_rho, r)
    np.testing.assert_array_equal(pr.excluded_bins, [1, 3])
    # Excluded = as if those bins held no inputs at all ...
    without = ev.precision_recall(edges, [math.log(0.4), -np.inf, math.log(0.2), -np.inf],
                                  [0.2, 0.0, 0.6, 0.0])
    np.testing.assert_array_equal(pr.precision, without.precision)
    np.testing.assert_array_equal(pr.log_recall, without.log_recall)
    assert np.isnan(pr.precision[0]), "only the unannotated top bin is positive: undefined"
    np.testing.assert_allclose(pr.precision[-1], (0.12 + 0.08) / 0.6)
    # ... never as if their inputs were all wrong.
    as_zero = ev.precision_recall(edges, log_rho, np.nan_to_num(r))
    assert as_zero.precision[-1] < pr.precision[-1] - 0.1


def test_empty_unannotated_bin_is_not_reported():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pr = ev.precision_recall([0, 1, 2], [-np.inf, -1.0], [np.nan, 0.5])
    assert pr.excluded_bins.size == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(r=[0.5, 1.2, -0.1]), r"r must lie in \[0, 1\].*bins \[1, 2\]"),
    (dict(r=[0.5, np.inf, 0.1]), r"r must lie.*bins \[1\]"),
    (dict(r=[0.5, 0.5]), r"r must have shape \(3,\)"),
    (dict(log_rho=[-1.0, -2.0]), r"log_rho must have shape \(3,\)"),
    (dict(bin_edges=[0.0, 2.0, 1.0, 3.0]), r"bin_edges must be strictly increasing"),
    (dict(bin_edges=[0.0, 1.0, 2.0]), r"log_rho must have shape \(2,\)"),
    (dict(log_rho=[-1.0, 0.5, -2.0]), r"log_rho must be <= 0.*bins \[1\]"),
    (dict(log_rho=[-1.0, np.nan, -2.0]), r"log_rho must not be NaN.*bins \[1\]"),
    (dict(positive="up"), r"positive must be 'high' or 'low'"),
])
def test_bad_input_names_the_argument(kwargs, match):
    args = dict(bin_edges=[0.0, 1.0, 2.0, 3.0], log_rho=[-1.0, -2.0, -3.0], r=[0.5, 0.5, 0.5],
                positive="high")
    args.update(kwargs)
    for fn in (ev.precision_recall, ev.roc_input_space):
        with pytest.raises(ValueError, match=match):
            fn(**args)


# --------------------------------------------------------------------------------------------
# ROC (Appendix A).


@PROPERTY
@given(binned(allow_nan_r=False), POSITIVE)
def test_roc_tpr_is_normalised_recall(case, positive):
    edges, log_rho, r = case
    roc = ev.roc_input_space(edges, log_rho, r, positive=positive)
    pr = ev.precision_recall(edges, log_rho, r, positive=positive)
    np.testing.assert_array_equal(roc.thresholds[1:], pr.thresholds)
    if np.isfinite(pr.log_recall[-1]):
        np.testing.assert_allclose(roc.tpr, np.concatenate([[0], np.exp(pr.log_recall - pr.log_recall[-1])]),
                                   rtol=1e-9, atol=1e-300)
        assert roc.tpr[0] == 0 and roc.tpr[-1] == 1
    if np.any((r < 1) & np.isfinite(log_rho)):  # some false-positive weight
        assert roc.fpr[0] == 0 and roc.fpr[-1] == 1
        assert np.all(np.diff(roc.fpr) >= 0)


def test_roc_hand_computed_and_perfect_separation():
    edges = [-2.0, -1.0, 0.0, 1.0, 2.0]
    rho = np.array([0.4, 0.3, 0.2, 0.1])
    r = np.array([0.0, 0.0, 1.0, 1.0])  # a perfect model: every input above 0 is right
    roc = ev.roc_input_space(edges, np.log(rho), r)
    np.testing.assert_array_equal(roc.thresholds, [2.0, 1.0, 0.0, -1.0, -2.0])
    np.testing.assert_allclose(roc.tpr, [0, 1 / 3, 1, 1, 1])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0, 3 / 7, 1])
    chance = ev.roc_input_space(edges, np.log(rho), [0.5, 0.5, 0.5, 0.5])  # r constant
    np.testing.assert_allclose(chance.fpr, chance.tpr)


# --------------------------------------------------------------------------------------------
# AUPR (§3.2).


def pr_from_points(log_recall, precision):
    n = len(log_recall)
    return ev.PrecisionRecall(np.arange(n, dtype=float), np.asarray(precision, float),
                              np.asarray(log_recall, float), np.asarray(log_recall, float),
                              np.array([], int), "high")


def test_aupr_is_linear_interpolation_in_log_recall():
    pr = pr_from_points([0.0, 1.0], [1.0, 0.0])
    assert ev.aupr(pr) == pytest.approx(0.5)
    assert ev.aupr(pr, (0.0, 0.5)) == pytest.approx(0.5 * (1.0 + 0.5) / 2)
    assert ev.aupr(pr, (0.25, 0.75)) == pytest.approx(0.5 * 0.5)
    # A vertical step (a bin adding no true positives) has no width; -inf points are off the curve.
    stepped = pr_from_points([-np.inf, 0.0, 1.0, 1.0, 3.0], [0.0, 1.0, 1.0, 0.5, 0.5])
    assert ev.aupr(stepped) == pytest.approx(1.0 + 2 * 0.5)
    assert ev.aupr(stepped, (0.5, 2.0)) == pytest.approx(0.5 + 0.5)
    assert ev.aupr(pr_from_points([-np.inf, 2.0], [0.0, 1.0])) == 0.0
    with pytest.raises(ValueError, match="outside the curve"):
        ev.aupr(pr, (-1.0, 0.5))


@PROPERTY
@given(binned(allow_nan_r=False), st.floats(-40, 0))
def test_aupr_ignores_the_unknown_recall_constant(case, c):
    edges, log_rho, r = case
    a = ev.aupr(ev.precision_recall(edges, log_rho, r))
    b = ev.aupr(ev.precision_recall(edges, log_rho + c, r))
    assert b == pytest.approx(a, rel=1e-9, abs=1e-9)


def test_aupr_ratio_over_common_range():
    edges = np.linspace(0, 1, 6)
    log_rho = np.log([0.3, 0.25, 0.2, 0.15, 0.1])
    a = ev.precision_recall(edges, log_rho, np.full(5, 0.8))
    b = ev.precision_recall(edges, log_rho, np.full(5, 0.4))  # recall halved: range shifts by ln 2
    lo, hi = ev.common_log_recall_range([a, b])
    assert lo == pytest.approx(a.log_recall[0]) and hi == pytest.approx(b.log_recall[-1])
    assert ev.aupr_ratio(a, b) == pytest.approx(2.0, rel=1e-12)
    assert ev.aupr_ratio(a, a) == pytest.approx(1.0)
    far = a._replace(log_recall=a.log_recall + 100)
    with pytest.raises(ValueError, match="share no log-recall range"):
        ev.aupr_ratio(far, b)


# --------------------------------------------------------------------------------------------
# r(z) with bootstrap intervals.


def test_bin_precision_counts_each_sample_once_and_handles_missing():
    scores = [
        np.array([[1.0, 1.0, np.nan], [0.0, 1.0, 0.0]]),  # sample means 1 and 1/3: r = 2/3 (pooled: 0.6)
        np.array([1.0, 1.0, 1.0]),                          # 1-D: one annotator
        np.zeros((0, 3)),                                   # no samples
        np.full((2, 2), np.nan),                            # samples, none scored
    ]
    bp = ev.bin_precision(scores, num_bootstrap=200, seed=1)
    np.testing.assert_allclose(bp.r[:2], [2 / 3, 1.0])
    assert np.isnan(bp.r[2:]).all() and np.isnan(bp.ci_low[2:]).all() and np.isnan(bp.ci_high[2:]).all()
    np.testing.assert_array_equal(bp.n_scores, [5, 3, 0, 0])
    np.testing.assert_array_equal(bp.n_scored, [2, 3, 0, 0])
    np.testing.assert_array_equal(bp.n_samples, [2, 3, 0, 2])
    # Three ones of three: not the zero-width [1, 1] of a plain bootstrap but [L, 1], L the 5% point of
    # Beta(3 alpha, phi) = 0.349 with phi = 2/3 from bin 0 and alpha = 7/9 (200 replicates: 0.22-0.50)
    # (test_samples_part_is_the_mid_p_interval_for_0_1_scores).
    assert bp.ci_high[1] == 1.0 and 0.15 < bp.ci_low[1] < 0.6
    assert 0 <= bp.ci_low[0] <= 2 / 3 <= bp.ci_high[0] <= 1
    # stderr of the mean of (1, 1/3): std / sqrt(2) with the n / (n - 1) correction = 1/3.
    assert bp.stderr[0] == pytest.approx(1 / 3) and bp.stderr[1] == 0.0 and np.isnan(bp.stderr[2:]).all()
    alone = ev.bin_precision(scores, num_bootstrap=None)
    np.testing.assert_array_equal(alone.r, bp.r)
    assert np.isnan(alone.ci_low).all() and np.isnan(alone.ci_high).all()


def test_bin_precision_with_no_scored_bin_at_all():
    """Every bin empty or unscored: r and the interval are NaN (this used to raise in numpy's
    nanpercentile of no column)."""
    bp = ev.bin_precision([np.zeros((0, 2)), np.full((3, 2), np.nan)], num_bootstrap=10)
    assert np.isnan(bp.r).all() and np.isnan(bp.ci_low).all() and np.isnan(bp.replicates).all()


def test_bin_precision_recovers_the_true_fraction_with_unequal_annotators():
    """Ground truth: bins of 10,000 inputs, 30% positive at the bin's low end. Representatives are
    drawn in proportion to a tilt exp(-2 u) (over-representing positives) and weighted back by the
    inverse tilt, as samples.npz's `weight` does. Each annotator is exact, but positives are scored
    by 3 annotators and negatives by 1 — more people look at some inputs than at others. r, each
    sample once with its weight, recovers the true 0.3; pooling every score (what bin_precision
    used to do) counts positives three times and does not; the 95% interval covers 0.3 in most
    bins."""
    rng = np.random.default_rng(11)
    u = rng.random(10_000)
    positive = u < 0.3
    tilt = np.exp(-2 * u)
    picked = rng.choice(10_000, size=(150, 200), p=tilt / tilt.sum())
    scores, weights = [], []
    for row in picked:
        s = np.full((len(row), 3), np.nan)
        s[:, 0] = positive[row]
        s[positive[row], 1:] = 1.0
        scores.append(s)
        weights.append(1 / tilt[row])
    truth = positive.mean()
    bp = ev.bin_precision(scores, weights_per_bin=weights, num_bootstrap=300, seed=2)
    assert abs(bp.r.mean() - truth) < 0.01, bp.r.mean()
    pooled = np.mean([np.nansum(w @ np.nan_to_num(s)) / np.sum(w @ ~np.isnan(s)) for s, w in zip(scores, weights)])
    assert pooled - truth > 0.2, pooled
    covered = np.mean((bp.ci_low <= truth) & (truth <= bp.ci_high))
    assert 0.85 <= covered <= 0.995, covered
    # The standard error matches the spread of r over the independent bins.
    assert np.std(bp.r) == pytest.approx(np.mean(bp.stderr), rel=0.25)


def test_weighted_bin_precision_recovers_the_bin_fraction_from_a_tilted_sample():
    """A bin of 10,000 inputs, 30% positive, all at its low end. Samples drawn in proportion to a
    tilt exp(-3 u) (u in [0, 1] the position in the bin, positives at u < 0.3) over-represent the
    positives; weighting each by the inverse tilt recovers 0.3, the unweighted mean does not."""
    rng = np.random.default_rng(0)
    u = rng.random(10_000)
    positive = u < 0.3
    tilt = np.exp(-3 * u)
    picked = rng.choice(10_000, size=(200, 400), p=tilt / tilt.sum())
    scores = [positive[row].astype(float) for row in picked]
    weighted = ev.bin_precision(scores, weights_per_bin=[1 / tilt[row] for row in picked], num_bootstrap=200)
    plain = ev.bin_precision(scores, num_bootstrap=200)
    truth = positive.mean()
    assert abs(weighted.r.mean() - truth) < 0.01 and abs(plain.r.mean() - truth) > 0.2
    covered = np.mean((weighted.ci_low <= truth) & (truth <= weighted.ci_high))
    assert 0.88 <= covered <= 0.99, covered


def test_weighted_bin_precision_hand_computed():
    bp = ev.bin_precision([np.array([[1.0, np.nan], [0.0, 1.0], [0.0, 0.0]])],
                          weights_per_bin=[np.array([3.0, 1.0, 0.0])], num_bootstrap=50)
    assert bp.r[0] == pytest.approx((3 * 1 + 1 * 0.5 + 0 * 0) / (3 + 1 + 0))   # per-sample means 1, 0.5, 0
    # Weights that do not sum exactly in floating point still give r = 1 for all-1 scores, never 1 + ulp.
    ones = ev.bin_precision([np.ones(3)], weights_per_bin=[np.array([0.94, 0.13, 0.86])], num_bootstrap=20)
    assert ones.r[0] == 1.0 and ones.ci_high[0] == 1.0
    with pytest.raises(ValueError, match=r"weights_per_bin\[0\] must hold 3 finite nonnegative weights"):
        ev.bin_precision([np.ones(3)], weights_per_bin=[np.array([1.0, -1.0, 1.0])])


def _mid_p_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The mid-p interval of k positives in n: the p where (P(X > k) + P(X >= k)) / 2, X ~ Bin(n, p),
    is (1 - confidence) / 2 (low end) or (1 + confidence) / 2 (high end); 0 and 1 at k = 0 and n."""
    def mid(p):
        pmf = [math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(n + 1)]
        return sum(pmf[k + 1:]) + pmf[k] / 2

    def solve(target):
        lo, hi = 0.0, 1.0
        for _ in range(60):
            lo, hi = ((lo + hi) / 2, hi) if mid((lo + hi) / 2) < target else (lo, (lo + hi) / 2)
        return (lo + hi) / 2

    tail = (1 - confidence) / 2
    return (0.0 if k == 0 else solve(tail)), (1.0 if k == n else solve(1 - tail))


def test_samples_part_is_the_mid_p_interval_for_0_1_scores():
    """0/1 scores of one annotator, 15 samples per bin: r's interval is the mid-p interval of k in
    15 (Monte Carlo of 40,000 replicates: ends within 0.005). A bin that scores all ones gets
    [0.05^(1/15), 1] = [0.819, 1], not the zero width of a plain bootstrap over its samples (21% of
    such bins at r = 0.9), and still covers a true r of 1; all zeros mirror it."""
    ks = [15, 14, 12, 7, 1, 0]
    scores = [(np.arange(15) < k).astype(float) for k in ks]
    bp = ev.bin_precision(scores, num_bootstrap=40_000, seed=4)
    expected = np.array([_mid_p_interval(k, 15) for k in ks])
    np.testing.assert_allclose(bp.ci_low, expected[:, 0], atol=0.005)
    np.testing.assert_allclose(bp.ci_high, expected[:, 1], atol=0.005)
    assert expected[0, 0] == pytest.approx(0.05 ** (1 / 15), abs=1e-9)
    assert bp.ci_high[0] == 1.0 and bp.ci_low[-1] == 0.0
    # The same with three annotators who agree exactly: they are one annotator three times.
    three = ev.bin_precision([np.repeat(s[:, None], 3, axis=1) for s in scores], num_bootstrap=40_000, seed=4)
    np.testing.assert_allclose(three.replicates, bp.replicates, rtol=0, atol=1e-12)


def test_samples_part_keeps_the_bootstrap_width_away_from_the_edges():
    """Interior bins of many samples keep a plain bootstrap's interval, r ± 1.96 stderr (within 4%),
    in two campaigns: 0/1 scores (400 samples at 0.3 and 0.6), and means over 10 annotators who err
    independently (one column of fractional scores, 200 samples at 0.3 and 0.85: they spread a
    tenth as much as 0/1 scores of the same mean, so the pseudo-sample is a tenth of a sample).
    The pseudo-sample's pull on r is O(1/n)."""
    rng = np.random.default_rng(9)
    binary = [(rng.random(400) < 0.3).astype(float), (rng.random(400) < 0.6).astype(float)]
    averaged = [rng.binomial(10, 0.3, 200) / 10.0, rng.binomial(10, 0.85, 200) / 10.0]
    for scores in (binary, averaged):
        bp = ev.bin_precision(scores, num_bootstrap=20_000, seed=1)
        np.testing.assert_allclose(bp.ci_high - bp.ci_low, 2 * 1.96 * bp.stderr, rtol=0.04)
        assert (np.abs((bp.ci_high + bp.ci_low) / 2 - bp.r) < 0.15 * bp.stderr).all(), (bp.ci_low, bp.r, bp.ci_high)


def test_bin_precision_interval_carries_annotator_disagreement():
    """Two annotators who always disagree: every sample averages 0.5, yet the interval is wide:
    their leniencies differ by 1, and the Student t interval of the mean of two (t_1 = 12.7)
    spans all of [0, 1]."""
    disagree = np.column_stack([np.ones(100), np.zeros(100)])
    bp = ev.bin_precision([disagree], num_bootstrap=2000, seed=0)
    assert bp.r[0] == 0.5
    assert bp.ci_low[0] == 0.0 and bp.ci_high[0] == 1.0


def test_bin_precision_interval_covers_truth():
    """Bernoulli(0.3) scores, 40 samples × 1 annotator, 300 bins: the 95% percentile interval
    covers 0.3 in 92–98% of bins (binomial spread of 300 bins: ±2.5%; the percentile interval
    undercovers slightly at n = 40)."""
    rng = np.random.default_rng(7)
    scores = list((rng.random((300, 40)) < 0.3).astype(float))
    bp = ev.bin_precision(scores, num_bootstrap=1000, seed=3)
    covered = np.mean((bp.ci_low <= 0.3) & (0.3 <= bp.ci_high))
    assert 0.9 <= covered <= 0.99, covered


def test_bin_precision_interval_is_the_percentile_of_its_replicates_drawn_with_one_annotator_draw():
    """Annotator 0 scores everything 1, annotator 1 everything 0, in both bins: every sample means
    0.5, so a replicate's r moves only with the annotators' draw, one for all bins: the two bins'
    replicates are equal in every replicate. With two people the draw is Student's t on one
    degree of freedom: half the replicates (|t| > 1) are clipped to 0 or 1."""
    rng = np.random.default_rng(4)
    scores = [np.column_stack([np.ones(n), np.zeros(n)]) for n in (6, 9)]
    bp = ev.bin_precision(scores, weights_per_bin=[rng.random(6), rng.random(9)], num_bootstrap=400, seed=5)
    assert bp.replicates.shape == (400, 2)
    np.testing.assert_allclose(bp.replicates[:, 0], bp.replicates[:, 1], rtol=0, atol=1e-9)
    assert ((bp.replicates >= 0) & (bp.replicates <= 1)).all()
    assert 0.4 < np.mean((bp.replicates[:, 0] == 0) | (bp.replicates[:, 0] == 1)) < 0.6
    assert abs(np.median(bp.replicates[:, 0]) - 0.5) < 0.05
    np.testing.assert_array_equal(bp.ci_low, np.percentile(bp.replicates, 2.5, axis=0))
    np.testing.assert_array_equal(bp.ci_high, np.percentile(bp.replicates, 97.5, axis=0))
    assert ev.bin_precision(scores, num_bootstrap=None).replicates is None
    # Annotators who shared out the bins (0 and 1 score bin 0, 2 scores bin 1): bin 1 has one
    # annotator, so no spread between annotators and no noise of its samples (all 1).
    shared = [np.array([[1.0, 0.0, np.nan]] * 4), np.array([[np.nan, np.nan, 1.0]] * 5)]
    split = ev.bin_precision(shared, num_bootstrap=300, seed=1)
    assert not np.isnan(split.replicates).any()
    assert (split.replicates[:, 1] == 1).all() and split.ci_low[1] == split.ci_high[1] == 1.0
    assert split.ci_low[0] == 0.0 and split.ci_high[0] == 1.0


@pytest.mark.parametrize("annotators, confidence", [(2, 0.95), (3, 0.95), (3, 0.8), (10, 0.95)])
def test_interval_of_the_annotators_leniency_is_students_t(annotators, confidence):
    """Annotators who each give every sample one score of their own (no noise, only leniency),
    shared by three bins: r is their mean, and its interval, r's and the PR band's, is the
    Student t interval of a mean of n values at any level: r ± t_{n-1} s / sqrt(n) (clipped to
    [0, 1]). A bootstrap over the n people gives at best the range of their values."""
    from omnijax.sampling.diagnostics import t_two_sided

    values = np.linspace(0.42, 0.58, annotators) + np.array([0.03, -0.02] + [0.0] * (annotators - 2))
    scores = [np.tile(values, (12, 1)) for _ in range(3)]
    bp = ev.bin_precision(scores, num_bootstrap=10_000, seed=0, confidence=confidence)
    half = t_two_sided(annotators - 1, 1 - confidence) * np.std(values, ddof=1) / math.sqrt(annotators)
    np.testing.assert_allclose(bp.r, values.mean())
    expected_low, expected_high = max(0.0, values.mean() - half), min(1.0, values.mean() + half)
    edges, log_rho = np.linspace(0, 1, 4), np.log(np.array([0.5, 0.3, 0.2]))
    band = ev.precision_recall_band(edges, log_rho, bp.r, bp.replicates, confidence=confidence)
    # Each end within 10% of the half-width (Monte Carlo: ~3% at 10,000 replicates for t_2's 97.5%
    # point), the width within 5%.
    for low, high in [(bp.ci_low, bp.ci_high), (band.precision_low, band.precision_high)]:
        np.testing.assert_allclose(low, expected_low, atol=0.1 * half)
        np.testing.assert_allclose(high, expected_high, atol=0.1 * half)
        np.testing.assert_allclose(high - low, expected_high - expected_low, rtol=0.05)
    np.testing.assert_allclose(bp.replicates[:, 0], bp.replicates[:, 2], atol=1e-9)    # one draw for all bins


def test_annotator_precision_is_bin_precision_of_that_annotator_alone():
    """Each annotator's curve (Fig. 6) is `bin_precision` of its column alone: weighted, with the
    samples it did not score left out, NaN in a bin it did not score."""
    scores = [np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, np.nan]]), np.array([[1.0, np.nan], [1.0, np.nan]])]
    weights = [np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5])]
    alice, bob = ev.annotator_precision(scores, weights_per_bin=weights)
    np.testing.assert_allclose(alice.r, [1 / 4, 1.0])
    np.testing.assert_allclose(bob.r[0], 2 / 3)
    assert np.isnan(bob.r[1]) and bob.n_scored.tolist() == [2, 0]
    for j, own in enumerate((alice, bob)):
        alone = ev.bin_precision([s[:, j] for s in scores], weights_per_bin=weights, num_bootstrap=None)
        np.testing.assert_array_equal(own.r, alone.r)


def test_pr_band_from_the_replicates_of_r_contains_the_curve():
    """Three annotators of unequal leniency over 8 bins: the PR band at every threshold, taken from
    bin_precision's replicates, contains the pooled curve, and so does the AUPR interval. Replicates
    equal to r give a band of zero width; a replicate that lost an annotated bin is dropped."""
    rng = np.random.default_rng(8)
    edges = np.linspace(0, 1, 9)
    log_rho = np.log(np.linspace(8, 1, 8) / 36)
    truth = np.linspace(0.9, 0.1, 8)
    scores = [np.column_stack([rng.random(15) < np.clip(p + shift, 0, 1) for shift in (-0.2, 0.0, 0.2)]).astype(float)
              for p in truth]
    bp = ev.bin_precision(scores, num_bootstrap=500, seed=0)
    pr = ev.precision_recall(edges, log_rho, bp.r, "low")
    band = ev.precision_recall_band(edges, log_rho, bp.r, bp.replicates, "low")
    np.testing.assert_array_equal(band.thresholds, pr.thresholds)
    assert band.num_replicates == 500 and band.num_dropped == 0
    assert (band.precision_low <= pr.precision).all() and (pr.precision <= band.precision_high).all()
    assert (band.precision_high - band.precision_low).min() > 0
    assert band.aupr_low <= ev.aupr(pr) <= band.aupr_high
    exact = ev.precision_recall_band(edges, log_rho, bp.r, np.tile(bp.r, (3, 1)), "low")
    np.testing.assert_allclose(exact.precision_low, pr.precision, rtol=1e-12)
    np.testing.assert_allclose(exact.precision_high, pr.precision, rtol=1e-12)
    lost = np.tile(bp.r, (3, 1))
    lost[1, 4] = np.nan
    assert ev.precision_recall_band(edges, log_rho, bp.r, lost, "low")[-2:] == (2, 1)
    with pytest.raises(ValueError, match=r"replicates must have shape \(replicates, 8\)"):
        ev.precision_recall_band(edges, log_rho, bp.r, bp.replicates[:, :3])


@pytest.mark.parametrize("kwargs, match", [
    (dict(scores_per_bin=[np.array([0.5, 1.5])]), r"scores_per_bin\[0\] must hold scores in \[0, 1\]"),
    (dict(scores_per_bin=[np.ones(2), np.ones((2, 2, 2))]), r"scores_per_bin\[1\] must be 1-D"),
    (dict(scores_per_bin=np.ones(3)), "scores_per_bin must be a sequence"),
    (dict(scores_per_bin=[np.ones(2)], num_bootstrap=0), "num_bootstrap"),
    (dict(scores_per_bin=[np.ones(2)], weights_per_bin=[np.ones(3)]), r"weights_per_bin\[0\] must hold 2"),
    (dict(scores_per_bin=[np.ones(2)], confidence=1.0), "confidence"),
])
def test_bin_precision_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ev.bin_precision(**kwargs)


# --------------------------------------------------------------------------------------------
# Convergence with the number of annotated samples (Fig. 5).


def test_pr_convergence_uses_first_n_samples():
    rng = np.random.default_rng(0)
    edges = np.linspace(0, 1, 9)
    log_rho = np.log(np.linspace(8, 1, 8) / 36)
    truth = np.linspace(0.1, 0.9, 8)
    scores = [(rng.random((50, 3)) < p).astype(float) for p in truth]
    conv = ev.pr_convergence(edges, log_rho, scores, [1, 10, 50])
    assert conv.precision.shape == conv.log_recall.shape == (3, 8)
    full = ev.precision_recall(edges, log_rho, [s.mean() for s in scores])
    np.testing.assert_allclose(conv.precision[-1], full.precision)
    first = ev.precision_recall(edges, log_rho, [s[:1].mean() for s in scores])
    np.testing.assert_allclose(conv.log_recall[0], first.log_recall)
    np.testing.assert_allclose(conv.aupr[-1], ev.aupr(full, conv.log_recall_range))
    exact = ev.precision_recall(edges, log_rho, truth)
    assert np.abs(conv.precision[-1] - exact.precision).max() < 0.15  # 150 scores per bin


# --------------------------------------------------------------------------------------------
# Cross-model normalisation (Eq. 5, 6; Appendix B).


def appendix_b_models():
    """An enumerable space of 10,000 inputs. M1 maps inputs 0..499 into Z = [0, 1], M2 maps
    0..99 and 500..599 there: |Z_M1| = 500, |Z_M2| = 200, X = {0..99} has 100 inputs.
    Inside Z each model spreads its inputs evenly over 10 bins of width 0.1."""
    x = np.arange(10_000)
    m1 = np.where(x < 500, (x % 10) / 10 + 0.05, 5.0)
    m2 = np.where((x < 100) | ((x >= 500) & (x < 600)), (x % 10) / 10 + 0.05, -5.0)
    return np.column_stack([m1, m2])


def test_appendix_b_worked_example():
    outputs = appendix_b_models()
    # 50 samples of M1 in Z, 10 of them from X; 50 samples of M2 in Z, 25 from X.
    samples_1 = np.concatenate([np.arange(10), np.arange(100, 140)])
    samples_2 = np.concatenate([np.arange(25), np.arange(500, 525)])
    norm = ev.cross_model_normalisation(outputs[samples_1], outputs[samples_2], (0.0, 1.0))
    np.testing.assert_array_equal(norm.num_in_range, [50, 50])
    np.testing.assert_array_equal(norm.num_shared, [10, 25])
    np.testing.assert_array_equal(norm.sampled_proportion, [5.0, 2.0])  # Eq. 5: 50/10, Eq. 6: 50/25
    assert norm.sampled_proportion[0] / norm.sampled_proportion[1] == 500 / 200
    assert norm.log_ratio == pytest.approx(math.log(500 / 200), rel=1e-15)

    # Per bin, Eq. 5/6 turn each model's ln ρ — known only up to its own constant — into counts
    # in units of |X| = 100: 50 of M1's 500 and 20 of M2's 200 per bin.
    edges = np.linspace(0.0, 1.0, 11)
    log_rho_1 = np.full(10, math.log(50 / 10_000)) - 3.7
    log_rho_2 = np.full(10, math.log(20 / 10_000)) + 0.0
    offsets = ev.cross_model_log_offsets(norm, edges, log_rho_1, edges, log_rho_2)
    np.testing.assert_allclose(np.exp(log_rho_1 + offsets[0]), 50 / 100, rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_rho_2 + offsets[1]), 20 / 100, rtol=1e-12)
    # With absolute ρ (fractions of all 10,000 inputs) both offsets are the same constant.
    absolute = ev.cross_model_log_offsets(norm, edges, log_rho_1 + 3.7, edges, log_rho_2)
    assert absolute[0] == pytest.approx(absolute[1], rel=1e-12)


def test_cross_model_normalisation_from_random_and_stratified_samples():
    outputs = appendix_b_models()
    rng = np.random.default_rng(0)
    s1 = rng.choice(10_000, 20_000)  # uniform over all inputs: rows outside Z are ignored
    s2 = rng.choice(np.r_[0:100, 500:600], 2_000)
    norm = ev.cross_model_normalisation(outputs[s1], outputs[s2], (0.0, 1.0))
    # ~1000 of M1's samples land in Z, 20% of them in X; 50% of M2's: ±5% relative (1 s.d.).
    assert norm.sampled_proportion[0] / norm.sampled_proportion[1] == pytest.approx(2.5, rel=0.2)
    # Stratified samples (10 per bin, as the per-bin reservoirs hold) need weights ρ_b / n_b
    # when the bins' shares of X differ: here M1's first bin holds all of X and no other input.
    m1 = np.where(np.arange(500) < 100, 0.25, 0.75)  # bin [0, 0.5): X; bin [0.5, 1]: 400 others
    both = np.column_stack([m1, np.where(np.arange(500) < 100, 0.5, 9.0)])
    picked = np.r_[0:10, 100:110]
    weights = np.where(picked < 100, 100 / 10, 400 / 10)
    other = outputs[np.r_[0:25, 500:525]]
    plain = ev.cross_model_normalisation(both[picked], other, (0.0, 1.0))
    weighted = ev.cross_model_normalisation(both[picked], other, (0.0, 1.0), weights_1=weights)
    assert plain.sampled_proportion[0] == 2.0  # biased: half the stratified samples are in X
    assert weighted.sampled_proportion[0] == 5.0  # the true 500 / 100


def test_cross_model_bad_input():
    outputs = appendix_b_models()
    with pytest.raises(ValueError, match="no sample in outputs_2"):
        ev.cross_model_normalisation(outputs[:10], outputs[500:510], (0.0, 1.0))
    with pytest.raises(ValueError, match="outputs_1 must have shape"):
        ev.cross_model_normalisation(outputs[:10, 0], outputs[:10], (0.0, 1.0))
    with pytest.raises(ValueError, match="z_range"):
        ev.cross_model_normalisation(outputs[:10], outputs[:10], (1.0, 0.0))
    norm = ev.cross_model_normalisation(outputs[:10], outputs[:10], (0.0, 1.0))
    with pytest.raises(ValueError, match="z_range .* must start and end on bin edges"):
        ev.cross_model_log_offsets(norm, [0.0, 0.5, 0.9], [-1.0, -1.0], [0.0, 1.0], [-1.0])


# --------------------------------------------------------------------------------------------
# Plots.


def test_plots_write_png(tmp_path):
    edges = np.linspace(0, 1, 6)
    log_rho = np.log([0.3, 0.25, 0.2, 0.15, 0.1])
    rng = np.random.default_rng(0)
    scores = [(rng.random((20, 2)) < p).astype(float) for p in [0.1, 0.3, 0.5, 0.7, 0.9]]
    bp = ev.bin_precision(scores, num_bootstrap=100)
    curves = {"a": ev.precision_recall(edges, log_rho, bp.r),
              "b": ev.precision_recall(edges, log_rho, np.full(5, 0.5))}
    conv = ev.pr_convergence(edges, log_rho, scores, [5, 10, 20])
    paths = [tmp_path / name for name in ("pr.png", "r.png", "conv.png")]
    band = ev.precision_recall_band(edges, log_rho, bp.r, bp.replicates)
    evaluation_plots.plot_pr_curves(paths[0], curves, title="two models", bands={"a": band})
    own = {name: a.r for name, a in zip(("alice", "model"), ev.annotator_precision(scores))}
    evaluation_plots.plot_bin_precision(paths[1], edges, bp.r, bp.ci_low, bp.ci_high, log_rho=log_rho,
                                        annotators=own, judges=["model"])
    evaluation_plots.plot_convergence(paths[2], conv)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# Against ground truth: sampled ρ + annotated representatives vs exhaustive enumeration.


def test_sampled_pr_curve_matches_enumeration():
    """4x4 binary images (65,536 inputs); the oracle "more ink in the left half than the right"
    annotates perfectly. The model is a random tanh MLP plus 0.6 × (left ink - right ink), so
    r(z) rises from 0 to ~1 across the output range.

    Exact: enumeration with the oracle as statistic gives ln ρ and r per bin exactly.
    Sampled: a short replica-exchange run (1,000 steps, 4 walker groups) gives ln ρ, and the
    oracle applied to each bin's distinct representatives (up to 128), weighted by their
    representative weights (`bin_precision`), gives r.

    Tolerances, from the two error sources (measured over keys 0-7 with these settings:
    max |Δ precision| 0.056, max |Δ ln recall| 0.27, AUPR ratio 0.98-1.04, ROC rates 0.052):
      * r from ~60-128 representatives per bin: binomial s.d. <= 0.06 per bin; precision is a
        ρ-weighted mean of r over the positive bins -> |Δ precision| <= 0.10.
      * ln ρ from a short run: errors up to ~0.3 per bin (a shared constant included) ->
        |Δ ln recall| <= 0.40.
      * AUPR over the common log-recall range: ratio in [0.92, 1.08].
      * ROC rates are cumulative fractions of the sampled range; a ~0.2 error in the ln ρ of a
        heavy bin moves them by ~0.05 -> |Δ fpr|, |Δ tpr| <= 0.08.
    """
    space = oj.InputSpace(shape=(4, 4), num_categories=2)
    mlp = random_mlp(space, seed=3, hidden=8, scale=1.0)

    def output_fn(onehot):
        ink = onehot[..., 1]
        return 0.6 * (ink[:, :2].sum() - ink[:, 2:].sum()) + mlp(onehot)

    def left_heavier(x):
        return x[..., :2].sum((-1, -2)) > x[..., 2:].sum((-1, -2))

    edges = np.linspace(-12.9, 10.2, 21)  # the model's outputs span [-12.86, 10.15]
    exact = oj.enumerate_output_distribution(
        output_fn, space, edges, statistic_fn=lambda x: left_heavier(x).astype(jnp.float32),
        progress=False)
    assert exact.num_below == exact.num_above == 0
    start = time.time()
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0),
                                          num_steps=1000, num_groups=4, pilot_steps=200,
                                          num_bootstrap=20, reservoir_size=128, progress=False)
    reps = [est.representatives(b) for b in range(len(edges) - 1)]
    assert min(len(x) for x in reps) >= 30
    # r by the one definition: the oracle's score of each representative, weighted back to uniform.
    r_sampled = ev.bin_precision([left_heavier(x).astype(float) for x in reps], num_bootstrap=None,
                                 weights_per_bin=[est.representative_weights(b) for b in range(len(reps))]).r

    pr_exact = ev.precision_recall(edges, exact.log_rho, exact.statistic_mean())
    pr = ev.precision_recall(edges, est.log_rho, r_sampled)
    d_precision = np.abs(pr.precision - pr_exact.precision).max()
    d_log_recall = np.abs(pr.log_recall - pr_exact.log_recall).max()
    ratio = ev.aupr_ratio(pr, pr_exact)
    roc, roc_exact = (ev.roc_input_space(edges, p, r) for p, r in
                      [(est.log_rho, r_sampled), (exact.log_rho, exact.statistic_mean())])
    d_roc = max(np.abs(roc.tpr - roc_exact.tpr).max(), np.abs(roc.fpr - roc_exact.fpr).max())
    print(f"estimate {time.time() - start:.0f}s: max |Δ precision| {d_precision:.3f}, "
          f"max |Δ ln recall| {d_log_recall:.3f}, AUPR ratio {ratio:.3f}, max |Δ ROC| {d_roc:.3f}")
    assert pr_exact.precision[0] > 0.9 and pr_exact.precision[-1] < 0.5, "a non-trivial curve"
    assert d_precision <= 0.10
    assert d_log_recall <= 0.40
    assert 0.92 <= ratio <= 1.08
    assert d_roc <= 0.08
