"""CIFAR-10 and CIFAR-100 colour images for the multi-class evaluation (early appendix §I).

Sources, in the order `load_cifar` tries them:
1. `data_dir`, when given, and then nothing else: the "python version" release as unpacked from
   cifar-10-python.tar.gz (cifar-10-batches-py/data_batch_1..5, test_batch; labels b"labels")
   or cifar-100-python.tar.gz (cifar-100-python/train, test; the 100 fine labels b"fine_labels").
   data_dir may hold that folder or be it. The files are Python pickles: read only trusted copies.
2. the Hugging Face hub, through `load_hub_split`: the public copies chosen here are
   `uoft-cs/cifar10` (columns img, label) and `uoft-cs/cifar100` (columns img, fine_label),
   kept under the University of Toronto CS organisation. They could not be checked from the
   offline machine this was written on; a wrong or moved id shows up as DatasetUnavailable.
Without data_dir and without the hub, `load_cifar` raises DatasetUnavailable naming both.
Pixels stay uint8; `omnijax.data.mnist.quantize` turns them into K levels per channel.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np

from omnijax.data.mnist import DatasetUnavailable, load_hub_split

__all__ = ["CIFAR", "ColorImageDataset", "DatasetUnavailable", "IMAGE_SHAPE", "load_cifar"]

IMAGE_SHAPE = (32, 32, 3)
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class CifarRelease:
    """Where one CIFAR data set is found: its pickle files and its hub copy."""

    title: str
    num_classes: int
    folder: str                          # the folder its python-version tarball unpacks to
    files: dict[str, tuple[str, ...]]    # split -> pickle files, concatenated in this order
    label_key: bytes                     # the labels' key in each pickle
    hub_id: str
    hub_label_column: str


CIFAR = {
    "cifar10": CifarRelease("CIFAR-10", 10, "cifar-10-batches-py",
                            {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                            b"labels", "uoft-cs/cifar10", "label"),
    "cifar100": CifarRelease("CIFAR-100", 100, "cifar-100-python", {"train": ("train",), "test": ("test",)},
                             b"fine_labels", "uoft-cs/cifar100", "fine_label"),
}


@dataclasses.dataclass(frozen=True)
class ColorImageDataset:
    """RGB images (N, 32, 32, 3) uint8, int64 labels (N,) in [0, num_classes), and provenance."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    name: str
    num_classes: int

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{self.name}: images must be uint8 (N, 32, 32, 3), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.dtype != np.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"{self.name}: labels must be int64 ({len(self.images)},), got {self.labels.dtype} "
                             f"{self.labels.shape}")
        if len(self.labels) and not (0 <= self.labels.min() and self.labels.max() < self.num_classes):
            raise ValueError(f"{self.name}: labels must lie in [0, {self.num_classes}), got "
                             f"{self.labels.min()}..{self.labels.max()}")

    def __len__(self) -> int:
        return len(self.images)


def load_cifar(name: str, split: str, data_dir: str | os.PathLike | None = None) -> ColorImageDataset:
    """One split ("train" or "test") of `name` ("cifar10" or "cifar100").

    With data_dir: its pickle files, or FileNotFoundError naming data_dir and the files expected.
    Without: the hub copy, or DatasetUnavailable giving every source's reason.
    """
    if name not in CIFAR:
        raise ValueError(f"name must be one of {sorted(CIFAR)}, got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    release = CIFAR[name]
    if data_dir is not None:
        return _load_pickles(Path(data_dir), release, name, split)
    try:
        images, labels = load_hub_split(release.hub_id, split, image_column="img",
                                        label_column=release.hub_label_column)
    except DatasetUnavailable as unavailable:
        raise DatasetUnavailable(
            f"{release.title} ({split}) is unavailable: no data_dir was given (a directory holding "
            f"{_expected_files(release, split)}); hub {release.hub_id}: {unavailable.reason}") from None
    return ColorImageDataset(images, labels, f"hub: {release.hub_id} ({split} split)", f"{name}-{split}",
                             release.num_classes)


def _expected_files(release: CifarRelease, split: str) -> str:
    return ", ".join(f"{release.folder}/{file}" for file in release.files[split])


def _load_pickles(data_dir: Path, release: CifarRelease, name: str, split: str) -> ColorImageDataset:
    """The split from data_dir/<folder>/ (or data_dir itself when it is that folder)."""
    expected = f"{_expected_files(release, split)} ({release.title} python version)"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} is not a directory; expected it to hold {expected}")
    folder = data_dir / release.folder
    if not folder.is_dir() and all((data_dir / file).is_file() for file in release.files[split]):
        folder = data_dir
    missing = [file for file in release.files[split] if not (folder / file).is_file()]
    if missing:
        shown = ", ".join(str((folder / file).relative_to(data_dir)) for file in missing)
        raise FileNotFoundError(f"data_dir {data_dir} lacks {shown}; expected {expected}")
    parts = [_read_batch(folder / file, release.label_key) for file in release.files[split]]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return ColorImageDataset(images, labels, f"pickle: {folder}", f"{name}-{split}", release.num_classes)


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) and labels of one pickle; its rows hold 1024 red, then green, then blue bytes."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")  # written by Python 2: its str keys load as bytes
    absent = [key for key in (b"data", label_key) if key not in batch]
    if absent:
        raise ValueError(f"{path} lacks the key(s) {absent}; expected a CIFAR python-version batch")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: data is {data.dtype} {data.shape} with {len(labels)} labels; expected uint8 "
                         f"(n, 3072) and n labels")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels
