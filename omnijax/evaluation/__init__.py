"""Evaluation: precision and recall over the input space (from ln rho and per-bin precision),
the dataset-based metrics they are compared with, and the plots of both.

The input-space metrics are re-exported here (`omnijax.evaluation.precision_recall`);
`dataset_metrics`, `plots` and `pr_plots` are imported by name where needed.
"""

from omnijax.evaluation.precision_recall import (
    ROC, BinPrecision, CrossModelNormalisation, MissingAnnotationWarning, PRConvergence,
    PrecisionRecall, aupr, aupr_ratio, bin_precision, common_log_recall_range,
    cross_model_log_offsets, cross_model_normalisation, pr_convergence, precision_recall,
    roc_input_space)

__all__ = [
    "ROC", "BinPrecision", "CrossModelNormalisation", "MissingAnnotationWarning", "PRConvergence",
    "PrecisionRecall", "aupr", "aupr_ratio", "bin_precision", "common_log_recall_range",
    "cross_model_log_offsets", "cross_model_normalisation", "pr_convergence", "precision_recall",
    "roc_input_space",
]
