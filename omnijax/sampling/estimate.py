"""The public entry point: estimate a model's output distribution over its whole input space.

    est = oj.estimate_output_distribution(output_fn, space, bin_edges, key=jax.random.key(0))
    est.log_rho, est.log_rho_stderr, est.representatives(bin_index)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling import ladder as ladder_lib
from omnijax.sampling import run_length
from omnijax.sampling.histogram import validate_bin_edges
from omnijax.sampling.mcmc.replica_exchange_kernel import validate_betas
from omnijax.sampling.proposals import make_proposal
from omnijax.sampling.ladder_adaptation import STAGE_BLOCK, adapt_ladder, block_length, stage_checkpoint
from omnijax.sampling.pt_result import summarize_pt_run
from omnijax.sampling.result import OutputDistributionEstimate
from omnijax.sampling.fingerprint import run_fingerprint, with_settings
from omnijax.sampling.replica_exchange_run import BlockPrograms, Schedule, run_replica_exchange
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, check_output_fn, make_value
from omnijax.sampling.token_target import make_value_and_grad_for
from omnijax.sampling.wang_landau_estimate import estimate_wang_landau
from omnijax.util.validation import check_key, check_positive_int


def estimate_output_distribution(
    output_fn, space: InputSpace, bin_edges, *, key: jax.Array, params=None, method: str = "pt",
    num_groups: int | None = None, num_steps: int | None = None, burn_in: int | None = None,
    steps_per_block: int | None = None, record_every: int | None = None, proposal: str = "gwg",
    proposal_options: dict | None = None, reservoir_size: int = 32, checkpoint_dir: str | None = None,
    progress: bool = True, **method_options,
) -> OutputDistributionEstimate:
    """Estimate ln rho(z) over `bin_edges` for `output_fn` over every input of `space`.

    output_fn: the model, one input's one-hot array (space.shape + (K,)) -> real scalar, as a
    Flax NNX module, as apply(params, onehot) with `params` (a pytree), or as a plain
    function (its closed-over arrays then become compile-time constants; see
    `omnijax.sampling.targets`). The parameters are passed to every compiled call.

    method="pt": replica exchange on a beta ladder (chosen from a pilot run unless `betas`
    is given), then bin-free multiple-histogram reweighting (MBAR) of all replicas, with
    error bars from a bootstrap over the `num_groups` independent walker groups. Its own
    keywords: betas, num_replicas, swap_every, pilot_steps, num_bootstrap (see `estimate_pt`).
    method="wang_landau": gradient Wang–Landau in the window spanned by `bin_edges`; its own
    keywords are those of `omnijax.sampling.wang_landau_estimate.estimate_wang_landau`.
    Shared knobs left as None take the method's defaults; every knob is a keyword.
    """
    if not isinstance(space, InputSpace):
        raise ValueError(f"space must be an omnijax.InputSpace, got {type(space).__name__}")
    target = check_output_fn(output_fn, space, params=params)
    edges = validate_bin_edges(bin_edges)
    key = check_key(key)
    if method == "wang_landau":
        runner = estimate_wang_landau
    elif method == "pt":
        runner = estimate_pt
    else:
        raise ValueError(f"method must be 'pt' or 'wang_landau', got {method!r}")
    shared = dict(num_groups=num_groups, num_steps=num_steps, burn_in=burn_in,
                  steps_per_block=steps_per_block, record_every=record_every)
    shared = {name: value for name, value in shared.items() if value is not None}
    _check_keywords(runner, method, {**shared, **method_options})
    return runner(target, space, edges, key=key, proposal=proposal, proposal_options=proposal_options,
                  reservoir_size=reservoir_size, checkpoint_dir=checkpoint_dir, progress=progress,
                  **shared, **method_options)


def _check_keywords(runner, method: str, keywords: dict) -> None:
    parameters = inspect.signature(runner).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # the runner validates its own extra keywords
    unknown = sorted(set(keywords) - set(parameters))
    if unknown:
        raise ValueError(f"unknown keyword(s) for method={method!r}: {unknown}")


def estimate_pt(
    target: Target, space: InputSpace, edges: np.ndarray, *, key: jax.Array, betas=None,
    num_replicas: int | None = None, num_groups: int = 16, num_steps: int = 10_000,
    burn_in: int | None = None, steps_per_block: int = 1_000, swap_every: int = 1,
    record_every: int = 10, pilot_steps: int | None = None, target_acceptance: float = 0.5,
    proposal: str = "gwg", proposal_options: dict | None = None, reservoir_size: int = 32,
    num_bootstrap: int = 100, max_steps: int | None = None, checkpoint_dir: str | None = None,
    progress: bool = True,
) -> OutputDistributionEstimate:
    """Replica exchange + MBAR (method="pt"); called by `estimate_output_distribution`, which
    has validated the target, space, edges and key.

    Unless `betas` is given, a short pilot places a first ladder, and the burn-in (`burn_in`
    sweeps, default num_steps // 5) re-places it in stages from the swap acceptance it measures
    (`ladder_adaptation`), towards `target_acceptance` per pair (`num_replicas` fixes the rung
    count instead). Only the num_steps - burn_in sweeps after it, on the frozen ladder, are
    recorded and reweighted. `pilot_steps` defaults to min(1000, num_steps). `num_bootstrap` = 0
    skips the error bars (ln rho alone, every stderr and interval NaN): for a pilot whose caller
    reads only ln rho and the representatives.

    `max_steps` (default 4 * num_steps; = num_steps turns it off): when the recorded run ends with
    some group whose walkers made no round trip (which the verdict refuses) and the others' rate of
    trips predicts that every group has one within max_steps sweeps in all, the run goes on, on the
    same ladder, until then (`run_length`; re-checked after each extension). Every extension is in
    est.diagnostics["extensions"], and a declined one in the verdict's warning.

    `swap_every` = 1: a swap round after every sweep. A round costs no measurable CPU beside a
    sweep (the outputs are cached), and walkers cross the ladder in swap rounds, not sweeps:
    a round trip takes at least `diagnostics.ideal_round_trip_rounds` rounds (BUILD_NOTES.md).
    """
    num_groups = check_positive_int("num_groups", num_groups)
    reservoir_size = check_positive_int("reservoir_size", reservoir_size)
    num_steps = check_positive_int("num_steps", num_steps)
    if (isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, (int, np.integer))
            or num_bootstrap == 1 or num_bootstrap < 0):
        raise ValueError(f"num_bootstrap must be 0 (ln rho without error bars) or an int >= 2, got {num_bootstrap!r}")
    pilot_steps = (min(1_000, num_steps) if pilot_steps is None
                   else check_positive_int("pilot_steps", pilot_steps))
    if not (isinstance(target_acceptance, (int, float)) and 0.0 < target_acceptance < 1.0):
        raise ValueError(f"target_acceptance must be a number in (0, 1), got {target_acceptance!r}")
    burn_in = num_steps // 5 if burn_in is None else burn_in
    max_steps = 4 * num_steps if max_steps is None else check_positive_int("max_steps", max_steps)
    if max_steps < num_steps:
        raise ValueError(f"max_steps must be >= num_steps={num_steps} (= num_steps: never extend), got {max_steps}")
    Schedule(num_steps=num_steps, steps_per_block=min(steps_per_block, num_steps), record_every=record_every,
             swap_every=swap_every, burn_in=burn_in)  # validates the knobs as given
    sampler = make_proposal(proposal, space, **(proposal_options or {}))
    value_and_grad = make_value_and_grad_for(target, space, sampler)  # token proposals: d z / d embeddings
    user_betas = None if betas is None else validate_betas(betas)

    pilot_key, init_key, run_key, boot_key = jax.random.split(key, 4)
    adapt_key = jax.random.fold_in(run_key, 1)
    # The space, the model's parameters (digested once) and the key identify the run; the pilot and
    # the adaptation stages checkpoint in subdirectories under them plus what fixes the stages.
    identity = run_fingerprint("pt", space, target, key, {})
    stages = with_settings(identity, {
        "bin_edges": edges, "betas": user_betas, "num_replicas": num_replicas, "num_groups": num_groups,
        "burn_in": burn_in, "pilot_steps": pilot_steps, "record_every": record_every, "swap_every": swap_every,
        "target_acceptance": float(target_acceptance), "proposal": proposal,
        "proposal_options": proposal_options or {}})
    pilot, pilot_ends = _pilot(pilot_key, space, target, value_and_grad, sampler, edges, user_betas,
                               pilot_steps, record_every, swap_every, progress,
                               stage_checkpoint(checkpoint_dir, stages, "pilot"))
    if user_betas is None:
        ladder = _ladder_from_pilot(pilot, edges, num_replicas)
    else:
        ladder_lib.check_ladder_reaches(pilot, edges)
        ladder = user_betas
    x0 = opposite_starts(init_key, space, ladder, num_groups, *pilot_ends)
    # One set of compiled programs for the adaptation stages and the recorded run: a stage whose
    # ladder has the recorded run's size compiles nothing of its own.
    most_records = max(min(steps_per_block, num_steps), STAGE_BLOCK, record_every) // record_every
    programs = BlockPrograms(value_and_grad, sampler, edges, record_every=record_every, swap_every=swap_every,
                             max_records=most_records, reservoir_capacity=reservoir_size)
    adapted = adapt_ladder(adapt_key, x0, ladder, target, value_and_grad, sampler, edges, burn_in=burn_in,
                           swap_every=swap_every, record_every=record_every,
                           target_acceptance=target_acceptance, num_replicas=num_replicas,
                           adapt=user_betas is None, progress=progress, checkpoint_dir=checkpoint_dir,
                           fingerprint=stages, programs=programs)
    ladder = adapted.betas
    # The rest of the burn-in (on the frozen ladder) and the recorded sweeps: one run, one checkpoint.
    total = adapted.equilibration + num_steps - burn_in
    schedule = Schedule(num_steps=total, steps_per_block=_block_length(steps_per_block, total, record_every),
                        record_every=record_every, swap_every=swap_every, burn_in=adapted.equilibration)
    fingerprint = with_settings(identity, {
        "bin_edges": edges, "betas": ladder, "num_groups": num_groups, "burn_in": burn_in,
        "pilot_steps": pilot_steps, "target_acceptance": float(target_acceptance),
        "schedule": dataclasses.asdict(schedule), "proposal": proposal,
        "proposal_options": proposal_options or {}, "reservoir_size": reservoir_size,
    })
    run = run_replica_exchange(run_key, adapted.x, ladder, target, value_and_grad, sampler, edges, schedule,
                               reservoir_capacity=reservoir_size, checkpoint_dir=checkpoint_dir,
                               fingerprint=fingerprint, progress=progress, programs=programs)
    go_on = functools.partial(run_replica_exchange, x0=adapted.x, betas=ladder, target=target,
                              value_and_grad=value_and_grad, proposal=sampler, bin_edges=edges,
                              reservoir_capacity=reservoir_size, progress=progress, programs=programs)
    run, extensions = _extend_for_round_trips(run, jax.random.fold_in(run_key, 2), go_on, schedule,
                                              offset=burn_in - adapted.equilibration, max_steps=max_steps,
                                              checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
                                              progress=progress)
    num_kept = int((run.record_step > schedule.burn_in).sum()) * run.z[0].size
    _say(progress, f"reweighting: MBAR over {num_kept:,} kept samples, " + (
        f"then {num_bootstrap} bootstrap resamples of the {num_groups} groups (the full data and both halves) ..."
        if num_bootstrap else "no error bars (num_bootstrap=0) ..."))
    summary_start = time.perf_counter()
    est = summarize_pt_run(run, space, edges, ladder, schedule.burn_in, boot_key, num_bootstrap=num_bootstrap,
                           extra_diagnostics={"pilot": pilot._asdict(), "burn_in": burn_in, "max_steps": max_steps,
                                              "ladder_stages": [s._asdict() for s in adapted.stages],
                                              "extensions": [e._asdict() for e in extensions[:-1]],
                                              "extension_stopped": extensions[-1].reason},
                           stopped_pushing=adapted.unreachable,
                           progress=progress and jax.process_index() == 0)
    _say(progress, f"reweighting done in {time.perf_counter() - summary_start:.1f} s")
    est.diagnostics["num_steps"] = burn_in - adapted.equilibration + int(est.diagnostics["num_steps"])
    if est.diagnostics["groups_without_round_trip"] and est.diagnostics["round_trips_total"] > 0:
        est.diagnostics["warnings"].append(f"The run was not extended further: {extensions[-1].reason}.")
    return est


MAX_EXTENSIONS = 4


def _extend_for_round_trips(run, key, go_on, schedule, *, offset, max_steps, checkpoint_dir, fingerprint,
                            progress):
    """(run, decisions): `run` gone on while `run_length.extension` asks (at most MAX_EXTENSIONS
    times, within max_steps sweeps of the call, of which the `offset` sweeps of the adaptation
    stages came before the run), and every decision, the last the one that stopped it.

    go_on: `run_replica_exchange` bound to the recorded run's inputs, ladder, model and programs;
    it is given the key, the extension's schedule, `start` and the checkpoint. Each extension
    checkpoints in its own subdirectory, so a restarted call replays the same decisions and
    resumes where it stopped."""
    decisions, since = [], None
    for index in range(MAX_EXTENSIONS + 1):
        steps = offset + int(np.asarray(run.state.step)[0])
        trips = np.asarray(run.state.round_trips).sum(axis=1)
        decision = run_length.extension(trips, steps, max_steps, schedule.steps_per_block, since=since,
                                        counted_from=offset)
        since = (trips, steps)
        if index == MAX_EXTENSIONS and decision.steps:
            missing = int((trips < 1).sum())
            decision = run_length.Extension(0, decision.needed, f"{missing} of {trips.size} groups still have no "
                                                                f"round trip after {MAX_EXTENSIONS} extensions")
        decisions.append(decision)
        if not decision.steps:
            return run, decisions
        _say(progress, f"extending the run: {decision.reason}")
        more = Schedule(num_steps=decision.steps, steps_per_block=schedule.steps_per_block,
                        record_every=schedule.record_every, swap_every=schedule.swap_every, burn_in=0)
        run = go_on(key=jax.random.fold_in(key, index), schedule=more, start=run, label=f"extension {index + 1}",
                    **stage_checkpoint(checkpoint_dir, fingerprint, f"extension-{index + 1}", steps=decision.steps))
    return run, decisions


def _say(progress: bool, line: str) -> None:
    """One status line on stderr (process 0 only) for a step that has no progress bar of its own."""
    if progress and jax.process_index() == 0:
        print(line, file=sys.stderr, flush=True)


def _block_length(steps_per_block: int, recorded: int, record_every: int) -> int:
    """Blocks of the recorded run: at most steps_per_block sweeps, a whole number of records."""
    per = min(steps_per_block, recorded)
    return max(record_every, per // record_every * record_every)


def _ladder_from_pilot(pilot, edges, num_replicas):
    if num_replicas is not None:
        num_replicas = check_positive_int("num_replicas", num_replicas)
        if num_replicas < 2:
            raise ValueError(f"num_replicas must be >= 2, got {num_replicas}")
    return ladder_lib.ladder_from_pilot(pilot, edges, num_replicas)


def _pilot(key, space, target, value_and_grad, sampler, edges, user_betas, pilot_steps, record_every,
           swap_every, progress, checkpoint=None):
    """Short replica-exchange run on a wide grid of betas (or on the user's ladder); `checkpoint`:
    run_replica_exchange's checkpoint arguments, if any."""
    grid_key, init_key, run_key = jax.random.split(key, 3)
    if user_betas is None:
        probe = space.random_inputs(grid_key, 256).reshape(256, -1)
        value = make_value(target, space)
        z0 = np.asarray(jax.jit(jax.vmap(value, in_axes=(None, 0)))(target.params, probe))
        scale = float(np.std(z0[np.isfinite(z0)])) if np.isfinite(z0).any() else 1.0
        grid = ladder_lib.pilot_grid(scale if scale > 0 else 1.0)
    else:
        grid = user_betas
    groups = 4
    steps = -(-pilot_steps // record_every) * record_every
    schedule = Schedule(num_steps=steps, steps_per_block=block_length(steps, record_every), record_every=record_every,
                        swap_every=swap_every, burn_in=steps // 2)
    x0 = space.random_inputs(init_key, groups * len(grid)).reshape(groups, len(grid), -1)
    run = run_replica_exchange(run_key, x0, grid, target, value_and_grad, sampler, edges, schedule,
                        reservoir_capacity=0, progress=progress, label="pilot", **(checkpoint or {}))
    kept = run.record_step > schedule.burn_in
    slot = np.asarray(run.state.slot)
    x = np.asarray(run.state.chains.x)
    bottom = x[slot == 0]                # (groups, D): each pilot group's walker at its lowest beta
    top = x[slot == len(grid) - 1]       # ... and at its highest
    return ladder_lib.summarize_pilot(grid, run.z[kept], run.slot[kept]), (bottom, top)


def opposite_starts(key: jax.Array, space: InputSpace, betas: np.ndarray, num_groups: int,
                    bottom: np.ndarray, top: np.ndarray) -> jax.Array:
    """Starting inputs (C, R, D) of the groups: even groups from uniformly random inputs (the
    beta = 0 ensemble, so their walkers at |beta| > 0 approach their rung from the middle of
    the ladder), odd groups with every walker at beta > 0 started from an input the pilot held
    at its highest beta and every walker at beta < 0 from one it held at its lowest (they approach
    from the ends). An equilibration transient that the burn-in leaves over then biases the two
    kinds in opposite directions, so the spread between groups, and with it the bootstrap error
    bar, sees it instead of every group sharing it. Given their starts the groups run
    independently (the bootstrap's unit); odd group g takes the pilot's group (g // 2) mod P."""
    betas = np.asarray(betas)
    x = np.array(space.random_inputs(key, num_groups * len(betas)).reshape(num_groups, len(betas), -1))
    for g in range(1, num_groups, 2):
        j = (g // 2) % len(top)
        x[g, betas > 0] = top[j]
        x[g, betas < 0] = bottom[j]
    return jnp.asarray(x)
