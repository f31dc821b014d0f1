"""Replica exchange (parallel tempering) of ONE group of walkers over a ladder of betas.

The group's R walkers share the ladder `betas` (ascending; negative, zero and positive
allowed), which the state carries. One `step` is a whole exchange round: `sweeps` MH steps
of every walker at its current beta, one round of neighbour swaps (alternating even/odd
pairs), and the refresh of every proposal summary at the walker's new beta. Swaps exchange
the beta ASSIGNMENTS of two walkers, never their inputs, so the cached (x, z, kept) stay
valid; only the summaries depend on beta, and the step recomputes them. No sequence of
public calls can therefore step a walker with a summary of another beta.

Independent groups are a vmap over this kernel (leading group axis); they never interact,
so they are the unit of a bootstrap.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.mcmc.mh_kernel import ChainState, ValueAndGrad, init_chain, is_finite_state, walker_step
from omnijax.sampling.proposals.base import Proposal, bind_params

# Trip labels: which end of the ladder a walker touched last.
_NO_END, _FROM_BOTTOM, _FROM_TOP = 0, 1, 2


class ReplicaExchangeState(NamedTuple):
    """One group (leaves gain a leading group axis under vmap)."""

    chains: ChainState          # leaves (R, ...): the walkers
    betas: jax.Array            # (R,) float32 the ladder, ascending
    slot: jax.Array             # (R,) int32 ladder position of each walker
    trip_label: jax.Array       # (R,) int32 last ladder end touched
    round_trips: jax.Array      # (R,) int32 bottom -> top -> bottom trips completed
    swap_attempts: jax.Array    # (R-1,) int32 per neighbouring pair of ladder positions
    swap_accepts: jax.Array     # (R-1,) int32
    mh_attempts: jax.Array      # (R,) int32 per ladder position
    mh_accepts: jax.Array       # (R,) int32
    swap_parity: jax.Array      # () int32: 0 -> pairs (0,1),(2,3)...; 1 -> (1,2),(3,4)...
    step: jax.Array             # () int32 MH sweeps done
    first_nonfinite_step: jax.Array  # (R,) int32 first sweep whose proposal was NaN/inf, -1 if none


class ReplicaExchangeInfo(NamedTuple):
    swap_accepted: jax.Array   # (R-1,) bool per pair of ladder positions, this round
    mh_accepted: jax.Array     # (R,) int32 accepted MH moves per walker, this round


def linear_ladder(beta_min: float, beta_max: float, num_replicas: int) -> np.ndarray:
    """`num_replicas` inverse temperatures evenly spaced on [beta_min, beta_max]."""
    if num_replicas < 2:
        raise ValueError(f"num_replicas must be >= 2, got {num_replicas}")
    if not beta_min < beta_max:
        raise ValueError(f"beta_min must be < beta_max, got {beta_min} and {beta_max}")
    return np.linspace(beta_min, beta_max, num_replicas)


def validate_betas(betas, name: str = "betas") -> np.ndarray:
    """Return a strictly increasing, finite ladder of at least 2 betas, or raise ValueError."""
    if isinstance(betas, jax.core.Tracer):
        return betas  # checked where it was made concrete
    ladder = np.asarray(betas, dtype=np.float64)
    if ladder.ndim != 1 or ladder.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 inverse temperatures, got shape {ladder.shape}")
    if not np.all(np.isfinite(ladder)):
        raise ValueError(f"{name} must be finite, got {ladder}")
    if np.any(np.diff(ladder) <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {ladder}")
    return ladder


def init(x: jax.Array, betas, params, value_and_grad: ValueAndGrad, proposal: Proposal) -> ReplicaExchangeState:
    """State of one group from flat inputs x (R, D); walker r starts at ladder slot r."""
    betas = jnp.asarray(validate_betas(betas), jnp.float32)
    num_replicas = x.shape[0]
    if betas.shape != (num_replicas,):
        raise ValueError(f"x must hold one input per rung: {betas.shape[0]} betas but x has shape {x.shape}")
    chains = jax.vmap(lambda xi, beta: init_chain(xi, beta, params, value_and_grad, proposal))(x, betas)
    finite = jax.vmap(is_finite_state)(chains.z, chains.kept)
    zeros = jnp.zeros(num_replicas, jnp.int32)
    return ReplicaExchangeState(
        chains=chains,
        betas=betas,
        slot=jnp.arange(num_replicas, dtype=jnp.int32),
        trip_label=zeros,
        round_trips=zeros,
        swap_attempts=jnp.zeros(num_replicas - 1, jnp.int32),
        swap_accepts=jnp.zeros(num_replicas - 1, jnp.int32),
        mh_attempts=zeros,
        mh_accepts=zeros,
        swap_parity=jnp.int32(0),
        step=jnp.int32(0),
        first_nonfinite_step=jnp.where(finite, -1, 0).astype(jnp.int32),
    )


def _sweep(key: jax.Array, state: ReplicaExchangeState, params, value_and_grad: ValueAndGrad,
           proposal: Proposal) -> tuple[ReplicaExchangeState, jax.Array]:
    """One MH step for every walker at its current beta."""
    num_replicas = state.slot.shape[0]
    keys = jax.random.split(key, num_replicas)
    walker_betas = state.betas[state.slot]
    chains, info = jax.vmap(lambda k, c, b: walker_step(k, c, b, params, value_and_grad, proposal))(
        keys, state.chains, walker_betas)
    accepted = info.accepted.astype(jnp.int32)
    first_bad = jnp.where((state.first_nonfinite_step < 0) & info.nonfinite,
                          state.step, state.first_nonfinite_step)
    return state._replace(
        chains=chains,
        mh_attempts=state.mh_attempts + 1,
        mh_accepts=state.mh_accepts + jnp.zeros(num_replicas, jnp.int32).at[state.slot].add(accepted),
        step=state.step + 1,
        first_nonfinite_step=first_bad,
    ), accepted


def _swap(key: jax.Array, state: ReplicaExchangeState) -> tuple[ReplicaExchangeState, jax.Array]:
    """One round of neighbour swaps of beta assignments (even or odd pairs, alternating)."""
    slot, betas, z = state.slot, state.betas, state.chains.z
    num_replicas = slot.shape[0]
    walker_at = jnp.zeros(num_replicas, jnp.int32).at[slot].set(jnp.arange(num_replicas, dtype=jnp.int32))
    active = (jnp.arange(num_replicas - 1) % 2) == state.swap_parity
    z_lower, z_upper = z[walker_at[:-1]], z[walker_at[1:]]
    log_alpha = (betas[:-1] - betas[1:]) * (z_upper - z_lower)
    accept = active & (jnp.log(jax.random.uniform(key, (num_replicas - 1,))) < log_alpha)
    # New walker at each slot: swapped pairs exchange their walkers.
    from_lower = jnp.concatenate([jnp.zeros(1, bool), accept])    # slot s took the walker of s-1
    from_upper = jnp.concatenate([accept, jnp.zeros(1, bool)])    # slot s took the walker of s+1
    shifted_down = jnp.concatenate([walker_at[:1], walker_at[:-1]])
    shifted_up = jnp.concatenate([walker_at[1:], walker_at[-1:]])
    new_walker_at = jnp.where(from_lower, shifted_down, jnp.where(from_upper, shifted_up, walker_at))
    slot = jnp.zeros(num_replicas, jnp.int32).at[new_walker_at].set(jnp.arange(num_replicas, dtype=jnp.int32))
    at_bottom, at_top = slot == 0, slot == num_replicas - 1
    finished_trip = at_bottom & (state.trip_label == _FROM_TOP)
    label = jnp.where(at_bottom, _FROM_BOTTOM, state.trip_label)
    label = jnp.where(at_top & (state.trip_label == _FROM_BOTTOM), _FROM_TOP, label)
    return state._replace(
        slot=slot,
        trip_label=label.astype(jnp.int32),
        round_trips=state.round_trips + finished_trip.astype(jnp.int32),
        swap_attempts=state.swap_attempts + active.astype(jnp.int32),
        swap_accepts=state.swap_accepts + accept.astype(jnp.int32),
        swap_parity=1 - state.swap_parity,
    ), accept


def refresh_summaries(state: ReplicaExchangeState, proposal: Proposal) -> ReplicaExchangeState:
    """Every walker's proposal summary recomputed at its current beta."""
    chains = state.chains
    summary = jax.vmap(proposal.summarize)(chains.x, chains.kept, state.betas[state.slot])
    return state._replace(chains=chains._replace(summary=summary))


def step(key: jax.Array, state: ReplicaExchangeState, params, value_and_grad: ValueAndGrad,
         proposal: Proposal, sweeps: int = 1) -> tuple[ReplicaExchangeState, ReplicaExchangeInfo]:
    """`sweeps` MH sweeps, one swap round, and the summaries refreshed at the new betas."""
    proposal = bind_params(proposal, params)  # refresh_summaries takes no params (see mh_kernel)
    keys = jax.random.split(key, sweeps + 1)

    def one_sweep(i, carry):
        s, accepted = carry
        s, a = _sweep(keys[i], s, params, value_and_grad, proposal)
        return s, accepted + a

    state, accepted = jax.lax.fori_loop(0, sweeps, one_sweep,
                                        (state, jnp.zeros(state.slot.shape, jnp.int32)))
    state, swapped = _swap(keys[-1], state)
    return refresh_summaries(state, proposal), ReplicaExchangeInfo(swapped, accepted)
