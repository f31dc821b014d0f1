"""Replica exchange (parallel tempering) over a ladder of inverse temperatures.

Walkers are laid out as (groups, replicas): each of the C independent groups holds R
walkers that share the ladder `betas` (ascending; negative, zero and positive allowed).
Swaps exchange the beta ASSIGNMENTS of two walkers, never their inputs, so every cached
(x, z, kept) stays valid; only the proposal summaries, which depend on beta, are recomputed
(`refresh_summaries`, once per swap round). Groups never interact, so they are the unit of a bootstrap.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.mcmc.mh import ChainState, init_chain, is_finite_state, mh_step
from omnijax.sampling.proposals.base import Proposal

# Trip labels: which end of the ladder a walker touched last.
_NO_END, _FROM_BOTTOM, _FROM_TOP = 0, 1, 2


class TemperingState(NamedTuple):
    chains: ChainState          # leaves shaped (C, R, ...)
    slot: jax.Array             # (C, R) int32: ladder position (index into betas) of each walker
    trip_label: jax.Array       # (C, R) int32: last ladder end touched
    round_trips: jax.Array      # (C, R) int32: bottom -> top -> bottom trips completed
    swap_attempts: jax.Array    # (R-1,) int32 per neighbouring pair of ladder positions
    swap_accepts: jax.Array     # (R-1,) int32
    mh_attempts: jax.Array      # (R,) int32 per ladder position
    mh_accepts: jax.Array       # (R,) int32
    swap_parity: jax.Array      # () int32: 0 -> pairs (0,1),(2,3)...; 1 -> (1,2),(3,4)...
    step: jax.Array             # () int32 MH steps done
    first_nonfinite_step: jax.Array  # (C, R) int32: first step whose proposal was NaN/inf, -1 if none


def linear_ladder(beta_min: float, beta_max: float, num_replicas: int) -> np.ndarray:
    """`num_replicas` inverse temperatures evenly spaced on [beta_min, beta_max]."""
    if num_replicas < 2:
        raise ValueError(f"num_replicas must be >= 2, got {num_replicas}")
    if not beta_min < beta_max:
        raise ValueError(f"beta_min must be < beta_max, got {beta_min} and {beta_max}")
    return np.linspace(beta_min, beta_max, num_replicas)


def validate_betas(betas, name: str = "betas") -> np.ndarray:
    """Return a strictly increasing, finite ladder of at least 2 betas, or raise ValueError."""
    ladder = np.asarray(betas, dtype=np.float64)
    if ladder.ndim != 1 or ladder.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 inverse temperatures, got shape {ladder.shape}")
    if not np.all(np.isfinite(ladder)):
        raise ValueError(f"{name} must be finite, got {ladder}")
    if np.any(np.diff(ladder) <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {ladder}")
    return ladder


def init(x: jax.Array, value_and_grad: Callable, proposal: Proposal, betas: jax.Array) -> TemperingState:
    """Tempering state from flat inputs x of shape (C, R, D); walker r starts at ladder slot r."""
    num_groups, num_replicas = x.shape[:2]
    start = lambda xi, beta: init_chain(xi, value_and_grad, proposal, beta)
    chains = jax.vmap(jax.vmap(start), (0, None))(x, jnp.asarray(betas, jnp.float32))
    slot = jnp.broadcast_to(jnp.arange(num_replicas, dtype=jnp.int32), (num_groups, num_replicas))
    zeros_cr = jnp.zeros((num_groups, num_replicas), jnp.int32)
    finite = jax.vmap(jax.vmap(is_finite_state))(chains.z, chains.kept)
    return TemperingState(
        chains=chains,
        slot=slot,
        trip_label=zeros_cr,
        round_trips=zeros_cr,
        swap_attempts=jnp.zeros(num_replicas - 1, jnp.int32),
        swap_accepts=jnp.zeros(num_replicas - 1, jnp.int32),
        mh_attempts=jnp.zeros(num_replicas, jnp.int32),
        mh_accepts=jnp.zeros(num_replicas, jnp.int32),
        swap_parity=jnp.int32(0),
        step=jnp.int32(0),
        first_nonfinite_step=jnp.where(finite, -1, 0).astype(jnp.int32),
    )


def mh_sweep(key: jax.Array, state: TemperingState, betas: jax.Array, value_and_grad: Callable,
             proposal: Proposal) -> TemperingState:
    """One MH step for every walker at its current beta."""
    num_groups, num_replicas = state.slot.shape
    keys = jax.random.split(key, num_groups * num_replicas).reshape(num_groups, num_replicas)
    walker_betas = betas[state.slot]
    step_one = lambda k, s, b: mh_step(k, s, b, value_and_grad, proposal)
    chains, info = jax.vmap(jax.vmap(step_one))(keys, state.chains, walker_betas)
    accepted_per_slot = jnp.zeros(num_replicas, jnp.int32).at[state.slot].add(info.accepted.astype(jnp.int32))
    first_bad = jnp.where((state.first_nonfinite_step < 0) & info.nonfinite,
                          state.step, state.first_nonfinite_step)
    return state._replace(
        chains=chains,
        mh_attempts=state.mh_attempts + num_groups,
        mh_accepts=state.mh_accepts + accepted_per_slot,
        step=state.step + 1,
        first_nonfinite_step=first_bad,
    )


def refresh_summaries(state: TemperingState, betas: jax.Array, proposal: Proposal) -> TemperingState:
    """Recompute every walker's proposal summary at its current beta (after swaps moved betas)."""
    summarize = jax.vmap(jax.vmap(proposal.summarize))
    chains = state.chains
    return state._replace(chains=chains._replace(summary=summarize(chains.x, chains.kept, betas[state.slot])))


