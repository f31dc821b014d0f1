"""The round-trip bound of a ladder (`diagnostics.ideal_round_trip_rounds`) against the
replica-exchange kernel's own swaps and trip counter, fed outputs drawn exactly and afresh
from every rung's tilted distribution before each swap round (the ideal local sampler)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnijax.sampling import diagnostics
from omnijax.sampling.mcmc import replica_exchange_kernel as rx

# z = S / 2 with S ~ Binomial(20, 1/2) under uniform inputs: the tilted laws are exact.
VALUES = np.arange(21) / 2.0
LOG_BASE = np.array([math.lgamma(21) - math.lgamma(k + 1) - math.lgamma(21 - k) for k in range(21)]) - 20 * math.log(2)
BETAS = np.array([-1.5, -0.8, -0.3, 0.0, 0.4, 0.9, 1.6])
WARM_UP = 600  # swap rounds before trips are counted


def tilted(beta):
    log_p = LOG_BASE + beta * VALUES
    p = np.exp(log_p - log_p.max())
    return p / p.sum()


def exact_acceptance(betas):
    rates = []
    for lo, hi in zip(betas[:-1], betas[1:]):
        p, q = tilted(lo), tilted(hi)
        alpha = np.minimum(1.0, np.exp((lo - hi) * (VALUES[None, :] - VALUES[:, None])))  # [z_lo, z_hi]
        rates.append(float(p @ alpha @ q))
    return np.array(rates)


@pytest.mark.parametrize("a", [0.25, 0.5, 1.0])
def test_two_rungs_closed_form(a):
    # Pair (0, 1) is active every other round: one wasted round at each end, then a geometric
    # number of attempts two rounds apart: 2 / a rounds per crossing.
    assert diagnostics.ideal_round_trip_rounds([a]) == pytest.approx(4.0 / a)


def test_a_pair_that_never_accepts_has_no_round_trips():
    assert diagnostics.ideal_round_trip_rounds([0.5, 0.0, 0.5]) == math.inf
    with pytest.raises(ValueError, match="swap_acceptance"):
        diagnostics.ideal_round_trip_rounds([])


def test_bound_matches_the_kernel_under_fresh_outputs():
    groups, rounds = 2000, 3000
    rungs = len(BETAS)
    cdf = jnp.asarray(np.cumsum(np.stack([tilted(b) for b in BETAS]), axis=1), jnp.float32)
    values = jnp.asarray(VALUES, jnp.float32)

    def init_group(_):
        zeros = jnp.zeros(rungs, jnp.int32)
        chains = rx.ChainState(x=jnp.zeros((rungs, 1), jnp.int32), z=jnp.zeros(rungs), kept=(), summary=())
        return rx.ReplicaExchangeState(
            chains=chains, betas=jnp.asarray(BETAS, jnp.float32), slot=jnp.arange(rungs, dtype=jnp.int32),
            trip_label=zeros, round_trips=zeros, swap_attempts=jnp.zeros(rungs - 1, jnp.int32),
            swap_accepts=jnp.zeros(rungs - 1, jnp.int32), mh_attempts=zeros, mh_accepts=zeros,
            swap_parity=jnp.int32(0), step=jnp.int32(0), first_nonfinite_step=zeros - 1)

    def one_round(state, key):
        draw_key, swap_key = jax.random.split(key)
        u = jax.random.uniform(draw_key, (rungs,))
        index = jnp.sum(cdf[state.slot] < u[:, None], axis=1)       # z of each walker at its rung
        state = state._replace(chains=state.chains._replace(z=values[jnp.minimum(index, len(VALUES) - 1)]))
        state, _ = rx._swap(swap_key, state)
        return state, None

    def run_group(key):
        keys = jax.random.split(key, rounds)
        early, _ = jax.lax.scan(one_round, init_group(0), keys[:WARM_UP])
        state, _ = jax.lax.scan(one_round, early, keys[WARM_UP:])
        return early.round_trips, state

    early_trips, states = jax.jit(jax.vmap(run_group))(jax.random.split(jax.random.key(0), groups))
    measured_acceptance = np.asarray(states.swap_accepts).sum(0) / np.asarray(states.swap_attempts).sum(0)
    exact = exact_acceptance(BETAS)
    np.testing.assert_allclose(measured_acceptance, exact, atol=0.01)   # the kernel's swaps are MH-correct

    bound = diagnostics.ideal_round_trip_rounds(exact)
    # Trips completed after the warm-up (which absorbs the walk to the first bottom visit): a
    # stationary renewal count, mean (rounds - WARM_UP) / bound per walker. Over 14,000 walkers
    # its standard error is ~0.1% of that; leaving out the round each walker loses turning at
    # an end would make the bound 4% short here.
    trips = np.asarray(states.round_trips, np.float64) - np.asarray(early_trips, np.float64)
    expected = (rounds - WARM_UP) / bound
    assert 20 < expected < 200
    assert trips.mean() == pytest.approx(expected, rel=0.01), (trips.mean(), expected, bound)
    # The report in a run's diagnostics carries the same number.
    report = diagnostics.swap_report(states.swap_accepts, states.swap_attempts, BETAS)
    assert report["swap_rounds"] == rounds
    assert report["round_trip_rounds_ideal"] == pytest.approx(
        diagnostics.ideal_round_trip_rounds(measured_acceptance))
