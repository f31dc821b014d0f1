"""The adaptive ladder: swap acceptance -> thermodynamic length (against the Gaussian formula),
respacing, and burn-in adaptation that bridges a gapped ladder, against exact counts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import omnijax as oj
from benchmarks.accuracy_spaces import bits_distribution
from omnijax.sampling import ladder as ladder_lib
from omnijax.sampling.ladder_adaptation import adapt_ladder, stage_lengths
from omnijax.sampling.proposals import make_proposal
from omnijax.sampling.replica_exchange_run import Schedule, run_replica_exchange
from omnijax.sampling.targets import check_output_fn, make_value_and_grad


def weighted_bits(num_bits: int, seed: int):
    """z = sum of integer weights a_i in {1, 2, 3} over the bits that are on: exact rho by counting."""
    weights = np.random.default_rng(seed).integers(1, 4, size=num_bits)
    table = jnp.asarray(np.stack([np.zeros(num_bits), weights], axis=-1), jnp.float32)
    space = oj.InputSpace(shape=(num_bits,), num_categories=2)

    def output_fn(onehot):
        return jnp.sum(onehot * table)

    _, p = bits_distribution(weights)   # weights > 0: p[j] is the fraction of inputs with sum j
    return space, output_fn, p


def exact_log_rho(p, edges):
    which = np.searchsorted(edges, np.arange(len(p)), side="right") - 1
    inside = (which >= 0) & (which < len(edges) - 1)
    with np.errstate(divide="ignore"):
        return np.log(np.bincount(which[inside], weights=p[inside], minlength=len(edges) - 1))


def test_pair_length_inverts_the_gaussian_swap_acceptance():
    rng = np.random.default_rng(0)
    for spread, dbeta in [(1.0, 0.3), (2.0, 0.9), (0.5, 6.0)]:
        z_low = rng.normal(0.0, spread, 400_000)
        z_high = rng.normal(dbeta * spread ** 2, spread, 400_000)  # the upper rung's mean shifts by dbeta s^2
        acceptance = np.minimum(1.0, np.exp(-dbeta * (z_high - z_low))).mean()
        assert acceptance == pytest.approx(math.erfc(dbeta * spread / 2), abs=3e-3)
        assert ladder_lib.pair_lengths(acceptance) == pytest.approx(dbeta * spread, rel=0.02)


def test_respacing_puts_equal_lengths_between_rungs_and_keeps_zero():
    betas = np.array([-3.0, -1.0, 0.0, 0.5, 4.0])
    lengths = np.array([0.2, 0.3, 2.0, 6.0])                  # a gap between 0.5 and 4
    acceptance = np.array([math.erfc(length / 2) for length in lengths])
    new = ladder_lib.respace_ladder(betas, acceptance, target_acceptance=0.5)
    step = 2 * 0.4769362762044699                              # 2 erfc^-1(0.5)
    assert len(new) - math.ceil(lengths.sum() / step) - 1 in (0, 1)   # beta = 0 may be one more rung
    assert new[0] == betas[0] and new[-1] == betas[-1] and 0.0 in new
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    new_lengths = np.diff(np.interp(new, betas, cumulative))
    assert new_lengths.max() <= step * 1.05                    # no pair longer than the target asks
    assert (new > 0.5).sum() >= 6 / step - 1                   # the gap got its rungs
    with pytest.raises(ValueError, match="target_acceptance"):
        ladder_lib.respace_ladder(betas, acceptance, target_acceptance=1.5)


def test_stage_lengths_cover_the_burn_in_in_whole_records():
    assert stage_lengths(2000, 10) == [250, 250, 500, 1000]
    assert stage_lengths(800, 10) == [200, 200, 400]
    assert stage_lengths(80, 10) == [80]   # too short to measure: one stage, no adaptation
    assert stage_lengths(0, 10) == [] and stage_lengths(10, 10) == [10]


def measured_acceptance(key, space, target, betas, x0, edges, steps=600):
    vg = make_value_and_grad(target, space)
    schedule = Schedule(num_steps=steps, steps_per_block=steps, record_every=10, swap_every=10, burn_in=0)
    run = run_replica_exchange(key, x0, betas, target, vg, make_proposal("gwg", space), edges, schedule,
                               reservoir_capacity=1, progress=False)
    state = run.state
    return np.asarray(state.swap_accepts).sum(0) / np.asarray(state.swap_attempts).sum(0), run


def test_burn_in_bridges_a_ladder_with_a_gap():
    """Two halves that never swap (the issue's e^31 failure) are joined by the adaptation."""
    space, output_fn, p = weighted_bits(48, seed=0)
    target = check_output_fn(output_fn, space)
    vg = make_value_and_grad(target, space)
    edges = np.arange(-0.5, len(p) + 0.5, 4.0)
    gapped = np.array([-1.2, -1.0, -0.8, 0.0, 0.8, 1.0, 1.2])
    x0 = space.random_inputs(jax.random.key(1), 4 * len(gapped)).reshape(4, len(gapped), -1)
    before, _ = measured_acceptance(jax.random.key(2), space, target, gapped, x0, edges)
    assert before.min() < 0.01, "the starting ladder must have a gap for this test to mean anything"
    adapted = adapt_ladder(jax.random.key(3), x0, gapped, target, vg, make_proposal("gwg", space), edges,
                           burn_in=1_600, swap_every=10, record_every=10, progress=False)
    after, run = measured_acceptance(jax.random.key(4), space, target, adapted.betas, adapted.x, edges)
    assert after.min() >= 0.1, f"a pair still below 0.1 acceptance: {np.round(after, 2)}"
    assert 0.0 in adapted.betas and adapted.betas[0] == gapped[0] and adapted.betas[-1] == gapped[-1]
    # Every bin between the lowest and highest bin sampled is filled: no hole between the halves.
    seen = np.unique(np.searchsorted(edges, run.z.reshape(-1), side="right") - 1)
    assert np.array_equal(seen, np.arange(seen.min(), seen.max() + 1))


def test_default_estimate_on_weighted_bits_mixes_and_matches_exact():
    space, output_fn, p = weighted_bits(64, seed=1)
    total = len(p) - 1
    edges = np.arange(-0.5, total + 4.5, 4.0)
    exact = exact_log_rho(p, edges)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), num_groups=8,
                                          num_steps=4_000, progress=False)
    d = est.diagnostics
    assert np.min(d["swap_acceptance"]) >= 0.1, np.round(d["swap_acceptance"], 2)
    assert est.betas[0] <= 0.0 <= est.betas[-1]   # beta = 0 inside the ladder
    tested = exact >= math.log(1e-12) - 1e-9
    assert np.all(np.isfinite(est.log_rho[tested]))
    err = est.log_rho[tested] - exact[tested]   # beta = 0 is a rung: no free constant to remove
    print("max |ln rho error|", np.abs(err).max(), "over", tested.sum(), "bins")
    assert np.abs(err).max() <= 0.25


