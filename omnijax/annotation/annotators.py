"""Programmatic annotators, scoring through the same store as people, and agreement between any two.

An oracle knows the answer exactly (a predicate on the integer input, e.g. for a synthetic task).
A judge is a reference model: the paper (§4, "Human Annotation vs. Model Annotation") warns that a
model uncertified over the whole input space is an unreliable annotator, so its scores are stored
under the kind "judge" and every table, export and agreement that uses them says so.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, ClassVar

import numpy as np

from omnijax.annotation.store import Store, check_score


@dataclasses.dataclass(frozen=True)
class Oracle:
    """Exact annotator: predicate(input int array) -> bool or a score in [0, 1]."""
    name: str
    predicate: Callable[[np.ndarray], object]
    kind: ClassVar[str] = "oracle"

    def score(self, inputs: np.ndarray) -> list:
        return [float(v) if isinstance(v, (bool, np.bool_)) else v for v in map(self.predicate, inputs)]


@dataclasses.dataclass(frozen=True)
class Judge:
    """A reference classifier as annotator: model(batch of int inputs) -> (n,) probabilities or 0/1 labels."""
    name: str
    model: Callable[[np.ndarray], object]
    kind: ClassVar[str] = "judge"

    def score(self, inputs: np.ndarray) -> list:
        out = np.asarray(self.model(inputs))
        if out.shape != (len(inputs),):
            raise ValueError(f"judge {self.name!r} must return one probability or label per input, shape "
                             f"({len(inputs)},), got shape {out.shape}")
        return [float(v) if out.dtype == bool else v.item() for v in out]


def annotate(store: Store, run_id: int, annotator: Oracle | Judge, batch_size: int = 256) -> int:
    """Scores every sample of the run that this annotator has not scored yet; returns how many.

    Each batch is one transaction, so an interrupted pass keeps what it did and a rerun resumes."""
    store.add_annotator(annotator.name, annotator.kind)
    done = {s.sample for s in store.current_scores(run_id, annotator=annotator.name)}
    todo = [s for s in store.samples(run_id) if s.id not in done]
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        scores = annotator.score(np.stack([s.input for s in batch]))
        for sample, score in zip(batch, scores):
            try:
                check_score(score)
            except ValueError as err:
                raise ValueError(f"{annotator.kind} {annotator.name!r} on sample {sample.id}: {err}") from None
        store.add_scores(annotator.name, [(s.id, v) for s, v in zip(batch, scores)])
    return len(todo)


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How two annotators agree on the samples both scored; labels are score >= 0.5."""
    a: str
    b: str
    a_kind: str
    b_kind: str
    n: int                  # samples both scored
    fraction_agree: float   # of labels
    kappa: float            # Cohen's kappa of labels; NaN when both give one and the same label throughout
    mean_abs_diff: float    # of the raw scores

    @property
    def involves_judge(self) -> bool:
        return "judge" in (self.a_kind, self.b_kind)


def agreement(store: Store, a: str, b: str, run_id: int | None = None) -> Agreement:
    """Agreement of annotators a and b over their current scores (of one run, default every run)."""
    kinds = store.annotators()
    for name in (a, b):
        if name not in kinds:
            raise ValueError(f"unknown annotator {name!r}; known: {sorted(kinds)}")
    runs = [store.run(run_id)] if run_id is not None else store.runs()
    score_a, score_b = {}, {}
    for run in runs:
        score_a.update({s.sample: s.score for s in store.current_scores(run.id, annotator=a)})
        score_b.update({s.sample: s.score for s in store.current_scores(run.id, annotator=b)})
    common = sorted(set(score_a) & set(score_b))
    if not common:
        raise ValueError(f"annotators {a!r} and {b!r} have scored no sample in common")
    x = np.array([score_a[i] for i in common])
    y = np.array([score_b[i] for i in common])
    la, lb = x >= 0.5, y >= 0.5
    observed = float(np.mean(la == lb))
    expected = float(la.mean() * lb.mean() + (1 - la.mean()) * (1 - lb.mean()))
    kappa = math.nan if expected == 1.0 else (observed - expected) / (1.0 - expected)
    return Agreement(a, b, kinds[a], kinds[b], len(common), observed, kappa, float(np.mean(np.abs(x - y))))
