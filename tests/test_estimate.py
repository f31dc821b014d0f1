"""Replica exchange + reweighting against exact output distributions, through the public API."""

import math

import jax
import numpy as np
import pytest

import omnijax as oj
from tests.models import BlockTableModel, random_mlp


def compare(est_log_rho, stderr, ci_low, ci_high, exact_log_rho, counts, min_count=20):
    """Errors over bins holding >= min_count inputs, after removing the overall constant."""
    tested = (counts >= min_count)
    assert np.all(np.isfinite(est_log_rho[tested])), "a populated bin got no samples"
    diff = est_log_rho[tested] - exact_log_rho[tested]
    constant = np.average(diff, weights=1 / np.maximum(stderr[tested], 1e-3) ** 2)
    err = diff - constant
    covered_2se = np.mean(np.abs(err) <= 2 * stderr[tested])
    covered_ci = np.mean((ci_low[tested] - constant <= exact_log_rho[tested]) &
                         (exact_log_rho[tested] <= ci_high[tested] - constant))
    return np.max(np.abs(err)), covered_2se, covered_ci, constant


def check_against(exact_log_rho, counts, est):
    max_err, covered_2se, covered_ci, constant = compare(
        est.log_rho, est.log_rho_stderr, est.log_rho_ci_low, est.log_rho_ci_high, exact_log_rho, counts)
    print(f"max |err| {max_err:.3f}, |err|<=2se in {covered_2se:.0%}, 95% CI covers {covered_ci:.0%}, "
          f"constant {constant:+.3f}")
    assert max_err <= 0.15
    assert covered_2se >= 0.9
    assert covered_ci >= 0.9
    assert abs(constant) < 0.15, "log_rho should be the absolute fraction of all inputs"


def test_mlp_binary_4x4_matches_enumeration():
    space = oj.InputSpace(shape=(4, 4), num_categories=2)
    output_fn = random_mlp(space, seed=0, hidden=16, scale=2.0)
    probe = oj.enumerate_output_distribution(output_fn, space, np.array([-1e6, 1e6]), progress=False)
    edges = np.linspace(probe.min_output, probe.max_output, 26)
    exact = oj.enumerate_output_distribution(output_fn, space, edges, progress=False)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), progress=False)
    check_against(exact.log_rho, exact.counts, est)


def test_categorical_9_positions_matches_enumeration():
    space = oj.InputSpace(shape=(9,), num_categories=3)
    output_fn = random_mlp(space, seed=1, hidden=16, scale=2.0)
    probe = oj.enumerate_output_distribution(output_fn, space, np.array([-1e6, 1e6]), progress=False)
    edges = np.linspace(probe.min_output, probe.max_output, 26)
    exact = oj.enumerate_output_distribution(output_fn, space, edges, progress=False)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(1), progress=False)
    check_against(exact.log_rho, exact.counts, est)


def test_many_decades_exactly_solvable():
    model = BlockTableModel(num_blocks=10, block_size=4, max_value=6, seed=2)
    counts_per_value = model.exact_counts()
    total = 2 ** model.space.num_positions
    edges = np.arange(-0.5, len(counts_per_value) + 0.5, 2.0)
    values = np.arange(len(counts_per_value))
    counts = np.array([sum(counts_per_value[(values >= lo) & (values < hi)]) for lo, hi in zip(edges[:-1], edges[1:])],
                      dtype=object)
    populated = counts >= 20
    exact_log_rho = np.array([math.log(c / total) if c else -np.inf for c in counts])
    span = (exact_log_rho[populated].max() - exact_log_rho[populated].min()) / math.log(10)
    assert span >= 6, f"test model should span >= 6 decades over populated bins, spans {span:.1f}"
    est = oj.estimate_output_distribution(model.output_fn, model.space, edges, key=jax.random.key(2), progress=False)
    check_against(exact_log_rho, counts.astype(np.float64), est)


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
