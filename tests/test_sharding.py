"""Replica exchange with its groups laid over 8 (forced CPU) devices gives the single-device result."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_job(path, num_devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}", JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, "-m", "tests.sharded_job", path], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return np.load(path)


def test_sharded_run_matches_single_device(tmp_path):
    one = run_job(str(tmp_path / "one.npz"), 1)
    eight = run_job(str(tmp_path / "eight.npz"), 8)
    assert int(one["devices"]) == 1 and int(eight["devices"]) == 8
    np.testing.assert_array_equal(one["betas"], eight["betas"])
    np.testing.assert_array_equal(one["reps"], eight["reps"])
    np.testing.assert_array_equal(one["trips"], eight["trips"])
    np.testing.assert_allclose(one["log_rho"], eight["log_rho"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(one["stderr"], eight["stderr"], rtol=1e-4, atol=1e-5)
