"""Several annotators of one run, held against each other (paper §2.2, Fig. 6; §4 and Appendix G):
each annotator's own r(z), pairwise agreement (Cohen's κ), and how far each judge (a model used as
annotator, or an FID per bin in judge_fid.csv) ranks the bins as the people's pooled r(z) does
(Spearman's ρ). The library behind those parts of `python -m experiments.pr`.

Whose scores: `chosen` (--annotators, default all) make the pooled r(z) of the report; the people
are the chosen annotators that are not judges; every judge that scored the run is shown and held
against the people, chosen or not, since that comparison is what a judge is for.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np

from omnijax import evaluation as ev
from omnijax.annotation.annotators import Agreement, agreement
from omnijax.annotation.store import Store

FID_FILE = "judge_fid.csv"
FID_COLUMNS = ("bin", "bin_lo", "bin_hi", "n_representatives", "fid")


@dataclasses.dataclass(frozen=True)
class JudgeComparison:
    """Spearman's ρ between a judge's per-bin ranking and the people's pooled r(z)."""

    judge: str             # the judge annotator's name, or "FID" for judge_fid.csv
    source: str            # "scores" (its r(z)) or the path of judge_fid.csv (its -FID)
    against: list[str]     # the people whose pooled r(z) it is held against
    rho: float             # NaN when fewer than two bins are known to both, or one side is constant
    n_bins: int            # bins both have


@dataclasses.dataclass(frozen=True)
class RunAnnotators:
    """One run's annotators: their own r(z), their agreement, and the judges against the people."""

    names: list[str]                  # shown: the chosen annotators and every judge of the run
    kinds: dict[str, str]
    r: dict[str, ev.BinPrecision]     # each annotator alone (ev.annotator_precision)
    agreement: list[Agreement]        # every pair that scored a sample in common
    notes: list[str]                  # pairs that did not, and why no judge comparison was made
    judges: list[JudgeComparison]


def load(store: Store, run_id: int, chosen, sample_weights, workdir: str, bin_edges) -> RunAnnotators:
    """Everything above for one run of the store; ValueError naming judge_fid.csv when it is bad."""
    everyone = store.bin_scores(run_id, None, sample_weights)
    kinds = everyone.kinds
    names = [n for n in everyone.annotators if chosen is None or n in chosen or kinds[n] == "judge"]
    people = [n for n in names if kinds[n] != "judge" and (chosen is None or n in chosen)]
    judges = [n for n in names if kinds[n] == "judge"]
    own = ev.annotator_precision(_columns(everyone, names), weights_per_bin=everyone.weights)
    r = dict(zip(names, own))
    pairs = []
    notes = [f"judge {n}'s scores are held against the people, not counted in r(z) (name it in --annotators "
             "to count them)" for n in judges if chosen is not None and n not in chosen]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            try:
                pairs.append(agreement(store, a, b, run_id))
            except ValueError:
                notes.append(f"{a} and {b} scored no sample in common: no agreement")
    fid = read_fid(os.path.join(workdir, FID_FILE), bin_edges)
    comparisons = []
    if judges or fid is not None:
        if not people:
            notes.append("no judge comparison: none of the annotators whose scores count is a person or oracle")
        else:
            pooled = _rankable(ev.bin_precision(_columns(everyone, people), weights_per_bin=everyone.weights,
                                                num_bootstrap=None).r)
            for name in judges:
                comparisons.append(JudgeComparison(name, "scores", people,
                                                   *ev.spearman(_rankable(r[name].r), pooled)))
            if fid is not None:
                comparisons.append(JudgeComparison("FID", os.path.join(workdir, FID_FILE), people,
                                                   *ev.spearman(-fid, pooled)))
    return RunAnnotators(names, {n: kinds[n] for n in names}, r, pairs, notes, comparisons)


def _rankable(r: np.ndarray) -> np.ndarray:
    """r rounded to 12 decimals, so that bins whose r is one fraction computed two ways (they differ
    in the last bit) tie in the ranking, as they do in exact arithmetic."""
    return np.round(r, 12)


def _columns(scores, names) -> list[np.ndarray]:
    """The per-bin (samples, annotators) matrices of `scores` restricted to `names`, in that order."""
    index = [scores.annotators.index(n) for n in names]
    return [s[:, index] for s in scores.scores]


def read_fid(path: str, bin_edges) -> np.ndarray | None:
    """FID per bin from judge_fid.csv (NaN for a bin it does not list or leaves empty); None without
    the file. Lower FID = closer to the reference images, so -FID ranks bins as r(z) does."""
    if not os.path.isfile(path):
        return None
    edges = np.asarray(bin_edges, np.float64)
    num_bins = len(edges) - 1
    fid = np.full(num_bins, np.nan)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in FID_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path} lacks the columns {missing} (expected {', '.join(FID_COLUMNS)})")
        for line, row in enumerate(reader, start=2):
            try:
                b, lo, hi = int(row["bin"]), float(row["bin_lo"]), float(row["bin_hi"])
                value = float(row["fid"]) if row["fid"].strip() else math.nan
            except ValueError as err:
                raise ValueError(f"{path} line {line}: {err}") from None
            if not 0 <= b < num_bins:
                raise ValueError(f"{path} line {line}: bin {b} is not a bin of the run (0..{num_bins - 1})")
            scale = 1e-5 * max(1.0, float(np.abs(edges).max()))
            if abs(lo - edges[b]) > scale or abs(hi - edges[b + 1]) > scale:
                raise ValueError(f"{path} line {line}: bin {b} is [{lo}, {hi}) but the run's bin {b} is "
                                 f"[{edges[b]:.6g}, {edges[b + 1]:.6g}) (a file of another run?)")
            if not (math.isnan(value) or value >= 0):
                raise ValueError(f"{path} line {line}: fid must be a nonnegative number, got {row['fid']!r}")
            fid[b] = value
    return fid
