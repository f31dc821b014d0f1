"""A small estimate run used by the resume test: `python -m tests.resume_job CHECKPOINT_DIR OUT.npz`."""

import sys

import jax
import numpy as np

import omnijax as oj
from tests.models import random_mlp

SPACE = oj.InputSpace(shape=(4, 4), num_categories=2)
EDGES = np.linspace(-4, 4, 17)
OPTIONS = dict(num_steps=6_000, steps_per_block=500, num_groups=4, reservoir_size=4, pilot_steps=200,
               num_bootstrap=20)


def run(checkpoint_dir, progress=False):
    output_fn = random_mlp(SPACE, seed=0, hidden=16, scale=2.0)
    return oj.estimate_output_distribution(output_fn, SPACE, EDGES, key=jax.random.key(7),
                                           checkpoint_dir=checkpoint_dir, progress=progress, **OPTIONS)


def as_arrays(est):
    return dict(log_rho=est.log_rho, stderr=est.log_rho_stderr, n=est.n_samples,
                reps=est.representative_inputs, prio=est.representative_priority,
                trips=est.diagnostics["round_trips"], swaps=est.diagnostics["swap_acceptance"])


if __name__ == "__main__":
    np.savez(sys.argv[2], **as_arrays(run(sys.argv[1])))
