"""The contract every proposal follows, and the categorical sampling they share.

A proposal works on ONE chain with flat integer input x (D,). It keeps what it needs of the
model's gradient grad (D, K) at x in a compact form of its own, `kept`, and is a quadruple of
pure functions:

  compress(x, grad) -> kept
  summarize(x, kept, beta) -> summary
  propose(key, x, kept, beta, summary) -> (x_new, log_q_forward, move)
  log_reverse(x_new, kept_new, beta, move, x) -> (log q(x | x_new), summary at x_new)

`kept` does not depend on beta. The chain state caches it instead of the gradient: every step
selects it on acceptance and reads it when scoring, so a smaller form is less memory traffic
(binary gradient proposals keep the (D,) flip gains instead of the (D, 2) gradient; the uniform
proposal keeps nothing, and XLA then drops the backward pass altogether).

Finiteness: `compress` turns every entry that a NaN or inf of the gradient reaches into NaN
(`nan_unless_finite`; a finite gradient whose gain overflows float32 counts as non-finite
too), and `log_reverse` carries any NaN of kept_new, frozen sites included, into its log q
(`mask_moves`). The kernel takes the finiteness of the gradient from that log q: no pass over
the gradient beyond the one that scoring makes anyway.

`move` is whatever the proposal needs to score the way back (sites flipped, ...). The
Metropolis–Hastings kernel calls `log_reverse` with kept at x_new, which it has to compute
anyway for the next step, so one value_and_grad per step suffices.

`summary` is what the forward draw needs beyond (x, kept, beta) and costs a pass over the
move table to compute (for single-site GWG: the table's per-block masses). Scoring the way
back computes exactly the summary at x_new, so the chain caches it next to (z, kept) and the
forward draw of the next step skips that pass. It depends on beta: a replica exchange that
changes a walker's beta recomputes it with `summarize`. Proposals without one use ().

Token proposals (`proposals.tokens`) read the model's embedding matrix, a model parameter, at
call time: their `bind(params)` returns the proposal with the matrix of THOSE params (traced
arguments of the compiled program, never constants), and the kernels call `bind_params` with
the params they are given before using a proposal. `input_gradient` names the gradient that
`compress` expects: "onehot" (dz/d one-hot, (D, K)) or "embedding" (dz/d input embeddings,
(D, d)); `omnijax.sampling.token_target.make_value_and_grad_for` builds the matching one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Proposal(NamedTuple):
    """A gradient-informed (or plain) proposal: see the module docstring for the contract."""

    compress: Callable[..., Any]
    propose: Callable[..., tuple[jax.Array, jax.Array, Any]]
    log_reverse: Callable[..., tuple[jax.Array, Any]]
    summarize: Callable[..., Any]
    bind: Callable[[Any], "Proposal"] | None = None  # params -> the proposal for them (token proposals)
    input_gradient: str = "onehot"                    # "onehot" or "embedding": what compress takes


def bind_params(proposal: Proposal, params) -> Proposal:
    """The proposal to use with model parameters `params`: itself unless it reads parameters
    (token proposals read the embedding matrix); a bound proposal binds to itself."""
    return proposal if proposal.bind is None else proposal.bind(params)


def keep_nothing(x, grad) -> tuple:
    """`compress` of a proposal that never looks at the gradient."""
    del x, grad
    return ()


def no_summary(x, kept, beta) -> tuple:
    """`summarize` of a proposal whose forward draw needs nothing cached."""
    del x, kept, beta
    return ()


def nan_unless_finite(a: jax.Array) -> jax.Array:
    """a with every inf turned into NaN, which every later operation carries along (an -inf
    logit would instead vanish in exp), so that log q shows a non-finite gradient."""
    return jnp.where(jnp.isfinite(a), a, jnp.nan)


def mask_moves(allowed: jax.Array, logits: jax.Array) -> jax.Array:
    """logits with -inf where a move is not allowed, except that NaN stays NaN: a non-finite
    gradient at a frozen site must still make log q NaN (see the module docstring)."""
    return jnp.where(allowed | jnp.isnan(logits), logits, -jnp.inf)


def first_order_gain(x: jax.Array, grad: jax.Array, beta) -> jax.Array:
    """d[i, k] = beta * (grad[i, k] - grad[i, x_i]): the linearised change of beta*z when site i
    moves to category k (zero for k = x_i)."""
    current = jnp.take_along_axis(grad, x[:, None], axis=1)
    return beta * (grad - current)


def gain_table(x: jax.Array, grad: jax.Array) -> jax.Array:
    """`compress` for K > 2: the first-order gains d / beta (D, K) at x, NaN where not finite.
    `first_order_gain(y, table, beta)` is the gain at any other y too (it subtracts the row's
    entry at y_i, and every row is grad shifted by a constant)."""
    return nan_unless_finite(first_order_gain(x, grad, 1.0))


def flip_gains(x: jax.Array, grad: jax.Array) -> jax.Array:
    """`compress` for K = 2: g[i] = (grad[i, 1] - grad[i, 0]) * (1 - 2 x_i), the first-order
    change of z when site i flips (D,), NaN where not finite: half the (D, 2) gradient."""
    return nan_unless_finite((grad[:, 1] - grad[:, 0]) * (1 - 2 * x).astype(grad.dtype))


class CategoricalSummary(NamedTuple):
    """What a draw from softmax(logits) needs beyond the logits: one exp-and-sum pass's worth."""

    top: jax.Array         # () max of the logits
    block_mass: jax.Array  # (num_blocks,) sum of exp(logit - top) over each block of entries


