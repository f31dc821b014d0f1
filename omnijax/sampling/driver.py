"""The replica-exchange driver: compiled blocks of many steps, progress, checkpoints.

One jitted call runs a whole block (`lax.scan` over records, each `record_every` MH steps
with a swap attempt every `swap_every` steps); the host only sees block boundaries, where
it reports progress, moves the block's recorded outputs off the device, checks for NaN/inf
and writes a checkpoint. Keys are derived from (key, block index), so a resumed run makes
exactly the same draws as an uninterrupted one and its results are bit-identical.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.checkpoint import RunCheckpointer
from omnijax.sampling.mcmc import tempering
from omnijax.util.progress import Progress
from omnijax.sampling.proposals.base import Proposal
from omnijax.sampling import reservoir as reservoir_lib


class NonFiniteOutputError(ValueError):
    """The model returned NaN or inf (output or gradient) for some walker."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long to sample and how often to swap, record and checkpoint (all in MH steps per walker)."""

    num_steps: int = 10_000
    steps_per_block: int = 1_000
    record_every: int = 10
    swap_every: int = 10
    burn_in: int = 2_000
    checkpoint_every_blocks: int = 1

    def __post_init__(self):
        for name in ("num_steps", "steps_per_block", "record_every", "swap_every", "checkpoint_every_blocks"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
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
    record_step: np.ndarray  # (records,) MH step at which each record was taken
    state: tempering.TemperingState
    reservoir: reservoir_lib.Reservoir


def _block_fn(value_and_grad: Callable, proposal: Proposal, schedule: Schedule, bin_edges,
              multipliers):
    edges = jnp.asarray(bin_edges, jnp.float32)

    def one_step(key, state, betas):
        mh_key, swap_key = jax.random.split(key)
        state = tempering.mh_sweep(mh_key, state, betas, value_and_grad, proposal)
        return jax.lax.cond(state.step % schedule.swap_every == 0,
                            lambda s: tempering.refresh_summaries(tempering.swap(swap_key, s, betas), betas, proposal),
                            lambda s: s, state)

    def one_record(carry, record_key, betas):
        state, reservoir = carry
        keys = jax.random.split(record_key, schedule.record_every + 1)
        state = jax.lax.fori_loop(0, schedule.record_every,
                                  lambda i, s: one_step(keys[i], s, betas), state)
        x = state.chains.x.reshape(-1, state.chains.x.shape[-1])
        z = state.chains.z.reshape(-1)
        reservoir = jax.lax.cond(
            state.step > schedule.burn_in,
            lambda r: reservoir_lib.insert(r, keys[-1], x, z, edges, multipliers),
            lambda r: r, reservoir)
        return (state, reservoir), (state.chains.z, state.slot, state.step)

    @jax.jit
    def block(state, reservoir, block_key, betas):
        keys = jax.random.split(block_key, schedule.records_per_block)
        (state, reservoir), records = jax.lax.scan(
            lambda c, k: one_record(c, k, betas), (state, reservoir), keys)
        return state, reservoir, records

    return block


# One compiled program instead of hundreds of op-by-op dispatches (seconds for a CNN).
_jitted_init = jax.jit(tempering.init, static_argnums=(1, 2))


def _raise_if_nonfinite(state: tempering.TemperingState, betas: np.ndarray) -> None:
    bad = np.asarray(state.first_nonfinite_step)
    if (bad >= 0).any():
        group, replica = np.argwhere(bad >= 0)[np.argmin(bad[bad >= 0])]
        slot = int(np.asarray(state.slot)[group, replica])
        raise NonFiniteOutputError(
            f"output_fn returned NaN or inf (output or gradient) for chain (group {group}, walker "
            f"{replica}) at MH step {int(bad[group, replica])} (beta={betas[slot]:.4g}); "
            f"{int((bad >= 0).sum())} walker(s) affected. Fix the model (e.g. clip logits) or "
            f"its numerics; nothing was binned")


def shard_over_groups(tree, num_groups: int):
    """Lay the leading (group) axis of every (C, ...) leaf over all devices, when it divides evenly."""
    devices = jax.devices()
    if len(devices) == 1 or num_groups % len(devices):
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("groups",))
    grouped = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("groups"))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(
        lambda a: jax.device_put(a, grouped if a.ndim and a.shape[0] == num_groups else replicated), tree)


