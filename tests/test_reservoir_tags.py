"""Representatives' provenance (issue #12 item 1): each kept input carries the walker it came
from and that walker's round trips at insertion; estimates report distinct walkers and round
trips per bin, and the verdict flags a bin whose representatives all come from one walker."""

import jax
import jax.numpy as jnp
import numpy as np

import omnijax as oj
from omnijax.sampling import diagnostics
from omnijax.sampling import reservoir as reservoir_lib


def test_tags_ride_with_their_inputs_and_do_not_change_what_is_kept():
    rng = np.random.default_rng(3)
    n, d, bins, capacity = 400, 6, 3, 5
    x = rng.integers(0, 4, (n, d)).astype(np.int32)          # many repeats: duplicates are offered
    z = rng.uniform(-0.2, 3.2, n).astype(np.float32)          # some fall outside the edges
    edges = jnp.array([0.0, 1.0, 2.0, 3.0])
    multipliers = jnp.asarray(reservoir_lib.hash_multipliers(d))
    # tag 0 is a function of the input, tag 1 of the offer: check both against what is kept
    code = (x * 4 ** np.arange(d)).sum(axis=1).astype(np.int32)
    tags = np.stack([code, np.arange(n, dtype=np.int32)], axis=1)
    key = jax.random.key(7)
    plain = reservoir_lib.insert(reservoir_lib.empty(bins, capacity, d), key, jnp.asarray(x), jnp.asarray(z),
                                 edges, multipliers)
    tagged = reservoir_lib.insert(reservoir_lib.empty(bins, capacity, d), key, jnp.asarray(x), jnp.asarray(z),
                                  edges, multipliers, jnp.asarray(tags))
    for field in ("x", "z", "priority", "hash"):  # same keep rule, same draws
        np.testing.assert_array_equal(np.asarray(getattr(plain, field)), np.asarray(getattr(tagged, field)))
    assert not np.asarray(plain.tags).any()  # default tags are zeros
    for b in range(bins):
        held_x, held_z = reservoir_lib.contents(tagged, b)
        held = reservoir_lib.held_tags(tagged, b)
        assert len(held_x) == capacity and held.shape == (capacity, 2)
        np.testing.assert_array_equal(held[:, 0], (held_x * 4 ** np.arange(d)).sum(axis=1))
        np.testing.assert_array_equal(x[held[:, 1]], held_x)   # the offer the input was kept from
        np.testing.assert_array_equal(z[held[:, 1]], held_z)


def test_representative_report_counts_distinct_walkers_and_trips():
    inf = np.inf
    tags = np.array([[[0, 0], [0, 1], [3, 1], [9, 9]],
                     [[2, 0], [2, 0], [2, 5], [0, 0]],
                     [[1, 1], [1, 1], [1, 1], [1, 1]]], np.int32)
    priority = np.array([[-1.0, -2.0, -0.5, inf], [-1.0, -1.5, -0.1, -3.0], [inf] * 4], np.float32)
    reps = diagnostics.representative_report(tags, priority)
    np.testing.assert_array_equal(reps["representative_count"], [3, 4, 0])
    np.testing.assert_array_equal(reps["representative_walkers"], [2, 2, 0])
    np.testing.assert_array_equal(reps["representative_round_trips"], [3, 3, 0])


def test_verdict_flags_a_bin_whose_representatives_come_from_one_walker():
    groups, walkers, bins = 8, 4, 3
    rng = np.random.default_rng(1)
    log_w = np.zeros((400, groups, walkers))
    stats = diagnostics.group_statistics(log_w, rng.integers(0, bins, size=log_w.shape), bins)
    trips = diagnostics.round_trip_report(np.ones((groups, walkers), int))
    swaps = diagnostics.swap_report(np.full((groups, walkers - 1), 50), np.full((groups, walkers - 1), 100),
                                    np.arange(walkers, dtype=float))
    edges = np.arange(bins + 1.0)

    def verdict(count, distinct):
        reps = {"representative_count": np.array(count), "representative_walkers": np.array(distinct),
                "representative_round_trips": np.array(distinct)}
        return diagnostics.pt_verdict(trips, swaps, stats, np.arange(walkers), edges, [1, 1, 1], reps)

    ok, warnings, named, _ = verdict([8, 8, 8], [3, 2, 5])
    assert ok and warnings == [] and named == []
    ok, warnings, named, _ = verdict([7, 8, 8], [1, 1, 2])    # 7 representatives: too few to judge
    assert not ok and named == [1]
    assert any("All representatives of bin 1 [1, 2) come from a single walker" in w for w in warnings), warnings


def test_replica_exchange_estimate_reports_representative_provenance():
    weights = np.random.default_rng(0).integers(1, 4, 12)
    space = oj.InputSpace(shape=(12,), num_categories=2)
    edges = np.arange(-0.5, weights.sum() + 1.0, 2.0)

    def output_fn(onehot):
        return jnp.sum(onehot[:, 1] * jnp.asarray(weights, jnp.float32))

    groups = 3
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), progress=False,
                                          num_groups=groups, num_steps=1_000, pilot_steps=200, reservoir_size=8)
    d = est.diagnostics
    num_walkers = groups * len(est.betas)
    tags = est.representative_tags
    assert tags.shape == est.representative_priority.shape + (2,)
    held = np.isfinite(est.representative_priority)
    filled = held.any(axis=1)
    assert filled.sum() >= 3
    walkers, trips = d["representative_walkers"], d["representative_round_trips"]
    assert walkers.shape == trips.shape == (est.num_bins,)
    assert np.all((walkers[filled] >= 1) & (walkers[filled] <= num_walkers)) and np.all(walkers[~filled] == 0)
    assert np.all(trips >= walkers) and np.all(trips <= held.sum(axis=1))
    assert walkers.max() > 1
    final_trips = np.asarray(d["round_trips"]).reshape(-1)
    for b in range(est.num_bins):
        provenance = est.representative_provenance(b)
        assert provenance.shape == (len(est.representatives(b)), 2)
        assert len(np.unique(provenance[:, 0])) == walkers[b]            # recount from the stored tags
        assert len({tuple(t) for t in provenance.tolist()}) == trips[b]
        if len(provenance):
            assert provenance[:, 0].min() >= 0 and provenance[:, 0].max() < num_walkers
            # a walker's round trips at insertion never exceed its count at the end of the run
            assert np.all((provenance[:, 1] >= 0) & (provenance[:, 1] <= final_trips[provenance[:, 0]]))
