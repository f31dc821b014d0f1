"""Error bars of ln rho (omnijax.sampling.uncertainty) against exact answers, pooled over seeds.

Records laid out as a replica-exchange run's, (records, groups, replicas), are drawn exactly:
z = number of ones among D independent bits, and at inverse temperature beta each bit is 1
with probability sigmoid(beta), so rho is Binomial(D, 1/2). An equilibration transient that all
groups share (what the bootstrap over groups cannot see) is modelled as the replicas' samples
starting short of their beta, as walkers started from uniform random inputs are: record t is
drawn at beta_r (1 - A exp(-(t + 1) / TAU)). Errors are absolute (ln rho is normalised over all
inputs): no constant is removed.
"""

import math

import jax
import numpy as np
import pytest

from omnijax.sampling.histogram import bin_counts
from omnijax.sampling import bootstrap
from omnijax.sampling.bootstrap import bootstrap_log_rho, bootstrap_replicates
from omnijax.sampling.reweighting import log_rho_from_weights, mbar_log_weights
from omnijax.sampling.uncertainty import log_rho_with_error_bars, without_error_bars

D = 24
BETAS = np.linspace(-3.0, 3.0, 9)
EDGES = np.arange(-0.5, D + 1.0)
EXACT = np.log([math.comb(D, k) for k in range(D + 1)]) - D * np.log(2.0)
RECORDS, GROUPS, SEEDS = 200, 16, 10
A, TAU = 0.1, 50.0  # the halves' biases differ by exp(-100 / 50): within the bound's reach (see uncertainty)


def run_records(seed, transient):
    """(z, slot) of shape (RECORDS, GROUPS, replicas), exact draws, with or without the shared transient."""
    rng = np.random.default_rng(seed)
    t = np.arange(RECORDS)[:, None, None]
    beta = np.broadcast_to(BETAS, (RECORDS, GROUPS, BETAS.size))
    if transient:
        beta = beta * (1.0 - A * np.exp(-(t + 1) / TAU))
    z = rng.binomial(D, 1.0 / (1.0 + np.exp(-beta))).astype(np.float32)
    return z, np.broadcast_to(np.arange(BETAS.size, dtype=np.int32), z.shape)


def pooled_scores(transient):
    """|err| / stderr over all bins and seeds, for the reported and the bootstrap-only stderr, and
    the median ratio of the two."""
    total, boot, ratio = [], [], []
    for seed in range(SEEDS):
        bars = log_rho_with_error_bars(*run_records(seed, transient), BETAS, EDGES, jax.random.key(seed))
        err = np.abs(bars.log_rho - EXACT)
        total.append(err / bars.stderr)
        boot.append(err / bars.stderr_bootstrap)
        ratio.append(bars.stderr / bars.stderr_bootstrap)
    return np.concatenate(total), np.concatenate(boot), float(np.median(np.concatenate(ratio)))


@pytest.fixture(scope="module")
def transient_scores():
    return pooled_scores(transient=True)


@pytest.fixture(scope="module")
def equilibrated_scores():
    return pooled_scores(transient=False)


def test_error_bars_cover_a_shared_transient(transient_scores):
    total, _, _ = transient_scores
    assert np.mean(total <= 2) >= 0.9
    assert total.max() <= 4


def test_bootstrap_alone_misses_the_shared_transient(transient_scores):
    """Negative control: the spread between groups is blind to a bias they share."""
    _, boot, _ = transient_scores
    assert np.mean(boot <= 2) < 0.9 and boot.max() > 4


def test_error_bars_of_an_equilibrated_run_stay_those_of_the_bootstrap(equilibrated_scores):
    total, boot, ratio = equilibrated_scores
    assert np.mean(total <= 2) >= 0.9 and total.max() <= 4
    assert np.mean(boot <= 2) >= 0.9
    assert ratio <= 1.05, "the drift term should add (almost) nothing when the halves agree"


