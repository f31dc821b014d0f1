"""A replica-exchange run that ends with groups lacking a round trip goes on (`max_steps`,
`omnijax.sampling.run_length`): right against exact answers, resumable bit for bit, and off when
asked."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import omnijax as oj
from benchmarks import accuracy_spaces
from tests import extension_job, resume_job
from tests.directory_state import kill_after_first_checkpoint


def test_default_call_on_bits100_is_extended_right_and_converged():
    """The 100-bit space's default run left 4 of 16 groups without a trip (BUILD_NOTES.md); extended,
    every group has one, the verdict says converged and every bin is within 4 s.e. and 0.1 of exact."""
    output_fn, space, edges, exact = accuracy_spaces.exact_case("bits100")
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), progress=False)
    d = est.diagnostics
    assert d["extensions"] and all(e["steps"] > 0 for e in d["extensions"]), d["extension_stopped"]
    assert d["num_steps"] > 10_000 and d["num_steps"] <= d["max_steps"] == 40_000
    assert d["groups_without_round_trip"] == [] and d["converged"] is True, d["warnings"]
    counted = exact >= np.log(1e-12)
    assert np.isfinite(est.log_rho[counted]).all()
    err = np.abs(est.log_rho - exact)[counted]
    assert err.max() <= 0.1 and (err / est.log_rho_stderr[counted]).max() <= 4


def test_extended_run_killed_in_its_extension_resumes_bit_identical(tmp_path):
    ckpt = str(tmp_path / "ckpt")
    saved = kill_after_first_checkpoint("tests.extension_job", [ckpt, tmp_path / "unused.npz"],
                                        os.path.join(ckpt, "extension-1"))
    resumed = extension_job.run(ckpt)
    assert resumed.diagnostics["extensions"], "the job's run was not extended"
    steps = resumed.diagnostics["extensions"][0]["steps"]
    assert max(saved) < steps // extension_job.OPTIONS["steps_per_block"] - 1, "killed after the extension ended"
    uninterrupted = extension_job.run(str(tmp_path / "fresh"))
    assert resumed.diagnostics["num_steps"] == uninterrupted.diagnostics["num_steps"]
    got, want = resume_job.as_arrays(resumed), resume_job.as_arrays(uninterrupted)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_max_steps_equal_to_num_steps_never_extends():
    est = extension_job.run(None, max_steps=extension_job.OPTIONS["num_steps"])
    d = est.diagnostics
    assert d["extensions"] == [] and d["num_steps"] == extension_job.OPTIONS["num_steps"]
    assert d["groups_without_round_trip"] and d["converged"] is False
    assert any("not extended further" in w and "max_steps=1,000" in w for w in d["warnings"]), d["warnings"]


@pytest.mark.parametrize("value", [999, 0, 2.5])
def test_max_steps_below_num_steps_or_not_an_int_is_refused(value):
    with pytest.raises(ValueError, match="max_steps"):
        extension_job.run(None, max_steps=value)


def test_mnist_experiment_refuses_max_steps_below_its_steps(tmp_path):
    done = subprocess.run([sys.executable, "-m", "experiments.mnist", "--preset=smoke", "--max_steps=5",
                           f"--workdir={tmp_path / 'run'}"], cwd=os.path.dirname(os.path.dirname(__file__)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "--max_steps must be >= the run's 400 steps" in done.stderr
    assert not (tmp_path / "run").exists()
