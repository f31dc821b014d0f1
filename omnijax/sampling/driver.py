"""The one loop every long computation runs in: compiled blocks, progress, NaN checks,
checkpoints and resume (replica exchange, Wang–Landau and exact enumeration alike).

A computation is a `carry` pytree (device arrays and host numpy arrays: everything that
must survive a restart) and a host function `run_block(b, carry) -> carry` that runs block b
(usually one jitted call). After every block the loop checks the carry for non-finite
model outputs, reports progress and, with a checkpoint directory, saves the carry (Orbax,
atomically; see `omnijax.sampling.checkpoint`). A restarted run restores the newest saved
carry of the SAME run (the fingerprint must match, else the directory is refused untouched)
and goes on from the next block. Blocks draw their randomness from fold_in(key, b), so a
resumed run is bit-identical to an uninterrupted one.

Many processes (after `jax.distributed.initialize()`): every process runs the same loop on
the same carry. Groups are laid over every device of every process (`shard_over_groups`),
host-side reads go through `to_host` (a gather across processes, so every process sees the
same numbers and takes the same branches), Orbax writes each process's shards and process 0
the host arrays, and only process 0 prints progress.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from omnijax.sampling.checkpoint import RunCheckpointer
from omnijax.util.progress import Progress


class NonFiniteOutputError(ValueError):
    """The model returned NaN or inf (output or gradient) for some input."""


def run_blocks(run_block: Callable[[int, Any], Any], carry: Any, num_blocks: int, *,
               label: str, unit: str, units_after: Callable[[int], int], total_units: int,
               check: Callable[[Any], None] | None = None, note: Callable[[Any], str] | None = None,
               checkpoint_dir: str | None = None, fingerprint: dict | None = None,
               checkpoint_every: int = 1, place: Callable[[Any], Any] | None = None,
               progress: bool = True) -> Any:
    """Run blocks 0..num_blocks-1 of `run_block` on `carry`; returns the final carry.

    Args:
      run_block: (block index, carry) -> carry.
      carry: the starting carry; with checkpoint_dir, replaced by the newest checkpoint's.
      label, unit: progress line wording; units_after(b): units done after block b
        (units_after(-1) = 0); total_units: units when all blocks are done.
      check: raises on a carry that holds a non-finite model output (called on the
        starting carry and after every block).
      note: extra text for the progress line.
      checkpoint_dir, fingerprint: where to save and what the run must match to resume.
      checkpoint_every: blocks between saves (the last block is always saved).
      place: puts a (restored) carry on the devices (e.g. shards it over groups).
    """
    first_block = 0
    checkpointer = None
    if place is not None:
        carry = place(carry)  # first, so a checkpoint is read straight into the devices' layout
    if checkpoint_dir is not None:
        checkpointer = RunCheckpointer(checkpoint_dir, fingerprint or {})
        restored = checkpointer.restore_latest(carry)
        if restored is not None:
            done_block, carry = restored
            first_block = done_block + 1
            if place is not None:
                carry = place(carry)
    if check is not None:
        check(carry)
    bar = Progress(label, total_units, unit, enabled=progress and jax.process_index() == 0)
    bar.update(units_after(first_block - 1))
    try:
        for b in range(first_block, num_blocks):
            carry = run_block(b, carry)
            if check is not None:
                check(carry)
            if checkpointer is not None and ((b + 1) % checkpoint_every == 0 or b + 1 == num_blocks):
                checkpointer.save(b, carry)
            bar.update(units_after(b), note=note(carry) if note is not None else "")
    finally:
        if checkpointer is not None:
            checkpointer.close()
    return carry


def shard_over_groups(tree, num_groups: int):
    """Lay the leading (group) axis of every (C, ...) leaf over all devices of all processes,
    when it divides evenly; other leaves are replicated.

    One process whose devices do not divide num_groups keeps the tree where it is. Several
    processes must all take part in every computation, so there the tree is replicated on
    every device instead (each device runs all groups: correct, not faster).
    """
    devices = jax.devices()
    if len(devices) == 1 or (num_groups % len(devices) and jax.process_count() == 1):
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("groups",))
    spec = jax.sharding.PartitionSpec("groups" if num_groups % len(devices) == 0 else None)
    grouped = jax.sharding.NamedSharding(mesh, spec)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(
        lambda a: _put(a, grouped if np.ndim(a) and np.shape(a)[0] == num_groups else replicated), tree)


def replicate(tree):
    """Every leaf replicated on every device of every process (e.g. a carry not split by group)."""
    if len(jax.devices()) == 1:
        return jax.device_put(tree)
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("groups",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(lambda a: _put(a, replicated), tree)


def _put(a, sharding):
    """device_put that also works across processes, where every process holds the same full `a`."""
    if isinstance(a, jax.Array) and a.sharding == sharding:
        return a
    if jax.process_count() > 1 and isinstance(a, jax.Array) and a.is_fully_addressable:
        a = np.asarray(a)  # a process-local array: every process passes its own (equal) copy
    return jax.device_put(a, sharding)


def to_host(tree):
    """Every leaf as a numpy array holding the whole (global) value, on every process.

    A leaf split over other processes' devices is gathered (a collective: every process must
    call this in the same order, which the block loop guarantees).
    """
    return jax.tree.map(_leaf_to_host, tree)


def _leaf_to_host(a):
    if isinstance(a, jax.Array) and not (a.is_fully_addressable or a.is_fully_replicated):
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def first_nonfinite(first_step: np.ndarray) -> tuple[tuple[int, ...], int, int] | None:
    """(index of the walker that went non-finite first, its step, walkers affected), or None,
    from an array of first non-finite steps (-1: never)."""
    bad = np.asarray(first_step)
    if not (bad >= 0).any():
        return None
    where = np.argwhere(bad >= 0)
    first = where[np.argmin(bad[bad >= 0])]
    return tuple(int(i) for i in first), int(bad[tuple(first)]), int((bad >= 0).sum())
