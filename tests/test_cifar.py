"""CIFAR-10/100 (early appendix §I): the pickle and hub loaders, colour images through the models and
the pictures, and `python -m experiments.cifar` end to end on a synthetic CIFAR-10 directory."""

import csv
import json
import os
import pickle
import re
import subprocess
import sys
import time
import types

import jax
import matplotlib.image
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from omnijax.data import mnist
from omnijax.data.cifar import ColorImageDataset, DatasetUnavailable, load_cifar
from omnijax.models import MODELS, build_model
from omnijax.evaluation.plots import plot_representative_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RED, BLUE = (255, 0, 0), (0, 0, 255)
LEVELS = 2


def synthetic_images(count, seed):
    """Labels cycling over 0..8 (class 9 absent); class 0 a bright red square, class 1 a blue one,
    the others dim noise, all on a dark background."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 9
    images = rng.integers(0, 60, size=(count, 32, 32, 3), dtype=np.uint8)
    for label, colour in ((0, RED), (1, BLUE)):
        images[labels == label, 8:24, 8:24] = colour
    return images, labels


def write_cifar10(directory, per_batch=60, test_count=90):
    """The CIFAR-10 python-version layout: cifar-10-batches-py/data_batch_1..5 and test_batch,
    dicts with bytes keys and rows of 1024 red, 1024 green, 1024 blue bytes."""
    folder = directory / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for seed, file, count in [(i, f"data_batch_{i}", per_batch) for i in range(1, 6)] + [(9, "test_batch", test_count)]:
        images, labels = synthetic_images(count, seed)
        rows = images.transpose(0, 3, 1, 2).reshape(count, -1)
        with open(folder / file, "wb") as f:
            pickle.dump({b"batch_label": file.encode(), b"labels": labels.tolist(), b"data": rows,
                         b"filenames": [b"x.png"] * count}, f)
        written[file] = (images, labels)
    return written


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cifar")
    return directory, write_cifar10(directory)


@pytest.fixture
def hub_unreachable(monkeypatch):
    """The hub cannot be had: its endpoint refuses connections (and offline mode is off)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


# --- Loading -------------------------------------------------------------------------------------

def test_load_cifar10_from_pickles(cifar_dir):
    directory, written = cifar_dir
    train = load_cifar("cifar10", "train", data_dir=directory)
    assert isinstance(train, ColorImageDataset)
    assert train.images.shape == (300, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.num_classes == 10
    assert train.source == f"pickle: {directory / 'cifar-10-batches-py'}" and train.name == "cifar10-train"
    expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(train.images, expected)  # channels last, batches in order
    np.testing.assert_array_equal(train.labels, np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)]))
    assert tuple(train.images[0, 16, 16]) == RED and tuple(train.images[1, 16, 16]) == BLUE
    assert set(np.unique(train.labels)) == set(range(9))
    test = load_cifar("cifar10", "test", data_dir=directory / "cifar-10-batches-py")  # the folder itself
    assert len(test) == 90 and np.array_equal(test.images, written["test_batch"][0])
    assert mnist.quantize(train.images, 2)[0, 16, 16].tolist() == [1, 0, 0]  # levels per channel


def test_load_cifar100_reads_the_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images, _ = synthetic_images(5, seed=4)
    fine = [0, 99, 42, 7, 7]
    with open(folder / "test", "wb") as f:
        pickle.dump({b"data": images.transpose(0, 3, 1, 2).reshape(5, -1), b"fine_labels": fine,
                     b"coarse_labels": [0, 19, 3, 1, 1]}, f)
    test = load_cifar("cifar100", "test", data_dir=tmp_path)
    assert test.num_classes == 100 and test.labels.tolist() == fine and test.name == "cifar100-test"
    np.testing.assert_array_equal(test.images, images)


def test_missing_pickle_names_data_dir_and_file(tmp_path, cifar_dir):
    source, _ = cifar_dir
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for file in ["data_batch_1", "data_batch_2", "data_batch_4", "data_batch_5"]:
        (folder / file).write_bytes((source / "cifar-10-batches-py" / file).read_bytes())
    with pytest.raises(FileNotFoundError) as error:
        load_cifar("cifar10", "train", data_dir=tmp_path)
    message = str(error.value)
    assert message.startswith(f"data_dir {tmp_path} lacks cifar-10-batches-py/data_batch_3;")
    assert "cifar-10-batches-py/test_batch" not in message  # only the split's own files
    with pytest.raises(FileNotFoundError, match="lacks cifar-100-python/test; expected cifar-100-python/test"):
        load_cifar("cifar100", "test", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(f"data_dir {tmp_path / 'nowhere'} is not a directory")):
        load_cifar("cifar10", "test", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="name must be one of"):
        load_cifar("cifar20", "train", data_dir=tmp_path)


def test_without_data_dir_the_offline_machine_says_why_quickly(hub_unreachable):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as error:
        load_cifar("cifar100", "train")
    assert time.perf_counter() - start < mnist.HUB_PROBE_TIMEOUT_S + 2
    reason = error.value.reason
    assert reason.startswith("CIFAR-100 (train) is unavailable: no data_dir was given (a directory holding "
                             "cifar-100-python/train); hub uoft-cs/cifar100: ")
    assert "is not installed" in reason or "127.0.0.1:9) is unreachable" in reason


