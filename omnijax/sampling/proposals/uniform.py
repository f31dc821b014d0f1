"""Uniform single-site proposal: the plain, gradient-free baseline.

Picks a free site uniformly and moves it to one of the other K-1 categories uniformly.
The proposal is symmetric, so both log-probabilities are the same constant (0 here). It
keeps nothing of the gradient, so XLA drops the model's backward pass from the step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from omnijax.sampling.proposals.base import Proposal, keep_nothing, no_summary
from omnijax.sampling.spaces import InputSpace


def uniform(space: InputSpace) -> Proposal:
    """Symmetric single-site proposal over the free positions of `space`."""
    free_positions = jnp.asarray(space.free_positions)
    num_categories = space.num_categories

    def propose(key, x, kept, beta, summary):
        del kept, beta, summary
        site_key, shift_key = jax.random.split(key)
        site = free_positions[jax.random.randint(site_key, (), 0, free_positions.shape[0])]
        shift = jax.random.randint(shift_key, (), 1, num_categories)
        x_new = x.at[site].set((x[site] + shift) % num_categories)
        return x_new, jnp.float32(0.0), None

    def log_reverse(x_new, kept_new, beta, move, x):
        del x_new, kept_new, beta, move, x
        return jnp.float32(0.0), ()

    return Proposal(keep_nothing, propose, log_reverse, no_summary)
