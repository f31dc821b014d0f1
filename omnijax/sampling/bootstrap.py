"""Error bars of ln rho by resampling independent groups of replica-exchange samples (the bootstrap
over groups), on top of the MBAR solve of `omnijax.sampling.reweighting`.

Samples within a chain are correlated, so whole groups (independent chains or sets of chains) are
resampled with replacement, and each resample is solved again. A resample changes only how often
each group counts, so its solve starts from the full data's solution (warm start) and iterates by
chord steps with the full data's Hessian, on each subset's distinct outputs (`_Reduced`); the
reference method (`warm_start=False`) solves every resample from scratch on every sample. This spread
between groups cannot see a bias that all groups share: `omnijax.sampling.uncertainty` adds that.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.histogram import bin_counts, validate_bin_edges
from omnijax.sampling.reweighting import (MAX_ITER, TOL, binned_log_rho, integrated_free_energy, mbar_solution,
                                          solution_hessian, validate_samples, warn_if_unconverged)
from omnijax.util.padding import pad_tail, padded_length
from omnijax.util.progress import Progress
from omnijax.util.validation import check_key


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
    log_w, free_energies: the full data's solve as `reweighting.mbar_log_weights` gives it, (N,)
      normalised per-sample ln w and (R,) absolute F_r (warm start only; None otherwise), so that a
      caller who needs the weights does not solve the same equations again.
    """

    log_rho: np.ndarray
    replicates: np.ndarray
    iterations: np.ndarray
    full_iterations: np.ndarray
    converged: bool
    n_samples: np.ndarray
    seconds: float
    log_w: np.ndarray | None = None
    free_energies: np.ndarray | None = None


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
        solution = mbar_solution(z, replica, multiplicity, betas, TOL, MAX_ITER)
        return (binned_log_rho(solution, z, multiplicity, bin_edges), solution.iterations, solution.converged,
                solution.centred)

    return jax.vmap(one)(_subset_masks(num_parts))


def _resample_counts(key, num_groups):
    """How many times each of the G groups is drawn in one resample (G,): G draws with replacement.
    The warm and the cold path draw through this one function, so one key is one resample in both."""
    drawn = jax.random.randint(key, (num_groups,), 0, num_groups)
    return jnp.zeros(num_groups, jnp.float32).at[drawn].add(1.0)


@functools.partial(jax.jit, static_argnames=("num_groups", "num_parts"))
def _cold_replicates(z, replica, group, part, num_groups, num_parts, betas, bin_edges, keys):
    """Each resample of each subset solved from scratch on every sample (the reference method)."""
    masks = _subset_masks(num_parts)

    def one(key):
        times = _resample_counts(key, num_groups)[group]

        def subset(row):
            multiplicity = times * row[part]
            solution = mbar_solution(z, replica, multiplicity, betas, TOL, MAX_ITER)
            return binned_log_rho(solution, z, multiplicity, bin_edges), solution.iterations, solution.converged
        return jax.vmap(subset)(masks)

    return jax.lax.map(one, keys)


class _Reduced(NamedTuple):
    """Subsets of the samples, each reduced to what MBAR sees of it, stacked over S subsets of one
    padded size: MBAR depends on the samples only through their outputs and the records per replica,
    so a subset is its distinct outputs zu (S, L), its distinct (group, output) pairs k (output index
    uk, group gk, sample count ck; (S, K) each) and its records per (group, replica), cells (S, G, R).

    Each subset is padded (`omnijax.util.padding.padded_length`) with zero-count copies of its
    smallest output: a zero count changes nothing, not even the midpoint about which `mbar_solution` centres z.
    """

    zu: np.ndarray
    uk: np.ndarray
    gk: np.ndarray
    ck: np.ndarray
    cells: np.ndarray


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
    size = padded_length(max(s[0].size for s in subsets))
    pairs = padded_length(max(s[1].size for s in subsets))

    return _Reduced(np.stack([pad_tail(s[0], s[0][0], size) for s in subsets]).astype(np.float32),
                    np.stack([pad_tail(s[1], 0, pairs) for s in subsets]).astype(np.int32),
                    np.stack([pad_tail(s[2], 0, pairs) for s in subsets]).astype(np.int32),
                    np.stack([pad_tail(s[3], 0, pairs) for s in subsets]).astype(np.float32),
                    np.stack([s[4] for s in subsets]))


@jax.jit
def _integrated_starts(z, replica, masks, betas):
    """Thermodynamic-integration start (S, R) of each subset (masks (S, N) 0/1), in the frame that
    `mbar_solution` centres that subset's outputs in (the midpoint of its own outputs)."""
    def one(multiplicity):
        member = multiplicity > 0
        centre = 0.5 * (jnp.min(jnp.where(member, z, jnp.inf)) + jnp.max(jnp.where(member, z, -jnp.inf)))
        counts = jax.ops.segment_sum(multiplicity, replica, num_segments=betas.shape[0])
        return integrated_free_energy(z - centre, replica, multiplicity, counts, betas)

    return jax.vmap(one)(masks)


def _padded_members(z, replica, masks):
    """z, replica (N,) and masks (S, N) padded to `padded_length(N)` samples outside every subset (mask
    0), so that the starts of runs of nearby sizes share one compiled program."""
    return pad_tail(z, z[0]), pad_tail(replica, 0), pad_tail(masks, 0)


