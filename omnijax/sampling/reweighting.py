"""Bin-free multiple-histogram (MBAR) reweighting of replica-exchange samples into rho(z).

Samples drawn at inverse temperatures beta_r from pi_r(x) ∝ exp(beta_r z(x)) are pooled: sample n,
with output z_n and multiplicity m_n, gets the weight

    w_n = 1 / sum_r N_r exp(beta_r z_n - F_r),   F_r = ln sum_n m_n w_n exp(beta_r z_n),

where N_r = sum of m_n over the samples of replica r; a replica with N_r = 0 drops out. Normalised
so that sum_n m_n w_n = 1, the weights estimate the uniform distribution over all inputs: the sum of
m_n w_n over a bin estimates the fraction rho of ALL inputs whose output falls in it, and
F_r = ln E_uniform[exp(beta_r z)] (0 at beta = 0). Weights are per sample (no binning in the
solve), so wide bins carry no bin-centre bias.

Everything is float32 and in log space; z is centred before the solve so that beta_r z stays small.
"""

from __future__ import annotations

import functools
import sys
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.histogram import bin_counts, bin_index, validate_bin_edges
from omnijax.util.progress import Progress
from omnijax.util.validation import check_key

_TOL = 1e-6
_MAX_ITER = 10_000
# Iterations without a new smallest residual, once within float32 reach of the solution, that
# mean float32 precision is exhausted.
_PATIENCE = 3
# Float32 reach: the residual cannot be resolved below ~eps * max|F|; observed floors are < 0.2x
# that, so residuals under _REACH x eps x max(1, max|F|) count as solved to float32 precision.
_REACH = 64.0


class BootstrapResult(NamedTuple):
    """ln rho per bin with its bootstrap uncertainty (all arrays of shape (num_bins,)).

    log_rho: estimate from the full data (-inf where no sample falls in the bin).
    stderr: standard deviation of ln rho over the bootstrap replicates where the bin is non-empty;
      +inf where fewer than 2 replicates have it non-empty.
    ci_low, ci_high: 2.5% and 97.5% percentiles of ln rho over all replicates (ci_low is -inf
      where more than 2.5% of replicates leave the bin empty).
    n_samples: raw number of samples in each bin.
    iterations: (num_bootstrap,) MBAR solver iterations of each replicate.
    seconds: wall time of the bootstrap, compilation included.
    """

    log_rho: jax.Array
    stderr: jax.Array
    ci_low: jax.Array
    ci_high: jax.Array
    n_samples: jax.Array
    iterations: np.ndarray | None = None
    seconds: float | None = None


def _is_real(array) -> bool:
    """True for integer or floating (not bool, not complex) numpy arrays."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def _validate_samples(z, replica, betas, multiplicity):
    """Return (z, replica, betas, multiplicity) as float32/int32 numpy, or raise ValueError.

    Every replica index must occur: a beta with no samples at all is a caller error (an empty
    replica is only legitimate through zero multiplicities, e.g. in a bootstrap resample).
    Missing multiplicity means 1 per sample.
    """
    z = np.asarray(z)
    if z.ndim != 1 or z.size == 0 or not _is_real(z):
        raise ValueError(f"z must be a non-empty 1-D real array, got dtype {z.dtype} shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"z must be finite; z[{int(np.argmin(np.isfinite(z)))}] is not")
    betas = np.asarray(betas)
    if betas.ndim != 1 or betas.size == 0 or not _is_real(betas):
        raise ValueError(f"betas must be a non-empty 1-D real array, got shape {betas.shape}")
    if not np.all(np.isfinite(betas)):
        raise ValueError(f"betas must be finite, got {betas}")
    replica = np.asarray(replica)
    if replica.shape != z.shape or not np.issubdtype(replica.dtype, np.integer):
        raise ValueError(
            f"replica must be an integer array of the same shape as z {z.shape}, got "
            f"dtype {replica.dtype} shape {replica.shape}")
    if replica.min() < 0 or replica.max() >= betas.size:
        raise ValueError(f"replica must lie in [0, len(betas)={betas.size}), got values in "
                         f"[{replica.min()}, {replica.max()}]")
    counts = np.bincount(replica, minlength=betas.size)
    if np.any(counts == 0):
        r = int(np.argmin(counts))
        raise ValueError(f"replica has no samples at betas[{r}]={betas[r]}; leave that beta out of betas")
    if multiplicity is None:
        multiplicity = np.ones(z.shape, np.float32)
    multiplicity = np.asarray(multiplicity)
    if multiplicity.shape != z.shape or not _is_real(multiplicity):
        raise ValueError(f"multiplicity must be a real array of the same shape as z {z.shape}, "
                         f"got dtype {multiplicity.dtype} shape {multiplicity.shape}")
    if not np.all(np.isfinite(multiplicity)) or np.any(multiplicity < 0) or multiplicity.sum() <= 0:
        raise ValueError("multiplicity must be finite and nonnegative with a positive sum")
    return (z.astype(np.float32), replica.astype(np.int32), betas.astype(np.float32),
            multiplicity.astype(np.float32))


def _validate_solver(tol, max_iter):
    """Raise ValueError unless tol is a positive finite number and max_iter a positive int."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.number)) or not 0 < tol < np.inf:
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")


