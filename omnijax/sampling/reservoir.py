"""A fixed-size reservoir of DISTINCT sampled inputs per output bin, kept on the device.

Every offer of a candidate draws a fresh priority log(E), E ~ Exp(1); a bin keeps the
`capacity` distinct inputs with the smallest priorities seen (an input already held is not
offered again). An input visited more often has more draws, so it is more likely kept:
`omnijax.sampling.inclusion` gives the probability, and the weights that undo it. Inputs are told
apart by a 32-bit hash with odd per-position multipliers, so two inputs that differ at one
position never collide.

Each kept input also carries two int32 `tags` given by the caller at insertion (replica
exchange: the flat walker index g*R + r and that walker's round-trip count at the time), so
one can tell how many distinct walkers and round trips a bin's representatives come from.
Tags ride along with the input they were offered with; they play no part in what is kept.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.histogram import bin_index


class Reservoir(NamedTuple):
    x: jax.Array         # (B, capacity, D) int32
    z: jax.Array         # (B, capacity) float32
    priority: jax.Array  # (B, capacity) float32, +inf marks an empty slot
    hash: jax.Array      # (B, capacity) uint32
    tags: jax.Array | None = None  # (B, capacity, NUM_TAGS) int32: (walker, round trips) at insertion


NUM_TAGS = 2


def empty(num_bins: int, capacity: int, num_positions: int) -> Reservoir:
    """A reservoir with every slot empty. Built in numpy and transferred: jnp.zeros and jnp.full
    would compile a program for each new shape."""
    return Reservoir(
        x=jnp.asarray(np.zeros((num_bins, capacity, num_positions), np.int32)),
        z=jnp.asarray(np.zeros((num_bins, capacity), np.float32)),
        priority=jnp.asarray(np.full((num_bins, capacity), np.inf, np.float32)),
        hash=jnp.asarray(np.zeros((num_bins, capacity), np.uint32)),
        tags=jnp.asarray(np.zeros((num_bins, capacity, NUM_TAGS), np.int32)),
    )


def hash_multipliers(num_positions: int) -> np.ndarray:
    """Fixed odd uint32 multipliers, one per position."""
    rng = np.random.default_rng(0x0A11)
    return (rng.integers(0, 2**31, num_positions, dtype=np.uint64) * 2 + 1).astype(np.uint32)


def input_hash(x: jax.Array, multipliers: jax.Array) -> jax.Array:
    """uint32 hash of flat inputs (..., D): sum of x_i * a_i modulo 2^32."""
    return jnp.sum(x.astype(jnp.uint32) * multipliers, axis=-1, dtype=jnp.uint32)


def insert(reservoir: Reservoir, key: jax.Array, x: jax.Array, z: jax.Array,
           bin_edges: jax.Array, multipliers: jax.Array, tags: jax.Array | None = None) -> Reservoir:
    """Offer candidates x (N, D) with outputs z (N,) to their bins; outside the edges they are dropped.

    tags: optional int32 (N, NUM_TAGS) stored with each kept candidate (zeros when not given);
    they do not change which candidates are kept, nor the random draws."""
    num_bins = reservoir.priority.shape[0]
    if tags is None:
        tags = jnp.zeros((z.shape[0], NUM_TAGS), jnp.int32)
    tags = jnp.asarray(tags, jnp.int32).reshape(z.shape[0], NUM_TAGS)
    bins = bin_index(z, bin_edges)
    hashes = input_hash(x, multipliers)
    priorities = jnp.log(jax.random.exponential(key, z.shape, jnp.float32))

    def offer(res, candidate):
        xi, zi, b, h, p, ti = candidate
        inside = (b >= 0) & (b < num_bins)
        b = jnp.clip(b, 0, num_bins - 1)
        held = jnp.isfinite(res.priority[b])
        duplicate = jnp.any(held & (res.hash[b] == h))
        worst = jnp.argmax(res.priority[b])
        take = inside & ~duplicate & (p < res.priority[b, worst])
        keep = lambda new, old: jnp.where(take, new, old)
        return Reservoir(
            x=res.x.at[b, worst].set(keep(xi, res.x[b, worst])),
            z=res.z.at[b, worst].set(keep(zi, res.z[b, worst])),
            priority=res.priority.at[b, worst].set(keep(p, res.priority[b, worst])),
            hash=res.hash.at[b, worst].set(keep(h, res.hash[b, worst])),
            tags=res.tags.at[b, worst].set(keep(ti, res.tags[b, worst])),
        ), None

    reservoir, _ = jax.lax.scan(offer, reservoir, (x, z, bins, hashes, priorities, tags))
    return reservoir


def held_order(priority_row) -> np.ndarray:
    """Slots of one bin that hold an input, in priority order."""
    priority = np.asarray(priority_row)
    order = np.argsort(priority, kind="stable")
    return order[np.isfinite(priority[order])]


def contents(reservoir: Reservoir, bin_idx: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, D), outputs (n,)) held for one bin, in priority order."""
    order = held_order(reservoir.priority[bin_idx])
    return np.asarray(reservoir.x[bin_idx])[order], np.asarray(reservoir.z[bin_idx])[order]


def held_tags(reservoir: Reservoir, bin_idx: int) -> np.ndarray:
    """Tags (n, NUM_TAGS) of the inputs held for one bin, in the order of `contents`."""
    order = held_order(reservoir.priority[bin_idx])
    return np.asarray(reservoir.tags[bin_idx])[order]
