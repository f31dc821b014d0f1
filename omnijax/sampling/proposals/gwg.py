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

from omnijax.sampling.proposals.base import (Proposal, categorical_summary, first_order_gain, flip_gains,
                                   gain_table, log_normalizer, log_softmax_at, mask_moves,
                                   sample_categorical)
from omnijax.sampling.spaces import InputSpace


def gwg(space: InputSpace, num_flips: int = 1) -> Proposal:
    """Gibbs-with-gradients over `space`, moving `num_flips` sites (with repeats) per proposal."""
    if not isinstance(num_flips, int) or num_flips < 1:
        raise ValueError(f"num_flips must be a positive int, got {num_flips!r}")
    free = jnp.asarray(~space.frozen_mask.reshape(-1))
    any_frozen = bool(space.frozen_mask.any())
    num_categories = space.num_categories

    if num_categories == 2:
        # Binary inputs: the only move of site i is the flip to 1 - x_i, so the chain keeps the
        # flip gains (D,) and the table of moves is (D,) rather than (D, 2) with half its entries
        # masked. Entry i holds d[i, 1 - x_i] / 2 exactly as the (D, K) table would; flipping
        # site i negates it (exactly), so a multi-flip path updates one entry instead of
        # recomputing the table. Only the table at the kept gains' own x is ever asked for.
        compress = flip_gains

        def move_logits(y, gains, beta):
            del y  # the gains are those at y
            # One multiply by a per-chain factor, which XLA fuses into the exp-and-sum pass
            # (beta * gains / 2, the same values, makes it store broadcast factors first).
            logits = (beta / 2) * gains
            return mask_moves(free, logits) if any_frozen else logits

        def move_logit(y, gains, beta, site, new):
            del y, new
            return (beta / 2) * gains[site]

        def table_top(gains, beta):
            # The table's max (exactly: rounding is monotone and odd), read straight from
            # the gains, so that the table's only reader is the exp-and-sum pass, which then
            # computes it on the fly instead of storing it for a max pass.
            return None if any_frozen else jnp.abs(beta) / 2 * jnp.max(jnp.sign(beta) * gains)

        def index_of(site, new):
            del new
            return site

        def decode(index, y):
            return index, 1 - y[index]

        def after_move(logits, site):
            return logits.at[site].set(-logits[site])
    else:
        categories = jnp.arange(num_categories)
        compress = gain_table

        def move_logits(y, table, beta):
            gain = first_order_gain(y, table, beta)
            allowed = free[:, None] & (categories[None, :] != y[:, None])
            return mask_moves(allowed, gain / 2).reshape(-1)

        def move_logit(y, table, beta, site, new):
            return beta * (table[site, new] - table[site, y[site]]) / 2

        def table_top(table, beta):
            del table, beta  # the max of the table itself

        def index_of(site, new):
            return site * num_categories + new

        def decode(index, y):
            del y
            return index // num_categories, index % num_categories

        after_move = None  # the table is recomputed from the kept gains after each move
    incremental = after_move is not None
    positions = jnp.arange(space.num_positions)

    def summary_at(x, kept, beta):
        return categorical_summary(move_logits(x, kept, beta), table_top(kept, beta))

    def summarize(x, kept, beta):
        """The single move's table summary (see base); a multi-flip path caches nothing."""
        return summary_at(x, kept, beta) if num_flips == 1 else ()

    def move_to(x, site, new):
        # An elementwise select rather than a scatter: XLA fuses it into the consumers of
        # x_new instead of copying x for an in-place update.
        return jnp.where(positions == site, new, x)

    def propose_one(key, x, kept, beta, summary):
        # Only the chosen block of the table is read (the summary covers the rest).
        index, log_q = sample_categorical(key, move_logits(x, kept, beta), summary)
        site, new = decode(index, x)
        return move_to(x, site, new), log_q, (site[None], x[site][None])

    def log_reverse_one(x_new, kept_new, beta, path, x):
        del x  # the path determines the way back
        sites, olds = path
        summary = summary_at(x_new, kept_new, beta)
        # The entry straight from kept_new, so that the table's only reader is the summary.
        log_q = move_logit(x_new, kept_new, beta, sites[0], olds[0]) - log_normalizer(summary)
        return log_q, summary

    def propose_path(key, x, kept, beta, summary):
        del summary

        def one_move(carry, step_key):
            y, logits, log_q = carry
            table = logits if incremental else move_logits(y, kept, beta)
            index, log_p = sample_categorical(step_key, table)
            site, new = decode(index, y)
            logits = after_move(table, site) if incremental else None
            return (move_to(y, site, new), logits, log_q + log_p), (site, y[site])

        carry = (x, move_logits(x, kept, beta) if incremental else None, jnp.float32(0.0))
        (x_new, _, log_q), path = jax.lax.scan(one_move, carry, jax.random.split(key, num_flips))
        return x_new, log_q, path

    def log_reverse_path(x_new, kept_new, beta, path, x):
        del x  # the path determines the way back

        def undo(carry, step):
            y, logits, log_q = carry
            site, old = step
            table = logits if incremental else move_logits(y, kept_new, beta)
            log_p = log_softmax_at(table, index_of(site, old))
            logits = after_move(table, site) if incremental else None
            return (y.at[site].set(old), logits, log_q + log_p), None

        carry = (x_new, move_logits(x_new, kept_new, beta) if incremental else None, jnp.float32(0.0))
        (_, _, log_q), _ = jax.lax.scan(undo, carry, path, reverse=True)
        return log_q, ()

    if num_flips == 1:
        return Proposal(compress, propose_one, log_reverse_one, summarize)
    return Proposal(compress, propose_path, log_reverse_path, summarize)