def test_hub_copy_is_read_from_its_own_columns(monkeypatch):
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    calls = []

    def load_dataset(repo_id, config=None, split=None):
        calls.append((repo_id, split))
        return {"img": [Image.fromarray(image, mode="RGB") for image in images], "fine_label": [5, 99, 0, 42]}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    test = load_cifar("cifar100", "test")
    assert calls == [("uoft-cs/cifar100", "test")]
    assert test.source == "hub: uoft-cs/cifar100 (test split)" and test.num_classes == 100
    np.testing.assert_array_equal(test.images, images)
    assert test.labels.tolist() == [5, 99, 0, 42]


# --- Colour images through the models and the pictures -------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_take_colour_onehot_images(name):
    """Every (channel, level) pair is an input of the model: shapes only, on an abstract model
    (traced, never initialised or compiled, to keep the test fast)."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: build_model(name, (32, 32, 3), 4, num_outputs=10)))
    logits = lambda state, onehot: nnx.merge(graphdef, state)(onehot)
    onehot = jax.ShapeDtypeStruct((32, 32, 3, 4), np.float32)
    assert jax.eval_shape(logits, state, onehot).shape == (10,)
    grad = jax.eval_shape(jax.grad(lambda state, x: logits(state, x)[0], argnums=1), state, onehot)
    assert grad.shape == (32, 32, 3, 4)


def test_representatives_of_colour_images_are_drawn_in_colour(tmp_path):
    red = np.zeros((1, 32, 32, 3), np.int32)
    red[..., 0] = LEVELS - 1
    path = tmp_path / "reps.png"
    plot_representative_images(path, [red], ["z≈0"], (32, 32, 3), per_row=1, num_categories=LEVELS)
    picture = matplotlib.image.imread(path)[..., :3]
    reddish = (picture[..., 0] > 0.9) & (picture[..., 1] < 0.1) & (picture[..., 2] < 0.1)
    assert reddish.sum() > 100


# --- The experiment script -----------------------------------------------------------------------

def run_cifar(*flags):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", HF_ENDPOINT="http://127.0.0.1:9")
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "experiments.cifar", "--preset=smoke", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_smoke_run_end_to_end(tmp_path, cifar_dir):
    directory, _ = cifar_dir
    workdir = tmp_path / "run"
    result = run_cifar(f"--data_dir={directory}", f"--workdir={workdir}", "--model=mlp", "--target_class=0")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("metrics.json", "rho.csv", "rho.png", "representatives.png", "samples.npz", "model/model.json"):
        assert os.path.getsize(workdir / name) > 0, name
    with open(workdir / "rho.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["bin_lo", "bin_hi", "log_rho", "log_rho_stderr", "n_samples", "converged"]
    lo, hi = np.array([[float(r["bin_lo"]), float(r["bin_hi"])] for r in rows]).T
    assert np.all(lo < hi) and np.allclose(lo[1:], hi[:-1], rtol=1e-5) and hi[-1] <= 0  # a log-softmax is <= 0
    log_rho = np.array([float(r["log_rho"]) for r in rows])
    n_samples = np.array([int(r["n_samples"]) for r in rows])
    assert n_samples.sum() > 0 and np.all(np.isfinite(log_rho[n_samples > 0]))
    samples = np.load(workdir / "samples.npz")
    inputs = samples["inputs"]
    assert inputs.shape[1:] == (32, 32, 3) and len(inputs) == len(samples["bin"]) > 0
    assert inputs.min() >= 0 and inputs.max() < LEVELS
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["dataset"] == "cifar10" and metrics["target_class"] == 0 and metrics["levels"] == LEVELS
    assert metrics["data_source"] == f"pickle: {directory / 'cifar-10-batches-py'}"
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_images"] == 90
    assert [row["negatives"] for row in metrics["traditional"]] == ["cifar10_other_classes"]
    assert 0 <= metrics["traditional"][0]["auroc"] <= 1
    assert "model: trained and saved" in result.stderr and "AUROC" in result.stdout


@pytest.mark.parametrize("data", ["none", "incomplete"])
def test_without_data_the_script_fails_and_writes_nothing(tmp_path, data):
    workdir = tmp_path / "run"
    flags = [f"--workdir={workdir}"]
    if data == "incomplete":
        (tmp_path / "cifar-10-batches-py").mkdir()
        flags.append(f"--data_dir={tmp_path}")
    result = run_cifar(*flags)
    assert result.returncode != 0
    assert "error: cannot run without CIFAR-10 data; nothing was written." in result.stderr
    if data == "none":
        assert "no data_dir was given" in result.stderr and "hub uoft-cs/cifar10: " in result.stderr
    else:
        assert f"data_dir {tmp_path} lacks cifar-10-batches-py/data_batch_1" in result.stderr
    assert not workdir.exists()
