"""Spearman's rank correlation (omnijax.evaluation.rank_correlation): hand-computed cases with ties,
missing values, degenerate inputs, and scipy's spearmanr where scipy is installed."""

import math

import numpy as np
import pytest

from omnijax import evaluation as ev


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(ev.average_ranks([3.0, 1.0, 3.0, 3.0, 2.0]), [4.0, 1.0, 4.0, 4.0, 2.0])
    np.testing.assert_array_equal(ev.average_ranks([0.5, 0.5]), [1.5, 1.5])
    with pytest.raises(ValueError, match="values must be a 1-D array without NaN"):
        ev.average_ranks([1.0, math.nan])


def test_spearman_by_hand_with_ties():
    # ranks x: 1, 2.5, 2.5, 4; y: 1, 3, 2, 4. Deviations (-1.5, 0, 0, 1.5) and (-1.5, .5, -.5, 1.5):
    # covariance 4.5, squares 4.5 and 5, so rho = 4.5 / sqrt(22.5) = sqrt(0.9).
    assert ev.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == (pytest.approx(math.sqrt(0.9), rel=1e-12), 4)
    assert ev.spearman([1, 2, 3, 4], [10, 20, 25, 100]).rho == pytest.approx(1.0)
    assert ev.spearman([1, 2, 3, 4], [-1, -2, -3, -4]).rho == pytest.approx(-1.0)


def test_spearman_uses_pairs_both_known_and_is_nan_when_undefined():
    # The NaN and inf pairs drop out, leaving the hand example above.
    assert ev.spearman([1, 2, math.nan, 2, 3, 7], [1, 3, 5, 2, 4, math.inf]) == (
        pytest.approx(math.sqrt(0.9), rel=1e-12), 4)
    constant = ev.spearman([1, 1, 1], [1, 2, 3])
    assert math.isnan(constant.rho) and constant.n == 3
    single = ev.spearman([1, math.nan], [2, 3])
    assert math.isnan(single.rho) and single.n == 1
    with pytest.raises(ValueError, match="x and y must be 1-D arrays of one length"):
        ev.spearman([1, 2, 3], [1, 2])


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 6, 40).astype(float), rng.integers(0, 6, 40).astype(float)  # many ties
    y[:20] = x[:20]
    assert ev.spearman(x, y).rho == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
