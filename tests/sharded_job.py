"""Run replica exchange on a fixed ladder and save what it produced:
`python -m tests.sharded_job OUT.npz` (run with 1 and with 8 devices).

The kernel is called directly (no pilot run, no bootstrap): sharding lives in `run_replica_exchange`,
and everything downstream is a function of the records and the reservoir compared here.
"""

import sys

import jax
import numpy as np

import omnijax as oj
from omnijax.sampling.proposals import make_proposal
from omnijax.sampling.replica_exchange_run import Schedule, run_replica_exchange
from omnijax.sampling.targets import as_target, make_value_and_grad
from tests.models import random_mlp

if __name__ == "__main__":
    space = oj.InputSpace(shape=(4, 4), num_categories=2)
    output_fn = random_mlp(space, seed=0, hidden=16, scale=2.0)
    betas = oj.linear_ladder(0.0, 1.5, 6)
    num_groups = 8
    x0 = space.random_inputs(jax.random.key(1), num_groups * len(betas)).reshape(num_groups, len(betas), -1)
    target = as_target(output_fn)
    run = run_replica_exchange(jax.random.key(3), x0, betas, target, make_value_and_grad(target, space),
                        make_proposal("gwg", space), np.linspace(-4, 4, 17),
                        Schedule(num_steps=400, steps_per_block=200, burn_in=100), reservoir_capacity=8,
                        progress=False)
    np.savez(sys.argv[1], devices=len(jax.devices()), z=run.z, slot=run.slot, record_step=run.record_step,
             reps=run.reservoir.x, trips=run.state.round_trips, swap_accepts=run.state.swap_accepts,
             x=run.state.chains.x)