def _sweep(free_energy, z, log_m, counts, betas):
    """One pass over the samples at free energies F.

    Returns ln p_nr, the log probability that sample n came from replica r, and the residual
    ln(sum_n m_n p_nr / N_r): zero for every populated replica exactly at the solution, and set to
    zero for empty replicas. The sum is shifted by its largest term and divided by N_r before the
    log, so the residual keeps float32 precision near zero instead of the resolution of ln N_r.
    """
    log_p = jax.nn.log_softmax(jnp.log(counts) + z[:, None] * betas - free_energy, axis=1)
    terms = log_m[:, None] + log_p
    shift = jnp.max(terms, axis=0)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    residual = jnp.log(jnp.sum(jnp.exp(terms - shift), axis=0) / counts) + shift
    return log_p, jnp.where(counts > 0, residual, 0.0)


def _hessian(log_p, multiplicity):
    """Hessian (R, R) of the convex MBAR objective sum_n m_n ln sum_r N_r e^{beta_r z_n - F_r} + sum_r N_r F_r,
    divided by sum_n m_n, at the sweep's ln p_nr. Its diagonal comes from its zero row sums, avoiding
    the cancellation in sum_n m_n p_nr (1 - p_nr)."""
    p = jnp.exp(log_p)
    cross = (p * multiplicity[:, None]).T @ p / jnp.sum(multiplicity)
    off = cross - jnp.diag(jnp.diag(cross))
    return jnp.diag(jnp.sum(off, axis=1)) - off