def test_warm_started_replicates_match_cold_solves(monkeypatch):
    """The warm path (each subset on its own distinct outputs, chord steps from the full data's solution
    and Hessian), both with all subsets in one stack and with the halves in a stack of their own (as
    above _SPLIT_ABOVE distinct outputs), gives the reference method's replicates: every resample
    solved from scratch by Newton steps on every sample. Its cost is measured in
    benchmarks.error_bar_cost."""
    z, slot = (a[:60] for a in run_records(0, transient=True))
    group = np.broadcast_to(np.arange(GROUPS)[None, :, None], z.shape)
    part = np.broadcast_to((np.arange(60) >= 30)[:, None, None], z.shape).astype(np.int32)
    args = (z.ravel(), slot.ravel(), group.ravel(), BETAS, EDGES, jax.random.key(1))
    cold = bootstrap_replicates(*args, num_bootstrap=6, part=part.ravel(), warm_start=False)
    stacked = bootstrap_replicates(*args, num_bootstrap=6, part=part.ravel(), warm_start=True)
    monkeypatch.setattr(bootstrap, "_SPLIT_ABOVE", 0)
    split = bootstrap_replicates(*args, num_bootstrap=6, part=part.ravel(), warm_start=True)
    for warm in (stacked, split):
        np.testing.assert_allclose(warm.log_rho, cold.log_rho, atol=1e-4)
        np.testing.assert_allclose(warm.replicates, cold.replicates, atol=1e-3)
    single = bootstrap_log_rho(*args, num_bootstrap=6)
    np.testing.assert_allclose(np.asarray(single.log_rho), stacked.log_rho[0], atol=1e-4)
    np.testing.assert_allclose(single.iterations, split.iterations[:, 0])
    # The full data's weights, which the estimate takes from the bootstrap instead of a second solve,
    # are those of a solve on every sample (both stack layouts); the cold path gives none.
    log_w, free_energies = mbar_log_weights(z.ravel(), slot.ravel(), BETAS)
    for warm in (stacked, split):
        assert warm.log_w.shape == z.ravel().shape
        np.testing.assert_allclose(warm.log_w, np.asarray(log_w), atol=1e-5)
        np.testing.assert_allclose(warm.free_energies, np.asarray(free_energies), atol=1e-4)
    assert cold.log_w is None and cold.free_energies is None


@pytest.mark.parametrize("kwargs, name", [
    (dict(part=np.array([0, 1, 0])), "part"),
    (dict(part=np.array([0, 2, 0, 2])), "part"),  # part 1 holds no sample
    (dict(warm_start=1), "warm_start"),
])
def test_bootstrap_replicates_rejects(kwargs, name):
    args = dict(z=np.array([0.0, 1.0, 2.0, 3.0], np.float32), replica=np.array([0, 0, 1, 1]),
                group=np.array([0, 1, 0, 1]), betas=np.array([0.0, 1.0]), bin_edges=np.array([0.0, 2.0, 4.0]),
                key=jax.random.key(0)) | kwargs
    with pytest.raises(ValueError, match=f"^{name} "):
        bootstrap_replicates(**args)


def test_error_bars_reject_records_of_another_shape():
    z = np.zeros((4, 2, 2), np.float32)
    with pytest.raises(ValueError, match="^z and slot "):
        log_rho_with_error_bars(z, np.zeros((4, 2), np.int32), BETAS[:2], EDGES[:3], jax.random.key(0))


def test_without_error_bars_gives_the_same_ln_rho_and_no_error_bars():
    """num_bootstrap=0 (a range pilot's call; pt_result): ln rho binned from the one full solve's
    weights and the counts, every error bar NaN ("not computed", never a zero that would read as exact)."""
    z, slot = run_records(0, transient=False)
    bars = log_rho_with_error_bars(z, slot, BETAS, EDGES, jax.random.key(0), num_bootstrap=4)
    log_w, _ = mbar_log_weights(z.reshape(-1), slot.reshape(-1), BETAS)
    alone = without_error_bars(log_rho_from_weights(log_w, z, EDGES), bin_counts(z, EDGES))
    np.testing.assert_allclose(alone.log_rho, bars.log_rho, rtol=0, atol=1e-4)
    assert np.max(np.abs(alone.log_rho - EXACT)) < 0.2  # and it is the right ln rho
    np.testing.assert_array_equal(alone.n_samples, bars.n_samples)
    for name in ("stderr", "ci_low", "ci_high", "stderr_bootstrap", "bias", "drift", "drift_stderr"):
        assert np.all(np.isnan(getattr(alone, name))), name


def test_thinned_error_bars_sit_about_the_estimate_of_all_records():
    """Above max_resampled samples the bootstrap runs on every k-th record, while ln rho and the counts
    are those of all records and the interval is the thinned one's offsets about it; the records' own
    log-weights (which pt_result passes) give what solving for them again gives."""
    z, slot = run_records(0, transient=False)
    key = jax.random.key(3)
    direct = log_rho_with_error_bars(z[::4], slot[::4], BETAS, EDGES, key, num_bootstrap=4)
    thinned = log_rho_with_error_bars(z, slot, BETAS, EDGES, key, num_bootstrap=4, max_resampled=z.size // 4)
    log_w, _ = mbar_log_weights(z.reshape(-1), slot.reshape(-1), BETAS)
    given = log_rho_with_error_bars(z, slot, BETAS, EDGES, key, num_bootstrap=4, max_resampled=z.size // 4,
                                    log_w=log_w)
    everything = log_rho_from_weights(log_w, z, EDGES)
    for bars in (thinned, given):
        np.testing.assert_allclose(bars.log_rho, everything, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(bars.n_samples, bin_counts(z, EDGES))
        np.testing.assert_array_equal(bars.stderr, direct.stderr)
        np.testing.assert_allclose(bars.ci_high - bars.log_rho, direct.ci_high - direct.log_rho, rtol=0, atol=1e-4)
        np.testing.assert_allclose(bars.log_rho - bars.ci_low, direct.log_rho - direct.ci_low, rtol=0, atol=1e-4)
    assert np.max(np.abs(direct.log_rho - everything)) > 1e-3  # the thinned records' own estimate differs
