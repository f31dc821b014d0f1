"""MBAR reweighting against exactly solvable outputs of independent bits.

z(x) = w . x over D independent bits. At inverse temperature beta, pi_beta(x) ∝ exp(beta w . x)
factorises: bit i is 1 with probability sigmoid(beta w_i), so exact i.i.d. samples need no MCMC.
With w = 1 the exact rho is Binomial(D, 1/2); with random real w it is found by enumeration.
"""

import math

import jax
import numpy as np
import pytest

from omnijax.sampling.bootstrap import bootstrap_log_rho
from omnijax.sampling.reweighting import log_rho_from_samples, mbar_log_weights

D = 24
BETAS = np.linspace(-3.0, 3.0, 9)  # negative, zero and positive
UNIT_EDGES = np.arange(-0.5, D + 1.0)  # one unit-width bin per k = 0..D
K = np.arange(D + 1)
EXACT_LOG_PMF = np.log([math.comb(D, k) for k in K]) - D * np.log(2.0)


def sample_outputs(betas, per_replica, rng, weights=None, num_groups=1):
    """Exact samples of z = weights . x (default: number of ones among D bits) at each beta.

    Returns (z float32, replica, group), each of num_groups groups holding per_replica samples
    of every replica.
    """
    weights = np.ones(D) if weights is None else weights
    replica = np.tile(np.repeat(np.arange(len(betas)), per_replica), num_groups)
    group = np.repeat(np.arange(num_groups), per_replica * len(betas))
    prob_one = 1.0 / (1.0 + np.exp(-np.asarray(betas)[replica][:, None] * weights))
    bits = rng.random((replica.size, weights.size)) < prob_one
    return (bits @ weights).astype(np.float32), replica, group


def test_binomial_log_rho_matches_exactly_with_absolute_normalisation():
    z, replica, _ = sample_outputs(BETAS, 40_000, np.random.default_rng(0))
    log_rho = np.asarray(log_rho_from_samples(z, replica, BETAS, UNIT_EDGES))
    # No constant removed: the total over all inputs is 1, tails 2^-24 included.
    np.testing.assert_array_less(np.abs(log_rho - EXACT_LOG_PMF), 0.1)


def test_weights_estimate_uniform_distribution_and_free_energies():
    z, replica, _ = sample_outputs(BETAS, 20_000, np.random.default_rng(1))
    log_w, free_energies = mbar_log_weights(z, replica, BETAS)
    assert float(jax.nn.logsumexp(log_w)) == pytest.approx(0.0, abs=1e-5)
    # F(beta) = ln E_uniform[exp(beta z)] = D ln((1 + e^beta) / 2).
    exact = D * np.log((1.0 + np.exp(BETAS)) / 2.0)
    np.testing.assert_allclose(np.asarray(free_energies), exact, atol=0.1)
    assert float(free_energies[np.argmin(np.abs(BETAS))]) == pytest.approx(0.0, abs=1e-5)


def test_continuous_output_wide_bins_have_no_bin_centre_bias():
    rng = np.random.default_rng(2)
    weights = rng.normal(size=16)
    every_input = (np.arange(2**16)[:, None] >> np.arange(16)) & 1
    every_z = every_input @ weights
    edges = np.linspace(every_z.min(), every_z.max(), 7)  # 6 wide bins
    exact = np.log(np.histogram(every_z, edges)[0] / 2**16)
    betas = np.linspace(-4.0, 4.0, 9)  # beta x bin width up to ~9: exp(beta z) varies a lot per bin
    z, replica, _ = sample_outputs(betas, 20_000, rng, weights)
    log_rho = np.asarray(log_rho_from_samples(z, replica, betas, edges))
    np.testing.assert_array_less(np.abs(log_rho - exact), 0.1)
    # The test has power: reweighting with z snapped to bin centres (binned WHAM) is far off.
    centres = 0.5 * (edges[1:] + edges[:-1])
    snapped = centres[np.clip(np.searchsorted(edges, z, side="right") - 1, 0, 5)].astype(np.float32)
    binned = np.asarray(log_rho_from_samples(snapped, replica, betas, edges))
    assert np.max(np.abs(binned - exact)) > 0.3


def test_samples_outside_bins_count_in_the_total():
    z, replica, _ = sample_outputs(BETAS, 5_000, np.random.default_rng(3))
    middle = UNIT_EDGES[8:17]  # bins k = 8..15 only
    log_rho = np.asarray(log_rho_from_samples(z, replica, BETAS, middle))
    full = np.asarray(log_rho_from_samples(z, replica, BETAS, UNIT_EDGES))
    np.testing.assert_allclose(log_rho, full[8:16], atol=1e-4)


