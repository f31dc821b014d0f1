"""Running `python -m experiments.mnist --preset=smoke` as a user does (a subprocess) and checking
the files it leaves; shared by the MNIST experiment tests."""

import csv
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_mnist(*flags, timeout=600):
    # The session's JAX compilation cache (tests/conftest.py) comes with os.environ: a rerun of
    # the same job compiles nothing.
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "experiments.mnist", "--preset=smoke", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def completed(workdir, *flags):
    result = run_mnist(f"--workdir={workdir}", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def check_outputs(workdir, num_categories=2):
    """The files a researcher reads exist and are well-formed; returns metrics.json."""
    for name in ("metrics.json", "rho.csv", "rho.png", "representatives.png", "samples.npz", "traditional.csv",
                 "model/model.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    with open(os.path.join(workdir, "rho.csv")) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["bin_lo", "bin_hi", "log_rho", "log_rho_stderr", "n_samples", "converged"]
    lo, hi = np.array([[float(r["bin_lo"]), float(r["bin_hi"])] for r in rows]).T
    assert np.all(lo < hi) and np.allclose(lo[1:], hi[:-1], rtol=1e-5)
    log_rho = np.array([float(r["log_rho"]) for r in rows])
    n_samples = np.array([int(r["n_samples"]) for r in rows])
    assert n_samples.sum() > 0
    assert np.all(np.isfinite(log_rho[n_samples > 0])), "rho must be finite wherever samples exist"
    assert np.all(log_rho[np.isfinite(log_rho)] <= 1e-6), "ln of a fraction of inputs is <= 0"
    samples = np.load(os.path.join(workdir, "samples.npz"))
    assert samples["inputs"].shape[1:] == (28, 28) and len(samples["inputs"]) == len(samples["bin"]) > 0
    assert samples["inputs"].min() >= 0 and samples["inputs"].max() < num_categories
    with open(os.path.join(workdir, "traditional.csv")) as f:
        table = list(csv.DictReader(f))
    scored = [row for row in table if row["status"] == "ok"]
    assert scored, "at least the MNIST negatives are always available"
    for row in scored:
        assert 0 <= float(row["aupr"]) <= 1 and 0 <= float(row["auroc"]) <= 1 and 0 <= float(row["fpr95"]) <= 1
    for row in table:  # an OOD set that cannot be had is listed with the reason, never dropped
        assert row["status"] == "ok" or row["status"].startswith("unavailable: ")
    assert {row["negatives"] for row in table} >= {"fashion_mnist", "kmnist", "emnist_byclass", "qmnist"}
    with open(os.path.join(workdir, "metrics.json")) as f:
        return json.load(f)
