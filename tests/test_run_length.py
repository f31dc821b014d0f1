"""`omnijax.sampling.run_length`: when a replica-exchange run goes on so that every group makes a
round trip, and for how long."""

import math

import numpy as np

from omnijax.sampling import run_length


def test_every_group_with_a_trip_stops():
    decision = run_length.extension([1, 3, 2, 5], steps=8_000, max_steps=40_000, block=1_000)
    assert decision.steps == 0 and decision.needed == 8_000


def test_no_trip_at_all_gives_no_rate():
    decision = run_length.extension([0, 0, 0], steps=8_000, max_steps=40_000, block=1_000)
    assert decision.steps == 0 and decision.needed == 0 and "no rate" in decision.reason


def test_extension_reaches_the_poisson_length_in_whole_blocks():
    trips = [2, 0, 1, 0, 3, 1, 0, 1]       # 8 trips in 8 groups over 8,000 sweeps; 3 groups without
    decision = run_length.extension(trips, steps=8_000, max_steps=40_000, block=1_000)
    rate = 8 / 8 / 8_000
    more = math.log(3 / run_length.EXPECTED_GROUPS_WITHOUT) / rate   # 14,334 sweeps
    assert decision.needed == 8_000 + math.ceil(more)
    assert decision.steps == 15_000        # whole blocks of 1,000
    assert "3 of 8 groups" in decision.reason and "extending by 15,000" in decision.reason
    # after it the 3 groups without a trip are expected to number at most one half
    assert 3 * np.exp(-rate * decision.steps) <= run_length.EXPECTED_GROUPS_WITHOUT


def test_a_first_prediction_beyond_max_steps_doubles_the_run_once():
    trips = [1] + [0] * 15                 # one trip: the whole run's rate predicts far beyond the cap
    decision = run_length.extension(trips, steps=8_000, max_steps=40_000, block=1_000)
    assert decision.needed > 40_000 and decision.steps == 8_000 and "first trips come late" in decision.reason
    # near the cap the probe is what is left of it, in whole blocks
    assert run_length.extension(trips, steps=8_000, max_steps=12_500, block=1_000).steps == 4_000


def test_later_decisions_use_the_last_extension_rate():
    before = np.array([1] + [0] * 15)
    after = np.array([3, 2, 4, 1, 2, 3, 0, 2, 1, 3, 2, 2, 1, 3, 2, 1])  # 31 trips in the 8,000-sweep extension
    decision = run_length.extension(after, steps=16_000, max_steps=40_000, block=1_000, since=(before, 8_000))
    rate = 31 / 16 / 8_000
    assert decision.needed == 16_000 + math.ceil(math.log(1 / run_length.EXPECTED_GROUPS_WITHOUT) / rate)
    assert decision.steps == 3_000 and "last extension's rate (31 trips in 8,000 sweeps)" in decision.reason


def test_an_extension_without_trips_or_beyond_the_cap_stops():
    before = np.array([1] + [0] * 15)
    stalled = run_length.extension(before, steps=16_000, max_steps=40_000, block=1_000, since=(before, 8_000))
    assert stalled.steps == 0 and "made no trip at all" in stalled.reason
    slow = run_length.extension(np.array([2] + [0] * 15), steps=16_000, max_steps=40_000, block=1_000,
                                since=(before, 8_000))
    assert slow.steps == 0 and slow.needed > 40_000 and "beyond max_steps=40,000" in slow.reason


def test_a_short_gap_still_adds_a_whole_block():
    # 15 of 16 groups have trips, rate high: the prediction is below one block
    decision = run_length.extension([9] * 15 + [0], steps=8_000, max_steps=40_000, block=1_000)
    assert decision.steps == 1_000
    # and no room left: the run ends as it is
    assert run_length.extension([9] * 15 + [0], steps=8_000, max_steps=8_500, block=1_000).steps == 0


def test_trips_counted_from_a_later_sweep_give_the_same_rate():
    trips = [2, 0, 1, 0, 3, 1, 0, 1]
    plain = run_length.extension(trips, steps=8_000, max_steps=40_000, block=1_000)
    shifted = run_length.extension(trips, steps=10_000, max_steps=42_000, block=1_000, counted_from=2_000)
    assert (shifted.steps, shifted.needed) == (plain.steps, plain.needed + 2_000)
