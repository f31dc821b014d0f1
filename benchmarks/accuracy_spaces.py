"""Exactly solvable input spaces for `python -m benchmarks.accuracy`.

Every model here outputs z = BIAS + SCALE * S with S an integer, so the exact output
distribution is a probability p(S) over a range of integers, computed in float64:

  bits<N>   N binary inputs, S = sum_i a_i x_i with integer a_i drawn from {-2, -1, 1, 2, 3}:
            p(S) by convolving, one input at a time, with the two-point law of a_i x_i.
  potts<L>  a chain of L sites with 3 states, S = sum_i W_i[x_i, x_i+1] with integer
            couplings W_i drawn from {-2, ..., 2}: p(S) by a transfer matrix over
            (state of the last site, partial sum).
  blocks<B>x<n>  B blocks of n binary inputs (n even), S = sum_b c_b (m_b - n/2)^2 + l_b m_b
            with m_b the ones in block b, c_b in {1, 2}, l_b in {-2, ..., 2}: each block is
            a double well at positive beta (all off vs all on, at different z), so the tilted
            ensembles are bimodal and walkers must cross barriers; p(S) by convolving the
            blocks' binomial laws.
  trap<B>x<n>  B blocks of n binary inputs, S = sum_b t(m_b) with the deceptive trap
            t(m) = n for a full block and n - 1 - m otherwise (Deb & Goldberg 1993): at high
            beta every block has two wells, all off (t = n - 1) and all on (t = n), and local
            moves (and the gradient) lead away from the higher one, so walkers at the top of
            the ladder keep the blocks they froze in until a round trip through low beta
            reshuffles them. The hardest space here for the verdict; p(S) by convolving the
            blocks' binomial laws.

Bin edges sit half-way between integer sums (never on an output value), evenly spread over
the sums whose lower and upper tails each hold at least TAIL_MASS of all inputs, so the end
bins hold rho of roughly 1e-15..1e-10 and the bins the accuracy criterion counts
(rho >= 1e-12) lie inside the range the sampler is asked for.

This module imports only numpy at top level (jax lazily, in `output_fn`), so the benchmark's
parent process can compute exact answers without importing any omnijax.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

SCALE, BIAS = 0.1, -0.37
TAIL_MASS = 1e-15
NUM_BINS = 20
BIT_WEIGHTS = (-2, -1, 1, 2, 3)
POTTS_STATES = 3
POTTS_COUPLINGS = (-2, -1, 0, 1, 2)
BLOCK_CURVATURES = (1, 2)
BLOCK_SLOPES = (-2, -1, 0, 1, 2)
_NAME = re.compile(r"^(bits|potts)(\d+)$|^(blocks|trap)(\d+)x(\d+)$")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One exactly solvable model: its space, its integer tables and p(S) for S = s_min + j."""

    name: str
    kind: str                # "bits", "potts", "blocks" or "trap"
    shape: tuple[int, ...]
    num_categories: int
    table: np.ndarray        # bits: (N,) a_i; potts: (L-1, K, K) W_i; blocks: (B, 2) (c_b, l_b); trap: (B, n+1) t(m)
    s_min: int
    p: np.ndarray            # (s_max - s_min + 1,) fraction of all inputs with each sum


def parse_name(name: str) -> tuple[str, tuple[int, ...]]:
    """'bits64' -> ('bits', (64,)), 'blocks8x12' -> ('blocks', (8, 12)); ValueError otherwise."""
    match = _NAME.match(name)
    if match and match.group(1):
        kind, sizes = match.group(1), (int(match.group(2)),)
    elif match:
        kind, sizes = match.group(3), (int(match.group(4)), int(match.group(5)))
    if (not match or sizes[-1] < 2 or (kind in ("blocks", "trap") and sizes[0] < 1)
            or (kind == "blocks" and sizes[1] % 2)):
        raise ValueError(f"unknown space {name!r}: expected bits<N>, potts<L> (N, L >= 2), blocks<B>x<n> "
                         f"(n even) or trap<B>x<n> (n >= 2), e.g. bits64, bits100, potts40, blocks8x12, trap16x6")
    return kind, sizes


