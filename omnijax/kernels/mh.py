"""Metropolis–Hastings at inverse temperature beta on pi_beta(x) ∝ exp(beta * z(x)).

The chain state caches (x, z, grad): the gradient at a proposed x' is needed for the
reverse proposal probability, and when x' is accepted it IS the next step's gradient, so
one value_and_grad per chain per step suffices. It caches the proposal's summary at
(x, grad, beta) too (see proposals.base), which scoring the reverse move computes anyway;
whoever changes a chain's beta must refresh it with `proposal.summarize`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from omnijax.proposals.base import Proposal


class ChainState(NamedTuple):
    x: jax.Array     # (D,) int32 categories, flat
    z: jax.Array     # () float32 output at x
    grad: jax.Array  # (D, K) float32 gradient of z w.r.t. the one-hot input at x
    summary: Any     # the proposal's summary at (x, grad, beta of this chain)


class MHInfo(NamedTuple):
    accepted: jax.Array   # () bool
    nonfinite: jax.Array  # () bool: the model gave NaN/inf output or gradient at the proposal


def init_chain(x: jax.Array, value_and_grad: Callable, proposal: Proposal, beta) -> ChainState:
    """Chain state at flat input x for sampling at `beta` (evaluates the model once)."""
    z, grad = value_and_grad(x)
    return ChainState(x, z, grad, proposal.summarize(x, grad, beta))


def is_finite_state(z: jax.Array, grad: jax.Array) -> jax.Array:
    # g - g is +0 for finite g and NaN for inf or NaN, so the sum is finite exactly when every
    # entry is. It is one fused read of the table; jnp.all(jnp.isfinite(grad)) materialises a
    # boolean table and reduces it through a reduce_window on XLA:CPU, several times slower.
    return jnp.isfinite(z) & jnp.isfinite(jnp.sum(grad - grad))


def mh_step(key: jax.Array, state: ChainState, beta, value_and_grad: Callable,
            proposal: Proposal) -> tuple[ChainState, MHInfo]:
    """One proposal + accept/reject. The proposal terms are not multiplied by beta again."""
    propose_key, accept_key = jax.random.split(key)
    x_new, log_q_forward, move = proposal.propose(propose_key, state.x, state.grad, beta, state.summary)
    z_new, grad_new = value_and_grad(x_new)
    log_q_reverse, summary_new = proposal.log_reverse(x_new, grad_new, beta, move, state.x)
    log_alpha = beta * (z_new - state.z) + log_q_reverse - log_q_forward
    finite = is_finite_state(z_new, grad_new)
    accepted = finite & (jnp.log(jax.random.uniform(accept_key)) < log_alpha)
    # Decide once per chain. XLA treats the accept test as cheap and fuses it into each select
    # below, re-evaluating it for every entry of x and of the gradient table (optimization
    # barriers are gone by fusion time); routing it through exp, which XLA will not duplicate
    # into several consumers, makes it one stored flag. exp(0) = 1 and exp(-inf) = 0 exactly.
    accepted = jnp.exp(jnp.where(accepted, 0.0, -jnp.inf)) > 0.5
    new_state = jax.tree.map(lambda new, old: jnp.where(accepted, new, old),
                             ChainState(x_new, z_new, grad_new, summary_new), state)
    return new_state, MHInfo(accepted, ~finite)
