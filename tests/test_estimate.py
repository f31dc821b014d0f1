"""Replica exchange + reweighting against exact output distributions, through the public API."""

import math

import jax
import numpy as np
import pytest

import omnijax as oj
from tests.models import BlockTableModel, random_mlp


def errors_against(exact_log_rho, counts, est, min_count=20):
    """Errors over bins holding >= min_count inputs after removing the overall constant, and
    whether the 95% bootstrap interval covers the exact value (shifted by the same constant)."""
    tested = counts >= min_count
    assert np.all(np.isfinite(est.log_rho[tested])), "a populated bin got no samples"
    stderr = est.log_rho_stderr[tested]
    diff = est.log_rho[tested] - exact_log_rho[tested]
    constant = np.average(diff, weights=1 / np.maximum(stderr, 1e-3) ** 2)
    err = diff - constant
    in_ci = ((est.log_rho_ci_low[tested] - constant <= exact_log_rho[tested]) &
             (exact_log_rho[tested] <= est.log_rho_ci_high[tested] - constant))
    return err, stderr, in_ci, constant


def exact_block_table_log_rho(model, edges):
    counts_per_value = model.exact_counts()
    total = 2 ** model.space.num_positions
    values = np.arange(len(counts_per_value))
    counts = [sum(counts_per_value[(values >= lo) & (values < hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    return (np.array([math.log(c / total) if c else -np.inf for c in counts]),
            np.array([float(c) for c in counts]))


def mlp_case(shape, num_categories, seed):
    space = oj.InputSpace(shape=shape, num_categories=num_categories)
    output_fn = random_mlp(space, seed=seed, hidden=16, scale=2.0)
    probe = oj.enumerate_output_distribution(output_fn, space, np.array([-1e6, 1e6]), progress=False)
    edges = np.linspace(probe.min_output, probe.max_output, 26)
    exact = oj.enumerate_output_distribution(output_fn, space, edges, progress=False)
    return output_fn, space, edges, exact.log_rho, exact.counts.astype(np.float64)


def block_table_case(seed):
    model = BlockTableModel(num_blocks=10, block_size=4, max_value=6, seed=seed)
    edges = np.arange(-0.5, model.tables.max(1).sum() + 1.5, 2.0)
    exact_log_rho, counts = exact_block_table_log_rho(model, edges)
    return model.output_fn, model.space, edges, exact_log_rho, counts


CASES = {
    "mlp_binary_4x4": lambda: mlp_case((4, 4), 2, seed=0),
    "mlp_9_positions_k3": lambda: mlp_case((9,), 3, seed=1),
    "six_decades": lambda: block_table_case(seed=2),
}
RESULTS = {}


@pytest.mark.parametrize("case", list(CASES))
def test_default_estimate_matches_exact(case):
    """Default settings, no tuning: |ln rho_hat - ln rho| <= 0.15 over bins holding >= 20 inputs."""
    output_fn, space, edges, exact_log_rho, counts = CASES[case]()
    if case == "six_decades":
        populated = exact_log_rho[counts >= 20]
        span = (populated.max() - populated.min()) / math.log(10)
        assert span >= 6, f"the test model should span >= 6 decades over populated bins, spans {span:.1f}"
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(len(RESULTS)),
                                          progress=False)
    err, stderr, in_ci, constant = errors_against(exact_log_rho, counts, est)
    RESULTS[case] = (err, stderr, in_ci)
    print(f"{case}: max |err| {np.abs(err).max():.3f} over {len(err)} bins, constant {constant:+.3f}")
    assert np.abs(err).max() <= 0.15
    assert abs(constant) < 0.15, "log_rho should be the absolute fraction of all inputs"


def test_stderr_covers_the_error():
    """Pooled over the three independent runs above: |err| <= 2 stderr and the 95% interval
    covers the truth in >= 90% of bins. (Errors within one run are correlated across bins —
    they share the replicas' free energies — so one run alone is a noisy check of coverage.)"""
    if len(RESULTS) < len(CASES):
        pytest.fail(f"needs the results of {sorted(CASES)}; run the whole module")
    err = np.concatenate([r[0] for r in RESULTS.values()])
    stderr = np.concatenate([r[1] for r in RESULTS.values()])
    in_ci = np.concatenate([r[2] for r in RESULTS.values()])
    within = np.mean(np.abs(err) <= 2 * stderr)
    print(f"|err| <= 2 stderr in {within:.1%}, 95% CI covers {in_ci.mean():.1%} of {len(err)} bins")
    assert within >= 0.9
    assert in_ci.mean() >= 0.9


def test_representatives_are_distinct_inputs_of_their_bin():
    space = oj.InputSpace(shape=(4, 4), num_categories=2)
    output_fn = random_mlp(space, seed=0, hidden=16, scale=2.0)
    edges = np.linspace(-3, 3, 13)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(3), num_steps=2_000,
                                          steps_per_block=1_000, reservoir_size=8, progress=False)
    for b in range(est.num_bins):
        reps = est.representatives(b)
        assert reps.dtype == np.int32 and reps.shape[1:] == space.shape
        assert len({r.tobytes() for r in reps}) == len(reps), "representatives must be distinct"
        if len(reps):
            z = np.asarray(jax.vmap(output_fn)(jax.nn.one_hot(reps, 2)))
            assert np.all((z >= edges[b] - 1e-5) & (z <= edges[b + 1] + 1e-5))
            np.testing.assert_allclose(est.representative_outputs(b), z, atol=1e-5)
    assert sum(len(est.representatives(b)) for b in range(est.num_bins)) > est.num_bins