def _solve_reduced(subsets: _Reduced, times, betas, bin_edges, tol, starts, hessians=None):
    """MBAR solve of each stacked subset with group g counted times[g] times (G,), from `starts` (S, R),
    by Newton steps or, given `hessians` (S, R, R), chord steps: ln rho (S, bins), iterations,
    converged, centred F (S, R), the Hessian (S, R, R) at the solution, ln w per distinct output
    (S, L) and absolute F (S, R)."""
    def one(zu, uk, gk, ck, cells, start, hessian):
        mu = jax.ops.segment_sum(ck * times[gk], uk, num_segments=zu.shape[0])
        counts = times @ cells
        solution = mbar_solution(zu, None, mu, betas, tol, MAX_ITER, start, counts, hessian)
        return (binned_log_rho(solution, zu, mu, bin_edges), solution.iterations, solution.converged, solution.centred,
                solution_hessian(solution, zu, mu, counts, betas), solution.log_w, solution.absolute)

    return jax.vmap(one)(*subsets, starts, hessians)


# Above this many distinct outputs the parts are solved on their own samples, in a stack of their own
# padded size; below it one stack of all subsets at the whole's size compiles one solve instead of two
# (compiling then costs more than the parts' padding: 3.4 s more per call on a 22-rung pt run).
_SPLIT_ABOVE = 1 << 16


def _stacks(z, group, replica, members, num_groups, num_replicas) -> tuple:
    """The subsets z[m] (m in `members`, the whole first) as `_Reduced` stacks: one of all subsets, or,
    above _SPLIT_ABOVE distinct outputs, the whole's and the parts' (each part then costs a solve of its
    own size, not the whole's)."""
    if len(members) == 1 or np.unique(z).size <= _SPLIT_ABOVE:
        return (_reduced(z, group, replica, members, num_groups, num_replicas),)
    return tuple(_reduced(z, group, replica, m, num_groups, num_replicas) for m in (members[:1], members[1:]))


def _each(stacks: tuple, solve, per_subset):
    """solve(stack, rows of per_subset) for each stack (`per_subset` a pytree of (S, ...) arrays, S the
    subsets of all stacks in order), results concatenated along the subset axis."""
    outs, start = [], 0
    for stack in stacks:
        size = stack.zu.shape[0]
        outs.append(solve(stack, jax.tree.map(lambda a: a[start:start + size], per_subset)))
        start += size
    return jax.tree.map(lambda *a: jnp.concatenate(a), *outs)


@jax.jit
def _full_estimates_distinct(stacks, betas, bin_edges, starts):
    """As `_full_estimates`, solved on each subset's distinct outputs (`_stacks`) from `starts`: ln rho,
    iterations, converged, centred F, Hessians and absolute F per subset, and the whole data's ln w on
    its distinct outputs."""
    times = jnp.ones(stacks[0].cells.shape[1], jnp.float32)
    outs, start = [], 0
    for stack in stacks:
        size = stack.zu.shape[0]
        outs.append(_solve_reduced(stack, times, betas, bin_edges, TOL, starts[start:start + size]))
        start += size
    joined = tuple(jnp.concatenate([out[i] for out in outs]) for i in (0, 1, 2, 3, 4, 6))
    return joined + (outs[0][5][0],)  # ln w of the whole data: the first stack's first subset


@jax.jit
def _warm_replicates(stacks, betas, bin_edges, keys, initial, hessians):
    """Each resample of each subset solved from the full data's solution `initial` (S, R) to _BOOT_TOL
    by chord steps with the full data's Hessians (S, R, R) (`_newton_step`), on the subsets' distinct
    outputs (`_Reduced`); one draw of the groups serves every subset."""
    num_groups = stacks[0].cells.shape[1]

    def one(key):
        times = _resample_counts(key, num_groups)
        solve = lambda s, f: _solve_reduced(s, times, betas, bin_edges, _BOOT_TOL, *f)[:3]
        return _each(stacks, solve, (initial, hessians))

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
    z, replica, betas, _ = validate_samples(z, replica, betas, None)
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
        stacks = _stacks(z, group, replica, members, num_groups, betas.size)
        starts = _integrated_starts(*_padded_members(z, replica, np.stack(members).astype(np.float32)), betas)
        full_rho, full_it, full_ok, full_f, full_h, full_free, whole_log_w = _full_estimates_distinct(
            stacks, betas, edges, starts)
        log_w = _sample_log_w(z, whole_log_w)
        free_energies = np.asarray(full_free[0])
        solve = functools.partial(_warm_replicates, stacks, betas, edges, initial=full_f, hessians=full_h)
    else:
        full_rho, full_it, full_ok, _ = _full_estimates(z, replica, part, num_parts, betas, edges)
        log_w = free_energies = None
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
    warn_if_unconverged(converged, MAX_ITER)
    n_samples = bin_counts(z, edges)
    return BootstrapReplicates(np.asarray(full_rho), np.asarray(rho), np.asarray(iterations),
                               np.asarray(full_it), bool(converged), n_samples, seconds, log_w, free_energies)


def _sample_log_w(z, log_w_distinct) -> np.ndarray:
    """Per-sample ln w (N,) from the whole data's solve on its distinct outputs, whose first entries
    are np.unique(z) (`_reduced`; the rest is padding): a sample's weight depends on its output alone."""
    _, inverse = np.unique(z, return_inverse=True)
    return np.asarray(log_w_distinct)[inverse.reshape(-1)]


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
