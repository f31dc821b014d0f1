"""Metropolis–Hastings at inverse temperature beta on pi_beta(x) ∝ exp(beta * z(x)).

The chain state caches (x, z, kept), kept the proposal's compact form of the gradient at x
(`Proposal.compress`): the gradient at a proposed x' is needed for the reverse proposal
probability, and when x' is accepted it IS the next step's gradient, so one value_and_grad
per chain per step suffices. It caches the proposal's summary at (x, kept, beta) too (see
proposals.base), which scoring the reverse move computes anyway; whoever changes a chain's
beta must refresh it with `proposal.summarize`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from omnijax.sampling.proposals.base import Proposal


class ChainState(NamedTuple):
    x: jax.Array     # (D,) int32 categories, flat
    z: jax.Array     # () float32 output at x
    kept: Any        # proposal.compress(x, gradient of z w.r.t. the one-hot input at x)
    summary: Any     # the proposal's summary at (x, kept, beta of this chain)


class MHInfo(NamedTuple):
    accepted: jax.Array   # () bool
    nonfinite: jax.Array  # () bool: NaN/inf output at the proposal, or gradient where the proposal uses it


def evaluate(x: jax.Array, value_and_grad: Callable, proposal: Proposal) -> tuple[jax.Array, Any]:
    """(z, kept) at flat input x: the model's output and the proposal's form of its gradient."""
    z, grad = value_and_grad(x)
    return z, proposal.compress(x, grad)


def init_chain(x: jax.Array, value_and_grad: Callable, proposal: Proposal, beta) -> ChainState:
    """Chain state at flat input x for sampling at `beta` (evaluates the model once)."""
    z, kept = evaluate(x, value_and_grad, proposal)
    return ChainState(x, z, kept, proposal.summarize(x, kept, beta))


def is_finite_state(z: jax.Array, kept: Any) -> jax.Array:
    """z and every entry of kept are finite: the check of a chain's starting state. (A step
    takes it from log q of the reverse move instead, see proposals.base.)"""
    # k - k is +0 for finite k and NaN for inf or NaN, so the sum is finite exactly when every
    # entry is. It is one fused read of the table; jnp.all(jnp.isfinite(k)) materialises a
    # boolean table and reduces it through a reduce_window on XLA:CPU, several times slower.
    leaves = [jnp.sum(k - k) for k in jax.tree.leaves(kept)]
    return jnp.isfinite(z) & jnp.isfinite(sum(leaves, jnp.float32(0.0)))


def mh_step(key: jax.Array, state: ChainState, beta, value_and_grad: Callable,
            proposal: Proposal) -> tuple[ChainState, MHInfo]:
    """One proposal + accept/reject. The proposal terms are not multiplied by beta again."""
    propose_key, accept_key = jax.random.split(key)
    x_new, log_q_forward, move = proposal.propose(propose_key, state.x, state.kept, beta, state.summary)
    z_new, kept_new = evaluate(x_new, value_and_grad, proposal)
    log_q_reverse, summary_new = proposal.log_reverse(x_new, kept_new, beta, move, state.x)
    log_alpha = beta * (z_new - state.z) + log_q_reverse - log_q_forward
    # log q of the reverse move is NaN or inf when kept_new (the gradient) is not finite (see
    # proposals.base): no pass over kept_new of its own.
    finite = jnp.isfinite(z_new) & jnp.isfinite(log_q_reverse)
    accepted = finite & (jnp.log(jax.random.uniform(accept_key)) < log_alpha)
    # Decide once per chain. XLA treats the accept test as cheap and fuses it into each select
    # below, re-evaluating it for every entry of x and of kept (optimization barriers are
    # gone by fusion time); routing it through exp, which XLA will not duplicate into several
    # consumers, makes it one stored flag. exp(0) = 1 and exp(-inf) = 0 exactly.
    accepted = jnp.exp(jnp.where(accepted, 0.0, -jnp.inf)) > 0.5
    new_state = jax.tree.map(lambda new, old: jnp.where(accepted, new, old),
                             ChainState(x_new, z_new, kept_new, summary_new), state)
    return new_state, MHInfo(accepted, ~finite)
