"""A Wang–Landau estimate run used by the SIGKILL resume test (tests/test_checkpoint_refusal.py):
`python -m tests.kill_resume_job CHECKPOINT_DIR`. The space has frozen positions, so the
restored state must also keep them."""

import sys

import jax
import numpy as np

import omnijax as oj
from tests.models import random_mlp

MASK = np.zeros(14, bool)
MASK[[0, 5]] = True
SPACE = oj.InputSpace((14,), 2, frozen_mask=MASK, frozen_values=MASK.astype(np.int32))
EDGES = np.linspace(-6.0, 3.0, 13)
OPTIONS = dict(method="wang_landau", num_groups=4, walkers_per_group=4, num_steps=6_000, steps_per_block=500,
               check_every=100, reservoir_size=4, num_probe=512)


def run(checkpoint_dir, progress=False):
    return oj.estimate_output_distribution(random_mlp(SPACE, seed=2), SPACE, EDGES, key=jax.random.key(5),
                                           checkpoint_dir=checkpoint_dir, progress=progress, **OPTIONS)


def as_arrays(est):
    d = est.diagnostics
    return dict(log_rho=est.log_rho, stderr=est.log_rho_stderr, n=est.n_samples, reps=est.representative_inputs,
                prio=est.representative_priority, reps_z=est.representative_z, log_f=d["final_log_f"],
                halvings=d["halvings"], acceptance=d["acceptance"], per_group=d["log_rho_per_group"],
                beta_clip=np.asarray(d["beta_clip"]))


if __name__ == "__main__":
    run(sys.argv[1])
