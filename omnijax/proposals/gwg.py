"""Gibbs-with-gradients (Grathwohl et al., 2021): locally balanced single-site moves.

Each move picks (site i, category k) from softmax(d / 2), d the first-order gain of
beta*z (see `first_order_gain`), over free sites and k != x_i. With `num_flips` > 1 the
proposal walks a path of that many such moves, each drawn with the gradient at the START
of the path but the current categories along it; the reverse path is scored with the
gradient at the end. Treating the path as an auxiliary variable keeps MH exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from omnijax.proposals.base import Proposal, first_order_gain, log_softmax_at, sample_categorical
from omnijax.spaces import InputSpace


def gwg(space: InputSpace, num_flips: int = 1) -> Proposal:
    """Gibbs-with-gradients over `space`, moving `num_flips` sites (with repeats) per proposal."""
    if not isinstance(num_flips, int) or num_flips < 1:
        raise ValueError(f"num_flips must be a positive int, got {num_flips!r}")
    free = jnp.asarray(~space.frozen_mask.reshape(-1))
    num_categories = space.num_categories
    categories = jnp.arange(num_categories)

    def move_logits(x, grad, beta):
        gain = first_order_gain(x, grad, beta)
        allowed = free[:, None] & (categories[None, :] != x[:, None])
        return jnp.where(allowed, gain / 2, -jnp.inf)

    def propose(key, x, grad, beta):
        def one_move(carry, step_key):
            y, log_q = carry
            index, log_p = sample_categorical(step_key, move_logits(y, grad, beta))
            site, new = index // num_categories, index % num_categories
            old = y[site]
            return (y.at[site].set(new), log_q + log_p), (site, old)

        keys = jax.random.split(key, num_flips)
        (x_new, log_q), path = jax.lax.scan(one_move, (x, jnp.float32(0.0)), keys)
        return x_new, log_q, path

    def log_reverse(x_new, grad_new, beta, path, x):
        del x  # the path determines the way back
        sites, olds = path

        def undo(carry, step):
            y, log_q = carry
            site, old = step
            log_p = log_softmax_at(move_logits(y, grad_new, beta), site * num_categories + old)
            return (y.at[site].set(old), log_q + log_p), None

        (_, log_q), _ = jax.lax.scan(undo, (x_new, jnp.float32(0.0)), (sites, olds), reverse=True)
        return log_q

    return Proposal(propose, log_reverse)