def test_empty_bins_are_minus_infinity():
    z, replica, _ = sample_outputs(BETAS, 1_000, np.random.default_rng(4))
    log_rho = np.asarray(log_rho_from_samples(z, replica, BETAS, np.arange(-0.5, D + 3.0)))
    assert np.all(np.isfinite(log_rho[: D + 1]))
    np.testing.assert_array_equal(log_rho[D + 1:], -np.inf)


@pytest.mark.parametrize("dropped", [2, 4])  # 4 is beta = 0, the replica that fixes the gauge
def test_replica_with_zero_multiplicity_drops_out(dropped):
    z, replica, _ = sample_outputs(BETAS, 2_000, np.random.default_rng(5))
    multiplicity = np.where(replica == dropped, 0.0, 1.0)
    log_w, free_energies = mbar_log_weights(z, replica, BETAS, multiplicity)
    assert np.all(np.isfinite(np.asarray(log_w))) and np.all(np.isfinite(np.asarray(free_energies)))
    keep = replica != dropped
    kept_betas = np.delete(BETAS, dropped)
    kept_replica = replica[keep] - (replica[keep] > dropped)
    reference = np.asarray(log_rho_from_samples(z[keep], kept_replica, kept_betas, UNIT_EDGES))
    with_empty = np.asarray(log_rho_from_samples(z, replica, BETAS, UNIT_EDGES, multiplicity))
    np.testing.assert_allclose(with_empty, reference, atol=1e-4)


def test_integer_multiplicity_equals_repeated_samples():
    rng = np.random.default_rng(6)
    z, replica, _ = sample_outputs(BETAS, 1_000, rng)
    multiplicity = rng.integers(0, 3, size=z.size)
    multiplicity[:: 500] = 1  # every replica keeps samples
    repeated = np.repeat(np.arange(z.size), multiplicity)
    direct = np.asarray(log_rho_from_samples(z, replica, BETAS, UNIT_EDGES, multiplicity))
    expanded = np.asarray(log_rho_from_samples(z[repeated], replica[repeated], BETAS, UNIT_EDGES))
    np.testing.assert_allclose(direct, expanded, atol=1e-4)


def test_solve_warns_when_max_iter_is_too_small():
    betas = np.array([-2.0, 0.0, 4.0])  # weak overlap: the initial guess is off
    z, replica, _ = sample_outputs(betas, 500, np.random.default_rng(0))
    with pytest.warns(RuntimeWarning, match="max_iter"):
        mbar_log_weights(z, replica, betas, max_iter=1)


# Bootstrap. Errors of ln rho are strongly correlated across bins (all bins share the free
# energies that fix the absolute normalisation), so the fraction of bins covered varies a lot
# between datasets; coverage is pooled over several independent datasets. The bins include an
# empty one past k = D.
NUM_GROUPS = 40
NUM_DATASETS = 10
BOOT_EDGES = np.arange(-0.5, D + 2.0)


def grouped_dataset(seed, per_replica=25):
    """NUM_GROUPS independent groups, each with per_replica samples of every beta."""
    return sample_outputs(BETAS, per_replica, np.random.default_rng(seed), num_groups=NUM_GROUPS)


@pytest.fixture(scope="module")
def bootstraps():
    """Bootstrap results for NUM_DATASETS independent datasets."""
    return [bootstrap_log_rho(*grouped_dataset(seed), BETAS, BOOT_EDGES, jax.random.key(seed))
            for seed in range(NUM_DATASETS)]


def test_bootstrap_stderr_covers_the_error(bootstraps):
    covered = [np.abs(np.asarray(r.log_rho[: D + 1]) - EXACT_LOG_PMF) <= 2 * np.asarray(r.stderr[: D + 1])
               for r in bootstraps]
    assert np.mean(covered) >= 0.9


def test_bootstrap_confidence_interval_contains_the_truth(bootstraps):
    inside = [(np.asarray(r.ci_low[: D + 1]) <= EXACT_LOG_PMF)
              & (EXACT_LOG_PMF <= np.asarray(r.ci_high[: D + 1])) for r in bootstraps]
    assert np.mean(inside) >= 0.9


def test_bootstrap_full_data_estimate_and_counts(bootstraps):
    z, replica, _ = grouped_dataset(0)
    result = bootstraps[0]
    np.testing.assert_allclose(np.asarray(result.log_rho),
                               np.asarray(log_rho_from_samples(z, replica, BETAS, BOOT_EDGES)), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(result.n_samples), np.histogram(z, BOOT_EDGES)[0])
    populated = slice(0, D + 1)
    assert np.all(np.asarray(result.ci_low[populated]) <= np.asarray(result.log_rho[populated]))
    assert np.all(np.asarray(result.log_rho[populated]) <= np.asarray(result.ci_high[populated]))
    assert np.all(np.isfinite(np.asarray(result.stderr[populated])))
    assert np.all(np.asarray(result.stderr[populated]) > 0)


