"""The same estimate across two processes (jax.distributed on 127.0.0.1, gloo CPU collectives,
2 forced host devices each) equals one process on 4 devices bit for bit, and resumes bit for
bit after both processes are SIGKILLed; a foreign checkpoint directory is still refused."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.directory_state import completed_checkpoints, directory_listing
from tests.xla_flags import host_devices_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARED = ("log_rho", "log_rho_stderr", "n_samples", "representatives", "pilot_z", "pilot_slot",
            "z", "slot", "record_step", "x", "trips", "swap_accepts", "reservoir_x")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp, name, process_id, num_processes, devices, port, checkpoint_dir, *mode):
    """Start one job process; its stderr goes to tmp/name.err. Returns (Popen, out path, err path)."""
    # The single process and process 0 reuse compiled programs across stages (only process 0 of
    # a pair writes the cache); results are identical with or without it.
    env = host_devices_env(devices, JAX_COMPILATION_CACHE_DIR=str(tmp / "jax_cache"),
                           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out, err = tmp / f"{name}.npz", tmp / f"{name}.err"
    with open(err, "wb") as stderr:
        job = subprocess.Popen([sys.executable, "-m", "tests.multihost_job", str(out), str(process_id),
                                str(num_processes), str(port), str(checkpoint_dir), *mode],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    return job, out, err


def start_pair(tmp, name, checkpoint_dir, *mode):
    port = free_port()
    return [start(tmp, f"{name}{i}", i, 2, 2, port, checkpoint_dir, *mode) for i in range(2)]


def tail(err, lines=25):
    text = [line for line in err.read_text(errors="replace").splitlines() if not line.startswith("[Gloo]")]
    return "\n".join(text[-lines:])


def finish(jobs, timeout=240):
    """Wait for every job; fail naming the process and showing its stderr if one failed."""
    for i, (job, _, err) in enumerate(jobs):
        try:
            rc = job.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other, _, _ in jobs:
                other.kill()
            pytest.fail(f"process {i} hung:\n{tail(err)}")
        assert rc == 0, f"process {i} exited {rc}:\n{tail(err)}"
    return [dict(np.load(out)) for _, out, _ in jobs]


def kill_pair_after_first_checkpoint(jobs, checkpoint_dir, timeout=240):
    """SIGKILL both processes as soon as a checkpoint is finished; the blocks saved by then."""
    deadline = time.time() + timeout
    while (not completed_checkpoints(checkpoint_dir) and time.time() < deadline
           and all(job.poll() is None for job, _, _ in jobs)):
        time.sleep(0.01)
    for job, _, _ in jobs:
        job.send_signal(signal.SIGKILL)
    for i, (job, _, err) in enumerate(jobs):
        assert job.wait() == -signal.SIGKILL, f"process {i} ended before it was killed:\n{tail(err)}"
    saved = completed_checkpoints(checkpoint_dir)
    assert saved, "the two processes never finished a checkpoint"
    return saved


def assert_same(expected, got, who):
    for name in COMPARED:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{who}: {name}")


def test_two_processes_equal_one_process_and_resume_after_both_are_killed(tmp_path):
    """One test, to keep to ~1 minute on 2 cores: the multi-process run is killed after its
    first checkpoint and resumed, and must then equal the uninterrupted single-process run in
    every record (those computed before the kill and after it, all by two processes)."""
    (expected,) = finish([start(tmp_path, "one", 0, 1, 4, 0, "-")])
    assert int(expected["processes"]) == 1 and int(expected["devices"]) == 4
    assert list(expected["local_groups"]) == [0, 1, 2, 3]
    # It sampled: most bins filled, and every neighbouring pair swapped somewhere.
    assert np.isfinite(expected["log_rho"]).sum() >= 4 and expected["swap_accepts"].sum(axis=0).min() > 0

    checkpoint_dir = tmp_path / "checkpoints"
    killed = start_pair(tmp_path, "killed", checkpoint_dir)
    saved = kill_pair_after_first_checkpoint(killed, checkpoint_dir)
    # Both processes wrote their shards of that checkpoint.
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(checkpoint_dir / str(max(saved)) / "state"))

    jobs = start_pair(tmp_path, "resumed", checkpoint_dir)
    results = finish(jobs)
    last = max(completed_checkpoints(checkpoint_dir))
    assert max(saved) < last, f"killed only after the last block ({saved}): nothing was resumed"
    for i, got in enumerate(results):
        assert int(got["processes"]) == 2 and int(got["devices"]) == 4
        assert_same(expected, got, f"resumed process {i} of 2")
    # The groups really were split: each process's devices held two of the four.
    assert [list(r["local_groups"]) for r in results] == [[0, 1], [2, 3]]
    # It resumed (its progress starts past 0 steps), and only process 0 printed progress.
    first = re.search(r"replica exchange \[[#.]*\] (\d+)/", jobs[0][2].read_text())
    assert first and int(first.group(1)) > 0, tail(jobs[0][2])
    assert "replica exchange [" not in jobs[1][2].read_text()

    # Another run is refused by both processes; the directory is left as it was.
    before = directory_listing(checkpoint_dir)
    for i, (job, _, err) in enumerate(start_pair(tmp_path, "foreign", checkpoint_dir, "foreign")):
        assert job.wait(timeout=240) != 0, f"process {i} accepted a foreign checkpoint"
        assert "ValueError: checkpoint_dir=" in err.read_text(), tail(err)
    assert directory_listing(checkpoint_dir) == before
