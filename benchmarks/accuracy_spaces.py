"""Exactly solvable input spaces for `python -m benchmarks.accuracy`.

Every model here outputs z = BIAS + SCALE * S with S an integer, so the exact output
distribution is a probability p(S) over a range of integers, computed in float64:

  bits<N>   N binary inputs, S = sum_i a_i x_i with integer a_i drawn from {-2, -1, 1, 2, 3}:
            p(S) by convolving, one input at a time, with the two-point law of a_i x_i.
  potts<L>  a chain of L sites with 3 states, S = sum_i W_i[x_i, x_i+1] with integer
            couplings W_i drawn from {-2, ..., 2}: p(S) by a transfer matrix over
            (state of the last site, partial sum).

Bin edges sit half-way between integer sums (never on an output value), evenly spread over
the sums whose lower and upper tails each hold at least TAIL_MASS of all inputs, so the end
bins hold rho of roughly 1e-15..1e-10 and the bins the accuracy criterion counts
(rho >= 1e-12) lie inside the range the sampler is asked for.

This module imports only numpy at top level (jax lazily, in `output_fn`), so the benchmark's
parent process can compute exact answers without importing any omnijax.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

SCALE, BIAS = 0.1, -0.37
TAIL_MASS = 1e-15
NUM_BINS = 20
BIT_WEIGHTS = (-2, -1, 1, 2, 3)
POTTS_STATES = 3
POTTS_COUPLINGS = (-2, -1, 0, 1, 2)
_NAME = re.compile(r"^(bits|potts)(\d+)$")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One exactly solvable model: its space, its integer tables and p(S) for S = s_min + j."""

    name: str
    kind: str                # "bits" or "potts"
    shape: tuple[int, ...]
    num_categories: int
    table: np.ndarray        # bits: (N,) weights a_i; potts: (L-1, K, K) couplings W_i
    s_min: int
    p: np.ndarray            # (s_max - s_min + 1,) fraction of all inputs with each sum


def parse_name(name: str) -> tuple[str, int]:
    """'bits64' -> ('bits', 64); ValueError for anything else."""
    match = _NAME.match(name)
    if not match or int(match.group(2)) < 2:
        raise ValueError(f"unknown space {name!r}: expected bits<N> or potts<L> with N, L >= 2 "
                         f"(e.g. bits64, bits100, potts40)")
    return match.group(1), int(match.group(2))


def build(name: str, seed: int = 0) -> Problem:
    """The problem called `name` (see the module docstring), tables drawn from `seed`."""
    kind, size = parse_name(name)
    rng = np.random.default_rng([seed, size, 0 if kind == "bits" else 1])
    if kind == "bits":
        weights = rng.choice(BIT_WEIGHTS, size=size).astype(np.int64)
        s_min, p = bits_distribution(weights)
        return Problem(name, kind, (size,), 2, weights, s_min, p)
    couplings = rng.choice(POTTS_COUPLINGS, size=(size - 1, POTTS_STATES, POTTS_STATES)).astype(np.int64)
    s_min, p = potts_distribution(couplings)
    return Problem(name, kind, (size,), POTTS_STATES, couplings, s_min, p)


def bits_distribution(weights: np.ndarray) -> tuple[int, np.ndarray]:
    """(s_min, p) of S = sum a_i x_i over uniform binary x."""
    s_min, p = 0, np.ones(1)
    for a in np.asarray(weights).reshape(-1):
        step = np.zeros(abs(int(a)) + 1)
        step[0] = step[-1] = 0.5        # x_i = 0 adds 0, x_i = 1 adds a
        p = np.convolve(p, step)
        s_min += min(int(a), 0)         # a < 0: the new lowest sum is s_min + a
    return s_min, p


def potts_distribution(couplings: np.ndarray) -> tuple[int, np.ndarray]:
    """(s_min, p) of S = sum_i W_i[x_i, x_i+1] over uniform x in {0..K-1}^L."""
    couplings = np.asarray(couplings, np.int64)
    k = couplings.shape[1]
    s_min = int(couplings.min(axis=(1, 2)).sum())
    width = int(couplings.max(axis=(1, 2)).sum()) - s_min + 1
    # f[b, j]: fraction of prefixes ending in state b with partial sum s_min + j - offset so far.
    f = np.zeros((k, width))
    f[:, 0] = 1.0 / k
    offset = 0
    for w in couplings:
        low = int(w.min())
        g = np.zeros_like(f)
        for a in range(k):
            for b in range(k):
                shift = int(w[a, b]) - low
                g[b, shift:] += f[a, :width - shift] / k
        f, offset = g, offset + low
    return s_min, f.sum(axis=0)


def sums(problem: Problem) -> np.ndarray:
    """The integer sums S that p indexes."""
    return problem.s_min + np.arange(len(problem.p))


def bin_edges(problem: Problem, num_bins: int = NUM_BINS, tail_mass: float = TAIL_MASS) -> np.ndarray:
    """Edges in z, half-way between integer sums, over the sums with both tails >= tail_mass."""
    s = sums(problem)
    low_tail, high_tail = np.cumsum(problem.p), np.cumsum(problem.p[::-1])[::-1]
    s_lo, s_hi = s[np.argmax(low_tail >= tail_mass)], s[len(s) - 1 - np.argmax(high_tail[::-1] >= tail_mass)]
    edges_s = np.unique(np.round(np.linspace(s_lo, s_hi + 1, num_bins + 1))) - 0.5
    return BIAS + SCALE * edges_s


def exact_log_rho(problem: Problem, edges: np.ndarray) -> np.ndarray:
    """ln(fraction of all inputs) per bin of `edges` (-inf for a bin no input reaches)."""
    z = BIAS + SCALE * sums(problem)
    which = np.searchsorted(edges, z, side="right") - 1
    inside = (which >= 0) & (which < len(edges) - 1)
    mass = np.bincount(which[inside], weights=problem.p[inside], minlength=len(edges) - 1)
    with np.errstate(divide="ignore"):
        return np.log(mass)


def output_fn(problem: Problem):
    """The model as a plain JAX function of one one-hot input (shape + (K,)) -> scalar z."""
    import jax.numpy as jnp

    if problem.kind == "bits":
        table = np.stack([np.zeros_like(problem.table), problem.table], axis=-1).astype(np.float32)
        table = jnp.asarray(table)

        def bits_z(onehot):
            return BIAS + SCALE * jnp.sum(onehot * table)

        return bits_z
    couplings = jnp.asarray(problem.table.astype(np.float32))

    def potts_z(onehot):
        return BIAS + SCALE * jnp.einsum("ia,iab,ib->", onehot[:-1], couplings, onehot[1:])

    return potts_z
