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
The solve's pieces (`mbar_solution`, `binned_log_rho`, `solution_hessian`, `integrated_free_energy`)
also serve the group bootstrap, `omnijax.sampling.bootstrap`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.histogram import bin_index, validate_bin_edges
from omnijax.util.padding import pad_tail

TOL = 1e-6  # largest self-consistency residual of a solve (unless float32 precision is reached first)
MAX_ITER = 10_000
# Iterations without a new smallest residual, once within float32 reach of the solution, that
# mean float32 precision is exhausted.
_PATIENCE = 3
# Float32 reach: the residual cannot be resolved below ~eps * max|F|; observed floors are < 0.2x
# that, so residuals under _REACH x eps x max(1, max|F|) count as solved to float32 precision.
_REACH = 64.0


def _is_real(array) -> bool:
    """True for integer or floating (not bool, not complex) numpy arrays."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def validate_samples(z, replica, betas, multiplicity):
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


def integrated_free_energy(z, replica, multiplicity, counts, betas):
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
        initial = integrated_free_energy(z, replica, multiplicity, counts, betas)
    first = sweep(initial)
    state = (jnp.int32(0), jnp.int32(0), worst(first[2]), jnp.bool_(True), first)
    it, _, _, _, (free_energy, _, residual) = jax.lax.while_loop(cond, body, state)
    converged = (worst(residual) <= tol) | within_reach(free_energy, residual)
    return free_energy, it, worst(residual), converged


def _centre(z):
    """The midpoint of the outputs, about which a solve centres them."""
    return 0.5 * (jnp.min(z) + jnp.max(z))


class MBARSolution(NamedTuple):
    """An MBAR solve: normalised ln w_n, absolute F_r, the centred F_r it solved for (the warm start
    of a resample's solve), the iterations it took and whether it converged."""

    log_w: jax.Array
    absolute: jax.Array
    centred: jax.Array
    iterations: jax.Array
    converged: jax.Array


def mbar_solution(z, replica, multiplicity, betas, tol, max_iter, initial=None, counts=None,
              hessian=None) -> MBARSolution:
    """Solve MBAR for samples z (centred here by the midpoint of ALL z, so that resamples of the
    same z share the centred frame of `initial`). `counts` (R,) may replace `replica` (then
    `initial` is required: thermodynamic integration needs each sample's replica). `hessian`: solve
    by chord steps with that fixed Hessian (`_newton_step`)."""
    centre = _centre(z)
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
    return MBARSolution(log_w, absolute, free_energy, iterations, converged)


def solution_hessian(solution: MBARSolution, z, multiplicity, counts, betas):
    """The Hessian (`_hessian`) at a solve's solution: the fixed matrix of chord steps that solve a
    nearby problem (a bootstrap resample of the same samples) from that solution."""
    log_p, _ = _sweep(solution.centred, z - _centre(z), jnp.log(multiplicity), counts, betas)
    return _hessian(log_p, multiplicity)


def _log_weights(z, replica, multiplicity, betas, tol, max_iter):
    """Normalised ln w_n and absolute F_r = ln E_uniform[exp(beta_r z)], plus the solver's converged flag."""
    solution = mbar_solution(z, replica, multiplicity, betas, tol, max_iter)
    return solution.log_w, solution.absolute, solution.converged


def _log_bin_sums(log_x, idx, num_bins):
    """ln of the sum of exp(log_x) over each bin; samples outside the bins (idx -1 or num_bins) drop out."""
    idx = jnp.where(idx < 0, num_bins, idx)
    top = jax.ops.segment_max(log_x, idx, num_segments=num_bins + 1)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    sums = jax.ops.segment_sum(jnp.exp(log_x - top[idx]), idx, num_segments=num_bins + 1)
    return (jnp.log(sums) + top)[:num_bins]


def binned_log_rho(solution, z, multiplicity, bin_edges):
    """ln rho per bin of a solution (-inf where the bin holds no sample of positive multiplicity)."""
    idx = bin_index(z, bin_edges)
    return _log_bin_sums(jnp.log(multiplicity) + solution.log_w, idx, bin_edges.shape[0] - 1)


def _log_rho(z, replica, multiplicity, betas, bin_edges, tol, max_iter):
    """ln rho per bin (-inf where the bin holds no sample of positive multiplicity) and converged flag."""
    solution = mbar_solution(z, replica, multiplicity, betas, tol, max_iter)
    return binned_log_rho(solution, z, multiplicity, bin_edges), solution.converged


_log_weights_jit = jax.jit(_log_weights)
_log_rho_jit = jax.jit(_log_rho)
_log_bin_sums_jit = jax.jit(_log_bin_sums, static_argnums=2)


def _padded_samples(z, replica, multiplicity):
    """z, replica, multiplicity (N,) padded to `padded_length(N)` with zero-multiplicity copies of
    sample 0, so that solves of nearby sizes share one compiled program. A zero multiplicity
    changes no sum and no count, and a copy of z[0] not the midpoint that the solve centres z on."""
    return pad_tail(z, z[0]), pad_tail(replica, replica[0]), pad_tail(multiplicity, 0)


def warn_if_unconverged(converged, max_iter):
    """Warn when the MBAR solve stopped (at max_iter) short of tol and of float32 precision."""
    if not bool(jnp.all(converged)):
        warnings.warn(f"MBAR solve did not converge within max_iter={max_iter} iterations; "
                      "raise max_iter or check that neighbouring replicas overlap",
                      RuntimeWarning, stacklevel=3)


def mbar_log_weights(z, replica, betas, multiplicity=None, *, tol=TOL, max_iter=MAX_ITER):
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
    z, replica, betas, multiplicity = validate_samples(z, replica, betas, multiplicity)
    _validate_solver(tol, max_iter)
    log_w, free_energies, converged = _log_weights_jit(*_padded_samples(z, replica, multiplicity), betas, tol,
                                                       max_iter)
    warn_if_unconverged(converged, max_iter)
    return log_w[:z.size], free_energies


def log_rho_from_weights(log_w, z, bin_edges) -> np.ndarray:
    """ln rho per bin (num_bins,) from `mbar_log_weights`' log_w of samples z (any shape, flattened as
    log_w was; multiplicity 1): the
    bins of a solve already made, as `log_rho_from_samples` would give them, without solving again."""
    edges = validate_bin_edges(bin_edges)
    idx = np.asarray(bin_index(np.asarray(z, np.float32).reshape(-1), edges), np.int32)
    log_w = np.asarray(log_w, np.float32).reshape(-1)
    # padded (nearby sizes share one program) with entries outside every bin (idx -1), which drop out
    return np.asarray(_log_bin_sums_jit(pad_tail(log_w, -np.inf), pad_tail(idx, -1), edges.size - 1), np.float64)


def log_rho_from_samples(z, replica, betas, bin_edges, multiplicity=None):
    """ln of the fraction of ALL inputs whose output falls in each bin, shape (num_bins,).

    Bins follow `histogram.bin_index`; samples outside the bins still count in the total, so the
    normalisation is absolute. Bins with no sample (of positive multiplicity) get -inf. Arguments
    as in `mbar_log_weights`.
    """
    z, replica, betas, multiplicity = validate_samples(z, replica, betas, multiplicity)
    edges = validate_bin_edges(bin_edges).astype(np.float32)
    log_rho, converged = _log_rho_jit(*_padded_samples(z, replica, multiplicity), betas, edges, TOL, MAX_ITER)
    warn_if_unconverged(converged, MAX_ITER)
    return log_rho
