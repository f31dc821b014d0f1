"""Gradient Wang–Landau driver: ln rho(z) in the window spanned by the bin edges.

G independent groups of W walkers (each group one shared ln g, see
`omnijax.sampling.mcmc.wang_landau`) run as one vmapped batch. One jitted call runs a block of
steps (`lax.scan`; flatness is checked every `check_every` steps, the per-bin reservoir
fed every `record_every` steps after `burn_in`); the host sees only block boundaries, where
it checks for NaN/inf, reports progress and writes a checkpoint. Block b draws from
fold_in(key, b), so a resumed run is bit-identical to an uninterrupted one.

ln g is known up to a constant per group. A few thousand uniformly random inputs estimate
the fraction of the whole space inside the window; ln rho is normalised to sum to it, and
the spread of the G groups' estimates gives the standard error.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling import diagnostics as diagnostics_lib
from omnijax.sampling import reservoir as reservoir_lib
from omnijax.sampling.fingerprint import run_fingerprint
from omnijax.sampling.result import OutputDistributionEstimate
from omnijax.util.validation import check_positive_int
from omnijax.sampling.mcmc import wang_landau_kernel as kernel
from omnijax.sampling.proposals import make_proposal
from omnijax.sampling.proposals.base import Proposal, first_order_gain
from omnijax.sampling.driver import NonFiniteOutputError, first_nonfinite, run_blocks, shard_over_groups
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, make_value, make_value_and_grad


def estimate_wang_landau(
    target: Target, space: InputSpace, bin_edges, *, key: jax.Array, proposal: str = "gwg",
    proposal_options: dict | None = None, reservoir_size: int = 32, checkpoint_dir: str | None = None,
    progress: bool = True, num_groups: int = 4, walkers_per_group: int = 8, num_steps: int = 20_000,
    steps_per_block: int = 2_000, check_every: int = 100, flatness: float = 0.8,
    log_f_initial: float = 1.0, beta_clip: float | None = None, burn_in: int | None = None,
    record_every: int = 10, num_probe: int = 4_096, **unknown,
) -> OutputDistributionEstimate:
    """Estimate ln rho per bin of `bin_edges` (validated float64) by gradient Wang–Landau.

    Called by `estimate_output_distribution(..., method="wang_landau")`, which validates
    the target, space, bin_edges and key. The Wang–Landau knobs:
      num_groups, walkers_per_group: G independent groups of W walkers sharing one ln g.
      num_steps: steps per walker; steps_per_block: steps per compiled call (host sync).
      check_every: steps between flatness checks; flatness: H is flat when
        min H >= flatness * mean H over the bins visited so far.
      log_f_initial: first ln f; it halves at each flat histogram until the 1/t schedule.
      beta_clip: largest |beta_eff| of the gradient proposal, also the pull towards the
        window from outside; default 2 / (typical |change of z| of one single-site move at
        the starting inputs), so a proposal never favours a move by more than ~e^1 — larger
        values make GWG greedy: most proposals then leave a narrow window and are rejected.
      burn_in: steps before representatives are kept (default num_steps // 5);
        record_every: steps between reservoir insertions.
      num_probe: uniform random inputs that estimate the fraction of the space in the window.
    log_rho_stderr: spread of the groups' estimates (see `combine_groups`; Student-t widened,
    as 4 groups give a noisy spread) plus the binomial error of the window fraction. The CI
    is log_rho +- 1.96 stderr. Unvisited bins get log_rho = -inf (and ci -inf, -inf); bins
    seen by fewer than 2 groups get stderr = inf.
    """
    if unknown:
        raise ValueError(f"unknown keyword(s) for method='wang_landau': {sorted(unknown)}")
    edges = np.asarray(bin_edges, np.float64)
    num_bins = len(edges) - 1
    num_groups = check_positive_int("num_groups", num_groups)
    walkers_per_group = check_positive_int("walkers_per_group", walkers_per_group)
    num_steps = check_positive_int("num_steps", num_steps)
    steps_per_block = min(check_positive_int("steps_per_block", steps_per_block), num_steps)
    check_every = check_positive_int("check_every", check_every)
    record_every = check_positive_int("record_every", record_every)
    num_probe = check_positive_int("num_probe", num_probe)
    reservoir_size = check_positive_int("reservoir_size", reservoir_size)
    flatness = _check_real("flatness", flatness, low=0.0, high=1.0)
    log_f_initial = _check_real("log_f_initial", log_f_initial, low=0.0)
    if beta_clip is not None:
        beta_clip = _check_real("beta_clip", beta_clip, low=0.0)
    burn_in = num_steps // 5 if burn_in is None else burn_in
    is_int = isinstance(burn_in, (int, np.integer)) and not isinstance(burn_in, bool)
    if not is_int or not 0 <= burn_in < num_steps:
        raise ValueError(f"burn_in must be an int in [0, num_steps={num_steps}), got {burn_in!r}")
    sampler = make_proposal(proposal, space, **(proposal_options or {}))
    value_and_grad = make_value_and_grad(target, space)
    params = target.params

    probe_key, run_key = jax.random.split(key)
    probe_x, probe_z, tie_break = _probe(probe_key, space, make_value(target, space), params, num_probe)
    in_window = int(np.sum((probe_z >= np.float32(edges[0])) & (probe_z <= np.float32(edges[-1]))))
    x0 = _starting_inputs(probe_x, probe_z, tie_break, edges, num_groups * walkers_per_group)
    init = jax.jit(jax.vmap(lambda x, p: kernel.init(x, p, value_and_grad, sampler, num_bins, log_f_initial),
                            in_axes=(0, None)))
    state = init(jnp.asarray(x0.reshape(num_groups, walkers_per_group, -1)), params)
    _raise_if_nonfinite(state)
    if beta_clip is None:
        beta_clip = 2.0 / _flip_scale(x0, params, value_and_grad, space)

    fingerprint = run_fingerprint("wang_landau", space, target, key, {
        "bin_edges": edges, "proposal": proposal, "proposal_options": proposal_options or {},
        "reservoir_size": reservoir_size, "num_groups": num_groups,
        "walkers_per_group": walkers_per_group, "num_steps": num_steps,
        "steps_per_block": steps_per_block, "check_every": check_every, "flatness": flatness,
        "log_f_initial": log_f_initial, "beta_clip": beta_clip, "burn_in": burn_in,
        "record_every": record_every, "num_probe": num_probe,
    })
    window = kernel.make_window(edges, beta_clip, kappa=beta_clip)
    block = _block_fn(value_and_grad, sampler, window, flatness, check_every, record_every, burn_in)
    carry = {"state": state, "reservoir": reservoir_lib.empty(num_bins, reservoir_size, space.num_positions)}

    def run_block(b, carry):
        steps = min(steps_per_block, num_steps - b * steps_per_block)
        state, reservoir = block(params, carry["state"], carry["reservoir"], jax.random.fold_in(run_key, b), steps)
        return {"state": state, "reservoir": reservoir}

    carry = run_blocks(
        run_block, carry, -(-num_steps // steps_per_block), label="wang-landau", unit="steps",
        units_after=lambda b: min((b + 1) * steps_per_block, num_steps), total_units=num_steps,
        check=lambda c: _raise_if_nonfinite(c["state"]), note=lambda c: _note(c["state"]),
        checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
        place=lambda c: dict(c, state=shard_over_groups(c["state"], num_groups)), progress=progress)
    state, reservoir = jax.device_get((carry["state"], carry["reservoir"]))

    log_fraction = math.log(in_window / num_probe) if in_window else 0.0
    log_g = np.asarray(state.log_g, np.float64) - np.asarray(state.log_g_carry, np.float64)
    visits = np.asarray(state.visits, np.int64)
    log_rho, stderr, per_group, alignment = combine_groups(log_g, visits, log_fraction)
    if in_window:
        stderr = np.where(np.isfinite(log_rho), np.sqrt(stderr**2 + (1 - in_window / num_probe) / in_window),
                          stderr)
        normalization = (f"ln rho sums to the fraction of the whole space in the window, "
                         f"{in_window}/{num_probe} uniform random inputs")
    else:
        normalization = (f"none of {num_probe} uniform random inputs fell in the window: ln rho is "
                         f"normalised WITHIN the window (sums to 1 over visited bins), not over the space")
    with np.errstate(invalid="ignore"):
        ci_low, ci_high = log_rho - 1.96 * stderr, log_rho + 1.96 * stderr
    ci_high = np.where(np.isfinite(log_rho), ci_high, -np.inf)
    diagnostics = {
        "final_log_f": np.asarray(state.log_f, np.float64),
        "halvings": np.asarray(state.halvings),
        "one_over_t": np.asarray(state.one_over_t),
        "acceptance": np.asarray(state.accepts) / (np.asarray(state.step) * walkers_per_group),
        "bins_visited": (visits > 0).sum(axis=1),
        "log_rho_per_group": per_group,
        "num_steps": int(np.asarray(state.step)[0]),
        "beta_clip": beta_clip,
        "window_fraction": in_window / num_probe,
        "normalization": normalization,
        "alignment": alignment,
    }
    converged, warnings, unconverged, run_wide = diagnostics_lib.wang_landau_verdict(
        diagnostics["final_log_f"], diagnostics["one_over_t"], visits, edges)
    diagnostics.update(converged=bool(converged), warnings=warnings, unconverged_bins=unconverged,
                       bin_converged=diagnostics_lib.bin_verdict(num_bins, unconverged, run_wide))
    return OutputDistributionEstimate(
        space=space, bin_edges=edges, log_rho=log_rho, log_rho_stderr=stderr, log_rho_ci_low=ci_low,
        log_rho_ci_high=ci_high, n_samples=visits.sum(axis=0), method="wang_landau", betas=None,
        diagnostics=diagnostics, representative_inputs=np.asarray(reservoir.x),
        representative_priority=np.asarray(reservoir.priority), representative_z=np.asarray(reservoir.z))


def _check_real(name: str, value, low: float, high: float | None = None) -> float:
    """A finite real in (low, high) (open interval; high=None: no upper bound)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= low or (high is not None and value >= high):
        span = f"({low}, {high})" if high is not None else f"> {low}"
        raise ValueError(f"{name} must be a finite real {span}, got {value!r}")
    return float(value)


