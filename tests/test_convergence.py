"""Every estimate carries diagnostics and a verdict (issue #12 item 1), checked on an exactly
known space: z = sum of integer weights of 16 bits, rho counted by convolution."""

import jax
import jax.numpy as jnp
import numpy as np

import omnijax as oj
from omnijax.sampling import diagnostics

WEIGHTS = np.random.default_rng(0).integers(1, 4, 16)
SPACE = oj.InputSpace(shape=(16,), num_categories=2)
EDGES = np.arange(-0.5, WEIGHTS.sum() + 1.0, 2.0)


def output_fn(onehot):
    return jnp.sum(onehot[:, 1] * jnp.asarray(WEIGHTS, jnp.float32))


def exact_log_rho():
    counts = np.array([1.0])
    for w in WEIGHTS:
        counts = np.convolve(counts, np.r_[1.0, np.zeros(w - 1), 1.0])
    values = np.arange(len(counts))
    per_bin = np.array([counts[(values >= lo) & (values < hi)].sum() for lo, hi in zip(EDGES[:-1], EDGES[1:])])
    return np.log(per_bin / 2.0 ** SPACE.num_positions)


def run(**options):
    return oj.estimate_output_distribution(output_fn, SPACE, EDGES, key=jax.random.key(0), progress=False,
                                           **options)


def test_reasonable_run_is_converged_and_right():
    est = run(num_groups=8, num_steps=10_000)
    d = est.diagnostics
    assert d["converged"] is True, d["warnings"]
    assert d["warnings"] == [] and d["unconverged_bins"] == [] and d["bin_converged"].all()
    assert d["round_trips_median"] >= 1
    assert diagnostics.stuck_walkers_p_value(d) >= 0.01   # walkers without a trip: no more than chance
    # With a swap round after every sweep, every walker makes trips (mean ~10 here, so a walker
    # without one has Poisson probability e^-10): the strict check of before the verdict change holds.
    assert d["round_trips_total"] > 0 and d["walkers_without_round_trip"] == 0
    assert d["round_trips_per_walker"].shape == (8, len(est.betas))
    assert d["weakest_swap_acceptance"] >= 0.1
    assert np.all(d["n_effective"] >= 10)
    exact = exact_log_rho()
    assert np.abs(est.log_rho - exact).max() <= 0.15
    assert np.all(np.abs(est.log_rho - exact) <= 4 * est.log_rho_stderr)
    # the groups' own ln rho and the two halves' ln rho (full free energies held fixed) are close too
    assert np.abs(d["log_rho_per_group"] - exact).max() <= 0.6
    assert np.abs(d["log_rho_first_half"] - exact).max() <= 0.3
    assert np.abs(d["log_rho_second_half"] - exact).max() <= 0.3


def test_ladder_with_a_gap_is_not_converged_and_names_the_pair():
    betas = np.array([-1.6, -1.55, -1.5, 0.0, 1.5, 1.55, 1.6])
    d = run(num_groups=4, num_steps=2_000, betas=betas, pilot_steps=100).diagnostics
    assert d["converged"] is False
    gap = [w for w in d["warnings"] if "rungs 3 and 4" in w]
    assert len(gap) == 1 and "beta 0 and 1.5" in gap[0], d["warnings"]
    assert d["weakest_pair"] in [(2, 3), (3, 4)] and d["weakest_swap_acceptance"] < 0.1
    assert not d["bin_converged"].any()  # a gap unlinks the normalisation of every bin


def test_run_without_round_trips_says_so(tmp_path):
    est = run(num_groups=4, num_steps=100, steps_per_block=100, pilot_steps=20)
    d = est.diagnostics
    assert d["round_trips_total"] == 0
    assert d["converged"] is False
    assert any("No walker completed a round trip" in w for w in d["warnings"]), d["warnings"]
    # the run outputs carry the verdict: rho.csv's converged column, rho.png written
    from experiments.workflows.results import convergence_summary, write_run_outputs
    paths = write_run_outputs(tmp_path, est, title="short run")
    rows = np.loadtxt(paths["rho.csv"], delimiter=",", skiprows=1)
    with open(paths["rho.csv"]) as f:
        assert f.readline().strip().split(",")[-1] == "converged"
    assert rows.shape == (est.num_bins, 6) and not rows[:, 5].any()
    summary = convergence_summary(est)
    assert summary["converged"] is False and summary["round_trips_total"] == 0
    from experiments.workflows.results import print_verdict
    lines = []
    print_verdict(est, out=lines.append)
    assert f"{summary['num_walkers']}/{summary['num_walkers']} walkers and 4/4 groups with none)" in lines[0], lines[0]
    # An estimate saved before the per-group count existed: the line says what it holds, no "?".
    del est.diagnostics["round_trips_per_group"], est.diagnostics["groups_without_round_trip"]
    lines = []
    print_verdict(est, out=lines.append)
    assert f"{summary['num_walkers']}/{summary['num_walkers']} walkers with none)" in lines[0], lines[0]
    assert "?" not in lines[0] and "groups" not in lines[0]


