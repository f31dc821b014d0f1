"""Checkpoint directories in tests: what is saved there, whether it was left untouched, and
killing a job once it has saved something."""

import hashlib
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def directory_listing(directory):
    """Every file and folder under `directory`: relative path -> (size, mtime_ns, sha256)."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            digest = None
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(path, directory)] = (info.st_size, info.st_mtime_ns, digest)
    return found


def completed_checkpoints(directory):
    """Block indices of the finished (Orbax) checkpoints in `directory`, ascending."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


def kill_after_first_checkpoint(module: str, args, checkpoint_dir, timeout_s: float = 300):
    """Run `python -m module *args`, SIGKILL it as soon as `checkpoint_dir` holds a finished
    checkpoint, and return the checkpoints it left (asserting it was killed and had saved)."""
    job = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while not completed_checkpoints(checkpoint_dir) and time.time() < deadline and job.poll() is None:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL, f"{module} ended before it was killed"
    saved = completed_checkpoints(checkpoint_dir)
    assert saved, f"{module} never wrote a checkpoint"
    return saved