def _probe(key: jax.Array, space: InputSpace, value: Callable, params, num: int):
    """`num` uniformly random inputs (flat), their outputs and uniform tie-break numbers
    (numpy); NaN/inf raises."""
    x_key, tie_key = jax.random.split(key)
    x = space.random_inputs(x_key, num).reshape(num, -1)  # jax.random's own jit cache is reused
    z = np.asarray(jax.jit(lambda p, x: jax.lax.map(lambda xi: value(p, xi), x, batch_size=256))(params, x))
    x, tie_break = np.asarray(x), np.asarray(jax.random.uniform(tie_key, (num,)))
    bad = np.flatnonzero(~np.isfinite(z))
    if bad.size:
        raise NonFiniteOutputError(
            f"output_fn returned {z[bad[0]]} for {bad.size} of {num} uniform random inputs "
            f"(the window-fraction probe); fix the model (e.g. clip logits) or its numerics")
    return x, z, tie_break


def _starting_inputs(x: np.ndarray, z: np.ndarray, tie_break: np.ndarray, edges: np.ndarray,
                     num: int) -> np.ndarray:
    """`num` probe inputs: random ones inside the window, else the closest to it (cycling if few)."""
    distance = np.maximum(edges[0] - z, 0) + np.maximum(z - edges[-1], 0)
    return x[np.resize(np.lexsort((tie_break, distance)), num)]


