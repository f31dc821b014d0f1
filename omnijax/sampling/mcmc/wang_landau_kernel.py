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
Schedule: ln f halves whenever H is flat enough over the bins visited so far (`check_flatness`:
every one hit since the last reduction and min H >= a threshold times mean H; threshold 0 is
Belardinelli & Pereyra's rule, 0.8 the classic one); once a halving would
take ln f below N/t (N bins visited, t ln g updates so far) ln f follows N/t from then on
(Belardinelli & Pereyra, 2007). H is reset at every reduction (each halving and the switch to
1/t), so in the 1/t regime it holds every visit since the switch. `stopping_rule` says when a
group is done: in the 1/t regime, ln f <= a final value and that H flat.

Two rules pick the proposal's beta (`BETA_RULES`):
  * "slope" (default): beta_eff = -d ln g / dz at the walker's bin, as above.
  * "directional": the heuristic of the paper's appendix H. Each walker carries a direction
    gamma = +-1; every step draws u ~ U[0, beta_clip] and proposes at beta = gamma * u from a
    bin whose H passes the flatness test (H[b] >= flatness * mean H), else at beta =
    hold_beta (0.1 * beta_clip: small moves that keep the walker near a bin that still needs
    visits). The appendix SETS gamma to -1 at the highest known output and to +1 at the
    lowest; that map is not a bijection of gamma, and the chain then samples the wrong
    distribution (measured: ln rho +0.7 too high in the end bins of a 16-bit space, with a
    flat histogram). Here gamma reverses when a move is rejected (at an extreme every move
    in the walker's direction is), and the reverse move is scored in the opposite direction,
    beta = -gamma * u (or hold_beta) at x': lifted Metropolis–Hastings (Gustafson 1998,
    Statistics and Computing 8:357; Turitsyn, Chertkov & Vucelja 2011, Physica D 240:410),
    which keeps exp(-ln g) the exact target while walkers keep going one way between
    rejections.
Groups never interact; a run vmaps these functions over a leading group axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from omnijax.sampling.histogram import bin_index
from omnijax.sampling.mcmc.mh_kernel import ChainState, MHInfo, ValueAndGrad, accept, evaluate, init_chain, is_finite_state
from omnijax.sampling.proposals.base import Proposal, bind_params


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
    direction: jax.Array          # (W,) int32 +-1: the "directional" rule's gamma (unused by "slope")


class Window(NamedTuple):
    """What the kernel needs to know about the bins (all float32 device arrays)."""

    edges: jax.Array      # (B + 1,)
    centers: jax.Array    # (B,)
    beta_clip: jax.Array  # () largest |beta_eff| inside the window
    kappa: jax.Array      # () pull towards the window from outside (also its proposal beta)
    flatness: jax.Array   # () "directional" rule: H[b] >= flatness * mean H opens bin b's gate
    hold_beta: jax.Array  # () "directional" rule: beta in a bin whose gate is shut


BETA_RULES = ("slope", "directional")
HOLD_FRACTION = 0.1  # appendix H: beta = 0.1 in a bin that is not yet flat (here: of beta_clip)


def make_window(bin_edges, beta_clip: float, kappa: float, flatness: float = 0.8) -> Window:
    """Window over `bin_edges` (any float array) with the given beta bounds."""
    edges = jnp.asarray(bin_edges, jnp.float32)
    return Window(edges, (edges[:-1] + edges[1:]) / 2, jnp.float32(beta_clip), jnp.float32(kappa),
                  jnp.float32(flatness), jnp.float32(HOLD_FRACTION * beta_clip))


def check_beta_rule(beta_rule) -> str:
    """`beta_rule` if it is one of BETA_RULES, else ValueError naming it."""
    if not isinstance(beta_rule, str) or beta_rule not in BETA_RULES:
        raise ValueError(f"beta_rule must be one of {BETA_RULES}, got {beta_rule!r}")
    return beta_rule


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
        direction=jnp.ones(x.shape[0], jnp.int32),
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


def _walker_step(key, chain: ChainState, log_g, betas, reverse_betas, window: Window, params,
                 value_and_grad: ValueAndGrad, proposal: Proposal):
    """One MH step of one walker on pi ∝ exp(-ln g(bin)) with state-dependent beta: betas (B,)
    is this walker's beta per bin at x for the forward move, reverse_betas (B,) at x' for the
    reverse one (the same table but for a lifted walker, whose way back runs the other way)."""
    num_bins = log_g.shape[0]
    proposal = bind_params(proposal, params)
    propose_key, accept_key = jax.random.split(key)
    log_pi, beta, b = _target(chain.z, log_g, betas, window)
    # beta moves with ln g every step, so the proposal summary is never reused here.
    summary = proposal.summarize(chain.x, chain.kept, beta)
    x_new, log_q_forward, move = proposal.propose(propose_key, chain.x, chain.kept, beta, summary)
    z_new, kept_new = evaluate(x_new, params, value_and_grad, proposal)
    log_pi_new, beta_new, b_new = _target(z_new, log_g, reverse_betas, window)
    log_q_reverse, summary_new = proposal.log_reverse(x_new, kept_new, beta_new, move, chain.x)
    log_alpha = log_pi_new - log_pi + log_q_reverse - log_q_forward
    finite = jnp.isfinite(z_new) & jnp.isfinite(log_q_reverse)  # NaN for a non-finite kept_new
    leaves = (b >= 0) & (b < num_bins) & ~((b_new >= 0) & (b_new < num_bins))
    new_chain, accepted = accept(accept_key, log_alpha, finite & ~leaves,
                                 ChainState(x_new, z_new, kept_new, summary_new), chain)
    return new_chain, MHInfo(accepted, ~finite)


def open_gates(histogram: jax.Array, visits: jax.Array, flatness) -> jax.Array:
    """(B,) bool: bins whose H passes the flatness test, H[b] >= flatness * mean H over the
    bins visited so far (the "directional" rule's gate; False for unvisited bins)."""
    visited = visits > 0
    h = histogram.astype(jnp.float32)
    mean_h = jnp.sum(jnp.where(visited, h, 0.0)) / jnp.maximum(jnp.sum(visited), 1)
    return visited & (h > 0) & (h >= flatness * mean_h)


def directional_betas(key: jax.Array, direction: jax.Array, gates: jax.Array,
                      window: Window) -> tuple[jax.Array, jax.Array]:
    """(forward, reverse) (W, B) betas per walker and bin of the "directional" rule: +-gamma * u
    (u ~ U[0, beta_clip], one draw per walker) where the gate is open, hold_beta where shut."""
    u = jax.random.uniform(key, direction.shape, jnp.float32, 0.0, window.beta_clip)
    way = (direction * u)[:, None]
    return (jnp.where(gates[None, :], way, window.hold_beta),
            jnp.where(gates[None, :], -way, window.hold_beta))


def _compensated_add(total, carry, increment):
    """Kahan summation: total - carry tracks the exact sum of all increments."""
    y = increment - carry
    new_total = total + y
    return new_total, (new_total - total) - y


def step(key: jax.Array, state: WangLandauState, window: Window, params, value_and_grad: ValueAndGrad,
         proposal: Proposal, beta_rule: str = "slope") -> tuple[WangLandauState, MHInfo]:
    """Move every walker once, then add ln f to ln g and 1 to H at each walker's bin.
    beta_rule (static): "slope" or "directional", see the module docstring."""
    num_walkers = state.chains.x.shape[0]
    num_bins = state.log_g.shape[0]
    log_g = state.log_g - state.log_g_carry
    if beta_rule == "directional":
        key, beta_key = jax.random.split(key)
        gates = open_gates(state.histogram, state.visits, window.flatness)
        betas, reverse_betas = directional_betas(beta_key, state.direction, gates, window)
    else:
        betas = jnp.broadcast_to(local_betas(log_g, state.visits > 0, window), (num_walkers, num_bins))
        reverse_betas = betas
    keys = jax.random.split(key, num_walkers)
    chains, info = jax.vmap(lambda k, c, bt, rt: _walker_step(k, c, log_g, bt, rt, window, params, value_and_grad,
                                                              proposal))(keys, state.chains, betas, reverse_betas)
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
        # lifted walk: keep going on acceptance, turn round on rejection
        direction=jnp.where(info.accepted, state.direction, -state.direction) if beta_rule == "directional"
        else state.direction,
    ), info


