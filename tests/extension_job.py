"""A small estimate whose run is extended for its round trips, used by the extension resume test:
`python -m tests.extension_job CHECKPOINT_DIR OUT.npz`."""

import sys

import jax
import numpy as np

import omnijax as oj
from benchmarks import accuracy_spaces
from tests import resume_job

NAME = "bits24"
OPTIONS = dict(num_steps=1_000, steps_per_block=200, num_groups=4, pilot_steps=200, reservoir_size=4,
               num_bootstrap=20)


def run(checkpoint_dir, progress=False, **options):
    output_fn, space, edges, _ = accuracy_spaces.exact_case(NAME)
    return oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(3),
                                           checkpoint_dir=checkpoint_dir, progress=progress,
                                           **{**OPTIONS, **options})


if __name__ == "__main__":
    np.savez(sys.argv[2], **resume_job.as_arrays(run(sys.argv[1])))
