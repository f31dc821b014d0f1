"""Out-of-distribution test sets for the dataset-based comparison table, each reported if it cannot be had.

Fashion-MNIST comes from IDX files (a given data_dir, else the Debian package
`dataset-fashion-mnist` in /usr/share/datasets/fashion-mnist/), else the hub. KMNIST, EMNIST
ByClass and QMNIST come from the Hugging Face hub only. A set that no source provides raises
DatasetUnavailable with the reason of every source tried; nothing is dropped or replaced silently.

The hub ids below are public copies chosen for these sets. Only tanganke/kmnist was seen to exist
(features image/label, 10,000 test images); the others could not be checked from the offline
machine this was written on. A wrong or moved id shows up as "unavailable" with the hub's error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from omnijax.data.mnist import DatasetUnavailable, ImageDataset, load_hub_split, load_idx_dataset

__all__ = ["DatasetUnavailable", "OOD_SETS", "available_ood_sets", "load_ood"]


@dataclasses.dataclass(frozen=True)
class OodSet:
    """Where one OOD set's test split can be found."""

    title: str
    hub_id: str
    local_dir: str | None = None  # a system directory of the set's IDX files (e.g. from a Debian package)
    idx_files: tuple[str, str] | None = None  # test images and labels in local_dir or data_dir
    transposed: bool = False  # images stored with rows and columns swapped relative to MNIST


OOD_SETS = {
    "fashion_mnist": OodSet("Fashion-MNIST", hub_id="zalando-datasets/fashion_mnist",
                            local_dir="/usr/share/datasets/fashion-mnist",
                            idx_files=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
    "kmnist": OodSet("KMNIST", hub_id="tanganke/kmnist"),
    # EMNIST's release stores every image transposed; its hub copy is taken to keep that layout.
    "emnist_byclass": OodSet("EMNIST ByClass", hub_id="ernestchu/emnist-byclass", transposed=True),
    "qmnist": OodSet("QMNIST", hub_id="community-datasets/qmnist"),
}


def load_ood(name: str, data_dir: str | os.PathLike | None = None) -> ImageDataset:
    """The test split of OOD set `name` (a key of OOD_SETS) as 28x28 uint8 images.

    data_dir is a directory of Fashion-MNIST test IDX files (t10k-images-idx3-ubyte[.gz],
    t10k-labels-idx1-ubyte[.gz]); it must not be MNIST's data_dir, whose files have the same names.
    The other sets ignore it. Raises DatasetUnavailable, with every source's reason, when no source works.
    """
    if name not in OOD_SETS:
        raise DatasetUnavailable(f"unknown OOD set {name!r}; known sets: {', '.join(OOD_SETS)}")
    spec = OOD_SETS[name]
    reasons = []
    if spec.idx_files is not None:
        directories = [("data_dir", data_dir), (f"system directory for {spec.title}", spec.local_dir)]
        for described_as, directory in directories:
            if directory is None:
                continue
            try:
                return load_idx_dataset(directory, *spec.idx_files, name=name, transpose=spec.transposed,
                                        described_as=described_as)
            except FileNotFoundError as missing:
                reasons.append(str(missing))
    try:
        images, labels = load_hub_split(spec.hub_id, "test")
    except DatasetUnavailable as unavailable:
        reasons.append(unavailable.reason)
        raise DatasetUnavailable(f"{spec.title} is unavailable: " + "; ".join(reasons)) from None
    if spec.transposed:
        images = images.transpose(0, 2, 1).copy()
    return ImageDataset(images, labels, f"hub: {spec.hub_id} (test split)", name)


def available_ood_sets(names: Iterable[str],
                       data_dir: str | os.PathLike | None = None) -> dict[str, ImageDataset | str]:
    """Each name mapped to its ImageDataset, or to the reason it is unavailable (for the report)."""
    loaded: dict[str, ImageDataset | str] = {}
    for name in names:
        try:
            loaded[name] = load_ood(name, data_dir)
        except DatasetUnavailable as unavailable:
            loaded[name] = unavailable.reason
    return loaded
