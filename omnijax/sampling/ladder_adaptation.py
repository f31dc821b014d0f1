"""Burn-in that adapts the beta ladder: short replica-exchange stages, each followed by a new
ladder placed from the swap acceptance it measured (`ladder.respace_ladder`), with the ends
pushed outwards while the end bins stay unreached and the end rung's output still moves.

The walkers carry over from stage to stage (the input at ladder position s starts the next
stage at the new rung nearest to s in thermodynamic length), so the burn-in is spent
equilibrating, not restarting. The last stage runs on the final ladder unchanged, and only
the records after it are reweighted: the ladder is frozen before any record that
counts, so the groups stay independent given the ladder and the bootstrap over them stays
honest. All groups share one ladder, adapted from their pooled acceptance.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np

from omnijax.sampling import ladder as ladder_lib
from omnijax.sampling.replica_exchange_run import Schedule, run_replica_exchange
from omnijax.util.digest import digest_arrays


class StageReport(NamedTuple):
    betas: np.ndarray        # (R,) the ladder this stage ran on
    acceptance: np.ndarray   # (R-1,) swap acceptance per neighbouring pair, pooled over groups
    steps: int               # MH sweeps of the stage
    top_reached: bool        # a record of the top rung entered the top bin
    bottom_reached: bool     # a record of the bottom rung entered the bottom bin


class AdaptedLadder(NamedTuple):
    betas: np.ndarray        # (R,) the frozen ladder
    x: jax.Array             # (C, R, D) inputs to start the rest of the burn-in from, one per rung
    equilibration: int       # sweeps of burn-in left to run on the frozen ladder (the last stage)
    stages: list             # StageReport per adaptation stage
    unreachable: list        # "top"/"bottom": ends the sampler could not bring into their end bins


# A ladder whose every pair accepts within [KEEP_ABOVE, KEEP_BELOW] is left as it is: re-placing
# it would only trade equilibration for a noisier ladder (measured on the accuracy benchmark's
# spaces: respacing good pilot ladders cost accuracy at equal steps).
KEEP_ABOVE, KEEP_BELOW = 0.2, 0.9
# An adaptation stage must hold at least this many records: its second half measures acceptance.
MIN_STAGE_RECORDS = 20


def stage_lengths(burn_in: int, record_every: int, num_stages: int = 4) -> list[int]:
    """Burn-in split into stages of 1, 1, 2, 4, ... parts (the last, equilibration, the longest),
    each a whole number of records and at least MIN_STAGE_RECORDS; fewer stages (down to none
    that adapt) when the burn-in is short."""
    while num_stages > 1:
        parts = np.array([1] + [2 ** k for k in range(num_stages - 1)], np.float64)
        lengths = [int(n) // record_every * record_every for n in burn_in * parts / parts.sum()]
        if min(lengths) >= MIN_STAGE_RECORDS * record_every:
            return lengths
        num_stages -= 1
    return [burn_in // record_every * record_every] if burn_in >= record_every else []


def adapt_ladder(key: jax.Array, x0: jax.Array, betas: np.ndarray, target, value_and_grad, proposal,
                 edges: np.ndarray, *, burn_in: int, swap_every: int, record_every: int,
                 target_acceptance: float = 0.5, num_replicas: int | None = None,
                 max_extensions: int = 3, adapt: bool = True, progress: bool = True,
                 checkpoint_dir: str | None = None, fingerprint: dict | None = None,
                 programs=None) -> AdaptedLadder:
    """Run the adaptation stages of the burn-in of walkers x0 (C, R, D), starting from ladder
    `betas`: every stage but the last is followed by a new ladder. The last stage, on the frozen
    ladder, is left to the caller (`equilibration` sweeps), so that it and the recorded run form
    one run whose round trips all count. With adapt=False the whole burn-in is left.

    With `checkpoint_dir`, stage k checkpoints in its subdirectory burn-in-k under the run's
    `fingerprint` plus the stage's ladder and starting inputs: an interrupted burn-in resumes
    inside its stage, and a finished stage is read back, not rerun. `programs`: the
    `replica_exchange_run.BlockPrograms` the stages run on (shared with the recorded run, so a
    stage whose ladder has the recorded run's size compiles nothing of its own)."""
    lengths = stage_lengths(burn_in, record_every, num_stages=4 if adapt else 1)
    x, stages, unreachable = x0, [], []
    extensions = {"top": 0, "bottom": 0}
    for k, steps in enumerate(lengths[:-1]):
        schedule = Schedule(num_steps=steps, steps_per_block=block_length(steps, record_every),
                            record_every=record_every, swap_every=swap_every, burn_in=0)
        where = stage_checkpoint(checkpoint_dir, fingerprint, f"burn-in-{k + 1}", inputs=x, betas=betas,
                                 steps=steps)
        run = run_replica_exchange(jax.random.fold_in(key, k), x, betas, target, value_and_grad, proposal,
                                   edges, schedule, reservoir_capacity=0, progress=progress,
                                   label=f"burn-in {k + 1}/{len(lengths)} ({len(betas)} rungs)",
                                   programs=programs, **where)
        report = _report(run, betas, edges, steps)
        stages.append(report)
        new, pushed = _next_ladder(report, run, edges, extensions, max_extensions, target_acceptance,
                                   num_replicas)
        x = _carry_over(_inputs_by_rung(run), betas, new)
        betas = new
        # An end not reached and not pushed (no longer moving, or pushed max_extensions times).
        unreachable = [end for end, reached in (("top", report.top_reached), ("bottom", report.bottom_reached))
                       if not reached and not pushed[end]]
    return AdaptedLadder(np.asarray(betas), x, lengths[-1] if lengths else 0, stages, unreachable)


def stage_checkpoint(checkpoint_dir: str | None, fingerprint: dict | None, name: str, inputs=None,
                     **settings) -> dict:
    """run_replica_exchange's checkpoint arguments for the stage `name` of a run: its subdirectory of
    checkpoint_dir and the run's fingerprint plus what only this stage has, its starting `inputs` by
    their digest (nothing, and nothing digested, without a directory)."""
    if checkpoint_dir is None:
        return {}
    if inputs is not None:
        settings["inputs"] = digest_arrays(inputs)
    return {"checkpoint_dir": os.path.join(checkpoint_dir, name),
            "fingerprint": {**(fingerprint or {}), "stage": name, **settings}}


STAGE_BLOCK = 200  # the most sweeps in one block of an adaptation stage (progress after every block)


def block_length(steps: int, record_every: int, most: int = STAGE_BLOCK) -> int:
    """The longest block of at most `most` sweeps, a whole number of records, that divides
    `steps` (a multiple of record_every): progress is printed after every block."""
    per = max(record_every, min(steps, most) // record_every * record_every)
    while steps % per:
        per -= record_every
    return per


def _report(run, betas, edges, steps) -> StageReport:
    z, slot = run.z, run.slot
    top = z[slot == len(betas) - 1]
    bottom = z[slot == 0]
    return StageReport(np.asarray(betas), expected_acceptance(z, slot, betas), steps,
                       bool(top.size and top.max() >= edges[-2]), bool(bottom.size and bottom.min() <= edges[1]))


def expected_acceptance(z, slot, betas) -> np.ndarray:
    """Per neighbouring pair, the mean over the second half of the records of the swap
    acceptance min(1, exp(-(beta_r+1 - beta_r)(z_r+1 - z_r))) of the walkers then at r and r+1.

    An average of acceptance probabilities, not of accept/reject outcomes, over the later half
    of the stage only, so the walkers' walk in from their starts does not count."""
    z, slot = np.asarray(z, np.float64), np.asarray(slot)
    z, slot = z[len(z) // 2:], slot[len(slot) // 2:]
    by_rung = np.take_along_axis(z, np.argsort(slot, axis=-1), axis=-1)  # (N, C, R) z of the walker at rung r
    log_alpha = -np.diff(np.asarray(betas, np.float64)) * np.diff(by_rung, axis=-1)
    return np.exp(np.minimum(log_alpha, 0.0)).reshape(-1, len(betas) - 1).mean(axis=0)


def _next_ladder(report: StageReport, run, edges, extensions, max_extensions, target_acceptance,
                 num_replicas) -> tuple[np.ndarray, dict]:
    """(new ladder, which ends were pushed): ends pushed out where still needed and still
    useful; else rungs at equal length steps."""
    betas, acceptance = report.betas, report.acceptance
    push = {}
    for end, reached, rung, inner in (("top", report.top_reached, -1, -2), ("bottom", report.bottom_reached, 0, 1)):
        push[end] = (not reached and extensions[end] < max_extensions
                     and _still_moving(run, betas, rung, inner, edges))
        extensions[end] += push[end]
    if push["top"] or push["bottom"]:
        # The new stretch has no measured acceptance yet: the next stage measures it, then respaces.
        return ladder_lib.extend_ladder(betas, acceptance, top=push["top"], bottom=push["bottom"]), push
    if acceptance.min() >= KEEP_ABOVE and acceptance.max() <= KEEP_BELOW:
        return betas, push  # no gap and no wasted rung: the ladder stays, its walkers keep equilibrating
    # At most 1.5x the rungs per stage: a stage too short to equilibrate can underestimate
    # acceptance, and the next stage measures again.
    if num_replicas is not None:
        return ladder_lib.respace_ladder(betas, acceptance, num_replicas=num_replicas), push
    most = min(max(int(np.ceil(1.5 * len(betas))), 4), 1024)
    return ladder_lib.respace_ladder(betas, acceptance, target_acceptance=target_acceptance, max_replicas=most), push


def _still_moving(run, betas, rung, inner, edges) -> bool:
    """The end rung has settled (its mean output over the last quarter of the stage is within a
    quarter bin of the quarter before), yet doubling its beta would still move that mean by more
    than a bin width, extrapolating the slope between the end rung and its neighbour. A rung
    still walking in from its start is left to arrive, not pushed."""
    z, slot = run.z, run.slot
    quarter = max(len(z) // 4, 1)
    end_rung, near_rung = rung % len(betas), inner % len(betas)
    late, before = z[-quarter:][slot[-quarter:] == end_rung], z[-2 * quarter:-quarter][slot[-2 * quarter:-quarter] == end_rung]
    near = z[-2 * quarter:][slot[-2 * quarter:] == near_rung]
    width = float(np.min(np.diff(edges)))
    if not late.size or not before.size or not near.size:
        return False
    if abs(late.mean() - before.mean()) > 0.25 * width:
        return False
    slope = abs(np.concatenate([late, before]).mean() - near.mean()) / abs(betas[rung] - betas[inner])
    return slope * abs(betas[rung]) > width


def _inputs_by_rung(run) -> jax.Array:
    """Inputs (C, R, D) ordered by ladder position."""
    x = np.asarray(run.state.chains.x)
    walker_at = np.argsort(np.asarray(run.state.slot), axis=1)
    return np.take_along_axis(x, walker_at[:, :, None], axis=1)


def _carry_over(x_by_rung, old_betas, new_betas) -> np.ndarray:
    """Start each new rung from the input of the old rung nearest to it in beta."""
    old = np.asarray(old_betas)
    nearest = np.abs(np.asarray(new_betas)[:, None] - old[None, :]).argmin(axis=1)
    return np.asarray(x_by_rung)[:, nearest]