def _newton_step(free_energy, log_p, residual, multiplicity, counts, free, hessian=None):
    """Newton step on the MBAR objective (`_hessian`), or with a given `hessian` a chord step: the
    Hessian of a nearby solve (a bootstrap resample's full-data solution), which costs a sweep instead
    of a sweep and an N x R x R product, and converges linearly instead of quadratically.

    Only `free` replicas move: the gauge replica and empty replicas are held fixed. Jacobi scaling
    keeps the solve well conditioned when the N_r differ widely.
    """
    hess = _hessian(log_p, multiplicity) if hessian is None else hessian
    grad = -counts * jnp.expm1(residual) / jnp.sum(multiplicity)
    hess = jnp.where(free[:, None] & free[None, :], hess, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    scale = jnp.sqrt(jnp.diag(hess))
    step = jnp.linalg.solve(hess / jnp.outer(scale, scale), -jnp.where(free, grad, 0.0) / scale)
    return free_energy + step / scale


def _integrated_free_energy(z, replica, multiplicity, counts, betas):
    """Initial guess F(beta) = integral of <z>_beta d beta, by the trapezoid rule over populated betas.

    dF/d beta = <z>_beta because F(beta) = ln E_uniform[exp(beta z)], and each replica's sample
    mean estimates <z> at its beta. Empty replicas sort last and get no increments.
    """
    active = counts > 0
    sums = jax.ops.segment_sum(multiplicity * z, replica, num_segments=betas.shape[0])
    mean_z = sums / jnp.where(active, counts, 1.0)
    order = jnp.argsort(jnp.where(active, betas, jnp.inf))
    b, zbar, ok = betas[order], mean_z[order], active[order]
    steps = jnp.where(ok[1:], 0.5 * (zbar[1:] + zbar[:-1]) * (b[1:] - b[:-1]), 0.0)
    integral = jnp.concatenate([jnp.zeros(1, z.dtype), jnp.cumsum(steps)])
    return jnp.zeros_like(betas).at[order].set(integral)


def _solve(z, replica, multiplicity, counts, betas, tol, max_iter, initial=None, hessian=None):
    """Solve the MBAR equations for centred z; returns (F, iterations, max |residual|, converged).

    Starts from `initial` (e.g. the full data's solution, for a bootstrap resample of it) or, if
    None, from thermodynamic integration. Each iteration evaluates one trial: a Newton step,
    kept if it shrinks the largest residual; after a rejected Newton step, the self-consistent
    step F <- F + residual (which never increases the objective, so it is always kept). This
    converges globally, and quadratically near the solution. Iteration stops at residual <= tol,
    at max_iter, or, once within float32 reach, after _PATIENCE iterations without a new smallest
    residual. `converged` is false when the residual is beyond both tol and float32 reach.
    F is regauged to 0 at the populated replica whose beta is closest to 0.
    """
    log_m = jnp.log(multiplicity)
    active = counts > 0
    ref = jnp.argmin(jnp.where(active, jnp.abs(betas), jnp.inf))
    free = active & (jnp.arange(betas.shape[0]) != ref)

    def sweep(free_energy):
        free_energy = free_energy - free_energy[ref]
        return (free_energy,) + _sweep(free_energy, z, log_m, counts, betas)

    def worst(residual):
        return jnp.max(jnp.abs(residual))

    def within_reach(free_energy, residual):
        eps = jnp.finfo(jnp.float32).eps
        return worst(residual) <= _REACH * eps * jnp.maximum(1.0, jnp.max(jnp.abs(free_energy)))

    def cond(state):
        it, stall, _, _, current = state
        return (it < max_iter) & (stall < _PATIENCE) & (worst(current[2]) > tol)

    def body(state):
        it, stall, best, newton, current = state
        free_energy, log_p, residual = current
        trial = sweep(jax.lax.cond(
            newton,
            lambda: _newton_step(free_energy, log_p, residual, multiplicity, counts, free, hessian),
            lambda: free_energy + residual))
        keep = ~newton | (worst(trial[2]) < worst(residual))
        current = jax.tree.map(lambda new, old: jnp.where(keep, new, old), trial, current)
        stalled = (worst(current[2]) >= best) & within_reach(current[0], current[2])
        return (it + 1, jnp.where(stalled, stall + 1, 0), jnp.minimum(best, worst(current[2])), keep, current)

    if initial is None:
        initial = _integrated_free_energy(z, replica, multiplicity, counts, betas)
    first = sweep(initial)
    state = (jnp.int32(0), jnp.int32(0), worst(first[2]), jnp.bool_(True), first)
    it, _, _, _, (free_energy, _, residual) = jax.lax.while_loop(cond, body, state)
    converged = (worst(residual) <= tol) | within_reach(free_energy, residual)
    return free_energy, it, worst(residual), converged


class _Solution(NamedTuple):
    """An MBAR solve: normalised ln w_n, absolute F_r, the centred F_r it solved for (the warm start
    of a resample's solve), the iterations it took and whether it converged."""

    log_w: jax.Array
    absolute: jax.Array
    centred: jax.Array
    iterations: jax.Array
    converged: jax.Array


def _solution(z, replica, multiplicity, betas, tol, max_iter, initial=None, counts=None,
              hessian=None) -> _Solution:
    """Solve MBAR for samples z (centred here by the midpoint of ALL z, so that resamples of the
    same z share the centred frame of `initial`). `counts` (R,) may replace `replica` (then
    `initial` is required: thermodynamic integration needs each sample's replica). `hessian`: solve
    by chord steps with that fixed Hessian (`_newton_step`)."""
    centre = 0.5 * (jnp.min(z) + jnp.max(z))
    zc = z - centre
    if counts is None:
        counts = jax.ops.segment_sum(multiplicity, replica, num_segments=betas.shape[0])
    free_energy, iterations, _, converged = _solve(zc, replica, multiplicity, counts, betas, tol, max_iter,
                                                   initial, hessian)
    log_w = -jax.nn.logsumexp(jnp.log(counts) + zc[:, None] * betas - free_energy, axis=1)
    log_mw = jnp.log(multiplicity) + log_w
    log_w = log_w - jax.nn.logsumexp(log_mw)
    log_mw = jnp.log(multiplicity) + log_w
    absolute = jax.nn.logsumexp(log_mw[:, None] + zc[:, None] * betas, axis=0) + betas * centre
    return _Solution(log_w, absolute, free_energy, iterations, converged)


def _log_weights(z, replica, multiplicity, betas, tol, max_iter):
    """Normalised ln w_n and absolute F_r = ln E_uniform[exp(beta_r z)], plus the solver's converged flag."""
    solution = _solution(z, replica, multiplicity, betas, tol, max_iter)
    return solution.log_w, solution.absolute, solution.converged


def _log_bin_sums(log_x, idx, num_bins):
    """ln of the sum of exp(log_x) over each bin; samples outside the bins (idx -1 or num_bins) drop out."""
    idx = jnp.where(idx < 0, num_bins, idx)
    top = jax.ops.segment_max(log_x, idx, num_segments=num_bins + 1)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    sums = jax.ops.segment_sum(jnp.exp(log_x - top[idx]), idx, num_segments=num_bins + 1)
    return (jnp.log(sums) + top)[:num_bins]


def _binned(solution, z, multiplicity, bin_edges):
    """ln rho per bin of a solution (-inf where the bin holds no sample of positive multiplicity)."""
    idx = bin_index(z, bin_edges)
    return _log_bin_sums(jnp.log(multiplicity) + solution.log_w, idx, bin_edges.shape[0] - 1)


def _log_rho(z, replica, multiplicity, betas, bin_edges, tol, max_iter):
    """ln rho per bin (-inf where the bin holds no sample of positive multiplicity) and converged flag."""
    solution = _solution(z, replica, multiplicity, betas, tol, max_iter)
    return _binned(solution, z, multiplicity, bin_edges), solution.converged


_log_weights_jit = jax.jit(_log_weights)
_log_rho_jit = jax.jit(_log_rho)


def _warn_if_unconverged(converged, max_iter):
    """Warn when the MBAR solve stopped (at max_iter) short of tol and of float32 precision."""
    if not bool(jnp.all(converged)):
        warnings.warn(f"MBAR solve did not converge within max_iter={max_iter} iterations; "
                      "raise max_iter or check that neighbouring replicas overlap",
                      RuntimeWarning, stacklevel=3)


def mbar_log_weights(z, replica, betas, multiplicity=None, *, tol=_TOL, max_iter=_MAX_ITER):
    """Per-sample MBAR log-weights and free energies from pooled replica-exchange samples.

    Args:
      z: (N,) finite outputs of the samples.
      replica: (N,) int, index into `betas` of the inverse temperature each sample was drawn at;
        every replica must have samples.
      betas: (R,) inverse temperatures.
      multiplicity: optional (N,) nonnegative counts/weights per sample (default 1); a replica
        whose multiplicities are all 0 drops out.
      tol: stop when every populated replica's self-consistency residual
        |ln(sum_n m_n p_nr / N_r)| is at most tol (or float32 precision is exhausted).
      max_iter: maximum solver iterations (each tries a Newton step, else a self-consistent one).

    Returns:
      log_w: (N,) ln w_n, normalised so that logsumexp(ln m + log_w) = 0: m_n w_n is sample n's
        share of the uniform distribution over all inputs.
      free_energies: (R,) F_r = ln E_uniform[exp(beta_r z)], as estimated by the weights.
    """
    z, replica, betas, multiplicity = _validate_samples(z, replica, betas, multiplicity)
    _validate_solver(tol, max_iter)
    log_w, free_energies, converged = _log_weights_jit(z, replica, multiplicity, betas, tol, max_iter)
    _warn_if_unconverged(converged, max_iter)
    return log_w, free_energies


def log_rho_from_weights(log_w, z, bin_edges) -> np.ndarray:
    """ln rho per bin (num_bins,) from `mbar_log_weights`' log_w of samples z (any shape, flattened as
    log_w was; multiplicity 1): the
    bins of a solve already made, as `log_rho_from_samples` would give them, without solving again."""
    edges = validate_bin_edges(bin_edges)
    idx = bin_index(np.asarray(z, np.float32).reshape(-1), edges)
    return np.asarray(_log_bin_sums(jnp.asarray(log_w), jnp.asarray(idx), edges.size - 1), np.float64)


def log_rho_from_samples(z, replica, betas, bin_edges, multiplicity=None):
    """ln of the fraction of ALL inputs whose output falls in each bin, shape (num_bins,).

    Bins follow `histogram.bin_index`; samples outside the bins still count in the total, so the
    normalisation is absolute. Bins with no sample (of positive multiplicity) get -inf. Arguments
    as in `mbar_log_weights`.
    """
    z, replica, betas, multiplicity = _validate_samples(z, replica, betas, multiplicity)
    edges = validate_bin_edges(bin_edges).astype(np.float32)
    log_rho, converged = _log_rho_jit(z, replica, multiplicity, betas, edges, _TOL, _MAX_ITER)
    _warn_if_unconverged(converged, _MAX_ITER)
    return log_rho


def _validate_groups(group, shape):
    """Return group ids relabelled 0..G-1 and G, or raise ValueError; G >= 2 so resamples differ."""
    group = np.asarray(group)
    if group.shape != shape or not np.issubdtype(group.dtype, np.integer):
        raise ValueError(f"group must be an integer array of the same shape as z {shape}, got "
                         f"dtype {group.dtype} shape {group.shape}")
    labels, ids = np.unique(group, return_inverse=True)
    if labels.size < 2:
        raise ValueError("group must name at least 2 independent groups to bootstrap over, got 1")
    return ids.astype(np.int32), labels.size


class BootstrapReplicates(NamedTuple):
    """ln rho of the full data and of resamples of its groups, for every subset of the data.

    Subsets: all samples first, then each part of `part` (e.g. the first and the second half of a
    run); a resample draws the groups once and applies the draw to every subset, so the subsets'
    replicates are paired.

    log_rho: (S, num_bins) full-data estimate of each subset.
    replicates: (B, S, num_bins) each resample's estimate of each subset.
    iterations: (B, S) MBAR solver iterations of each resample's solves.
    full_iterations: (S,) solver iterations of the full-data solves.
    converged: whether every solve converged.
    n_samples: (num_bins,) raw number of samples in each bin (all subsets together).
    seconds: wall time of the whole computation, compilation included.
    """

    log_rho: np.ndarray
    replicates: np.ndarray
    iterations: np.ndarray
    full_iterations: np.ndarray
    converged: bool
    n_samples: np.ndarray
    seconds: float


# Residual tolerance of a bootstrap replicate's solve: its ln rho is then within ~1e-4 of the exact
# solution, far below the spread of the replicates it feeds (a stderr < 1e-3 would need millions
# of independent samples in a bin).
_BOOT_TOL = 1e-4


def _subset_masks(num_parts):
    """(S, P) 0/1: subset 0 is all parts, subset s >= 1 is part s - 1 (only subset 0 without parts)."""
    whole = jnp.ones((1, max(num_parts, 1)), jnp.float32)
    return whole if num_parts == 0 else jnp.concatenate([whole, jnp.eye(num_parts, dtype=jnp.float32)])


@functools.partial(jax.jit, static_argnames="num_parts")
def _full_estimates(z, replica, part, num_parts, betas, bin_edges):
    """MBAR solve of each subset of the full data from scratch: ln rho (S, bins), iterations,
    converged, centred F (S, R)."""
    def one(row):
        multiplicity = row[part]
        solution = _solution(z, replica, multiplicity, betas, _TOL, _MAX_ITER)
        return (_binned(solution, z, multiplicity, bin_edges), solution.iterations, solution.converged,
                solution.centred)

    return jax.vmap(one)(_subset_masks(num_parts))


@functools.partial(jax.jit, static_argnames=("num_groups", "num_parts"))
def _cold_replicates(z, replica, group, part, num_groups, num_parts, betas, bin_edges, keys):
    """Each resample of each subset solved from scratch on every sample (the reference method)."""
    masks = _subset_masks(num_parts)

    def one(key):
        drawn = jax.random.randint(key, (num_groups,), 0, num_groups)
        times = jnp.zeros(num_groups, jnp.float32).at[drawn].add(1.0)[group]

        def subset(row):
            multiplicity = times * row[part]
            solution = _solution(z, replica, multiplicity, betas, _TOL, _MAX_ITER)
            return _binned(solution, z, multiplicity, bin_edges), solution.iterations, solution.converged
        return jax.vmap(subset)(masks)

    return jax.lax.map(one, keys)


class _Reduced(NamedTuple):
    """Subsets of the samples, each reduced to what MBAR sees of it, stacked over S subsets of one
    padded size: MBAR depends on the samples only through their outputs and the records per replica,
    so a subset is its distinct outputs zu (S, L), its distinct (group, output) pairs k (output index
    uk, group gk, sample count ck; (S, K) each) and its records per (group, replica), cells (S, G, R).

    Each subset is padded (`_pad_length`) with zero-count copies of its smallest output: a zero count
    changes nothing, not even the midpoint about which `_solution` centres z.
    """

    zu: np.ndarray
    uk: np.ndarray
    gk: np.ndarray
    ck: np.ndarray
    cells: np.ndarray


def _pad_length(n: int) -> int:
    """A padded length >= n from a short list, so that runs of similar size reuse one compiled solver:
    the next power of two up to 2**16; above, where a solve costs more than compiling it, the next
    multiple of a quarter of the power of two below n (at most 25% padding instead of 100%)."""
    n = max(int(n), 1)
    if n <= 1 << 16:
        return 1 << int(np.ceil(np.log2(n)))
    step = 1 << (int(np.floor(np.log2(n))) - 2)
    return -(-n // step) * step


def _reduced(z, group, replica, members, num_groups, num_replicas) -> _Reduced:
    """The `_Reduced` stack of the subsets z[m] for each boolean mask m in `members`."""
    subsets = []
    for member in members:
        zu, z_id = np.unique(z[member], return_inverse=True)
        g = group[member]
        _, first, counts = np.unique(g.astype(np.int64) * zu.size + z_id.reshape(-1), return_index=True,
                                     return_counts=True)
        cells = np.zeros((num_groups, num_replicas), np.float32)
        np.add.at(cells, (g, replica[member]), 1.0)
        subsets.append((zu, z_id.reshape(-1)[first], g[first], counts, cells))
    size = _pad_length(max(s[0].size for s in subsets))
    pairs = _pad_length(max(s[1].size for s in subsets))

    def padded(values, length, fill):
        return np.concatenate([values, np.full(length - values.size, fill, values.dtype)])

    return _Reduced(np.stack([padded(s[0], size, s[0][0]) for s in subsets]).astype(np.float32),
                    np.stack([padded(s[1], pairs, 0) for s in subsets]).astype(np.int32),
                    np.stack([padded(s[2], pairs, 0) for s in subsets]).astype(np.int32),
                    np.stack([padded(s[3], pairs, 0) for s in subsets]).astype(np.float32),
                    np.stack([s[4] for s in subsets]))


@jax.jit
def _integrated_starts(z, replica, masks, betas):
    """Thermodynamic-integration start (S, R) of each subset (masks (S, N) 0/1), in the frame that
    `_solution` centres that subset's outputs in (the midpoint of its own outputs)."""
    def one(multiplicity):
        member = multiplicity > 0
        centre = 0.5 * (jnp.min(jnp.where(member, z, jnp.inf)) + jnp.max(jnp.where(member, z, -jnp.inf)))
        counts = jax.ops.segment_sum(multiplicity, replica, num_segments=betas.shape[0])
        return _integrated_free_energy(z - centre, replica, multiplicity, counts, betas)

    return jax.vmap(one)(masks)


def _solve_reduced(subsets: _Reduced, times, betas, bin_edges, tol, starts, hessians=None):
    """MBAR solve of each stacked subset with group g counted times[g] times (G,), from `starts` (S, R),
    by Newton steps or, given `hessians` (S, R, R), chord steps: ln rho (S, bins), iterations,
    converged, centred F (S, R), and the Hessian (S, R, R) at the solution."""
    def one(zu, uk, gk, ck, cells, start, hessian):
        mu = jax.ops.segment_sum(ck * times[gk], uk, num_segments=zu.shape[0])
        counts = times @ cells
        solution = _solution(zu, None, mu, betas, tol, _MAX_ITER, start, counts, hessian)
        zc = zu - 0.5 * (jnp.min(zu) + jnp.max(zu))
        log_p, _ = _sweep(solution.centred, zc, jnp.log(mu), counts, betas)
        return (_binned(solution, zu, mu, bin_edges), solution.iterations, solution.converged, solution.centred,
                _hessian(log_p, mu))

    return jax.vmap(one)(*subsets, starts, hessians)


def _both(whole: _Reduced, parts: _Reduced | None, solve, per_subset):
    """solve(subsets, per_subset) on the whole data and on its parts (each stack its own padded size, so
    a part is solved on its own samples only; `per_subset` a pytree of (S, ...) arrays, row 0 the
    whole's), results concatenated along the subset axis."""
    out = solve(whole, jax.tree.map(lambda a: a[:1], per_subset))
    if parts is None:
        return out
    rest = solve(parts, jax.tree.map(lambda a: a[1:], per_subset))
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, rest)


@jax.jit
def _full_estimates_distinct(whole, parts, betas, bin_edges, starts):
    """As `_full_estimates`, solved on each subset's distinct outputs (`_Reduced`) from `starts`."""
    times = jnp.ones(whole.cells.shape[1], jnp.float32)
    return _both(whole, parts, lambda s, f: _solve_reduced(s, times, betas, bin_edges, _TOL, f), starts)


@jax.jit
def _warm_replicates(whole, parts, betas, bin_edges, keys, initial, hessians):
    """Each resample of each subset solved from the full data's solution `initial` (S, R) to _BOOT_TOL
    by chord steps with the full data's Hessians (S, R, R) (`_newton_step`), on the subsets' distinct
    outputs (`_Reduced`); one draw of the groups serves every subset."""
    num_groups = whole.cells.shape[1]

    def one(key):
        drawn = jax.random.randint(key, (num_groups,), 0, num_groups)
        times = jnp.zeros(num_groups, jnp.float32).at[drawn].add(1.0)
        solve = lambda s, f: _solve_reduced(s, times, betas, bin_edges, _BOOT_TOL, *f)[:3]
        return _both(whole, parts, solve, (initial, hessians))

    return jax.lax.map(one, keys)


def _validate_part(part, shape):
    """Return (part as int32 or zeros, number of parts, 0 if part is None), or raise ValueError."""
    if part is None:
        return np.zeros(shape, np.int32), 0
    part = np.asarray(part)
    if part.shape != shape or not np.issubdtype(part.dtype, np.integer):
        raise ValueError(f"part must be an integer array of the same shape as z {shape}, got "
                         f"dtype {part.dtype} shape {part.shape}")
    num_parts = int(part.max()) + 1 if part.size else 0
    if part.min() < 0 or np.any(np.bincount(part, minlength=num_parts) == 0):
        raise ValueError(f"part must number its parts 0..P-1, each holding samples; got counts "
                         f"{np.bincount(part.clip(0))} and minimum {part.min()}")
    return part.astype(np.int32), num_parts


def _validate_num_bootstrap(num_bootstrap):
    if (isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, (int, np.integer))
            or num_bootstrap < 2):
        raise ValueError(f"num_bootstrap must be an int >= 2, got {num_bootstrap!r}")


