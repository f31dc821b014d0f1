"""Scoring the representative inputs of a sampling run (paper §2.2): people, oracles and judges score
each bin's inputs in [0, 1]; the precision r(z) of a bin is the weighted mean over its scored inputs
of each input's mean score (omnijax.evaluation.bin_precision, the one definition).

    store = Store("runs/x/annotations.sqlite"); run = store.import_run("runs/x")
    annotate(store, run.id, Oracle("truth", predicate))     # or people, via python -m omnijax.annotation serve
    store.bin_precision_table(run.id, sample_weights=load_samples("runs/x")["weight"]).r()  # NaN: unscored

A team scores through the page with invite tokens (omnijax.annotation.access: invite, revoke; or
python -m omnijax.annotation invite --run=DIR --annotator=NAME): the annotator of a score is the token's.
"""

from omnijax.annotation.annotators import Agreement, Judge, Oracle, agreement, annotate
from omnijax.annotation.label_studio import import_label_studio_export, write_label_studio_import
from omnijax.annotation.store import (BinPrecision, BinScores, PrecisionTable, Run, Sample, Score, Store, check_score,
                                      load_samples)

__all__ = [
    "Agreement",
    "BinPrecision",
    "BinScores",
    "Judge",
    "Oracle",
    "PrecisionTable",
    "Run",
    "Sample",
    "Score",
    "Store",
    "agreement",
    "annotate",
    "check_score",
    "import_label_studio_export",
    "load_samples",
    "write_label_studio_import",
]
