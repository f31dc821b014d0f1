"""A fixed-size reservoir of DISTINCT sampled inputs per output bin, kept on the device.

Every offer of a candidate draws a fresh priority log(E), E ~ Exp(1); a bin keeps the
`capacity` distinct inputs with the smallest priorities seen (an input already held is not
offered again). An input visited more often has more draws, so it is more likely kept:
`omnijax.sampling.inclusion` gives the probability, and the weights that undo it. Inputs are told
apart by a 32-bit hash with odd per-position multipliers, so two inputs that differ at one
position never collide.
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


def empty(num_bins: int, capacity: int, num_positions: int) -> Reservoir:
    return Reservoir(
        x=jnp.zeros((num_bins, capacity, num_positions), jnp.int32),
        z=jnp.zeros((num_bins, capacity), jnp.float32),
        priority=jnp.full((num_bins, capacity), jnp.inf, jnp.float32),
        hash=jnp.zeros((num_bins, capacity), jnp.uint32),
    )


def hash_multipliers(num_positions: int) -> np.ndarray:
    """Fixed odd uint32 multipliers, one per position."""
    rng = np.random.default_rng(0x0A11)
    return (rng.integers(0, 2**31, num_positions, dtype=np.uint64) * 2 + 1).astype(np.uint32)


def input_hash(x: jax.Array, multipliers: jax.Array) -> jax.Array:
    """uint32 hash of flat inputs (..., D): sum of x_i * a_i modulo 2^32."""
    return jnp.sum(x.astype(jnp.uint32) * multipliers, axis=-1, dtype=jnp.uint32)


def insert(reservoir: Reservoir, key: jax.Array, x: jax.Array, z: jax.Array,
           bin_edges: jax.Array, multipliers: jax.Array) -> Reservoir:
    """Offer candidates x (N, D) with outputs z (N,) to their bins; outside the edges they are dropped."""
    num_bins = reservoir.priority.shape[0]
    bins = bin_index(z, bin_edges)
    hashes = input_hash(x, multipliers)
    priorities = jnp.log(jax.random.exponential(key, z.shape, jnp.float32))

    def offer(res, candidate):
        xi, zi, b, h, p = candidate
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
        ), None

    reservoir, _ = jax.lax.scan(offer, reservoir, (x, z, bins, hashes, priorities))
    return reservoir


def contents(reservoir: Reservoir, bin_idx: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, D), outputs (n,)) held for one bin, in priority order."""
    priority = np.asarray(reservoir.priority[bin_idx])
    order = np.argsort(priority, kind="stable")
    order = order[np.isfinite(priority[order])]
    return np.asarray(reservoir.x[bin_idx])[order], np.asarray(reservoir.z[bin_idx])[order]
