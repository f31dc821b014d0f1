"""Dataset metrics: hand-computed cases, an O(n^2) brute-force reference, invariances, bad input."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnijax.evaluation.dataset_metrics import aupr, auroc, fpr_at_tpr, ood_table_row


# ---- brute-force reference, written independently of the module ----

def auroc_reference(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def sweep(pos, neg):
    """(recall, precision, fpr) at each distinct score, from the highest threshold down."""
    rows = []
    for t in sorted(set(pos) | set(neg), reverse=True):
        tp = sum(p >= t for p in pos)
        fp = sum(n >= t for n in neg)
        rows.append((tp / len(pos), tp / (tp + fp), fp / len(neg)))
    return rows


def aupr_reference(pos, neg):
    area, previous_recall = 0.0, 0.0
    for recall, precision, _ in sweep(pos, neg):
        area += (recall - previous_recall) * precision
        previous_recall = recall
    return area


def fpr_reference(pos, neg, tpr=0.95):
    return min(fpr for recall, _, fpr in sweep(pos, neg) if recall >= tpr)


def check_against_reference(pos, neg):
    pos, neg = list(map(float, pos)), list(map(float, neg))
    assert auroc(pos, neg) == pytest.approx(auroc_reference(pos, neg), abs=1e-12)
    assert aupr(pos, neg) == pytest.approx(aupr_reference(pos, neg), abs=1e-12)
    assert fpr_at_tpr(pos, neg) == pytest.approx(fpr_reference(pos, neg), abs=1e-12)
    for tpr in (0.1, 0.5, 0.8, 1.0):
        assert fpr_at_tpr(pos, neg, tpr) == pytest.approx(fpr_reference(pos, neg, tpr), abs=1e-12)


# ---- hand-computed cases ----

def test_perfect_separation():
    pos, neg = [5.0, 4.0, 3.5], [1.0, 2.0, -3.0, 0.0]
    assert auroc(pos, neg) == 1.0
    assert aupr(pos, neg) == 1.0
    assert fpr_at_tpr(pos, neg) == 0.0


def test_reversed_separation():
    pos, neg = [1.0, 2.0], [3.0, 4.0, 5.0]
    assert auroc(pos, neg) == 0.0
    assert fpr_at_tpr(pos, neg) == 1.0
    # thresholds 5, 4, 3 recall nothing; at 2: R = 1/2, P = 1/4; at 1: R = 1, P = 2/5
    assert aupr(pos, neg) == pytest.approx(0.5 * 0.25 + 0.5 * 0.4, abs=1e-15)


def test_all_tied():
    pos, neg = [0.3] * 3, [0.3] * 5
    assert auroc(pos, neg) == 0.5
    assert aupr(pos, neg) == pytest.approx(3 / 8, abs=1e-15)
    assert fpr_at_tpr(pos, neg) == 1.0


def test_worked_example_three_by_three():
    # positives 0.8, 0.5, 0.5; negatives 0.5, 0.3, 0.9.
    # AUROC, pairs (p, n): 0.8 beats 0.5 and 0.3, loses to 0.9 -> 2;
    #   each 0.5 ties 0.5 (1/2), beats 0.3 (1), loses to 0.9 -> 3/2, twice -> 3;
    #   total 5 of 9 pairs -> 5/9.
    # AP, thresholds high to low (TP, FP, recall, precision):
    #   0.9: (0, 1, 0,   0)    dR = 0
    #   0.8: (1, 1, 1/3, 1/2)  dR * P = 1/3 * 1/2 = 1/6
    #   0.5: (3, 2, 1,   3/5)  dR * P = 2/3 * 3/5 = 2/5   (the tie is one threshold)
    #   0.3: (3, 3, 1,   1/2)  dR = 0
    #   AP = 1/6 + 2/5 = 17/30.
    # FPR@95: first TPR >= 0.95 is at 0.5 with FP = 2 -> 2/3; FPR@(1/3): at 0.8, FP = 1 -> 1/3.
    pos, neg = [0.8, 0.5, 0.5], [0.5, 0.3, 0.9]
    assert auroc(pos, neg) == float(Fraction(5, 9))
    assert aupr(pos, neg) == pytest.approx(17 / 30, abs=1e-15)
    assert fpr_at_tpr(pos, neg) == float(Fraction(2, 3))
    assert fpr_at_tpr(pos, neg, tpr=0.3) == float(Fraction(1, 3))
    assert ood_table_row(pos, neg) == {
        "aupr": aupr(pos, neg), "auroc": auroc(pos, neg), "fpr95": fpr_at_tpr(pos, neg),
        "n_positive": 3, "n_negative": 3,
    }


def test_tpr_boundary_is_inclusive():
    # 20 positives 1..20, negatives interleaved; TPR = 19/20 = 0.95 exactly at threshold 2.
    pos = np.arange(1, 21, dtype=float)
    neg = np.arange(20, dtype=float) + 0.5  # 0.5, 1.5, ..., 19.5
    # at threshold 2: negatives >= 2 are 2.5..19.5 -> 18 of 20
    assert fpr_at_tpr(pos, neg) == 18 / 20


# ---- against the brute-force reference ----

@pytest.mark.parametrize("n_pos, n_neg, levels", [
    (1, 1, 2), (1, 9, 3), (7, 1, 3), (5, 5, 2), (13, 29, 4), (40, 25, 10), (120, 80, 15), (60, 200, 1000),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_seeded(n_pos, n_neg, levels, seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, levels, n_pos) + rng.integers(0, 2, n_pos)  # positives shifted up a little
    neg = rng.integers(0, levels, n_neg) / 1.0
    check_against_reference(pos, neg)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=1, max_size=25),
       st.lists(st.integers(-4, 4), min_size=1, max_size=25))
def test_matches_brute_force_hypothesis(pos, neg):
    check_against_reference(pos, neg)


def test_large_input_is_fast_and_consistent():
    rng = np.random.default_rng(7)
    pos = rng.normal(1.0, 1.0, 200_000).round(2)
    neg = rng.normal(0.0, 1.0, 300_000).round(2)
    row = ood_table_row(pos, neg)
    # binormal with unit separation: AUROC = Phi(1 / sqrt(2)) ~ 0.7602
    assert row["auroc"] == pytest.approx(0.7602, abs=0.005)
    assert 0.0 < row["fpr95"] < 1.0 and 0.4 < row["aupr"] < 1.0
    assert (row["n_positive"], row["n_negative"]) == (200_000, 300_000)


# ---- invariances ----

@pytest.mark.parametrize("transform", [
    lambda x: np.exp(x / 10.0),
    lambda x: x ** 3 + 2.0 * x,
    np.arctan,
    lambda x: 1e6 * x - 3.0,
])
def test_invariant_to_strictly_increasing_transforms(transform):
    rng = np.random.default_rng(3)
    pos = rng.integers(-5, 8, 37).astype(float)
    neg = rng.integers(-8, 5, 23).astype(float)
    assert ood_table_row(transform(pos), transform(neg)) == ood_table_row(pos, neg)


def test_swapping_or_negating_complements_auroc():
    rng = np.random.default_rng(4)
    pos = rng.integers(0, 6, 31).astype(float)
    neg = rng.integers(0, 6, 17).astype(float)
    assert auroc(pos, neg) + auroc(neg, pos) == pytest.approx(1.0, abs=1e-15)
    assert auroc(-pos, -neg) == pytest.approx(1.0 - auroc(pos, neg), abs=1e-15)


def test_accepts_ints_lists_and_order_does_not_matter():
    pos, neg = [3, 1, 2, 2], [0, 2, 1]
    shuffled = ([2, 3, 2, 1], [1, 0, 2])
    assert ood_table_row(np.array(pos), neg) == ood_table_row(*shuffled)


# ---- bad input ----

@pytest.mark.parametrize("fn", [auroc, aupr, fpr_at_tpr, ood_table_row])
def test_nan_is_rejected_with_indices(fn):
    neg = np.arange(12, dtype=float)
    neg[[0, 5, 9]] = np.nan
    with pytest.raises(ValueError, match=r"negative_scores has 3 NaN values \(indices 0, 5, 9\)"):
        fn([1.0, 2.0], neg)
    with pytest.raises(ValueError, match=r"positive_scores has 1 NaN value \(index 1\)"):
        fn([1.0, np.nan], [0.0])


def test_many_nans_are_counted_and_indices_truncated():
    with pytest.raises(ValueError, match=r"positive_scores has 15 NaN values \(indices 0, 1, 2, .*9, \.\.\.\)"):
        auroc(np.full(15, np.nan), [0.0])


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_is_rejected(value):
    with pytest.raises(ValueError, match=r"positive_scores has 1 infinite value \(index 2\)"):
        aupr([0.0, 1.0, value], [0.5])
    with pytest.raises(ValueError, match=r"negative_scores has 2 infinite values \(indices 0, 1\)"):
        fpr_at_tpr([0.0], [value, value])


@pytest.mark.parametrize("bad, match", [
    ([], "is empty"),
    (np.zeros((2, 3)), r"must be 1-D, got shape \(2, 3\)"),
    (np.float64(1.0), r"must be 1-D, got shape \(\)"),
    (["a", "b"], "must hold real numbers"),
    ([1.0, None], "must hold real numbers"),
    (np.array([1 + 1j]), "must hold real numbers"),
])
def test_bad_arrays_name_the_argument(bad, match):
    with pytest.raises(ValueError, match="positive_scores " + match):
        auroc(bad, [0.0])
    with pytest.raises(ValueError, match="negative_scores " + match):
        ood_table_row([0.0], bad)


@pytest.mark.parametrize("tpr", [0.0, -0.1, 1.5, float("nan"), True, "0.95"])
def test_bad_tpr(tpr):
    with pytest.raises(ValueError, match="tpr must be a number in"):
        fpr_at_tpr([1.0, 2.0], [0.0], tpr=tpr)