def one_over_t_log_f(visits: jax.Array) -> jax.Array:
    """N / t: N bins visited, t ln g updates so far (one per walker-step inside the window)."""
    return jnp.sum(visits > 0).astype(jnp.float32) / jnp.maximum(jnp.sum(visits).astype(jnp.float32), 1.0)


def flatness_ratio(histogram: jax.Array, visits: jax.Array) -> jax.Array:
    """min H / mean H over the bins visited so far (0 when none is visited or one has H = 0)."""
    visited = visits > 0
    h = histogram.astype(jnp.float32)
    min_h = jnp.min(jnp.where(visited, h, jnp.inf))
    mean_h = jnp.sum(jnp.where(visited, h, 0.0)) / jnp.maximum(jnp.sum(visited), 1)
    return jnp.where(jnp.any(visited) & (mean_h > 0), jnp.minimum(min_h, mean_h) / jnp.maximum(mean_h, 1e-30), 0.0)


def is_flat(state: WangLandauState, flatness: float) -> jax.Array:
    """min H >= flatness * mean H over the bins visited so far (and every one of them hit)."""
    ratio = flatness_ratio(state.histogram, state.visits)
    return (ratio > 0) & (ratio >= flatness)


def stopping_rule(state: WangLandauState, log_f_final: float, flatness: float) -> jax.Array:
    """A group is done when it is in the 1/t regime, ln f <= log_f_final and H (every visit
    since the switch to 1/t) is flat: min H >= flatness * mean H over the visited bins."""
    return state.one_over_t & (state.log_f <= log_f_final) & is_flat(state, flatness)


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
