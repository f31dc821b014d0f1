"""A replica-exchange run of C independent groups: compiled blocks of exchange rounds, the
outputs recorded every few sweeps, the representatives kept per bin, in `driver.run_blocks`.

One jitted call runs a whole block (`lax.scan` over records; each record is
record_every / swap_every exchange rounds of `mcmc.replica_exchange.step`, vmapped over the
groups). The model's parameters, the ladder and the burn-in are arguments of that call, never
constants in it, so the runs of one estimate share its compiled program (`BlockPrograms`). Keys
are derived from (key, block index), so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling import reservoir as reservoir_lib
from omnijax.sampling.driver import (NonFiniteOutputError, first_nonfinite, replicate, run_blocks,
                                     shard_over_groups, to_host)
from omnijax.sampling.mcmc import replica_exchange_kernel as rx
from omnijax.sampling.mcmc.mh_kernel import ValueAndGrad
from omnijax.sampling.proposals.base import Proposal
from omnijax.sampling.targets import Target


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long to sample and how often to swap, record and checkpoint (all in MH sweeps)."""

    num_steps: int = 10_000
    steps_per_block: int = 1_000
    record_every: int = 10
    swap_every: int = 10
    burn_in: int = 2_000
    checkpoint_every_blocks: int = 1

    def __post_init__(self):
        for name in ("num_steps", "steps_per_block", "record_every", "swap_every", "checkpoint_every_blocks"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.record_every % self.swap_every:
            raise ValueError(f"record_every ({self.record_every}) must be a multiple of swap_every "
                             f"({self.swap_every}): outputs are recorded after whole exchange rounds")
        if self.steps_per_block % self.record_every:
            raise ValueError(f"steps_per_block ({self.steps_per_block}) must be a multiple of "
                             f"record_every ({self.record_every})")
        if not 0 <= self.burn_in < self.num_steps:
            raise ValueError(f"burn_in must lie in [0, num_steps={self.num_steps}), got {self.burn_in}")

    @property
    def num_blocks(self) -> int:
        return -(-self.num_steps // self.steps_per_block)

    @property
    def records_per_block(self) -> int:
        return self.steps_per_block // self.record_every


class TemperingRun(NamedTuple):
    z: np.ndarray          # (records, C, R) float32 output of each walker at each record
    slot: np.ndarray       # (records, C, R) int32 ladder slot of each walker at each record
    record_step: np.ndarray  # (records,) MH sweep at which each record was taken
    state: rx.ReplicaExchangeState  # leaves with a leading group axis C
    reservoir: reservoir_lib.Reservoir


class BlockPrograms:
    """The compiled programs of replica-exchange runs that share a model, a proposal, bin edges,
    record/swap intervals and a reservoir size: one jitted block and one jitted init, with the
    ladder, the burn-in, the records per block and whether to keep representatives as their
    arguments, not constants. Runs of one estimate (its adaptation stages and its recorded run)
    built on one `BlockPrograms` compile once per shape of their walkers (C, R, D) instead of once
    per run: on a default call whose stages keep the ladder's size, 2 block compiles instead of 5.

    max_records: the most records one block holds (each block scans this many, skipping those past
    its own count). reservoir_capacity: representatives kept per bin by a run that keeps them; a
    run that keeps none carries an empty reservoir of the same shape, so both share the program.
    keep_representatives=False compiles the block without the reservoir insert (for runs that
    never keep representatives, e.g. the pilot); the runs then pass reservoir_capacity=0."""

    def __init__(self, value_and_grad: ValueAndGrad, proposal: Proposal, bin_edges, *, record_every: int,
                 swap_every: int, max_records: int, reservoir_capacity: int, keep_representatives: bool = True):
        if record_every % swap_every:
            raise ValueError(f"record_every ({record_every}) must be a multiple of swap_every ({swap_every})")
        self.record_every, self.swap_every = record_every, swap_every
        self.max_records = max(int(max_records), 1)
        self.keep_representatives = bool(keep_representatives)
        self.reservoir_capacity = max(int(reservoir_capacity), 1) if keep_representatives else 1
        self.num_bins = len(bin_edges) - 1
        self.block = _block_fn(value_and_grad, proposal, bin_edges, record_every // swap_every, swap_every,
                               self.max_records, self.keep_representatives)
        self.init = jax.jit(jax.vmap(lambda x, ladder, p: rx.init(x, ladder, p, value_and_grad, proposal),
                                     in_axes=(0, None, None)))

    def check(self, schedule: Schedule, reservoir_capacity: int) -> None:
        """Raise ValueError unless a run of `schedule` keeping `reservoir_capacity` fits these programs."""
        if (schedule.record_every, schedule.swap_every) != (self.record_every, self.swap_every):
            raise ValueError(f"schedule records every {schedule.record_every} and swaps every "
                             f"{schedule.swap_every} sweeps; these programs were built for "
                             f"{self.record_every} and {self.swap_every}")
        if schedule.records_per_block > self.max_records:
            raise ValueError(f"schedule has {schedule.records_per_block} records per block; these programs "
                             f"hold at most {self.max_records}")
        allowed = (0, self.reservoir_capacity) if self.keep_representatives else (0,)
        if reservoir_capacity not in allowed:
            raise ValueError(f"reservoir_capacity must be one of {allowed} with these programs, got {reservoir_capacity}")


def _block_fn(value_and_grad, proposal, bin_edges, rounds, swap_every, max_records, keep_representatives):
    """jitted block(params, state, reservoir, key, num_records, burn_in, insert) -> (state, reservoir,
    (z, slot, step) per record): `num_records` records, the rest of the max_records rows left as they
    were (garbage, cut off by the caller). The reservoir takes each record after step burn_in when
    `insert`. Record r's key is split(key, max_records)[r], which equals split(key, num_records)[r]
    (partitionable threefry), so the records do not depend on max_records."""
    edges = jnp.asarray(bin_edges, jnp.float32)
    group_step = jax.vmap(
        lambda k, s, p: rx.step(k, s, p, value_and_grad, proposal, sweeps=swap_every)[0],
        in_axes=(0, 0, None))

    def one_record(params, multipliers, burn_in, insert, carry, record_key):
        state, reservoir = carry
        keys = jax.random.split(record_key, rounds + 1)
        num_groups = state.step.shape[0]
        state = jax.lax.fori_loop(
            0, rounds, lambda i, s: group_step(jax.random.split(keys[i], num_groups), s, params), state)
        if keep_representatives:
            x = state.chains.x.reshape(-1, state.chains.x.shape[-1])
            z = state.chains.z.reshape(-1)
            # Tags: flat walker index g*R + r and that walker's round trips so far.
            tags = jnp.stack([jnp.arange(z.shape[0], dtype=jnp.int32),
                              state.round_trips.reshape(-1).astype(jnp.int32)], axis=-1)
            reservoir = jax.lax.cond(
                insert & (state.step[0] > burn_in),
                lambda r: reservoir_lib.insert(r, keys[-1], x, z, edges, multipliers, tags),
                lambda r: r, reservoir)
        return (state, reservoir), (state.chains.z, state.slot, state.step[0])

    @jax.jit
    def block(params, state, reservoir, block_key, num_records, burn_in, insert):
        multipliers = jnp.asarray(reservoir_lib.hash_multipliers(state.chains.x.shape[-1]))
        keys = jax.random.split(block_key, max_records)

        def scan_body(carry, item):
            index, record_key = item
            empty = (jnp.zeros_like(carry[0].chains.z), jnp.zeros_like(carry[0].slot), jnp.int32(0))
            return jax.lax.cond(index < num_records,
                                lambda c: one_record(params, multipliers, burn_in, insert, c, record_key),
                                lambda c: (c, empty), carry)

        (state, reservoir), records = jax.lax.scan(
            scan_body, (state, reservoir), (jnp.arange(max_records), keys))
        return state, reservoir, records

    return block


def init_groups(x0: jax.Array, betas, target: Target, programs: BlockPrograms) -> rx.ReplicaExchangeState:
    """Group states from flat inputs x0 (C, R, D) on the ladder `betas`, by `programs.init`."""
    return programs.init(x0, jnp.asarray(rx.validate_betas(betas), jnp.float32), target.params)


def raise_if_nonfinite(state: rx.ReplicaExchangeState, what: str = "output_fn") -> None:
    found = first_nonfinite(to_host(state.first_nonfinite_step))
    if found is None:
        return
    (group, replica), step, affected = found
    slot = int(to_host(state.slot)[group, replica])
    beta = float(to_host(state.betas)[group, slot])
    raise NonFiniteOutputError(
        f"{what} returned NaN or inf (output or gradient) for chain (group {group}, walker "
        f"{replica}) at MH step {step} (beta={beta:.4g}); {affected} walker(s) affected. Fix the "
        f"model (e.g. clip logits) or its numerics; nothing was binned")


def run_replica_exchange(key: jax.Array, x0: jax.Array, betas, target: Target, value_and_grad: ValueAndGrad,
                         proposal: Proposal, bin_edges, schedule: Schedule, *, reservoir_capacity: int = 32,
                         checkpoint_dir: str | None = None, fingerprint: dict | None = None,
                         progress: bool = True, label: str = "replica exchange",
                         programs: BlockPrograms | None = None, start: TemperingRun | None = None) -> TemperingRun:
    """Run replica exchange from flat inputs x0 (C, R, D) on the ladder `betas`.

    start: a finished run of the same shape to go on from (its final state, with its ladder and
    counters, and its reservoir; x0 then only gives the shape and `betas` is not used). The
    returned records are `start`'s followed by this schedule's; record steps go on from start's.

    reservoir_capacity: representatives kept per bin; 0 keeps none (the returned reservoir is
    empty), for runs whose caller reads only the records.

    programs: compiled programs shared with other runs of the same model, proposal, bin edges and
    record/swap intervals (`BlockPrograms`; built for this run alone when None).

    With `checkpoint_dir`, the run resumes from the newest checkpoint there (which must come
    from a run with the same `fingerprint`) and writes one every `checkpoint_every_blocks`.
    """
    num_groups, num_replicas, num_positions = x0.shape
    num_records = schedule.num_blocks * schedule.records_per_block
    if programs is None:
        programs = BlockPrograms(value_and_grad, proposal, bin_edges, record_every=schedule.record_every,
                                 swap_every=schedule.swap_every, max_records=schedule.records_per_block,
                                 reservoir_capacity=reservoir_capacity,
                                 keep_representatives=reservoir_capacity > 0)
    else:
        programs.check(schedule, reservoir_capacity)  # programs built for this run fit it by construction
    if start is None:
        initial_state = init_groups(x0, betas, target, programs)
        initial_reservoir = reservoir_lib.empty(programs.num_bins, programs.reservoir_capacity, num_positions)
    else:
        if np.shape(start.state.chains.x) != tuple(x0.shape):
            raise ValueError(f"start has walkers of shape {np.shape(start.state.chains.x)}, x0 {tuple(x0.shape)}")
        initial_state, initial_reservoir = start.state, start.reservoir
    carry = {
        "state": initial_state,
        "reservoir": initial_reservoir,
        "z": np.zeros((num_records, num_groups, num_replicas), np.float32),
        "slot": np.zeros((num_records, num_groups, num_replicas), np.int32),
        "record_step": np.zeros((num_records,), np.int32),
    }
    params = target.params
    per_block = schedule.records_per_block
    block_args = (np.int32(per_block), np.int32(schedule.burn_in), np.bool_(reservoir_capacity > 0))

    def run_block(b, carry):
        state, reservoir, records = programs.block(params, carry["state"], carry["reservoir"],
                                                   jax.random.fold_in(key, b), *block_args)
        z, slot, step = to_host(records)
        rows = slice(b * per_block, (b + 1) * per_block)
        carry["z"][rows], carry["slot"][rows], carry["record_step"][rows] = z[:per_block], slot[:per_block], step[:per_block]
        return dict(carry, state=state, reservoir=reservoir)

    def place(carry):
        return dict(carry, state=shard_over_groups(carry["state"], num_groups),
                    reservoir=replicate(carry["reservoir"]))

    carry = run_blocks(
        run_block, carry, schedule.num_blocks, label=label, unit="steps",
        units_after=lambda b: (b + 1) * schedule.steps_per_block,
        total_units=schedule.num_blocks * schedule.steps_per_block,
        check=lambda c: raise_if_nonfinite(c["state"]), note=lambda c: swap_note(c["state"]),
        checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
        checkpoint_every=schedule.checkpoint_every_blocks, place=place, progress=progress)
    state, reservoir = to_host((carry["state"], carry["reservoir"]))
    if start is None:
        return TemperingRun(carry["z"], carry["slot"], carry["record_step"], state, reservoir)
    return TemperingRun(np.concatenate([start.z, carry["z"]]), np.concatenate([start.slot, carry["slot"]]),
                        np.concatenate([start.record_step, carry["record_step"]]), state, reservoir)


def swap_note(state: rx.ReplicaExchangeState) -> str:
    attempts, accepts, trips = to_host((state.swap_attempts, state.swap_accepts, state.round_trips))
    rate = accepts.sum(axis=0) / np.maximum(attempts.sum(axis=0), 1)
    return f"swap acceptance min {rate.min():.2f} | round trips {int(trips.sum())}"
