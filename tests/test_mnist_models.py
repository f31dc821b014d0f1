"""`python -m experiments.mnist --preset=smoke` end to end for the other models, the generative
training and the multiclass task (a separate file so that test workers share the load)."""

import csv
import os

import pytest

from tests.mnist_runs import check_outputs, completed


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