def test_verdict_on_synthetic_records():
    """The pure checks: disagreeing groups, a drifting half and an empty interior bin are named."""
    rng = np.random.default_rng(1)
    records, groups, walkers, bins = 400, 8, 4, 3
    log_w = np.zeros((records, groups, walkers))
    b = rng.integers(0, bins, size=log_w.shape)
    stats = diagnostics.group_statistics(log_w, b, bins)
    assert np.all(stats["group_agreement"] < 4) and np.all(np.abs(stats["drift_sigma"]) < 4.5)
    stuck = b.copy()
    stuck[:, :4] = np.where(rng.random((records, 4, walkers)) < 0.6, 0, stuck[:, :4])  # half the groups
    drift = b.copy()
    drift[records // 2:] = np.where(rng.random((records // 2, groups, walkers)) < 0.5, 2, drift[records // 2:])
    trips = diagnostics.round_trip_report(np.ones((groups, walkers), int))
    swaps = diagnostics.swap_report(np.full((groups, walkers - 1), 50), np.full((groups, walkers - 1), 100),
                                    np.arange(walkers, dtype=float))
    edges = np.arange(bins + 1.0)
    ok, warnings, _, _ = diagnostics.pt_verdict(trips, swaps, stats, np.arange(walkers), edges, [1, 1, 1])
    assert ok and warnings == []
    # Disagreeing groups distrust the bins they name; a drift, every bin (the run is out of equilibrium).
    for records_bins, phrase, every_bin in [(stuck, "groups disagree", False), (drift, "drifts", True)]:
        s = diagnostics.group_statistics(log_w, records_bins, bins)
        ok, warnings, named, run_wide = diagnostics.pt_verdict(trips, swaps, s, np.arange(walkers), edges,
                                                               [1, 1, 1])
        assert not ok and any(phrase in w for w in warnings), warnings
        assert run_wide is every_bin and named, (phrase, run_wide, named)
        assert diagnostics.bin_verdict(bins, named, run_wide).any() is not every_bin
    ok, warnings, named, _ = diagnostics.pt_verdict(trips, swaps, stats, np.arange(walkers), edges, [5, 0, 5])
    assert not ok and named == [1] and any("No sample fell in bin 1" in w for w in warnings)
    # An empty end bin: named (not run-wide), with how far that end of the ladder got when known.
    ends = diagnostics.ladder_end_report(np.array([[0.7, 2.2], [1.4, 2.9]]), np.array([[0, 3], [0, 3]]), walkers)
    assert ends == {"top_rung_highest_output": 2.9, "bottom_rung_lowest_output": 0.7}
    for counts, end, index, clause in [([0, 5, 5], "bottom", 0, "reached at least 0.7 (the bottom bin ends at 1)"),
                                       ([5, 5, 0], "top", 2, "reached at most 2.9 (the top bin starts at 2)")]:
        ok, warnings, named, run_wide = diagnostics.pt_verdict(trips, swaps, stats, np.arange(walkers), edges,
                                                               counts, ends=ends, stopped_pushing=(end,))
        said = [w for w in warnings if w.startswith(f"No sample fell in the {end} bin")]
        assert not ok and named == [index] and not run_wide and len(said) == 1 and len(warnings) == 1, warnings
        assert clause in said[0] and "did not move it closer" in said[0], said[0]
        _, warnings, _, _ = diagnostics.pt_verdict(trips, swaps, stats, np.arange(walkers), edges, counts)
        assert "reached" not in warnings[0] and "did not move it closer" not in warnings[0], warnings