def bootstrap_replicates(z, replica, group, betas, bin_edges, key, *, num_bootstrap=100, part=None,
                         warm_start=True, progress=False) -> BootstrapReplicates:
    """ln rho of the data and of `num_bootstrap` resamples of its independent groups.

    Arguments as in `bootstrap_log_rho`, plus:
      part: optional (N,) int 0..P-1 splitting the samples into parts (e.g. halves of a run) that
        are estimated separately as well, each with its own MBAR solve, on the same resamples.
      warm_start: True: solve each resample from the full data's solution by chord steps with its
        Hessian, each subset on its own distinct outputs (the same answer to solver tolerance at a
        fraction of the cost); False: the reference method, every resample of every subset solved
        from scratch by Newton steps on all samples.
      progress: print the full solve's time, then a progress bar over the resamples, to stderr.
    """
    z, replica, betas, _ = _validate_samples(z, replica, betas, None)
    edges = validate_bin_edges(bin_edges).astype(np.float32)
    group, num_groups = _validate_groups(group, z.shape)
    part, num_parts = _validate_part(part, z.shape)
    check_key(key, allow_raw=True)
    _validate_num_bootstrap(num_bootstrap)
    if not isinstance(warm_start, bool):
        raise ValueError(f"warm_start must be a bool, got {warm_start!r}")
    start = time.perf_counter()
    keys = jax.random.split(key, num_bootstrap)
    if warm_start:
        members = [np.ones(z.shape, bool)] + [part == p for p in range(num_parts)]
        whole = _reduced(z, group, replica, members[:1], num_groups, betas.size)
        parts = _reduced(z, group, replica, members[1:], num_groups, betas.size) if num_parts else None
        starts = _integrated_starts(z, replica, np.stack(members).astype(np.float32), betas)
        full_rho, full_it, full_ok, full_f, full_h = _full_estimates_distinct(whole, parts, betas, edges, starts)
        solve = functools.partial(_warm_replicates, whole, parts, betas, edges, initial=full_f, hessians=full_h)
    else:
        full_rho, full_it, full_ok, _ = _full_estimates(z, replica, part, num_parts, betas, edges)
        solve = functools.partial(_cold_replicates, z, replica, group, part, num_groups, num_parts, betas, edges)
    if progress:
        jax.block_until_ready(full_rho)
        print(f"MBAR on the full data: {time.perf_counter() - start:.1f} s, {int(np.max(full_it))} iterations",
              file=sys.stderr, flush=True)
    rho, iterations, ok = _in_chunks(solve, keys, Progress("bootstrap", num_bootstrap, "resamples",
                                                           enabled=progress))
    full_rho, full_it, rho, iterations = jax.device_get((full_rho, full_it, rho, iterations))
    converged = bool(jnp.all(full_ok)) and bool(jnp.all(ok))
    seconds = time.perf_counter() - start
    _warn_if_unconverged(converged, _MAX_ITER)
    n_samples = bin_counts(z, edges)
    return BootstrapReplicates(np.asarray(full_rho), np.asarray(rho), np.asarray(iterations),
                               np.asarray(full_it), bool(converged), n_samples, seconds)


