"""Each proposal + MH kernel leaves pi_beta ∝ exp(beta * z) invariant: checked against exact
enumeration, both through the exact transition matrix and by sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnijax.sampling.mcmc.mh_kernel import ChainState, evaluate, init_chain, is_finite_state, walker_step
from omnijax.sampling.proposals import dlp, gwg, uniform
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import as_target, make_value_and_grad
from tests.models import all_inputs, outputs_of, random_mlp, state_index

BINARY = InputSpace((10,), 2)
CATEGORICAL = InputSpace((6,), 3)
FROZEN_MASK = np.array([[False, True, False, False], [False, False, False, True], [False, False, True, False]])
FROZEN = InputSpace((3, 4), 2, frozen_mask=FROZEN_MASK, frozen_values=np.array([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]))
SPACES = {"binary": BINARY, "categorical": CATEGORICAL, "frozen": FROZEN}
PROPOSALS = {"gwg": lambda s: gwg(s), "gwg3": lambda s: gwg(s, num_flips=3),
             "dlp": lambda s: dlp(s, step_size=0.5), "uniform": uniform}
BETA = 1.3


def exact_target(space, output_fn, beta):
    x = all_inputs(space)
    log_p = beta * outputs_of(output_fn, space, x)
    p = np.exp(log_p - log_p.max())
    return x, p / p.sum()


def proposal_size(x):
    space = next(s for s in SPACES.values() if s.num_positions == x.shape[0])
    return float(space.num_free * (space.num_categories - 1))


def move_log_prob(name, proposal, x_from, kept_from, x_to):
    """log q(x_to | x_from) through the proposal's own scoring function."""
    if name == "uniform":  # symmetric: one of num_free * (K - 1) neighbours
        return -jnp.log(proposal_size(x_from))
    if name == "dlp":
        return proposal.log_reverse(x_from, kept_from, BETA, None, x_to)[0]
    site = jnp.argmax(x_from != x_to)
    return proposal.log_reverse(x_from, kept_from, BETA, (site[None], x_to[site][None]), None)[0]


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("name", ["gwg", "dlp", "uniform"])
def test_exact_transition_matrix_preserves_target(space_name, name):
    space = SPACES[space_name]
    output_fn = random_mlp(space, seed=3)
    target = as_target(output_fn)
    vg = make_value_and_grad(target, space)
    proposal = PROPOSALS[name](space)
    x, pi = exact_target(space, output_fn, BETA)
    n = len(x)
    z, kept = jax.vmap(lambda xi: evaluate(xi, target.params, vg, proposal))(jnp.asarray(x))
    kept_at = lambda i: jax.tree.map(lambda a: a[i], kept)
    if name == "dlp":
        targets = np.broadcast_to(np.arange(n), (n, n))
    else:  # single-site moves: every neighbour at Hamming distance 1 among free sites
        hamming = (x[:, None, :] != x[None, :, :]).sum(-1)
        targets = np.stack([np.flatnonzero(row == 1) for row in hamming])
    xi, to = jnp.asarray(x), jnp.asarray(targets)

    def row(i):
        fwd = jax.vmap(lambda j: move_log_prob(name, proposal, xi[i], kept_at(i), xi[j]))(to[i])
        rev = jax.vmap(lambda j: move_log_prob(name, proposal, xi[j], kept_at(j), xi[i]))(to[i])
        log_alpha = BETA * (z[to[i]] - z[i]) + (rev - fwd)
        return jnp.exp(fwd + jnp.minimum(log_alpha, 0.0))

    p = np.zeros((n, n))
    rows = np.asarray(jax.jit(jax.vmap(row))(jnp.arange(n)), np.float64)
    np.put_along_axis(p, targets, rows, axis=1)
    np.testing.assert_array_less(p.sum(1), 1 + 1e-5)  # proposal probabilities are normalised
    p[np.arange(n), np.arange(n)] += 1 - p.sum(1)
    assert np.max(np.abs(pi @ p - pi) / pi) < 2e-4


def sample_final_states(space, output_fn, proposal, beta, num_chains, num_steps, seed, step=walker_step):
    target = as_target(output_fn)
    vg = make_value_and_grad(target, space)
    x0 = space.random_inputs(jax.random.key(seed), num_chains).reshape(num_chains, -1)
    state = jax.vmap(lambda x: init_chain(x, beta, target.params, vg, proposal))(x0)

    @jax.jit
    def run(key, state, params):
        def body(s, k):
            keys = jax.random.split(k, num_chains)
            return jax.vmap(lambda kk, ss: step(kk, ss, beta, params, vg, proposal)[0])(keys, s), None
        return jax.lax.scan(body, state, jax.random.split(key, num_steps))[0]

    return np.asarray(run(jax.random.key(seed + 1), state, target.params).x)


def chi_square_excess(counts, expected):
    """(chi^2 - dof) / sqrt(2 dof), pooling cells expected to hold fewer than 5."""
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    chi2 = np.sum((obs - exp) ** 2 / np.maximum(exp, 1e-12))
    dof = len(obs) - 1
    return (chi2 - dof) / np.sqrt(2 * dof)


@pytest.mark.parametrize("space_name", ["binary", "categorical", "frozen"])
@pytest.mark.parametrize("name", list(PROPOSALS))
def test_chains_reach_exact_target(space_name, name):
    """Final states of many independent chains are i.i.d. draws: chi-square against exact pi."""
    space = SPACES[space_name]
    output_fn = random_mlp(space, seed=4)
    x, pi = exact_target(space, output_fn, BETA)
    num_chains = 20_000
    final = sample_final_states(space, output_fn, PROPOSALS[name](space), BETA, num_chains, 100, seed=5)
    frozen = space.frozen_mask.reshape(-1)
    assert np.all(final[:, frozen] == space.frozen_values.reshape(-1)[frozen]), "a frozen position moved"
    counts = np.bincount(state_index(final, space), minlength=len(pi))
    assert chi_square_excess(counts, pi * num_chains) < 4.0