@pytest.mark.parametrize("num_steps", [1_000, 4_000])  # a burn-in without adaptation stages, one with
def test_an_empty_top_bin_is_reported_with_how_far_the_top_rung_got(num_steps):
    """A top bin above the largest output any input gives (exactly empty): the verdict says not
    converged, names the end and the highest output the top rung held, which is the space's true
    maximum, and the bin stays empty (-inf), not filled by mistake; the other bins are filled."""
    space, output_fn, p = weighted_bits(12, seed=2)
    total = len(p) - 1                       # the largest output: every bit on
    edges = np.append(np.linspace(-0.5, total + 0.5, 13), total + 2.5)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), num_groups=4,
                                          num_steps=num_steps, max_steps=num_steps, progress=False)
    d = est.diagnostics
    assert est.log_rho[-1] == -np.inf and np.all(np.isfinite(est.log_rho[:-1]))
    assert d["converged"] is False
    said = [w for w in d["warnings"] if w.startswith("No sample fell in the top bin")]
    assert len(said) == 1, d["warnings"]
    assert f"reached at most {total:.4g} (the top bin starts at {total + 0.5:.4g})" in said[0], said[0]
    assert not any("bottom bin" in w for w in d["warnings"]), d["warnings"]
    # ... and the bin is marked where rho.csv's converged column and rho.png read it.
    assert len(edges) - 2 in d["unconverged_bins"] and not d["bin_converged"][-1], (d["unconverged_bins"],
                                                                                    d["bin_converged"])
    # Only the burn-in with stages pushed the top end out, and then stopped: its output no longer moved.
    assert ("did not move it closer" in said[0]) == bool(d["ladder_stages"]), (said[0], len(d["ladder_stages"]))