def _flip_scale(x: np.ndarray, params, value_and_grad: Callable, space: InputSpace) -> float:
    """Median over the starting inputs x (N, D) of the mean |first-order change of z| over their
    single-site moves. (The chains keep only the proposal's form of the gradient, so the
    gradient is evaluated here once more.)"""
    gain_at = lambda p, xi: first_order_gain(xi, value_and_grad(p, xi)[1], 1.0)
    gain = np.abs(np.asarray(jax.jit(jax.vmap(gain_at, in_axes=(None, 0)))(params, jnp.asarray(x))))
    moves = ~space.frozen_mask.reshape(1, -1, 1) & (np.arange(space.num_categories) != x[..., None])
    scale = float(np.median((gain * moves).sum(axis=(1, 2)) / moves.sum(axis=(1, 2))))
    return scale if scale > 0 else 1.0  # flat at every start: no scale to go by


def _block_fn(value_and_grad: Callable, proposal: Proposal, window: kernel.Window, flatness: float,
              check_every: int, record_every: int, burn_in: int):
    """jitted block(params, state, reservoir, key, num_steps) over all groups (num_steps static)."""
    group_step = jax.vmap(lambda k, s, p: kernel.step(k, s, window, p, value_and_grad, proposal)[0],
                          in_axes=(0, 0, None))
    group_check = jax.vmap(lambda s: kernel.check_flatness(s, flatness))

    def one_step(params, multipliers, carry, key):
        state, reservoir = carry
        step_key, reservoir_key = jax.random.split(key)
        state = group_step(jax.random.split(step_key, state.step.shape[0]), state, params)
        step = state.step[0]
        state = jax.lax.cond(step % check_every == 0, group_check, lambda s: s, state)
        x = state.chains.x.reshape(-1, state.chains.x.shape[-1])
        reservoir = jax.lax.cond(
            (step % record_every == 0) & (step > burn_in),
            lambda r: reservoir_lib.insert(r, reservoir_key, x, state.chains.z.reshape(-1), window.edges,
                                           multipliers,  # tags: flat walker index, 0 round trips
                                           jnp.stack([jnp.arange(x.shape[0], dtype=jnp.int32),
                                                      jnp.zeros(x.shape[0], jnp.int32)], axis=-1)),
            lambda r: r, reservoir)
        return (state, reservoir), None

    @functools.partial(jax.jit, static_argnums=4)
    def block(params, state, reservoir, key, num_steps):
        multipliers = jnp.asarray(reservoir_lib.hash_multipliers(state.chains.x.shape[-1]))
        (state, reservoir), _ = jax.lax.scan(lambda c, k: one_step(params, multipliers, c, k),
                                             (state, reservoir), jax.random.split(key, num_steps))
        return state, reservoir

    return block


