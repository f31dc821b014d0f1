"""Run a small estimate and save its arrays: `python -m tests.sharded_job OUT.npz` (used with 1 and 8 devices)."""

import sys

import jax
import numpy as np

import omnijax as oj
from tests.models import random_mlp

if __name__ == "__main__":
    space = oj.InputSpace(shape=(4, 4), num_categories=2)
    est = oj.estimate_output_distribution(
        random_mlp(space, seed=0, hidden=16, scale=2.0), space, np.linspace(-4, 4, 17), key=jax.random.key(3),
        num_steps=1_000, steps_per_block=500, num_groups=8, pilot_steps=200, num_bootstrap=10, progress=False)
    np.savez(sys.argv[1], devices=len(jax.devices()), log_rho=est.log_rho, stderr=est.log_rho_stderr,
             reps=est.representative_inputs, trips=est.diagnostics["round_trips"], betas=est.betas)
