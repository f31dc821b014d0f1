"""The runs of one estimate share their compiled programs (`replica_exchange_run.BlockPrograms`):
a run on shared programs that hold more records per block than it uses gives the records of a run
on programs of its own, bit for bit; the adaptation stages and the recorded run of a default call
compile one block per shape of walkers, not one per run; programs refuse a schedule they do not fit."""

import jax
import numpy as np
import pytest

import omnijax as oj
from omnijax.sampling import estimate as estimate_module
from omnijax.sampling import replica_exchange_run as rer
from omnijax.sampling.proposals import make_proposal
from omnijax.sampling.targets import check_output_fn, make_value_and_grad
from tests.models import random_mlp

SPACE = oj.InputSpace(shape=(10,), num_categories=2)
EDGES = np.linspace(-4, 4, 9)


def parts():
    target = check_output_fn(random_mlp(SPACE, seed=0, hidden=8, scale=2.0), SPACE)
    return target, make_value_and_grad(target, SPACE), make_proposal("gwg", SPACE)


def test_shared_programs_give_the_records_of_own_programs():
    target, vg, proposal = parts()
    betas = np.array([-1.0, 0.0, 0.5, 1.0])
    x0 = SPACE.random_inputs(jax.random.key(1), 2 * len(betas)).reshape(2, len(betas), -1)
    schedule = rer.Schedule(num_steps=60, steps_per_block=30, record_every=5, swap_every=1, burn_in=20)
    shared = rer.BlockPrograms(vg, proposal, EDGES, record_every=5, swap_every=1, max_records=20,
                               reservoir_capacity=4)
    runs = [rer.run_replica_exchange(jax.random.key(2), x0, betas, target, vg, proposal, EDGES, schedule,
                                     reservoir_capacity=4, progress=False, programs=programs)
            for programs in (None, shared)]
    for name in ("z", "slot", "record_step"):
        np.testing.assert_array_equal(getattr(runs[0], name), getattr(runs[1], name), err_msg=name)
    np.testing.assert_array_equal(runs[0].state.chains.x, runs[1].state.chains.x)
    np.testing.assert_array_equal(runs[0].reservoir.x, runs[1].reservoir.x)
    assert np.isfinite(runs[1].reservoir.priority).any()  # it kept representatives after the burn-in
    # A run that keeps none, on the same programs, compiles nothing more and leaves the reservoir empty.
    bare = rer.run_replica_exchange(jax.random.key(2), x0, betas, target, vg, proposal, EDGES, schedule,
                                    reservoir_capacity=0, progress=False, programs=shared)
    np.testing.assert_array_equal(bare.z, runs[1].z)
    assert not np.isfinite(bare.reservoir.priority).any()
    assert shared.block._cache_size() == 1


def test_programs_refuse_a_schedule_they_do_not_fit():
    _, vg, proposal = parts()
    programs = rer.BlockPrograms(vg, proposal, EDGES, record_every=5, swap_every=1, max_records=4,
                                 reservoir_capacity=4)
    with pytest.raises(ValueError, match="records per block"):
        programs.check(rer.Schedule(num_steps=50, steps_per_block=25, record_every=5, swap_every=1, burn_in=0), 4)
    with pytest.raises(ValueError, match="records every 10"):
        programs.check(rer.Schedule(num_steps=20, steps_per_block=20, record_every=10, swap_every=1, burn_in=0), 4)
    with pytest.raises(ValueError, match="reservoir_capacity"):
        programs.check(rer.Schedule(num_steps=20, steps_per_block=20, record_every=5, swap_every=1, burn_in=0), 8)


def test_stages_and_recorded_run_compile_one_block_per_shape(monkeypatch):
    built = {"shared": [], "own": []}
    real = rer.BlockPrograms

    def spy(kind):
        def make(*args, **kwargs):
            built[kind].append(real(*args, **kwargs))
            return built[kind][-1]
        return make

    monkeypatch.setattr(estimate_module, "BlockPrograms", spy("shared"))  # built by the estimate
    monkeypatch.setattr(rer, "BlockPrograms", spy("own"))                 # built by a run given none
    est = oj.estimate_output_distribution(random_mlp(SPACE, seed=0, hidden=8, scale=2.0), SPACE, EDGES,
                                          key=jax.random.key(0), num_steps=4_000, num_groups=4,
                                          progress=False, num_bootstrap=0)
    stages = est.diagnostics["ladder_stages"]
    assert len(stages) >= 2, "the burn-in must run adaptation stages for this test to mean anything"
    assert len(built["own"]) == 1  # the pilot only (other walkers, other shape)
    shapes = {len(s["betas"]) for s in stages} | {len(est.betas)}
    (programs,) = built["shared"]
    assert programs.block._cache_size() == len(shapes) < len(stages) + 1
