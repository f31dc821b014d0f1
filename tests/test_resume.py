"""A run killed at any point resumes from its last checkpoint, bit-identical to an uninterrupted one."""

import os

import numpy as np
import pytest

from tests import resume_job
from tests.directory_state import completed_checkpoints, directory_listing, kill_after_first_checkpoint



def test_killed_run_resumes_bit_identical(tmp_path, capfd):
    """Killed first inside the ladder's burn-in, then (resumed) inside the recorded run."""
    ckpt = str(tmp_path / "ckpt")
    args = [ckpt, tmp_path / "unused.npz"]
    kill_after_first_checkpoint("tests.resume_job", args, os.path.join(ckpt, "burn-in-2"))
    assert completed_checkpoints(os.path.join(ckpt, "burn-in-1")), "the first adaptation stage left no checkpoint"
    pilot = directory_listing(os.path.join(ckpt, "pilot"))
    assert pilot, "the pilot left no checkpoint"
    saved = kill_after_first_checkpoint("tests.resume_job", args, ckpt)
    assert directory_listing(os.path.join(ckpt, "pilot")) == pilot, "the finished pilot was run again"
    num_blocks = resume_job.OPTIONS["num_steps"] // resume_job.OPTIONS["steps_per_block"]
    assert max(saved) < num_blocks - 1, "killed too late: the run had already finished"

    resumed = resume_job.as_arrays(resume_job.run(ckpt, progress=True))
    first_progress = capfd.readouterr().err.splitlines()
    resumed_line = next(line for line in first_progress if line.startswith("replica exchange"))
    assert f" {(max(saved) + 1) * resume_job.OPTIONS['steps_per_block']}/" in resumed_line, resumed_line

    uninterrupted = resume_job.as_arrays(resume_job.run(str(tmp_path / "fresh")))
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    resume_job.run(ckpt)
    before = completed_checkpoints(ckpt)
    import jax
    import omnijax as oj
    from tests.models import random_mlp
    with pytest.raises(ValueError, match="checkpoint_dir"):
        oj.estimate_output_distribution(random_mlp(resume_job.SPACE, seed=0, hidden=16, scale=2.0),
                                        resume_job.SPACE, resume_job.EDGES, key=jax.random.key(8),
                                        checkpoint_dir=ckpt, progress=False, **resume_job.OPTIONS)
    assert completed_checkpoints(ckpt) == before
