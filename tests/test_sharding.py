"""Replica exchange with its groups laid over 8 (forced CPU) devices gives the single-device result."""

import os
import subprocess
import sys

import numpy as np

from tests.xla_flags import host_devices_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_job(path, num_devices):
    env = host_devices_env(num_devices)
    subprocess.run([sys.executable, "-m", "tests.sharded_job", path], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return np.load(path)


def test_sharded_run_matches_single_device(tmp_path):
    one = run_job(str(tmp_path / "one.npz"), 1)
    eight = run_job(str(tmp_path / "eight.npz"), 8)
    assert int(one["devices"]) == 1 and int(eight["devices"]) == 8
    # Same walkers, same moves: every ladder slot and state is equal, outputs equal to float rounding.
    for name in ("slot", "record_step", "reps", "trips", "swap_accepts", "x"):
        np.testing.assert_array_equal(one[name], eight[name], err_msg=name)
    np.testing.assert_allclose(one["z"], eight["z"], rtol=1e-5, atol=1e-5)
    assert len(np.unique(one["slot"][-1, 0])) == 6 and one["swap_accepts"].min() > 0  # the run did swap