def _blocks(n: int) -> tuple[int, int]:
    """(block size, number of blocks): blocks of ceil(sqrt(n)) entries (static)."""
    block = max(1, math.isqrt(n - 1) + 1)
    return block, -(-n // block)


def _padded(logits: jax.Array, block: int, num_blocks: int) -> jax.Array:
    flat = logits.reshape(-1)
    pad = num_blocks * block - flat.shape[0]
    return jnp.pad(flat, (0, pad), constant_values=-jnp.inf) if pad else flat


def categorical_summary(logits: jax.Array, top: jax.Array | None = None) -> CategoricalSummary:
    """Per-block masses of softmax(logits) over ALL entries (any shape; -inf entries excluded).
    `top`: the max of the logits where the caller has a cheaper way to it (see gwg)."""
    block, num_blocks = _blocks(logits.size)
    flat = _padded(logits, block, num_blocks)
    top = jnp.max(flat) if top is None else top
    return CategoricalSummary(top, jnp.sum(jnp.exp(flat.reshape(num_blocks, block) - top), axis=1))


def log_normalizer(summary: CategoricalSummary) -> jax.Array:
    """log sum exp(logits), from the summary. The total is the last entry of the cumulative sum
    that the draw takes too: XLA folds a plain sum of the block masses into a second reduction
    over the whole table, which also keeps the exp table from fusing into the first one."""
    return summary.top + jnp.log(_inclusive_cumsum(summary.block_mass)[-1])


def sample_categorical(key: jax.Array, logits: jax.Array,
                       summary: CategoricalSummary | None = None) -> tuple[jax.Array, jax.Array]:
    """One draw from softmax(logits) over ALL entries; returns (flat index, log probability).

    Inverse-CDF sampling needs one uniform number instead of one per entry (Gumbel-max),
    which matters when the table has D*K entries. It runs in two levels, blocks of about
    sqrt(n) entries and then the entries of the chosen block: a cumulative sum over the whole
    table (a reduce_window on XLA:CPU) costs several exp passes, while the two levels cost
    one exp-and-sum pass over the table (`categorical_summary`, skipped when the caller has
    it cached) plus O(sqrt(n)) work: only the chosen block's logits are read, so XLA computes
    just those when `logits` is an elementwise function of cached arrays. An entry without
    mass is never drawn as a valid move (see the end).
    """
    if summary is None:
        summary = categorical_summary(logits)
    block, num_blocks = _blocks(logits.size)
    flat = _padded(logits, block, num_blocks)
    top, block_mass = summary
    block_end = _inclusive_cumsum(block_mass)
    total = block_end[-1]
    u = jax.random.uniform(key, dtype=flat.dtype) * total
    # Block b holds u when end[b-1] <= u < end[b]; rounding at the very top falls back to the
    # last block with mass.
    last_block = num_blocks - 1 - jnp.argmax(block_mass[::-1] > 0).astype(jnp.int32)
    b = jnp.minimum(jnp.sum(block_end <= u).astype(jnp.int32), last_block)
    start = jnp.where(b > 0, block_end[jnp.maximum(b - 1, 0)], 0.0)
    within = u - start  # >= 0 because start <= u
    row_logits = jax.lax.dynamic_slice_in_dim(flat, b * block, block)
    row = jnp.exp(row_logits - top)
    last_in_row = block - 1 - jnp.argmax(row[::-1] > 0).astype(jnp.int32)
    j = jnp.minimum(jnp.sum(_inclusive_cumsum(row) <= within).astype(jnp.int32), last_in_row)
    log_p = row_logits[j] - top - jnp.log(total)
    # Only rounding between the two levels could land on an entry without mass (a row whose
    # recomputed weights all vanish); report +inf then, so that Metropolis-Hastings rejects it.
    log_p = jnp.where(row[j] > 0, log_p, jnp.inf)
    return b * block + j, log_p


def _inclusive_cumsum(v: jax.Array) -> jax.Array:
    """Cumulative sum of a vector; a short one as a product with a triangular matrix, which
    XLA runs much faster than the reduce_window that jnp.cumsum lowers to."""
    n = v.shape[-1]
    if n > 256:
        return jnp.cumsum(v)
    upper = jnp.triu(jnp.ones((n, n), v.dtype))
    return jnp.dot(v, upper, precision=jax.lax.Precision.HIGHEST)


def log_softmax_at(logits: jax.Array, index: jax.Array) -> jax.Array:
    """log softmax(logits over all entries)[flat index]."""
    flat = logits.reshape(-1)
    return flat[index] - jax.nn.logsumexp(flat)
