"""The verdict's round-trip rule: every independent group must link the ends of its ladder.

Checked on its own (synthetic trips) and against ground truth on two exactly solvable spaces of
`benchmarks.accuracy_spaces`: the default call on bits64 is right within its error bars and now
says converged (the median walker there makes no trip, which the old rule refused), and a short
run on the deceptive trap space, whose error bars reach 3.4 standard errors at that length
(BUILD_NOTES.md, "The round-trip rule, calibrated on runs that miss"), says not converged.
"""

import jax
import numpy as np

import omnijax as oj
from benchmarks import accuracy_spaces as spaces
from omnijax.sampling import diagnostics


def _verdict(trips_per_walker):
    groups, walkers = trips_per_walker.shape
    rng = np.random.default_rng(1)
    b = rng.integers(0, 3, size=(400, groups, walkers))
    stats = diagnostics.group_statistics(np.zeros(b.shape), b, 3)
    swaps = diagnostics.swap_report(np.full((groups, walkers - 1), 50), np.full((groups, walkers - 1), 100),
                                    np.arange(walkers, dtype=float))
    trips = diagnostics.round_trip_report(trips_per_walker)
    return trips, diagnostics.pt_verdict(trips, swaps, stats, np.arange(walkers), np.arange(4.0), [1, 1, 1])


def test_a_group_without_a_round_trip_is_named_and_one_trip_per_group_suffices():
    per_walker = np.zeros((8, 4), int)
    per_walker[:, 0] = 2  # one walker per group links the ends twice: the median walker has none
    trips, (ok, warnings, _, run_wide) = _verdict(per_walker)
    assert trips["round_trips_median"] == 0 and trips["groups_without_round_trip"] == []
    assert ok and warnings == [], warnings
    per_walker[3] = 0
    per_walker[6] = 0
    trips, (ok, warnings, _, run_wide) = _verdict(per_walker)
    assert trips["groups_without_round_trip"] == [3, 6]
    assert trips["round_trips_per_group"].tolist() == [2, 2, 2, 0, 2, 2, 0, 2]
    assert not ok and run_wide
    assert any("2 of 8 independent groups" in w and "groups 3, 6" in w for w in warnings), warnings


def _default_call(name, **options):
    output_fn, space, edges, exact = spaces.exact_case(name)
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), progress=False,
                                          **options)
    both = np.isfinite(exact) & np.isfinite(est.log_rho)
    return est, np.abs(est.log_rho - exact)[both] / est.log_rho_stderr[both]


def test_default_call_on_bits64_is_right_and_says_converged():
    est, z = _default_call("bits64")
    d = est.diagnostics
    assert z.size >= 18 and np.max(z) <= 4, f"worst |error|/stderr {np.max(z):.2f}"
    assert d["groups_without_round_trip"] == [], d["round_trips_per_group"]
    assert d["converged"] is True, d["warnings"]


def test_short_run_on_the_trap_space_says_not_converged():
    est, _ = _default_call("trap16x6", num_steps=3_000)
    d = est.diagnostics
    assert d["converged"] is False
    assert any("round trip" in w for w in d["warnings"]), d["warnings"]
