"""Gradient Wang–Landau (GWL) for ONE group of walkers that share ln g.

The walkers target pi(x) ∝ exp(-ln g(bin(z(x)))) inside the window [edges[0], edges[-1]];
after every step each walker inside adds ln f to ln g at its bin and 1 to the flatness
histogram H. Outside the window (only before a walker first enters it) the target is
exp(-ln g(nearest edge bin) - kappa * distance), which pulls the walker in; a walker inside
never leaves (moves out of the window are rejected), so the window dynamics are exact MH.

Gradient proposals need an inverse temperature: the local slope of the log target,
beta_eff = -d ln g / dz (a finite difference over the neighbouring visited bins, clipped to
[-beta_clip, beta_clip]), or +-kappa outside the window. It is evaluated at x for the
forward proposal and at x' for the reverse one (paper appendix H), so

  log alpha = ln g(b) - ln g(b') + log q(x | x'; beta(x')) - log q(x' | x; beta(x)).

The state caches (x, z, kept) per walker (kept: the proposal's form of the gradient, see
proposals.base): one value_and_grad per walker per step. ln g is float32 with a compensated
(Kahan) sum, so late increments ln f ~ 1e-5 are not lost to rounding against ln g ~ 1e3.
Schedule: ln f halves whenever H is flat over the bins visited so far; once a halving would
take ln f below N/t (N bins visited, t ln g updates so far) ln f follows N/t from then on
(Belardinelli & Pereyra, 2007).
Groups never interact; a run vmaps these functions over a leading group axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from omnijax.sampling.histogram import bin_index
from omnijax.sampling.mcmc.mh_kernel import ChainState, MHInfo, ValueAndGrad, accept, evaluate, init_chain, is_finite_state
from omnijax.sampling.proposals.base import Proposal


class WangLandauState(NamedTuple):
    chains: ChainState            # leaves (W, ...): the group's walkers
    log_g: jax.Array              # (B,) float32 running ln g, up to a constant
    log_g_carry: jax.Array        # (B,) float32 Kahan compensation: true ln g = log_g - log_g_carry
    histogram: jax.Array          # (B,) int32 visits since the last flat histogram (H)
    visits: jax.Array             # (B,) int32 visits over the whole run
    log_f: jax.Array              # () float32 current modification factor
    one_over_t: jax.Array         # () bool: ln f follows N/t
    halvings: jax.Array           # () int32 times ln f was halved
    step: jax.Array               # () int32 steps done
    accepts: jax.Array            # () int32 accepted moves, all walkers
    first_nonfinite_step: jax.Array  # (W,) int32 first step whose proposal was NaN/inf, -1 if none


class Window(NamedTuple):
    """What the kernel needs to know about the bins (all float32 device arrays)."""

    edges: jax.Array      # (B + 1,)
    centers: jax.Array    # (B,)
    beta_clip: jax.Array  # () largest |beta_eff| inside the window
    kappa: jax.Array      # () pull towards the window from outside (also its proposal beta)


def make_window(bin_edges, beta_clip: float, kappa: float) -> Window:
    """Window over `bin_edges` (any float array) with the given beta bounds."""
    edges = jnp.asarray(bin_edges, jnp.float32)
    return Window(edges, (edges[:-1] + edges[1:]) / 2, jnp.float32(beta_clip), jnp.float32(kappa))


def init(x: jax.Array, params, value_and_grad: ValueAndGrad, proposal: Proposal, num_bins: int,
         log_f_initial: float) -> WangLandauState:
    """State of one group from flat inputs x (W, D); ln g starts flat at 0. (The chains'
    proposal summaries are placeholders at beta 0: each step recomputes them at beta_eff.)"""
    chains = jax.vmap(lambda xi: init_chain(xi, jnp.float32(0.0), params, value_and_grad, proposal))(x)
    finite = jax.vmap(is_finite_state)(chains.z, chains.kept)
    zeros = jnp.zeros(num_bins, jnp.int32)
    return WangLandauState(
        chains=chains,
        log_g=jnp.zeros(num_bins, jnp.float32),
        log_g_carry=jnp.zeros(num_bins, jnp.float32),
        histogram=zeros,
        visits=zeros,
        log_f=jnp.float32(log_f_initial),
        one_over_t=jnp.bool_(False),
        halvings=jnp.int32(0),
        step=jnp.int32(0),
        accepts=jnp.int32(0),
        first_nonfinite_step=jnp.where(finite, -1, 0).astype(jnp.int32),
    )


def local_betas(log_g: jax.Array, visited: jax.Array, window: Window) -> jax.Array:
    """beta_eff per bin (B,): -(ln g[up] - ln g[down]) / (centre[up] - centre[down]), with
    down/up the nearest visited bins strictly below/above (the bin itself where there is
    none); 0 where neither exists. Unvisited bins hold no information, so they are skipped."""
    num_bins = log_g.shape[0]
    idx = jnp.arange(num_bins)
    below = jax.lax.cummax(jnp.where(visited, idx, -1))           # nearest visited <= b
    above = jax.lax.cummin(jnp.where(visited, idx, num_bins), reverse=True)  # nearest visited >= b
    down = jnp.concatenate([jnp.array([-1]), below[:-1]])          # strictly below b
    up = jnp.concatenate([above[1:], jnp.array([num_bins])])       # strictly above b
    down = jnp.where(down < 0, idx, down)
    up = jnp.where(up >= num_bins, idx, up)
    width = window.centers[up] - window.centers[down]
    slope = jnp.where(up > down, (log_g[up] - log_g[down]) / jnp.where(up > down, width, 1.0), 0.0)
    return jnp.clip(-slope, -window.beta_clip, window.beta_clip)


def _target(z, log_g, betas, window: Window):
    """(log pi, beta_eff, bin or -1/B outside) of outputs z under the current ln g."""
    num_bins = log_g.shape[0]
    b = bin_index(z, window.edges)
    inside = (b >= 0) & (b < num_bins)
    low, high = window.edges[0], window.edges[-1]
    distance = jnp.where(z < low, low - z, z - high)
    edge_bin = jnp.where(z < low, 0, num_bins - 1)
    log_pi = jnp.where(inside, -log_g[jnp.clip(b, 0, num_bins - 1)],
                       -log_g[edge_bin] - window.kappa * distance)
    beta = jnp.where(inside, betas[jnp.clip(b, 0, num_bins - 1)],
                     jnp.where(z < low, window.kappa, -window.kappa))
    return log_pi, beta, b


def _walker_step(key, chain: ChainState, log_g, betas, window: Window, params,
                 value_and_grad: ValueAndGrad, proposal: Proposal):
    """One MH step of one walker on pi ∝ exp(-ln g(bin)) with state-dependent beta_eff."""
    num_bins = log_g.shape[0]
    propose_key, accept_key = jax.random.split(key)
    log_pi, beta, b = _target(chain.z, log_g, betas, window)
    # beta_eff moves with ln g every step, so the proposal summary is never reused here.
    summary = proposal.summarize(chain.x, chain.kept, beta)
    x_new, log_q_forward, move = proposal.propose(propose_key, chain.x, chain.kept, beta, summary)
    z_new, kept_new = evaluate(x_new, params, value_and_grad, proposal)
    log_pi_new, beta_new, b_new = _target(z_new, log_g, betas, window)
    log_q_reverse, summary_new = proposal.log_reverse(x_new, kept_new, beta_new, move, chain.x)
    log_alpha = log_pi_new - log_pi + log_q_reverse - log_q_forward
    finite = jnp.isfinite(z_new) & jnp.isfinite(log_q_reverse)  # NaN for a non-finite kept_new
    leaves = (b >= 0) & (b < num_bins) & ~((b_new >= 0) & (b_new < num_bins))
    new_chain, accepted = accept(accept_key, log_alpha, finite & ~leaves,
                                 ChainState(x_new, z_new, kept_new, summary_new), chain)
    return new_chain, MHInfo(accepted, ~finite)


def _compensated_add(total, carry, increment):
    """Kahan summation: total - carry tracks the exact sum of all increments."""
    y = increment - carry
    new_total = total + y
    return new_total, (new_total - total) - y


def step(key: jax.Array, state: WangLandauState, window: Window, params, value_and_grad: ValueAndGrad,
         proposal: Proposal) -> tuple[WangLandauState, MHInfo]:
    """Move every walker once, then add ln f to ln g and 1 to H at each walker's bin."""
    num_walkers = state.chains.x.shape[0]
    num_bins = state.log_g.shape[0]
    log_g = state.log_g - state.log_g_carry
    betas = local_betas(log_g, state.visits > 0, window)
    keys = jax.random.split(key, num_walkers)
    chains, info = jax.vmap(lambda k, c: _walker_step(k, c, log_g, betas, window, params, value_and_grad,
                                                      proposal))(keys, state.chains)
    b = bin_index(chains.z, window.edges)
    inside = (b >= 0) & (b < num_bins)
    counts = jnp.zeros(num_bins, jnp.int32).at[jnp.clip(b, 0, num_bins - 1)].add(inside.astype(jnp.int32))
    total, carry = _compensated_add(state.log_g, state.log_g_carry, state.log_f * counts)
    visits = state.visits + counts
    first_bad = jnp.where((state.first_nonfinite_step < 0) & info.nonfinite,
                          state.step, state.first_nonfinite_step)
    return state._replace(
        chains=chains,
        log_g=total,
        log_g_carry=carry,
        histogram=state.histogram + counts,
        visits=visits,
        log_f=jnp.where(state.one_over_t, one_over_t_log_f(visits), state.log_f),
        step=state.step + 1,
        accepts=state.accepts + jnp.sum(info.accepted, dtype=jnp.int32),
        first_nonfinite_step=first_bad,
    ), info


