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
    which matters when the table has D*K entries. Returns (flat index, log probability).
    """
    flat = logits.reshape(-1)
    top = jnp.max(flat)
    cumulative = jnp.cumsum(jnp.exp(flat - top))
    total = cumulative[-1]
    u = jax.random.uniform(key, dtype=flat.dtype) * total
    index = jnp.sum(cumulative <= u).astype(jnp.int32)
    # Rounding can put u at the very top: fall back to the last entry with nonzero mass.
    last_valid = flat.shape[0] - 1 - jnp.argmax(jnp.isfinite(flat[::-1])).astype(jnp.int32)
    index = jnp.minimum(index, last_valid)
    return index, flat[index] - top - jnp.log(total)


def log_softmax_at(logits: jax.Array, index: jax.Array) -> jax.Array:
    """log softmax(logits over all entries)[flat index]."""
    flat = logits.reshape(-1)
    return flat[index] - jax.nn.logsumexp(flat)