def test_bootstrap_empty_bin_has_infinite_stderr(bootstraps):
    empty = bootstraps[0]
    assert empty.n_samples[D + 1] == 0
    assert empty.log_rho[D + 1] == -np.inf
    assert empty.stderr[D + 1] == np.inf


def test_bootstrap_stderr_shrinks_like_inverse_sqrt_samples(bootstraps):
    four_times = bootstrap_log_rho(*grouped_dataset(0, per_replica=100), BETAS, BOOT_EDGES, jax.random.key(0))
    ratio = np.asarray(four_times.stderr[: D + 1]) / np.asarray(bootstraps[0].stderr[: D + 1])
    assert 0.35 <= np.median(ratio) <= 0.7


# Invalid arguments: each ValueError names the argument.
Z = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
REPLICA = np.array([0, 0, 1, 1])
TWO_BETAS = np.array([0.0, 1.0])


@pytest.mark.parametrize("kwargs, name", [
    (dict(z=np.array([0.0, np.nan, 2.0, 3.0])), "z"),
    (dict(z=Z[None]), "z"),
    (dict(z=np.array([], np.float32), replica=np.array([], int)), "z"),
    (dict(replica=REPLICA[:3]), "replica"),
    (dict(replica=np.array([0, 0, 1, 2])), "replica"),
    (dict(replica=np.array([0, -1, 1, 1])), "replica"),
    (dict(replica=REPLICA.astype(float)), "replica"),
    (dict(betas=np.array([0.0, 1.0, 2.0])), "replica"),  # betas[2] has no samples
    (dict(betas=np.array([0.0, np.inf])), "betas"),
    (dict(multiplicity=np.array([1.0, -1.0, 1.0, 1.0])), "multiplicity"),
    (dict(multiplicity=np.zeros(4)), "multiplicity"),
    (dict(multiplicity=np.ones(3)), "multiplicity"),
    (dict(tol=0.0), "tol"),
    (dict(max_iter=0), "max_iter"),
])
def test_mbar_log_weights_rejects(kwargs, name):
    args = dict(z=Z, replica=REPLICA, betas=TWO_BETAS) | kwargs
    with pytest.raises(ValueError, match=f"^{name} "):
        mbar_log_weights(**args)


def test_log_rho_rejects_bad_bin_edges():
    with pytest.raises(ValueError, match="^bin_edges "):
        log_rho_from_samples(Z, REPLICA, TWO_BETAS, np.array([0.0, 2.0, 1.0]))


@pytest.mark.parametrize("kwargs, name", [
    (dict(group=np.array([0, 1, 0])), "group"),
    (dict(group=np.zeros(4, int)), "group"),  # a single group cannot be resampled
    (dict(key=0), "key"),
    (dict(num_bootstrap=1), "num_bootstrap"),
    (dict(bin_edges=np.array([1.0])), "bin_edges"),
    (dict(replica=np.array([0, 0, 0, 0])), "replica"),
])
def test_bootstrap_rejects(kwargs, name):
    args = dict(z=Z, replica=REPLICA, group=np.array([0, 1, 0, 1]), betas=TWO_BETAS,
                bin_edges=np.array([0.0, 2.0, 4.0]), key=jax.random.key(0)) | kwargs
    with pytest.raises(ValueError, match=f"^{name} "):
        bootstrap_log_rho(**args)


def test_resamples_in_chunks_equal_one_call_and_show_progress(capsys):
    """The resamples are solved in chunks so progress can be shown between them: the chunks (the last
    one padded with its final key, then trimmed) give what one call over every key gives, and the
    bootstrap says how far it is."""
    from omnijax.sampling import bootstrap
    from omnijax.util.progress import Progress

    @jax.jit
    def solve(keys):  # one result per key, like the solvers: lax.map over the keys
        return jax.lax.map(lambda k: (jax.random.normal(k, (3,)), jax.random.randint(k, (), 0, 9)), keys)

    keys = jax.random.split(jax.random.key(1), 2 * bootstrap._CHUNK + 3)
    chunked = bootstrap._in_chunks(solve, keys, Progress("t", keys.shape[0], "keys", enabled=False))
    whole = jax.device_get(solve(keys))
    for a, b in zip(chunked, whole):
        np.testing.assert_array_equal(a, b)
    # The bootstrap's own lines, on the coverage tests' data (their compiled solvers are reused).
    z, replica, group = grouped_dataset(0)
    bootstrap.bootstrap_replicates(z, replica, group, BETAS, BOOT_EDGES, jax.random.key(0),
                                   num_bootstrap=bootstrap._CHUNK + 2, progress=True)
    err = capsys.readouterr().err
    assert "MBAR on the full data" in err and f"{bootstrap._CHUNK + 2}/{bootstrap._CHUNK + 2} resamples" in err
