"""The contract every proposal follows, and the categorical sampling they share.

A proposal works on ONE chain with flat integer input x (D,) and the cached gradient
grad (D, K) of the output at x. It is a pair of pure functions:

  propose(key, x, grad, beta) -> (x_new, log_q_forward, move)
  log_reverse(x_new, grad_new, beta, move, x) -> log q(x | x_new)

`move` is whatever the proposal needs to score the way back (sites flipped, ...). The
Metropolis–Hastings kernel calls `log_reverse` with the gradient at x_new, which it has to
compute anyway for the next step, so one value_and_grad per step suffices.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Proposal(NamedTuple):
    """A gradient-informed (or plain) proposal: see the module docstring for the contract."""

    propose: Callable[..., tuple[jax.Array, jax.Array, Any]]
    log_reverse: Callable[..., jax.Array]


def first_order_gain(x: jax.Array, grad: jax.Array, beta) -> jax.Array:
    """d[i, k] = beta * (grad[i, k] - grad[i, x_i]): the linearised change of beta*z when site i
    moves to category k (zero for k = x_i)."""
    current = jnp.take_along_axis(grad, x[:, None], axis=1)
    return beta * (grad - current)


def sample_categorical(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One draw from softmax(logits) over ALL entries (any shape; -inf entries excluded).

    Inverse-CDF sampling needs one uniform number instead of one per entry (Gumbel-max),
    which matters when the table has D*K entries. It runs in two levels, blocks of about
    sqrt(n) entries and then the entries of the chosen block: a cumulative sum over the whole
    table (a reduce_window on XLA:CPU) costs several exp passes, while the two levels cost
    one exp-and-sum pass over the table plus O(sqrt(n)) cumulative sums. An entry without
    mass is never drawn as a valid move (see the end). Returns (flat index, log probability).
    """
    flat = logits.reshape(-1)
    n = flat.shape[0]
    block = max(1, math.isqrt(n - 1) + 1)  # ceil(sqrt(n)): static
    num_blocks = -(-n // block)
    if num_blocks * block > n:
        flat = jnp.pad(flat, (0, num_blocks * block - n), constant_values=-jnp.inf)
    top = jnp.max(flat)
    # Only the per-block masses are kept; the chosen block's weights are recomputed below.
    block_mass = jnp.sum(jnp.exp(flat.reshape(num_blocks, block) - top), axis=1)
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