def _raise_if_nonfinite(state: kernel.WangLandauState) -> None:
    found = first_nonfinite(state.first_nonfinite_step)
    if found is not None:
        (group, walker), step, affected = found
        raise NonFiniteOutputError(
            f"output_fn returned NaN or inf (output or gradient) for Wang–Landau walker {walker} of "
            f"group {group} at step {step}; {affected} walker(s) affected. Fix the model (e.g. clip "
            f"logits) or its numerics")


def _note(state: kernel.WangLandauState) -> str:
    log_f = np.asarray(state.log_f)
    visited = (np.asarray(state.visits) > 0).sum(axis=1)
    return (f"ln f {log_f.min():.2g}..{log_f.max():.2g} | 1/t {int(np.asarray(state.one_over_t).sum())}/"
            f"{log_f.size} groups | bins visited {visited.min()}..{visited.max()}")


def combine_groups(log_g: np.ndarray, visits: np.ndarray, log_fraction: float):
    """ln rho per bin from G groups' ln g (G, B), each known up to its own constant.

    Each group is shifted so that its ln g sums (logsumexp) to 0 over the bins that every
    group entering the window visited (its own visited bins if there are none), the groups
    are averaged per bin over those that visited it, and one common shift makes the mean sum
    to `log_fraction`.
    stderr is the std over the n groups that visited a bin / sqrt(n), widened by
    t_{n-1}(0.975) / 1.96 so that +-1.96 stderr is a Student-t 95% interval: with 4 groups
    the plain std / sqrt(n) would cover only ~86% at +-2.
    Returns (log_rho, stderr, per-group ln rho, note).
    """
    visited = visits > 0
    entered = visited.any(axis=1)
    common = visited[entered].all(axis=0) & entered.any()
    aligned_over = np.broadcast_to(common, visited.shape) if common.any() else visited
    if common.any():
        note = f"groups aligned over the {int(common.sum())} bins all of them visited"
    elif entered.any():
        note = "no bin was visited by every group: each group normalised over its own visited bins"
    else:
        note = "no walker entered the window: nothing was estimated"
    per_group = np.where(visited, log_g, -np.inf)
    with np.errstate(invalid="ignore"):  # a group that never entered the window: its row is unused
        per_group = per_group - np.logaddexp.reduce(np.where(aligned_over, per_group, -np.inf), axis=1,
                                                    keepdims=True)
    count = visited.sum(axis=0)
    anywhere = count > 0
    total = np.where(visited, per_group, 0.0).sum(axis=0)
    mean = np.where(anywhere, total / np.maximum(count, 1), -np.inf)
    shift = log_fraction - np.logaddexp.reduce(mean[anywhere]) if anywhere.any() else 0.0
    per_group, mean = np.where(visited, per_group + shift, -np.inf), mean + shift
    deviation = np.where(visited, per_group - np.where(anywhere, mean, 0.0), 0.0)
    variance = (deviation**2).sum(axis=0) / np.maximum(count - 1, 1)
    widen = _student_t_975(np.maximum(count - 1, 1)) / 1.959964
    stderr = np.where(count >= 2, np.sqrt(variance / np.maximum(count, 1)) * widen, np.inf)
    return mean, stderr, per_group, note


def _student_t_975(dof) -> np.ndarray:
    """0.975 quantile of Student's t with `dof` (>= 1) degrees of freedom: where the
    integral of its density from 0 reaches 0.475 (trapezoid rule on a fine grid)."""
    t = np.linspace(0.0, 20.0, 40_001)  # dof = 1 (the widest) has its quantile at 12.7

    def quantile(n):
        log_density = (math.lgamma((n + 1) / 2) - math.lgamma(n / 2) - 0.5 * math.log(n * math.pi)
                       - (n + 1) / 2 * np.log1p(t**2 / n))
        density = np.exp(log_density)
        mass = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2) * (t[1] - t[0])])
        return np.interp(0.475, mass, t)

    distinct, inverse = np.unique(np.asarray(dof, np.float64), return_inverse=True)
    return np.array([quantile(n) for n in distinct])[inverse].reshape(np.shape(dof))
