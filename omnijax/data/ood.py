"""Out-of-distribution test sets for the dataset-based comparison table, each reported if it cannot be had.

Every set is read first from a given data_dir holding its release's test IDX files (names in
OOD_SETS, plain or .gz), last from the Hugging Face hub. Between those, Fashion-MNIST is tried
from the Debian package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/) and then
from its 10,000 test images shipped with omnijax (offline/fashion_mnist_test.npz, see
offline/LICENSE-FASHION-MNIST.md), checked against their recorded sha256: so it is there on any
machine, and its hub copy is reached only when the shipped file is missing. A set that no source
provides raises DatasetUnavailable with the reason of every source tried; nothing is dropped or
replaced silently. Every ImageDataset names its source.

The hub ids below are public copies chosen for these sets. Only tanganke/kmnist was seen to exist
(features image/label, 10,000 test images); the others could not be checked from the offline
machine this was written on. A wrong or moved id shows up as "unavailable" with the hub's error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from omnijax.data.mnist import DatasetUnavailable, ImageDataset, load_hub_split, load_idx_dataset

OFFLINE_DIR = Path(__file__).with_name("offline")

__all__ = ["DatasetUnavailable", "OOD_SETS", "available_ood_sets", "load_ood", "load_shipped"]


@dataclasses.dataclass(frozen=True)
class ShippedFile:
    """A test split shipped with omnijax: an npz of `images` and `labels` (uint8) whose bytes have these sha256."""

    file: str
    images_sha256: str
    labels_sha256: str
    source: str


@dataclasses.dataclass(frozen=True)
class OodSet:
    """Where one OOD set's test split can be found."""

    title: str
    hub_id: str
    local_dir: str | None = None  # a system directory of the set's IDX files (e.g. from a Debian package)
    idx_files: tuple[str, str] | None = None  # test images and labels in local_dir or data_dir
    transposed: bool = False  # images stored with rows and columns swapped relative to MNIST
    label_column: int | None = None  # the labels file is a table; the class is in this column
    shipped: ShippedFile | None = None  # a copy of the test split in omnijax/data/offline/


OOD_SETS = {
    "fashion_mnist": OodSet("Fashion-MNIST", hub_id="zalando-datasets/fashion_mnist",
                            local_dir="/usr/share/datasets/fashion-mnist",
                            idx_files=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
                            shipped=ShippedFile(
                                "fashion_mnist_test.npz",
                                images_sha256="c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
                                labels_sha256="3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
                                source="offline: Fashion-MNIST test split shipped with omnijax (from Debian "
                                       "dataset-fashion-mnist 0.0~git20200523.55506a9-1)")),
    # KMNIST's MNIST-format release (rois-codh/kmnist) uses MNIST's file names.
    "kmnist": OodSet("KMNIST", hub_id="tanganke/kmnist",
                     idx_files=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
    # EMNIST's release (gzip.zip) stores every image transposed; its hub copy is taken to keep that layout.
    "emnist_byclass": OodSet("EMNIST ByClass", hub_id="ernestchu/emnist-byclass", transposed=True,
                             idx_files=("emnist-byclass-test-images-idx3-ubyte",
                                        "emnist-byclass-test-labels-idx1-ubyte")),
    # QMNIST's release (facebookresearch/qmnist) gives 8 int32 columns per image, the class first.
    "qmnist": OodSet("QMNIST", hub_id="community-datasets/qmnist", label_column=0,
                     idx_files=("qmnist-test-images-idx3-ubyte", "qmnist-test-labels-idx2-int")),
}


def load_shipped(name: str, shipped: ShippedFile) -> ImageDataset:
    """The shipped copy of a test split, after checking its arrays' sha256.

    Raises DatasetUnavailable naming the file when it is not there (e.g. a stripped install) or
    its content is not the recorded one.
    """
    path = OFFLINE_DIR / shipped.file
    if not path.is_file():
        raise DatasetUnavailable(f"the shipped file {path} is missing")
    with np.load(path) as stored:
        images, labels = stored["images"], stored["labels"]
    for key, array, expected in (("images", images, shipped.images_sha256),
                                 ("labels", labels, shipped.labels_sha256)):
        found = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        if found != expected:
            raise DatasetUnavailable(f"the shipped file {path} is damaged: its {key} have sha256 {found}, "
                                     f"expected {expected}")
    return ImageDataset(images, labels.astype(np.int64), shipped.source, name)


def load_ood(name: str, data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """The test split of OOD set `name` (a key of OOD_SETS) as 28x28 uint8 images.

    data_dir is a directory of this set's test IDX files (OOD_SETS[name].idx_files, e.g.
    t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] for Fashion-MNIST and KMNIST); it
    must not be MNIST's data_dir, whose files have the same names. The dataset's `source` names
    where it came from, and, when data_dir was given, why the sources tried before it were not
    used. Raises DatasetUnavailable, with every source's reason, when no source works.
    """
    if name not in OOD_SETS:
        raise DatasetUnavailable(f"unknown OOD set {name!r}; known sets: {', '.join(OOD_SETS)}")
    spec = OOD_SETS[name]
    reasons = []
    for attempt in _attempts(name, spec, data_dir):
        try:
            found = attempt()
        except (FileNotFoundError, DatasetUnavailable) as problem:  # a corrupt IDX file (ValueError) stays loud
            reasons.append(getattr(problem, "reason", str(problem)))
            continue
        if reasons and data_dir is not None:
            found = dataclasses.replace(found, source=f"{found.source} [not used: {'; '.join(reasons)}]")
        return found
    raise DatasetUnavailable(f"{spec.title} is unavailable: " + "; ".join(reasons))


def _attempts(name: str, spec: OodSet, data_dir):
    """The sources of one set in the order they are tried, each a function returning an ImageDataset."""
    if spec.idx_files is not None:
        for described_as, directory in (("data_dir", data_dir), (f"system directory for {spec.title}",
                                                                  spec.local_dir)):
            if directory is not None:
                yield lambda directory=directory, described_as=described_as: load_idx_dataset(
                    directory, *spec.idx_files, name=name, transpose=spec.transposed, described_as=described_as,
                    label_column=spec.label_column)
    if spec.shipped is not None:
        yield lambda: load_shipped(name, spec.shipped)
    yield lambda: _load_hub(name, spec)


def _load_hub(name: str, spec: OodSet) -> ImageDataset:
    images, labels = load_hub_split(spec.hub_id, "test")
    if spec.transposed:
        images = images.transpose(0, 2, 1).copy()
    return ImageDataset(images, labels, f"hub: {spec.hub_id} (test split)", name)


def available_ood_sets(names: Iterable[str],
                       data_dirs: Mapping[str, str | os.PathLike] | None = None) -> dict[str, ImageDataset | str]:
    """Each name mapped to its ImageDataset, or to the reason it is unavailable (for the report);
    data_dirs maps a set's name to its data_dir (see load_ood)."""
    loaded: dict[str, ImageDataset | str] = {}
    for name in names:
        try:
            loaded[name] = load_ood(name, (data_dirs or {}).get(name))
        except DatasetUnavailable as unavailable:
            loaded[name] = unavailable.reason
    return loaded
