"""A replica-exchange run of C independent groups: compiled blocks of exchange rounds, the
outputs recorded every few sweeps, the representatives kept per bin, in `driver.run_blocks`.

One jitted call runs a whole block (`lax.scan` over records; each record is
record_every / swap_every exchange rounds of `mcmc.replica_exchange.step`, vmapped over the
groups). The model's parameters are an argument of that call, never a constant in it. Keys
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


def block_program(value_and_grad: ValueAndGrad, proposal: Proposal, schedule: Schedule, bin_edges,
                  keep_representatives: bool = True):
    """jitted block(params, state, reservoir, key) -> (state, reservoir, (z, slot, step) per record).
    keep_representatives=False leaves the reservoir as given: a run that reads only its records
    (the pilot, the ladder's adaptation stages) skips the insert and its compile time."""
    edges = jnp.asarray(bin_edges, jnp.float32)
    rounds = schedule.record_every // schedule.swap_every
    group_step = jax.vmap(
        lambda k, s, p: rx.step(k, s, p, value_and_grad, proposal, sweeps=schedule.swap_every)[0],
        in_axes=(0, 0, None))

    def one_record(params, multipliers, carry, record_key):
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
                state.step[0] > schedule.burn_in,
                lambda r: reservoir_lib.insert(r, keys[-1], x, z, edges, multipliers, tags),
                lambda r: r, reservoir)
        return (state, reservoir), (state.chains.z, state.slot, state.step[0])

    @jax.jit
    def block(params, state, reservoir, block_key):
        multipliers = jnp.asarray(reservoir_lib.hash_multipliers(state.chains.x.shape[-1]))
        keys = jax.random.split(block_key, schedule.records_per_block)
        (state, reservoir), records = jax.lax.scan(
            lambda c, k: one_record(params, multipliers, c, k), (state, reservoir), keys)
        return state, reservoir, records

    return block


def init_groups(x0: jax.Array, betas, target: Target, value_and_grad: ValueAndGrad,
                proposal: Proposal) -> rx.ReplicaExchangeState:
    """Group states from flat inputs x0 (C, R, D), compiled as one program."""
    ladder = jnp.asarray(betas, jnp.float32)
    init = jax.jit(jax.vmap(lambda x, p: rx.init(x, ladder, p, value_and_grad, proposal), in_axes=(0, None)))
    return init(x0, target.params)


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
                         progress: bool = True, label: str = "replica exchange") -> TemperingRun:
    """Run replica exchange from flat inputs x0 (C, R, D) on the ladder `betas`.

    reservoir_capacity: representatives kept per bin; 0 keeps none (the returned reservoir has one
    empty slot per bin), for runs whose caller reads only the records.

    With `checkpoint_dir`, the run resumes from the newest checkpoint there (which must come
    from a run with the same `fingerprint`) and writes one every `checkpoint_every_blocks`.
    """
    num_groups, num_replicas, num_positions = x0.shape
    num_records = schedule.num_blocks * schedule.records_per_block
    block = block_program(value_and_grad, proposal, schedule, bin_edges, keep_representatives=reservoir_capacity > 0)
    carry = {
        "state": init_groups(x0, betas, target, value_and_grad, proposal),
        "reservoir": reservoir_lib.empty(len(bin_edges) - 1, max(reservoir_capacity, 1), num_positions),
        "z": np.zeros((num_records, num_groups, num_replicas), np.float32),
        "slot": np.zeros((num_records, num_groups, num_replicas), np.int32),
        "record_step": np.zeros((num_records,), np.int32),
    }
    params = target.params

    def run_block(b, carry):
        state, reservoir, (z, slot, step) = block(params, carry["state"], carry["reservoir"],
                                                  jax.random.fold_in(key, b))
        rows = slice(b * schedule.records_per_block, (b + 1) * schedule.records_per_block)
        carry["z"][rows], carry["slot"][rows], carry["record_step"][rows] = to_host((z, slot, step))
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
    return TemperingRun(carry["z"], carry["slot"], carry["record_step"], state, reservoir)


def swap_note(state: rx.ReplicaExchangeState) -> str:
    attempts, accepts, trips = to_host((state.swap_attempts, state.swap_accepts, state.round_trips))
    rate = accepts.sum(axis=0) / np.maximum(attempts.sum(axis=0), 1)
    return f"swap acceptance min {rate.min():.2f} | round trips {int(trips.sum())}"