def _swap_group(key, slot, z, betas, parity):
    """Even/odd neighbour swaps of beta assignments within one group."""
    num_replicas = slot.shape[0]
    walker_at = jnp.zeros(num_replicas, jnp.int32).at[slot].set(jnp.arange(num_replicas, dtype=jnp.int32))
    lower = jnp.arange(num_replicas - 1)
    active = (lower % 2) == parity
    z_lower, z_upper = z[walker_at[:-1]], z[walker_at[1:]]
    log_alpha = (betas[:-1] - betas[1:]) * (z_upper - z_lower)
    u = jax.random.uniform(key, (num_replicas - 1,))
    accept = active & (jnp.log(u) < log_alpha)
    # New walker at each slot: swapped pairs exchange their walkers.
    from_lower = jnp.concatenate([jnp.zeros(1, bool), accept])    # slot s took the walker of s-1
    from_upper = jnp.concatenate([accept, jnp.zeros(1, bool)])    # slot s took the walker of s+1
    shifted_down = jnp.concatenate([walker_at[:1], walker_at[:-1]])
    shifted_up = jnp.concatenate([walker_at[1:], walker_at[-1:]])
    new_walker_at = jnp.where(from_lower, shifted_down, jnp.where(from_upper, shifted_up, walker_at))
    new_slot = jnp.zeros(num_replicas, jnp.int32).at[new_walker_at].set(jnp.arange(num_replicas, dtype=jnp.int32))
    return new_slot, active, accept


def swap(key: jax.Array, state: TemperingState, betas: jax.Array) -> TemperingState:
    """Attempt one round of neighbour swaps (alternating even/odd pairs) in every group."""
    num_groups, num_replicas = state.slot.shape
    keys = jax.random.split(key, num_groups)
    slot, active, accept = jax.vmap(_swap_group, (0, 0, 0, None, None))(
        keys, state.slot, state.chains.z, betas, state.swap_parity)
    at_bottom, at_top = slot == 0, slot == num_replicas - 1
    finished_trip = at_bottom & (state.trip_label == _FROM_TOP)
    label = jnp.where(at_bottom, _FROM_BOTTOM, state.trip_label)
    label = jnp.where(at_top & (state.trip_label == _FROM_BOTTOM), _FROM_TOP, label)
    return state._replace(
        slot=slot,
        trip_label=label.astype(jnp.int32),
        round_trips=state.round_trips + finished_trip.astype(jnp.int32),
        swap_attempts=state.swap_attempts + jnp.sum(active, axis=0, dtype=jnp.int32),
        swap_accepts=state.swap_accepts + jnp.sum(accept, axis=0, dtype=jnp.int32),
        swap_parity=1 - state.swap_parity,
    )
