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
import sys
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


LOG_F_FINAL = 1e-5
BUDGET_FACTOR = 4  # default max_steps: 4x the fewest steps after which ln f = N/t can reach log_f_final


class _RuleHeld(Exception):
    """Raised at the start of a block when the stopping rule already held after the last one."""

    def __init__(self, carry):
        super().__init__("stopping rule held")
        self.carry = carry


def estimate_wang_landau(
    target: Target, space: InputSpace, bin_edges, *, key: jax.Array, proposal: str = "gwg",
    proposal_options: dict | None = None, reservoir_size: int = 32, checkpoint_dir: str | None = None,
    progress: bool = True, num_groups: int = 4, walkers_per_group: int = 8, max_steps: int | None = None,
    num_steps: int | None = None, log_f_final: float = LOG_F_FINAL, steps_per_block: int = 2_000,
    check_every: int = 100, flatness: float = 0.8, halving_flatness: float = 0.0, log_f_initial: float = 1.0,
    beta_clip: float | None = None,
    beta_rule: str = "slope", burn_in: int | None = None, record_every: int = 10, num_probe: int = 4_096,
    **unknown,
) -> OutputDistributionEstimate:
    """Estimate ln rho per bin of `bin_edges` (validated float64) by gradient Wang–Landau.

    Called by `estimate_output_distribution(..., method="wang_landau")`, which validates
    the target, space, bin_edges and key. The Wang–Landau knobs:
      num_groups, walkers_per_group: G independent groups of W walkers sharing one ln g.
      Schedule: ln f starts at log_f_initial and halves (H reset) at a check, every
        check_every steps, where every bin visited so far was hit since the last reduction
        and min H >= halving_flatness * mean H; once a halving would take ln f below N/t
        (N bins visited, t walker-steps of the group) ln f = N/t from then on. The default
        halving_flatness 0 is Belardinelli & Pereyra's rule (every bin hit; PRE 75, 046701,
        2007): it reaches 1/t in a few coverage times, where the classic 0.8 can take
        millions of steps on a 100-bit space.
      Stopping rule (the default): the run stops after the first block at whose end EVERY
        group is in the 1/t regime with ln f <= log_f_final and its histogram since the
        switch to 1/t flat (min H >= flatness * mean H over the visited bins). ln f = N/t
        there, so log_f_final asks for 1/log_f_final visits per bin and group (and at
        least N / (walkers_per_group * log_f_final) steps). max_steps (default BUDGET_FACTOR
        times that) is the budget: a run that spends it first returns what it has, with
        diagnostics["converged"] False and warnings naming what was not reached.
      num_steps: instead of the rule, run exactly this many steps (the rule then only
        judges the result); give max_steps or num_steps, not both.
      steps_per_block: steps per compiled call (host sync: progress, checkpoint, the rule).
      beta_clip: largest |beta_eff| of the gradient proposal, also the pull towards the
        window from outside; default 2 / (typical |change of z| of one single-site move at
        the starting inputs), so a proposal never favours a move by more than ~e^1 — larger
        values make GWG greedy: most proposals then leave a narrow window and are rejected.
      beta_rule: the proposal's beta: "slope" (default; beta_eff = -d ln g / dz at the
        walker's bin) or "directional" (the paper's appendix H heuristic: each walker keeps a
        direction gamma = +-1, beta = gamma * U[0, beta_clip] in bins whose H passes the
        flatness test, 0.1 * beta_clip elsewhere; gamma reverses on a rejected move, as at
        the extremes, a lifted walk that stays exact where the appendix's "set gamma at the
        extremes" does not; see `omnijax.sampling.mcmc.wang_landau_kernel`). Both keep
        exp(-ln g) the exact target.
      burn_in: steps before representatives are kept; default: under the stopping rule, from
        each group's switch to 1/t; with num_steps, num_steps // 5.
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
    log_f_final = _check_real("log_f_final", log_f_final, low=0.0)
    budget, fixed_length = _check_length(max_steps, num_steps, num_bins, walkers_per_group, log_f_final)
    steps_per_block = min(check_positive_int("steps_per_block", steps_per_block), budget)
    check_every = check_positive_int("check_every", check_every)
    record_every = check_positive_int("record_every", record_every)
    num_probe = check_positive_int("num_probe", num_probe)
    reservoir_size = check_positive_int("reservoir_size", reservoir_size)
    flatness = _check_real("flatness", flatness, low=0.0, high=1.0)
    halving_flatness = _check_real("halving_flatness", halving_flatness, low=0.0, high=1.0, closed_low=True)
    log_f_initial = _check_real("log_f_initial", log_f_initial, low=0.0)
    if log_f_final >= log_f_initial:
        raise ValueError(f"log_f_final must be below log_f_initial={log_f_initial}, got {log_f_final!r}")
    if beta_clip is not None:
        beta_clip = _check_real("beta_clip", beta_clip, low=0.0)
    beta_rule = kernel.check_beta_rule(beta_rule)
    if burn_in is None and fixed_length:
        burn_in = budget // 5
    is_int = isinstance(burn_in, (int, np.integer)) and not isinstance(burn_in, bool)
    if burn_in is not None and (not is_int or not 0 <= burn_in < budget):
        what = "num_steps" if fixed_length else "max_steps"
        raise ValueError(f"burn_in must be None or an int in [0, {what}={budget}), got {burn_in!r}")
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
        "walkers_per_group": walkers_per_group, "budget": budget, "fixed_length": fixed_length,
        "log_f_final": log_f_final, "steps_per_block": steps_per_block, "check_every": check_every,
        "flatness": flatness, "halving_flatness": halving_flatness, "log_f_initial": log_f_initial,
        "beta_clip": beta_clip, "beta_rule": beta_rule,
        "burn_in": -1 if burn_in is None else burn_in, "record_every": record_every, "num_probe": num_probe,
    })
    window = kernel.make_window(edges, beta_clip, kappa=beta_clip, flatness=flatness)
    block = _block_fn(value_and_grad, sampler, window, halving_flatness, check_every, record_every, burn_in,
                      beta_rule)
    carry = {"state": state, "reservoir": reservoir_lib.empty(num_bins, reservoir_size, space.num_positions)}
    rule = functools.partial(_rule_status, log_f_final=log_f_final, flatness=flatness)

    def run_block(b, carry):
        if not fixed_length and rule(carry["state"])["done"].all():
            raise _RuleHeld(carry)
        steps = min(steps_per_block, budget - b * steps_per_block)
        state, reservoir = block(params, carry["state"], carry["reservoir"], jax.random.fold_in(run_key, b), steps)
        return {"state": state, "reservoir": reservoir}

    try:
        carry = run_blocks(
            run_block, carry, -(-budget // steps_per_block), label="wang-landau", unit="steps",
            units_after=lambda b: min((b + 1) * steps_per_block, budget), total_units=budget,
            check=lambda c: _raise_if_nonfinite(c["state"]), note=lambda c: _note(rule(c["state"]), log_f_final),
            checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
            place=lambda c: dict(c, state=shard_over_groups(c["state"], num_groups)), progress=progress)
    except _RuleHeld as held:
        carry = held.carry
    state, reservoir = jax.device_get((carry["state"], carry["reservoir"]))
    status = rule(state)
    steps_done = int(np.asarray(state.step)[0])
    stopped_by = "num_steps" if fixed_length else ("rule" if status["done"].all() else "max_steps")
    if progress:
        print(f"wang-landau: {_stop_sentence(stopped_by, steps_done, budget)} | {_note(status, log_f_final)}",
              file=sys.stderr, flush=True)

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
        "num_steps": steps_done,
        "stopped_by": stopped_by,
        "stopping_rule": {"log_f_final": log_f_final, "flatness": flatness, "max_steps": budget,
                          "halving_flatness": halving_flatness,
                          "groups_done": status["done"], "flatness_since_reduction": status["flat_ratio"]},
        "beta_rule": beta_rule,
        "beta_clip": beta_clip,
        "window_fraction": in_window / num_probe,
        "normalization": normalization,
        "alignment": alignment,
    }
    converged, warnings, unconverged, run_wide = diagnostics_lib.wang_landau_verdict(
        diagnostics["final_log_f"], diagnostics["one_over_t"], visits, edges, log_f_final=log_f_final,
        flat_ratio=status["flat_ratio"], flatness=flatness, steps=steps_done, stopped_by=stopped_by)
    diagnostics.update(converged=bool(converged), warnings=warnings, unconverged_bins=unconverged,
                       bin_converged=diagnostics_lib.bin_verdict(num_bins, unconverged, run_wide))
    return OutputDistributionEstimate(
        space=space, bin_edges=edges, log_rho=log_rho, log_rho_stderr=stderr, log_rho_ci_low=ci_low,
        log_rho_ci_high=ci_high, n_samples=visits.sum(axis=0), method="wang_landau", betas=None,
        diagnostics=diagnostics, representative_inputs=np.asarray(reservoir.x),
        representative_priority=np.asarray(reservoir.priority), representative_z=np.asarray(reservoir.z))


def _check_length(max_steps, num_steps, num_bins: int, walkers: int, log_f_final: float) -> tuple[int, bool]:
    """(steps budget, fixed length?) from max_steps / num_steps (at most one given); the default
    budget is BUDGET_FACTOR x the fewest steps at which ln f = N/t can reach log_f_final."""
    if max_steps is not None and num_steps is not None:
        raise ValueError(f"give max_steps (a budget for the stopping rule) or num_steps (a fixed length), "
                         f"not both: got max_steps={max_steps!r}, num_steps={num_steps!r}")
    if num_steps is not None:
        return check_positive_int("num_steps", num_steps), True
    if max_steps is None:
        return BUDGET_FACTOR * math.ceil(num_bins / (walkers * log_f_final)), False
    return check_positive_int("max_steps", max_steps), False


def _rule_status(state: kernel.WangLandauState, log_f_final: float, flatness: float) -> dict:
    """Per group (numpy): the stopping rule's parts, ln f, and min H / mean H since the last reduction."""
    ratio = np.asarray(jax.vmap(kernel.flatness_ratio)(jnp.asarray(state.histogram), jnp.asarray(state.visits)))
    log_f, one_over_t = np.asarray(state.log_f), np.asarray(state.one_over_t)
    done = one_over_t & (log_f <= np.float32(log_f_final)) & (ratio > 0) & (ratio >= np.float32(flatness))
    return {"done": done, "one_over_t": one_over_t, "log_f": log_f, "flat_ratio": ratio,
            "visited": (np.asarray(state.visits) > 0).sum(axis=-1)}