def run_tempering(key: jax.Array, x0: jax.Array, betas, value_and_grad: Callable, proposal: Proposal,
                  bin_edges, schedule: Schedule, *, reservoir_capacity: int = 32,
                  checkpoint_dir: str | None = None, fingerprint: dict | None = None,
                  progress: bool = True, label: str = "replica exchange") -> TemperingRun:
    """Run replica exchange from flat inputs x0 (C, R, D) on the ladder `betas`.

    With `checkpoint_dir`, the run resumes from the newest checkpoint there (which must come
    from a run with the same `fingerprint`) and writes one every `checkpoint_every_blocks`.
    """
    betas_np = np.asarray(betas, np.float64)
    betas_dev = jnp.asarray(betas_np, jnp.float32)
    num_groups, num_replicas, num_positions = x0.shape
    num_bins = len(bin_edges) - 1
    num_records = schedule.num_blocks * schedule.records_per_block
    multipliers = jnp.asarray(reservoir_lib.hash_multipliers(num_positions))
    block = _block_fn(value_and_grad, proposal, schedule, bin_edges, multipliers)

    run = {
        "state": _jitted_init(x0, value_and_grad, proposal, betas_dev),
        "reservoir": reservoir_lib.empty(num_bins, reservoir_capacity, num_positions),
        "z": np.zeros((num_records, num_groups, num_replicas), np.float32),
        "slot": np.zeros((num_records, num_groups, num_replicas), np.int32),
        "record_step": np.zeros((num_records,), np.int32),
    }
    _raise_if_nonfinite(run["state"], betas_np)
    first_block = 0
    checkpointer = None
    if checkpoint_dir is not None:
        checkpointer = RunCheckpointer(checkpoint_dir, fingerprint or {})
        restored = checkpointer.restore_latest(run)
        if restored is not None:
            done_block, run = restored
            first_block = done_block + 1
    device_state = shard_over_groups((run["state"], run["reservoir"]), num_groups)

    bar = Progress(label, schedule.num_blocks * schedule.steps_per_block, "steps", enabled=progress)
    bar.update(first_block * schedule.steps_per_block)
    try:
        for b in range(first_block, schedule.num_blocks):
            state, reservoir, (z, slot, step) = block(*device_state, jax.random.fold_in(key, b), betas_dev)
            _raise_if_nonfinite(state, betas_np)
            rows = slice(b * schedule.records_per_block, (b + 1) * schedule.records_per_block)
            run["z"][rows], run["slot"][rows], run["record_step"][rows] = map(np.asarray, (z, slot, step))
            device_state = (state, reservoir)
            if checkpointer is not None and ((b + 1) % schedule.checkpoint_every_blocks == 0
                                             or b + 1 == schedule.num_blocks):
                run["state"], run["reservoir"] = device_state
                checkpointer.save(b, run)
            bar.update((b + 1) * schedule.steps_per_block, note=_swap_note(state))
    finally:
        if checkpointer is not None:
            checkpointer.close()
    state, reservoir = jax.device_get(device_state)
    return TemperingRun(run["z"], run["slot"], run["record_step"], state, reservoir)


def _swap_note(state: tempering.TemperingState) -> str:
    attempts = np.maximum(np.asarray(state.swap_attempts), 1)
    rate = np.asarray(state.swap_accepts) / attempts
    return f"swap acceptance min {rate.min():.2f} | round trips {int(np.asarray(state.round_trips).sum())}"