_CHUNK = 10  # resamples per solver call: progress between calls; lax.map inside keeps each one's result.


def _in_chunks(solve, keys, bar: Progress):
    """solve(keys) for all keys, called on chunks of a fixed size (the last one padded by repeating its
    final key and trimmed), so one compiled program serves every chunk and the bar moves between them."""
    n = keys.shape[0]
    size = min(_CHUNK, n)
    parts = []
    for start in range(0, n, size):
        take = np.minimum(np.arange(start, start + size), n - 1)
        out = jax.device_get(solve(keys=keys[take]))
        parts.append(jax.tree.map(lambda a: a[:min(size, n - start)], out))
        bar.update(min(start + size, n))
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def _replicate_stats(replicates):
    """(stderr, ci_low, ci_high) per bin from (B, num_bins) replicates of ln rho.

    The standard deviation uses only replicates where the bin is finite (+inf if fewer than 2);
    the percentiles use all replicates and pick order statistics, so -inf replicates count as
    'empty' instead of producing NaN through interpolation.
    """
    finite = jnp.isfinite(replicates)
    count = jnp.sum(finite, axis=0)
    mean = jnp.sum(jnp.where(finite, replicates, 0.0), axis=0) / jnp.maximum(count, 1)
    squares = jnp.sum(jnp.where(finite, (replicates - mean) ** 2, 0.0), axis=0)
    stderr = jnp.where(count >= 2, jnp.sqrt(squares / jnp.maximum(count - 1, 1)), jnp.inf)
    ci_low = jnp.percentile(replicates, 2.5, axis=0, method="lower")
    ci_high = jnp.percentile(replicates, 97.5, axis=0, method="higher")
    return stderr, ci_low, ci_high