def one_over_t_log_f(visits: jax.Array) -> jax.Array:
    """N / t: N bins visited, t ln g updates so far (one per walker-step inside the window)."""
    return jnp.sum(visits > 0).astype(jnp.float32) / jnp.maximum(jnp.sum(visits).astype(jnp.float32), 1.0)


def is_flat(state: WangLandauState, flatness: float) -> jax.Array:
    """min H >= flatness * mean H over the bins visited so far (and every one of them hit)."""
    visited = state.visits > 0
    h = state.histogram.astype(jnp.float32)
    num_visited = jnp.maximum(jnp.sum(visited), 1)
    min_h = jnp.min(jnp.where(visited, h, jnp.inf))
    mean_h = jnp.sum(jnp.where(visited, h, 0.0)) / num_visited
    return jnp.any(visited) & (min_h > 0) & (min_h >= flatness * mean_h)


def check_flatness(state: WangLandauState, flatness: float) -> WangLandauState:
    """When H is flat: halve ln f and reset H, or switch to ln f = N/t once half is below it."""
    flat = is_flat(state, flatness) & ~state.one_over_t
    halved = state.log_f / 2
    floor = one_over_t_log_f(state.visits)
    switch = flat & (halved < floor)
    return state._replace(
        histogram=jnp.where(flat, 0, state.histogram),
        log_f=jnp.where(switch, floor, jnp.where(flat, halved, state.log_f)),
        one_over_t=state.one_over_t | switch,
        halvings=state.halvings + (flat & ~switch).astype(jnp.int32),
    )
