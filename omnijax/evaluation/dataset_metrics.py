"""Dataset-based evaluation: AUROC, AUPR and FPR@95%TPR of a score on fixed test sets.

This is the traditional evaluation that the OmniInput paper contrasts with its own
(Sec. 4.1 and Appendix F): a positive test set (e.g. MNIST label 1) and a negative
test set (in-distribution label 0 or an OOD dataset) are scored by the model, and
the two score samples are summarised by the classic OOD-detection metrics. A higher
score means "more positive"; for a negative log-likelihood the caller negates it.

All metrics are computed exactly from the number of positives and negatives at each
distinct score (scores are converted to float64), so tied scores are handled as one
threshold and the results depend only on the order of the scores: any strictly
increasing transform leaves them unchanged. NaN and infinite scores are rejected,
never dropped.
"""

from __future__ import annotations

import numpy as np

_MAX_LISTED_INDICES = 10


def _check_scores(name: str, scores) -> np.ndarray:
    array = np.asarray(scores)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; at least one score is needed")
    array = array.astype(np.float64)
    for mask, what in ((np.isnan(array), "NaN"), (np.isinf(array), "infinite")):
        bad = np.flatnonzero(mask)
        if bad.size:
            listed = ", ".join(str(i) for i in bad[:_MAX_LISTED_INDICES])
            if bad.size > _MAX_LISTED_INDICES:
                listed += ", ..."
            plural = "s" if bad.size > 1 else ""
            index_word = "indices" if bad.size > 1 else "index"
            raise ValueError(f"{name} has {bad.size} {what} value{plural} ({index_word} {listed})")
    return array


def _counts_by_threshold(positive_scores, negative_scores) -> tuple[np.ndarray, np.ndarray]:
    """Number of positives and of negatives at each distinct score, highest score first."""
    positive = _check_scores("positive_scores", positive_scores)
    negative = _check_scores("negative_scores", negative_scores)
    _, group = np.unique(np.concatenate([positive, negative]), return_inverse=True)
    group = group.ravel()
    num_groups = int(group.max()) + 1
    positive_counts = np.bincount(group[: positive.size], minlength=num_groups)
    negative_counts = np.bincount(group[positive.size:], minlength=num_groups)
    return positive_counts[::-1].astype(np.int64), negative_counts[::-1].astype(np.int64)


def _auroc(positive_counts: np.ndarray, negative_counts: np.ndarray) -> float:
    # Twice the Mann-Whitney U statistic of the positives: each positive scores 2 per
    # negative strictly below it and 1 per negative tied with it. Integer arithmetic,
    # one rounding at the final division.
    negatives_below = negative_counts.sum() - np.cumsum(negative_counts)
    twice_u = int(np.sum(positive_counts * (2 * negatives_below + negative_counts)))
    return twice_u / (2 * int(positive_counts.sum()) * int(negative_counts.sum()))


def _aupr(positive_counts: np.ndarray, negative_counts: np.ndarray) -> float:
    true_positives = np.cumsum(positive_counts)
    predicted_positives = true_positives + np.cumsum(negative_counts)
    recall_steps = positive_counts / true_positives[-1]
    return float(np.sum(recall_steps * (true_positives / predicted_positives)))


def _fpr_at_tpr(positive_counts: np.ndarray, negative_counts: np.ndarray, tpr) -> float:
    if isinstance(tpr, (bool, np.bool_)) or not isinstance(tpr, (int, float, np.integer, np.floating)) \
            or not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be a number in (0, 1], got {tpr!r}")
    true_positive_rate = np.cumsum(positive_counts) / positive_counts.sum()
    first_reaching = int(np.argmax(true_positive_rate >= tpr))  # exists: the last rate is 1
    return int(np.cumsum(negative_counts)[first_reaching]) / int(negative_counts.sum())


def auroc(positive_scores, negative_scores) -> float:
    """Area under the ROC curve: P(random positive scores higher than random negative), ties 1/2.

    Equal to the Mann-Whitney U statistic of the positives (average ranks for ties)
    divided by n_positive * n_negative. O(n log n).
    """
    return _auroc(*_counts_by_threshold(positive_scores, negative_scores))


def aupr(positive_scores, negative_scores) -> float:
    """Area under the precision-recall curve, positives as the positive class, as average precision.

    Thresholds t_1 > t_2 > ... are the distinct scores from high to low; at t_k every
    input with score >= t_k is predicted positive, giving recall R_k and precision P_k
    (tied scores enter together). AUPR = sum_k (R_k - R_{k-1}) * P_k with R_0 = 0: a
    step-wise integral with no interpolation between thresholds. When all scores are
    tied it is the fraction of positives.
    """
    return _aupr(*_counts_by_threshold(positive_scores, negative_scores))


def fpr_at_tpr(positive_scores, negative_scores, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold whose true-positive rate is >= tpr.

    Thresholds are the distinct scores; at threshold t every input with score >= t is
    predicted positive. Since both rates only grow as t decreases, this is the smallest
    false-positive rate achievable with a true-positive rate of at least tpr (FPR95 for
    the default). tpr must lie in (0, 1].
    """
    return _fpr_at_tpr(*_counts_by_threshold(positive_scores, negative_scores), tpr)


def ood_table_row(positive_scores, negative_scores) -> dict:
    """The three metrics of the paper's Tables 1-3 for one model and one test set, plus set sizes."""
    positive_counts, negative_counts = _counts_by_threshold(positive_scores, negative_scores)
    return {
        "aupr": _aupr(positive_counts, negative_counts),
        "auroc": _auroc(positive_counts, negative_counts),
        "fpr95": _fpr_at_tpr(positive_counts, negative_counts, 0.95),
        "n_positive": int(positive_counts.sum()),
        "n_negative": int(negative_counts.sum()),
    }