def bootstrap_log_rho(z, replica, group, betas, bin_edges, key, *, num_bootstrap=100,
                      warm_start=True) -> BootstrapResult:
    """ln rho per bin with bootstrap errors from resampling independent groups of samples.

    Args:
      z, replica, betas, bin_edges: as in `log_rho_from_samples`.
      group: (N,) int id of the independent chain (or chain group) each sample came from. Samples
        within a chain are correlated, so whole groups are resampled with replacement; at least
        2 groups are needed.
      key: JAX PRNG key for the resampling.
      num_bootstrap: number of bootstrap replicates (>= 2).
      warm_start: start each replicate's MBAR solve from the full data's solution (see
        `bootstrap_replicates`).

    Returns:
      BootstrapResult; see its docstring. This spread between groups cannot see a bias that all
      groups share (e.g. too short a burn-in): `omnijax.sampling.uncertainty` adds that.
    """
    boot = bootstrap_replicates(z, replica, group, betas, bin_edges, key, num_bootstrap=num_bootstrap,
                                warm_start=warm_start)
    stderr, ci_low, ci_high = _replicate_stats(jnp.asarray(boot.replicates[:, 0]))
    return BootstrapResult(jnp.asarray(boot.log_rho[0]), stderr, ci_low, ci_high, jnp.asarray(boot.n_samples),
                           boot.iterations[:, 0], boot.seconds)
