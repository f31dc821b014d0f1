"""MCMC kernels over a model's discrete inputs, as other JAX code imports them (`omnijax.mcmc`).

Each constructor binds the model, the space and the proposal and returns a
`SamplingAlgorithm(init, step, params)` of pure functions:

    algo = oj.mcmc.gwg(model, space, beta=1.0)
    state = jax.vmap(algo.init)(x0)                       # x0: (chains, *space.shape) ints
    state, info = jax.jit(jax.vmap(algo.step))(keys, state)

`model` is a Flax NNX module, apply(params, onehot) with `params=`, or a plain function of one
one-hot input (see `omnijax.sampling.targets`). `step(key, state, params=None)` and
`init(x, params=None)` use the bound parameters when none are passed; pass them, e.g.
`jax.jit(jax.vmap(algo.step, in_axes=(0, 0, None)))(keys, state, algo.params)`, to make the
weights an argument of the compiled program rather than a constant folded into it (what
every omnijax driver does; it matters for large models).

The states cache what the next step needs and the beta it was built for:
  * `gwg`, `dlp`, `uniform`, `mh`: one chain at one beta; the beta is static in the state,
    and stepping a state built for another beta raises. `token_gwg`, `token_dlp`: the same for
    token targets (`omnijax.sampling.token_target`), sampling in token space with the gradient
    with respect to the input embeddings (`omnijax.sampling.proposals.tokens`).
  * `replica_exchange`: one group of walkers on a ladder; one step sweeps, swaps and
    refreshes every beta-dependent cache, so no composition samples the wrong distribution.
  * `wang_landau`: one group of walkers sharing ln g, with flatness checks built in.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from omnijax.sampling import proposals as proposals_lib
from omnijax.sampling.histogram import validate_bin_edges
from omnijax.sampling.mcmc import mh_kernel
from omnijax.sampling.mcmc import replica_exchange_kernel as rx_kernel
from omnijax.sampling.mcmc import wang_landau_kernel as wl_kernel
from omnijax.sampling.mcmc.mh_kernel import MHInfo, MHState
from omnijax.sampling.mcmc.replica_exchange_kernel import (ReplicaExchangeInfo, ReplicaExchangeState, linear_ladder,
                                                    validate_betas)
from omnijax.sampling.mcmc.wang_landau_kernel import WangLandauState
from omnijax.sampling.proposals.base import Proposal
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import check_output_fn
from omnijax.sampling.token_target import check_token_target, make_value_and_grad_for
from omnijax.util.validation import check_positive_int

__all__ = [
    "MHInfo", "MHState", "ReplicaExchangeInfo", "ReplicaExchangeState", "SamplingAlgorithm",
    "WangLandauState", "dlp", "gwg", "linear_ladder", "mh", "replica_exchange", "token_dlp", "token_gwg", "uniform",
    "wang_landau",
]


class SamplingAlgorithm(NamedTuple):
    """init(x, params=None) -> state; step(key, state, params=None) -> (state, info); params:
    the bound model parameters (a pytree)."""

    init: Callable[..., Any]
    step: Callable[..., tuple[Any, Any]]
    params: Any


def _check_space(space) -> InputSpace:
    if not isinstance(space, InputSpace):
        raise ValueError(f"space must be an omnijax.InputSpace, got {type(space).__name__}")
    return space


def _bind(model, space: InputSpace, params, proposal: Proposal):
    """(target, value_and_grad) with the gradient that `proposal` takes (one-hot or embeddings)."""
    _check_space(space)
    target = check_output_fn(model, space, "model", params=params)
    if proposal.input_gradient == "embedding":
        check_token_target(target, space)
    return target, make_value_and_grad_for(target, space, proposal)


def _flat(x: jax.Array, space: InputSpace, name: str = "x") -> jax.Array:
    """One input (*space.shape) as flat int32 (D,), frozen positions set."""
    x = jnp.asarray(x)
    if x.shape != space.shape and x.shape != (space.num_positions,):
        raise ValueError(f"{name} must be one input of shape {space.shape} (vmap init over several), got {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integer categories, got dtype {x.dtype}")
    return space.apply_frozen(x.reshape(space.shape).astype(jnp.int32)).reshape(-1)


def mh(model, space: InputSpace, proposal: Proposal, *, beta: float = 1.0, params=None) -> SamplingAlgorithm:
    """Metropolis–Hastings at `beta` on pi(x) ∝ exp(beta z(x)) with any `Proposal`."""
    if not isinstance(proposal, Proposal):
        raise ValueError(f"proposal must be an omnijax Proposal (e.g. omnijax.sampling.proposals.gwg(space)), "
                         f"got {type(proposal).__name__}")
    target, value_and_grad = _bind(model, space, params, proposal)
    beta = mh_kernel.check_beta(beta)

    def init(x, params=None):
        p = target.params if params is None else params
        return mh_kernel.init(_flat(x, space), p, value_and_grad, proposal, beta)

    def step(key, state, params=None):
        p = target.params if params is None else params
        return mh_kernel.step(key, state, p, value_and_grad, proposal, beta)

    return SamplingAlgorithm(init, step, target.params)


def gwg(model, space: InputSpace, *, beta: float = 1.0, num_flips: int = 1, params=None) -> SamplingAlgorithm:
    """Gibbs-with-gradients MH at `beta` (`num_flips` site moves per proposal)."""
    return mh(model, space, proposals_lib.gwg(_check_space(space), num_flips=num_flips), beta=beta, params=params)


def dlp(model, space: InputSpace, *, beta: float = 1.0, step_size: float = 0.2, params=None) -> SamplingAlgorithm:
    """Discrete Langevin (DMALA) MH at `beta`."""
    return mh(model, space, proposals_lib.dlp(_check_space(space), step_size=step_size), beta=beta, params=params)


def uniform(model, space: InputSpace, *, beta: float = 1.0, params=None) -> SamplingAlgorithm:
    """Plain single-site MH at `beta` (no gradient)."""
    return mh(model, space, proposals_lib.uniform(_check_space(space)), beta=beta, params=params)


def token_gwg(model, space: InputSpace, *, beta: float = 1.0, num_flips: int = 1, params=None,
              **options) -> SamplingAlgorithm:
    """Gibbs-with-gradients MH at `beta` in token space for a token target (`num_flips` moves per
    proposal; `options`: block_size, vocab_chunk of `proposals.tokens.token_gwg`)."""
    return mh(model, space, proposals_lib.token_gwg(_check_space(space), num_flips=num_flips, **options),
              beta=beta, params=params)


def token_dlp(model, space: InputSpace, *, beta: float = 1.0, step_size: float = 0.2, params=None,
              **options) -> SamplingAlgorithm:
    """Discrete Langevin (DMALA) MH at `beta` in token space for a token target (`options`:
    block_size, vocab_chunk of `proposals.tokens.token_dlp`)."""
    return mh(model, space, proposals_lib.token_dlp(_check_space(space), step_size=step_size, **options),
              beta=beta, params=params)


def _proposal(proposal, space: InputSpace, options: dict | None) -> Proposal:
    if isinstance(proposal, Proposal):
        if options:
            raise ValueError("proposal_options apply to a proposal given by name, not to a Proposal")
        return proposal
    return proposals_lib.make_proposal(proposal, space, **(options or {}))


def replica_exchange(model, space: InputSpace, betas, *, proposal="gwg", proposal_options: dict | None = None,
                     sweeps_per_swap: int = 1, params=None) -> SamplingAlgorithm:
    """Replica exchange of one group of walkers on the ascending ladder `betas`.

    init(x (R, *space.shape)) puts walker r at rung r; step = `sweeps_per_swap` MH sweeps,
    one swap round, and every summary refreshed at its walker's new beta. vmap for groups.
    """
    sampler = _proposal(proposal, _check_space(space), proposal_options)
    target, value_and_grad = _bind(model, space, params, sampler)
    ladder = validate_betas(betas)
    sweeps = check_positive_int("sweeps_per_swap", sweeps_per_swap)

    def init(x, params=None):
        p = target.params if params is None else params
        x = jnp.asarray(x)
        if x.shape[1:] not in (space.shape, (space.num_positions,)) or x.shape[0] != len(ladder):
            raise ValueError(f"x must hold one input per rung, shape ({len(ladder)}, *{space.shape}), got {x.shape}")
        flat = jax.vmap(lambda xi: _flat(xi, space))(x)
        return rx_kernel.init(flat, ladder, p, value_and_grad, sampler)

    def step(key, state, params=None):
        p = target.params if params is None else params
        return rx_kernel.step(key, state, p, value_and_grad, sampler, sweeps=sweeps)

    return SamplingAlgorithm(init, step, target.params)


def wang_landau(model, space: InputSpace, bin_edges, *, proposal="gwg", proposal_options: dict | None = None,
                beta_clip: float = 1.0, kappa: float | None = None, log_f_initial: float = 1.0,
                flatness: float = 0.8, halving_flatness: float = 0.0, steps_per_check: int = 100,
                beta_rule: str = "slope", params=None) -> SamplingAlgorithm:
    """Gradient Wang–Landau of one group of walkers sharing ln g over `bin_edges`.

    init(x (W, *space.shape)); step = `steps_per_check` WL steps of every walker, then the
    flatness check at halving_flatness (ln f halves, or follows 1/t; 0: every visited bin hit
    since the last reduction, Belardinelli & Pereyra). ln rho ∝ exp(state.log_g - state.log_g_carry).
    flatness: the stopping rule's and the "directional" gate's threshold.
    beta_rule: "slope" (beta_eff = -d ln g / dz) or "directional" (the paper's appendix H
    heuristic); see `omnijax.sampling.mcmc.wang_landau_kernel`. Stop when
    `wang_landau_kernel.stopping_rule(state, log_f_final, flatness)` holds (1/t regime,
    ln f <= log_f_final, histogram since the switch flat), not after a fixed step count.
    """
    sampler = _proposal(proposal, _check_space(space), proposal_options)
    target, value_and_grad = _bind(model, space, params, sampler)
    edges = validate_bin_edges(bin_edges)
    rule = wl_kernel.check_beta_rule(beta_rule)
    window = wl_kernel.make_window(edges, beta_clip, beta_clip if kappa is None else kappa, flatness)
    steps = check_positive_int("steps_per_check", steps_per_check)

    def init(x, params=None):
        p = target.params if params is None else params
        flat = jax.vmap(lambda xi: _flat(xi, space))(jnp.asarray(x))
        return wl_kernel.init(flat, p, value_and_grad, sampler, len(edges) - 1, log_f_initial)

    def step(key, state, params=None):
        p = target.params if params is None else params

        def one(carry, k):
            s, accepted = carry
            s, info = wl_kernel.step(k, s, window, p, value_and_grad, sampler, rule)
            return (s, accepted + info.accepted.astype(jnp.int32)), None

        zeros = jnp.zeros(state.chains.z.shape, jnp.int32)
        (state, accepted), _ = jax.lax.scan(one, (state, zeros), jax.random.split(key, steps))
        return wl_kernel.check_flatness(state, halving_flatness), accepted

    return SamplingAlgorithm(init, step, target.params)