def build(name: str, seed: int = 0) -> Problem:
    """The problem called `name` (see the module docstring), tables drawn from `seed`."""
    kind, sizes = parse_name(name)
    if kind == "trap":  # no random table: every block is the same trap
        blocks, n = sizes
        values = np.tile(trap_values(n), (blocks, 1))
        s_min, p = block_law_distribution(values, n)
        return Problem(name, kind, (blocks * n,), 2, values, s_min, p)
    rng = np.random.default_rng([seed, *sizes, ("bits", "potts", "blocks").index(kind)])
    if kind == "bits":
        weights = rng.choice(BIT_WEIGHTS, size=sizes[0]).astype(np.int64)
        s_min, p = bits_distribution(weights)
        return Problem(name, kind, sizes, 2, weights, s_min, p)
    if kind == "potts":
        couplings = rng.choice(POTTS_COUPLINGS, size=(sizes[0] - 1, POTTS_STATES, POTTS_STATES)).astype(np.int64)
        s_min, p = potts_distribution(couplings)
        return Problem(name, kind, sizes, POTTS_STATES, couplings, s_min, p)
    blocks, n = sizes
    table = np.stack([rng.choice(BLOCK_CURVATURES, size=blocks), rng.choice(BLOCK_SLOPES, size=blocks)], axis=1)
    s_min, p = block_law_distribution(block_sums(table.astype(np.int64), n), n)
    return Problem(name, kind, (blocks * n,), 2, table.astype(np.int64), s_min, p)


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


def block_sums(table: np.ndarray, n: int) -> np.ndarray:
    """(B, n + 1) integer S_b = c_b (m - n/2)^2 + l_b m of each block for m = 0..n ones."""
    m = np.arange(n + 1)
    return table[:, :1] * (m - n // 2) ** 2 + table[:, 1:] * m


def trap_values(n: int) -> np.ndarray:
    """(n + 1,) the deceptive trap t(m) = n if m == n else n - 1 - m, for m = 0..n ones."""
    m = np.arange(n + 1)
    return np.where(m == n, n, n - 1 - m).astype(np.int64)


def block_law_distribution(values: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """(s_min, p) of S = sum_b values[b, m_b] over uniform binary blocks of n inputs each
    (m_b the ones in block b; values (B, n + 1) integers)."""
    binomial = np.array([math.comb(n, m) for m in range(n + 1)], np.float64) / 2.0 ** n
    s_min, p = 0, np.ones(1)
    for row in np.asarray(values, np.int64):
        low = int(row.min())
        law = np.bincount(row - low, weights=binomial)
        p, s_min = np.convolve(p, law), s_min + low
    return s_min, p


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


def exact_case(name: str, seed: int = 0):
    """(output_fn, omnijax InputSpace, bin edges, exact ln rho per bin) of the space `name`:
    what a run against the exact answer needs (imports omnijax lazily)."""
    import omnijax as oj

    problem = build(name, seed)
    edges = bin_edges(problem)
    space = oj.InputSpace(shape=problem.shape, num_categories=problem.num_categories)
    return output_fn(problem), space, edges, exact_log_rho(problem, edges)


def output_fn(problem: Problem):
    """The model as a plain JAX function of one one-hot input (shape + (K,)) -> scalar z."""
    import jax.numpy as jnp

    if problem.kind == "bits":
        table = np.stack([np.zeros_like(problem.table), problem.table], axis=-1).astype(np.float32)
        table = jnp.asarray(table)

        def bits_z(onehot):
            return BIAS + SCALE * jnp.sum(onehot * table)

        return bits_z
    if problem.kind == "blocks":
        curvature, slope = (jnp.asarray(problem.table[:, i].astype(np.float32)) for i in (0, 1))
        blocks = len(problem.table)
        half = problem.shape[0] // blocks / 2

        def blocks_z(onehot):
            m = jnp.sum(onehot[:, 1].reshape(blocks, -1), axis=1)
            return BIAS + SCALE * jnp.sum(curvature * (m - half) ** 2 + slope * m)

        return blocks_z
    if problem.kind == "trap":
        blocks, n = problem.table.shape[0], problem.table.shape[1] - 1

        def trap_z(onehot):
            m = jnp.sum(onehot[:, 1].reshape(blocks, n), axis=1)
            return BIAS + SCALE * jnp.sum(jnp.where(m > n - 0.5, float(n), n - 1.0 - m))

        return trap_z
    couplings = jnp.asarray(problem.table.astype(np.float32))

    def potts_z(onehot):
        return BIAS + SCALE * jnp.einsum("ia,iab,ib->", onehot[:-1], couplings, onehot[1:])

    return potts_z
