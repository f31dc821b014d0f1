"""Metropolis–Hastings on pi_beta(x) ∝ exp(beta * z(x)) with a gradient-informed proposal.

A chain caches (x, z, kept, summary): kept is the proposal's compact form of the gradient at
x (`Proposal.compress`), summary what its forward draw needs at (x, kept, beta). The
gradient at a proposed x' is needed for the reverse proposal probability, and when x' is
accepted it IS the next step's gradient, so one value_and_grad per chain per step suffices.

Two levels:
  * `ChainState` and `walker_step`: one walker at a beta given as an array, for kernels that
    own the betas of their walkers (replica exchange, Wang–Landau) and refresh summaries
    themselves whenever a walker's beta changes;
  * `MHState`, `init` and `step`: the public single-beta kernel. The state records the beta
    its summary was built for as static data, so stepping it at another beta is refused when
    the step is traced: a cached summary can never be used at the wrong beta.

Every kernel accepts through `accept`, so MH and Wang–Landau make the same decision.
The model enters as `value_and_grad(params, x)` with `params` a pytree argument
(`omnijax.sampling.targets`): weights are arguments of the compiled programs. A proposal that
reads parameters (token proposals read the embedding matrix) is bound to the same `params`
here (`proposals.base.bind_params`); for every other proposal binding is the identity.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from omnijax.sampling.proposals.base import Proposal, bind_params

ValueAndGrad = Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]


class ChainState(NamedTuple):
    """One walker: input, output and what its proposal caches (leaves may carry batch axes)."""

    x: jax.Array     # (D,) int32 categories, flat
    z: jax.Array     # () float32 output at x
    kept: Any        # proposal.compress(x, gradient of z w.r.t. the one-hot input at x)
    summary: Any     # the proposal's summary at (x, kept, the walker's current beta)


class MHInfo(NamedTuple):
    accepted: jax.Array   # () bool
    nonfinite: jax.Array  # () bool: NaN/inf output at the proposal, or gradient where the proposal uses it


def evaluate(x: jax.Array, params, value_and_grad: ValueAndGrad, proposal: Proposal) -> tuple[jax.Array, Any]:
    """(z, kept) at flat input x: the model's output and the proposal's form of its gradient."""
    z, grad = value_and_grad(params, x)
    return z, bind_params(proposal, params).compress(x, grad)


def init_chain(x: jax.Array, beta, params, value_and_grad: ValueAndGrad, proposal: Proposal) -> ChainState:
    """Walker at flat input x for sampling at `beta` (evaluates the model once)."""
    proposal = bind_params(proposal, params)
    z, kept = evaluate(x, params, value_and_grad, proposal)
    return ChainState(x, z, kept, proposal.summarize(x, kept, beta))


def is_finite_state(z: jax.Array, kept: Any) -> jax.Array:
    """z and every entry of kept are finite: the check of a chain's starting state. (A step
    takes it from log q of the reverse move instead, see proposals.base.)"""
    # k - k is +0 for finite k and NaN for inf or NaN, so the sum is finite exactly when every
    # entry is. It is one fused read of the table; jnp.all(jnp.isfinite(k)) materialises a
    # boolean table and reduces it through a reduce_window on XLA:CPU, several times slower.
    leaves = [jnp.sum(k - k) for k in jax.tree.leaves(kept)]
    return jnp.isfinite(z) & jnp.isfinite(sum(leaves, jnp.float32(0.0)))


def accept(key: jax.Array, log_alpha: jax.Array, allowed: jax.Array, new: Any, old: Any) -> tuple[Any, jax.Array]:
    """The Metropolis–Hastings decision: `new` with probability min(1, exp(log_alpha)) where
    `allowed` (finite, inside any hard constraint), else `old`. Returns (chosen, accepted)."""
    accepted = allowed & (jnp.log(jax.random.uniform(key)) < log_alpha)
    # Decide once per chain. XLA treats the accept test as cheap and fuses it into each select
    # below, re-evaluating it for every entry of x and of kept (optimization barriers are
    # gone by fusion time); routing it through exp, which XLA will not duplicate into several
    # consumers, makes it one stored flag. exp(0) = 1 and exp(-inf) = 0 exactly.
    accepted = jnp.exp(jnp.where(accepted, 0.0, -jnp.inf)) > 0.5
    return jax.tree.map(lambda n, o: jnp.where(accepted, n, o), new, old), accepted


def walker_step(key: jax.Array, chain: ChainState, beta, params, value_and_grad: ValueAndGrad,
                proposal: Proposal) -> tuple[ChainState, MHInfo]:
    """One proposal + accept/reject of a walker whose cached summary is at `beta`."""
    proposal = bind_params(proposal, params)
    propose_key, accept_key = jax.random.split(key)
    x_new, log_q_forward, move = proposal.propose(propose_key, chain.x, chain.kept, beta, chain.summary)
    z_new, kept_new = evaluate(x_new, params, value_and_grad, proposal)
    log_q_reverse, summary_new = proposal.log_reverse(x_new, kept_new, beta, move, chain.x)
    log_alpha = beta * (z_new - chain.z) + log_q_reverse - log_q_forward
    # log q of the reverse move is NaN or inf when kept_new (the gradient) is not finite (see
    # proposals.base): no pass over kept_new of its own.
    finite = jnp.isfinite(z_new) & jnp.isfinite(log_q_reverse)
    new_chain, accepted = accept(accept_key, log_alpha, finite, ChainState(x_new, z_new, kept_new, summary_new),
                                 chain)
    return new_chain, MHInfo(accepted, ~finite)


@dataclasses.dataclass(frozen=True)
class MHState:
    """State of one chain of the single-beta kernel: a walker plus the beta (static) that its
    cached summary belongs to. vmap over chains gives leaves a leading chain axis."""

    x: jax.Array
    z: jax.Array
    kept: Any
    summary: Any
    beta: float  # static: part of the pytree structure, not a traced leaf

    @property
    def chain(self) -> ChainState:
        return ChainState(self.x, self.z, self.kept, self.summary)


jax.tree_util.register_dataclass(MHState, data_fields=["x", "z", "kept", "summary"], meta_fields=["beta"])


def check_beta(beta, name: str = "beta") -> float:
    """A finite Python float (the single-beta kernel compiles for it); ValueError otherwise."""
    if isinstance(beta, jax.core.Tracer):
        raise ValueError(f"{name} must be a concrete number (it is static in the single-beta kernel); "
                         f"for betas that change inside a traced loop use replica exchange")
    try:
        value = float(beta)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a real number, got {beta!r}") from err
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {beta!r}")
    return value


def init(x: jax.Array, params, value_and_grad: ValueAndGrad, proposal: Proposal, beta: float) -> MHState:
    """State of one chain at flat input x (D,), its summary built for `beta`."""
    beta = check_beta(beta)
    chain = init_chain(x, jnp.float32(beta), params, value_and_grad, proposal)
    return MHState(*chain, beta=beta)


def step(key: jax.Array, state: MHState, params, value_and_grad: ValueAndGrad, proposal: Proposal,
         beta: float) -> tuple[MHState, MHInfo]:
    """One MH step at `beta`. A state whose summary was built for another beta is refused."""
    beta = check_beta(beta)
    if not isinstance(state, MHState):
        raise ValueError(f"state must be an MHState from this kernel's init, got {type(state).__name__}")
    if state.beta != beta:
        raise ValueError(
            f"state was built for beta={state.beta} but this kernel samples at beta={beta}: its cached "
            f"proposal summary belongs to beta={state.beta}. Start it again with this kernel's init "
            f"(init(state.x)), or use replica exchange to sample several betas")
    chain, info = walker_step(key, state.chain, jnp.float32(beta), params, value_and_grad, proposal)
    return MHState(*chain, beta=beta), info
