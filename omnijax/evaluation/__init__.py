"""Evaluation: precision and recall over the input space (from ln rho and per-bin precision),
the dataset-based metrics they are compared with, and the plots of both.

The input-space metrics (`omnijax.evaluation.precision_recall`) and Spearman's rank correlation
(`rank_correlation`, judges against people) are re-exported here;
`dataset_metrics`, `plots` and `pr_plots` are imported by name where needed.
"""

from omnijax.evaluation.precision_recall import (
    ROC, BinPrecision, CrossModelNormalisation, MissingAnnotationWarning, PRBand, PRConvergence,
    PrecisionRecall, annotator_precision, aupr, aupr_ratio, bin_precision, common_log_recall_range,
    cross_model_log_offsets, cross_model_normalisation, pr_convergence, precision_recall,
    precision_recall_band, roc_input_space)
from omnijax.evaluation.rank_correlation import RankCorrelation, average_ranks, spearman

__all__ = [
    "ROC", "BinPrecision", "CrossModelNormalisation", "MissingAnnotationWarning", "PRBand", "PRConvergence",
    "PrecisionRecall", "RankCorrelation", "annotator_precision", "aupr", "aupr_ratio", "average_ranks",
    "bin_precision", "common_log_recall_range", "cross_model_log_offsets", "cross_model_normalisation",
    "pr_convergence", "precision_recall", "precision_recall_band", "roc_input_space", "spearman",
]
