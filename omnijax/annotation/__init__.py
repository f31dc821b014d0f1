"""Scoring the representative inputs of a sampling run (paper §2.2): people, oracles and judges score
each bin's inputs in [0, 1]; the mean score per bin is the precision r(z).

    store = Store("runs/x/annotations.sqlite"); run = store.import_run("runs/x")
    annotate(store, run.id, Oracle("truth", predicate))     # or people, via python -m omnijax.annotation serve
    store.bin_precision_table(run.id).r()                    # r(z), NaN where nobody scored
"""

from omnijax.annotation.annotators import Agreement, Judge, Oracle, agreement, annotate
from omnijax.annotation.store import BinPrecision, PrecisionTable, Run, Sample, Score, Store, check_score

__all__ = [
    "Agreement",
    "BinPrecision",
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
]