def _stop_sentence(stopped_by: str, steps: int, budget: int) -> str:
    if stopped_by == "rule":
        return f"stopping rule held after {steps} steps"
    if stopped_by == "max_steps":
        return f"max_steps={budget} spent before the stopping rule held: NOT converged"
    return f"ran the fixed num_steps={steps}"


def _check_real(name: str, value, low: float, high: float | None = None, closed_low: bool = False) -> float:
    """A finite real in (low, high) ([low, high) with closed_low; high=None: no upper bound)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    below = value < low if closed_low else value <= low
    if not ok or not math.isfinite(value) or below or (high is not None and value >= high):
        span = f"{'[' if closed_low else '('}{low}, {high})" if high is not None else f"> {low}"
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


def _block_fn(value_and_grad: Callable, proposal: Proposal, window: kernel.Window, halving_flatness: float,
              check_every: int, record_every: int, burn_in: int | None, beta_rule: str):
    """jitted block(params, state, reservoir, key, num_steps) over all groups (num_steps static).
    Walkers are offered to the reservoir every record_every steps after burn_in (burn_in None:
    once their group is in the 1/t regime)."""
    group_step = jax.vmap(lambda k, s, p: kernel.step(k, s, window, p, value_and_grad, proposal, beta_rule)[0],
                          in_axes=(0, 0, None))
    group_check = jax.vmap(lambda s: kernel.check_flatness(s, halving_flatness))

    def one_step(params, multipliers, carry, key):
        state, reservoir = carry
        step_key, reservoir_key = jax.random.split(key)
        state = group_step(jax.random.split(step_key, state.step.shape[0]), state, params)
        step = state.step[0]
        state = jax.lax.cond(step % check_every == 0, group_check, lambda s: s, state)
        ready = state.one_over_t if burn_in is None else jnp.broadcast_to(step > burn_in, state.one_over_t.shape)
        x = state.chains.x.reshape(-1, state.chains.x.shape[-1])
        # A walker whose group is not ready is offered at z = +inf: outside every bin, so dropped.
        z = jnp.where(ready[:, None], state.chains.z, jnp.inf).reshape(-1)
        reservoir = jax.lax.cond(
            (step % record_every == 0) & jnp.any(ready),
            lambda r: reservoir_lib.insert(r, reservoir_key, x, z, window.edges,
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


def _note(status: dict, log_f_final: float) -> str:
    """Progress note: how far every group is from the stopping rule."""
    log_f, ratio = status["log_f"], status["flat_ratio"]
    return (f"ln f {log_f.min():.2g}..{log_f.max():.2g} (stop <= {log_f_final:.2g}) | 1/t "
            f"{int(status['one_over_t'].sum())}/{log_f.size} groups | flat {ratio.min():.2f}..{ratio.max():.2f} "
            f"| done {int(status['done'].sum())}/{log_f.size} | bins visited "
            f"{status['visited'].min()}..{status['visited'].max()}")


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
