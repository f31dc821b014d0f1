"""Weights that turn a bin's representatives into a sample of ALL its inputs (`omnijax.sampling.inclusion`),
against ground truth: the reservoir's own keep rule on a known visit stream, and an exhausted
3x3 binary space enumerated in full."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import omnijax as oj
from omnijax.sampling import inclusion
from omnijax.sampling import reservoir as reservoir_lib
from omnijax.sampling.targets import as_target, make_value
from tests.models import all_inputs, random_mlp

NUM_INPUTS, CAPACITY, TRIALS, MAX_VISITS = 200, 50, 400, 2_000
EXPECTED_VISITS = np.exp(np.linspace(-2.5, 2.0, NUM_INPUTS))  # inputs 0..199, rarely to often visited


@jax.jit
def reservoir_after_poisson_visits(key):
    """One bin's reservoir after input i is offered Poisson(EXPECTED_VISITS[i]) times, in random order."""
    visit_key, order_key, keep_key = jax.random.split(key, 3)
    visits = jax.random.poisson(visit_key, jnp.asarray(EXPECTED_VISITS))
    stream = jnp.repeat(jnp.arange(NUM_INPUTS), visits, total_repeat_length=MAX_VISITS)
    stream = jax.random.permutation(order_key, jnp.where(jnp.arange(MAX_VISITS) < visits.sum(), stream, -1))
    z = jnp.where(stream >= 0, 0.5, 5.0)  # padding lands outside the bin [0, 1]
    held = reservoir_lib.insert(reservoir_lib.empty(1, CAPACITY, 1), keep_key, stream[:, None], z,
                                jnp.array([0.0, 1.0]), jnp.asarray(reservoir_lib.hash_multipliers(1)))
    is_held = jnp.zeros(NUM_INPUTS, bool).at[jnp.where(jnp.isfinite(held.priority[0]), held.x[0, :, 0],
                                                       NUM_INPUTS)].set(True, mode="drop")
    return is_held, visits


def weighted_mean(weights, values, held):
    return float((weights[held] * values[held]).sum() / weights[held].sum())


def test_weights_undo_the_reservoirs_keep_rule():
    held, visits = map(np.asarray, jax.vmap(reservoir_after_poisson_visits)(
        jax.random.split(jax.random.key(0), TRIALS)))
    assert held.sum(axis=1).min() == CAPACITY and visits.sum(axis=1).max() < MAX_VISITS
    rare = (np.arange(NUM_INPUTS) < 60).astype(float)  # the rarely visited 30% of the bin
    estimates, inverse_visits, flat = [], [], []
    for is_held, counts in zip(held, visits):
        log_records = np.log(np.repeat(EXPECTED_VISITS, counts))  # what the records tell the fit
        log_c = inclusion.fit_log_c(log_records, int(is_held.sum()))
        kept = np.exp(inclusion.log_kept_probability(np.log(EXPECTED_VISITS), log_c))
        estimates.append(weighted_mean(1 / kept, rare, is_held))
        inverse_visits.append(weighted_mean(1 / EXPECTED_VISITS, rare, is_held))
        flat.append(weighted_mean(np.ones(NUM_INPUTS), rare, is_held))
    error = abs(np.mean(estimates) - 0.3)
    assert error < 0.02, np.mean(estimates)  # measured 0.308 +- 0.007
    # Controls: unweighted representatives miss most rare inputs; weights proportional to 1/visits
    # (right only while the reservoir is far from full) over-correct.
    assert abs(np.mean(flat) - 0.3) > 0.2
    assert abs(np.mean(inverse_visits) - 0.3) > error + 0.02


def test_fit_is_infinite_where_every_input_is_held():
    log_records = np.log(np.repeat([5.0, 8.0, 12.0], [5, 8, 12]))  # 3 inputs, all visited often
    assert inclusion.fit_log_c(log_records, 3) == np.inf
    assert np.all(inclusion.log_kept_probability(np.log([5.0, 8.0, 12.0]), np.inf) == 0.0)
    assert inclusion.log_kept_probability(np.array([-800.0]), 0.0)[0] == -800.0  # no underflow


@pytest.fixture(scope="module")
def exhausted_run():
    """3x3 binary (512 inputs), long enough that the reservoirs hold every input of their bins."""
    space = oj.InputSpace(shape=(3, 3), num_categories=2)
    output_fn = random_mlp(space, seed=2, hidden=8, scale=2.0)
    target = as_target(output_fn)
    z = np.asarray(jax.vmap(make_value(target, space), in_axes=(None, 0))(target.params, all_inputs(space)))
    edges = np.linspace(z.min() - 1e-3, z.max() + 1e-3, 5)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), num_steps=2_000,
                                          num_groups=4, reservoir_size=512, progress=False)
    return est, z, edges


def test_expected_visits_add_up_to_the_records(exhausted_run):
    est, z, _ = exhausted_run
    total = np.exp(est.log_expected_visits(z)).sum()  # over every input of the space
    assert total == pytest.approx(est.replica_records.sum(), rel=0.05)  # measured 3194 of 3200


def test_weighted_representatives_match_an_exhausted_bin(exhausted_run):
    est, z, edges = exhausted_run
    which = np.searchsorted(edges, z, side="right") - 1
    errors, inverse_mixture_errors = [], []
    for b in range(est.num_bins):
        middle = (edges[b] + edges[b + 1]) / 2
        exact = np.mean(z[which == b] > middle)  # a property that varies within the bin
        outputs = est.representative_outputs(b)
        assert len(outputs) >= 0.9 * np.sum(which == b)  # the regime: (nearly) every input held
        errors.append(abs(np.dot(est.representative_weights(b), outputs > middle) - exact))
        mixture = np.exp(-est.log_expected_visits(outputs))
        inverse_mixture_errors.append(abs(np.dot(mixture / mixture.sum(), outputs > middle) - exact))
    assert max(errors) <= 0.03, errors                    # measured max 0.013
    assert max(inverse_mixture_errors) > 0.1, inverse_mixture_errors  # the old weights: 0.165
