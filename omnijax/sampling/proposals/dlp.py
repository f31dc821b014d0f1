"""Discrete Langevin proposal (Zhang et al., 2022; DMALA when followed by MH): global moves.

Every free site i moves independently to category k with probability
  q_i(k) ∝ exp(d[i, k] / 2 - [k != x_i] / (2 * step_size)),
d the first-order gain of beta*z (zero at k = x_i). Frozen sites never move.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from omnijax.sampling.proposals.base import Proposal, flip_gains, gain_table, mask_moves, no_summary
from omnijax.sampling.spaces import InputSpace


def dlp(space: InputSpace, step_size: float = 0.2) -> Proposal:
    """Discrete Langevin proposal over `space`; small `step_size` keeps most sites in place."""
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    free = jnp.asarray(~space.frozen_mask.reshape(-1))
    categories = jnp.arange(space.num_categories)

    if space.num_categories == 2:
        return _binary_dlp(free, step_size)

    def site_log_probs(x, table, beta):
        """log q_i(k) from the gain table at x (see base.gain_table); NaN rows stay NaN."""
        moved = categories[None, :] != x[:, None]
        logits = beta * table / 2 - moved / (2 * step_size)
        logits = mask_moves(~moved | free[:, None], logits)
        return jax.nn.log_softmax(logits, axis=-1)

    def log_prob_of(x_from, table_from, beta, x_to):
        log_p = site_log_probs(x_from, table_from, beta)
        return jnp.sum(jnp.take_along_axis(log_p, x_to[:, None], axis=1))

    def propose(key, x, table, beta, summary):
        del summary
        log_p = site_log_probs(x, table, beta)
        # Per-site inverse-CDF draw: one uniform per site instead of one per (site, category).
        u = jax.random.uniform(key, x.shape + (1,), dtype=log_p.dtype)
        cumulative = jnp.cumsum(jnp.exp(log_p), axis=-1)
        x_new = jnp.sum(cumulative <= u * cumulative[:, -1:], axis=-1).astype(x.dtype)
        x_new = jnp.minimum(x_new, space.num_categories - 1)
        x_new = jnp.where(free, x_new, x)
        log_q = jnp.sum(jnp.take_along_axis(log_p, x_new[:, None], axis=1))
        return x_new, log_q, None

    def log_reverse(x_new, table_new, beta, move, x):
        del move
        return log_prob_of(x_new, table_new, beta, x), ()

    return Proposal(gain_table, propose, log_reverse, no_summary)


def _binary_dlp(free: jax.Array, step_size: float) -> Proposal:
    """DLP for K = 2, where each site either stays or flips: the same distribution as the
    general softmax over two categories, computed per site from the flip logit
      l_i = d[i, 1 - x_i] / 2 - 1 / (2 * step_size),
    P(flip) = sigmoid(l_i), log P(stay) = -softplus(l_i), log P(flip) = l_i - softplus(l_i):
    one exp and one log1p per site instead of a log-softmax and a cumulative sum over (D, 2).
    The chain keeps the flip gains (D,) (see base.flip_gains)."""
    penalty = 1 / (2 * step_size)

    def flip_logits(gains, beta):
        return beta * gains / 2 - penalty

    def log_prob_of(x_from, gains_from, beta, x_to):
        logit = flip_logits(gains_from, beta)
        softplus = jnp.maximum(logit, 0) + jnp.log1p(jnp.exp(-jnp.abs(logit)))
        flipped = x_to != x_from
        # Frozen sites stay with probability 1 (and x_to never moves them); a NaN gain at one
        # still makes the sum NaN (see base).
        per_site = jnp.where(flipped, logit, 0.0) - softplus
        frozen_term = jnp.where(flipped, -jnp.inf, 0.0) + (logit - logit)
        return jnp.sum(jnp.where(free, per_site, frozen_term))

    def propose(key, x, gains, beta, summary):
        del summary
        logit = flip_logits(gains, beta)
        e = jnp.exp(-jnp.abs(logit))
        p_flip = jnp.where(logit >= 0, 1, e) / (1 + e)  # sigmoid(logit)
        u = jax.random.uniform(key, x.shape, dtype=logit.dtype)
        flip = free & (u < p_flip)
        x_new = jnp.where(flip, 1 - x, x)
        softplus = jnp.maximum(logit, 0) + jnp.log1p(e)
        log_q = jnp.sum(jnp.where(free, jnp.where(flip, logit, 0.0) - softplus, 0.0))
        return x_new, log_q, None

    def log_reverse(x_new, gains_new, beta, move, x):
        del move
        return log_prob_of(x_new, gains_new, beta, x), ()

    return Proposal(flip_gains, propose, log_reverse, no_summary)