def mh_step_without_correction(key, state, beta, params, value_and_grad, proposal):
    """A deliberately wrong kernel: it ignores the proposal's asymmetry."""
    propose_key, accept_key = jax.random.split(key)
    x_new, _, _ = proposal.propose(propose_key, state.x, state.kept, beta, state.summary)
    z_new, kept_new = evaluate(x_new, params, value_and_grad, proposal)
    accept = jnp.log(jax.random.uniform(accept_key)) < beta * (z_new - state.z)
    new = ChainState(x_new, z_new, kept_new, proposal.summarize(x_new, kept_new, beta))
    return jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state), None


def test_chi_square_detects_missing_proposal_correction():
    """Negative control: the sampling test above has the power to catch a wrong kernel."""
    space = BINARY
    output_fn = random_mlp(space, seed=4)
    x, pi = exact_target(space, output_fn, BETA)
    num_chains = 20_000
    final = sample_final_states(space, output_fn, gwg(space), BETA, num_chains, 100, seed=5,
                                step=mh_step_without_correction)
    counts = np.bincount(state_index(final, space), minlength=len(pi))
    assert chi_square_excess(counts, pi * num_chains) > 10.0


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("name", ["gwg", "dlp"])
def test_proposal_draws_match_their_scored_probabilities(space_name, name):
    """What `propose` draws is what `log_reverse` scores (the MH correction relies on it).

    400k draws from one state resolve each move's probability to well under 1%, so a
    sampler that draws from a slightly different distribution than it scores is caught."""
    space = SPACES[space_name]
    output_fn = random_mlp(space, seed=6, scale=2.0)
    target = as_target(output_fn)
    vg = make_value_and_grad(target, space)
    proposal = PROPOSALS[name](space)
    x = jnp.asarray(all_inputs(space)[len(all_inputs(space)) // 3])
    _, kept = evaluate(x, target.params, vg, proposal)
    num_draws = 400_000
    keys = jax.random.split(jax.random.key(7), num_draws)
    summary = proposal.summarize(x, kept, BETA)
    drawn, log_q, _ = jax.jit(jax.vmap(lambda k: proposal.propose(k, x, kept, BETA, summary)))(keys)
    everything = jnp.asarray(all_inputs(space))
    scored = jax.jit(jax.vmap(lambda y: move_log_prob(name, proposal, x, kept, y)))(everything)
    if name == "gwg":
        scored = jnp.where((everything != x).sum(-1) == 1, scored, -jnp.inf)
    probs = np.exp(np.asarray(scored, np.float64))
    assert abs(probs.sum() - 1) < 1e-4
    drawn_index = state_index(np.asarray(drawn), space)
    counts = np.bincount(drawn_index, minlength=len(probs))
    assert chi_square_excess(counts, probs * num_draws) < 4.0
    # Every move with decent mass: relative frequency within 5 binomial standard errors.
    big = probs * num_draws > 2_000
    expected = probs[big] * num_draws
    assert np.all(np.abs(counts[big] - expected) <= 5 * np.sqrt(expected)), "draw frequencies differ from scores"
    # The forward log-probability reported with each draw is the scored one.
    np.testing.assert_allclose(np.asarray(log_q), np.asarray(scored)[drawn_index], atol=1e-4)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("name", list(PROPOSALS))
def test_nonfinite_gradient_anywhere_is_reported(space_name, name):
    """The kernel takes the gradient's finiteness from log q of the reverse move (see
    proposals.base): a NaN or inf at ANY entry of the gradient at the proposal, frozen sites
    included, at any beta, must make the step report `nonfinite` and reject. The uniform
    proposal never looks at the gradient, so only a non-finite output counts there."""
    space = SPACES[space_name]
    proposal = PROPOSALS[name](space)
    target = as_target(random_mlp(space, seed=6))
    vg = make_value_and_grad(target, space)
    params = target.params
    x = jnp.asarray(all_inputs(space)[7])
    entries = [(i, k) for i in range(space.num_positions) for k in range(space.num_categories)]
    grid = [(i, k, bad, beta) for i, k in entries for bad in (jnp.nan, jnp.inf, -jnp.inf)
            for beta in (BETA, 0.0, -BETA)]
    site, category, bad, beta = (jnp.asarray(v) for v in zip(*grid))

    def step(site, category, bad, beta, poison_output):
        def poisoned(p, y):
            z, grad = vg(p, y)
            if poison_output:
                return jnp.where(True, bad, z), grad
            return z, grad.at[site, category].set(bad)

        state = init_chain(x, beta, params, vg, proposal)
        new, info = walker_step(jax.random.key(0), state, beta, params, poisoned, proposal)
        z0, kept0 = evaluate(x, params, poisoned, proposal)
        return info.nonfinite, info.accepted, jnp.all(new.x == x), is_finite_state(z0, kept0)

    for poison_output in (False, True):
        nonfinite, accepted, stayed, finite_at_start = jax.jit(jax.vmap(
            lambda *a: step(*a, poison_output)))(site, category, bad, beta)
        expect = poison_output or name != "uniform"
        assert np.all(np.asarray(nonfinite) == expect)
        assert np.all(np.asarray(finite_at_start) != expect)
        if expect:
            assert not np.any(accepted) and np.all(stayed)
