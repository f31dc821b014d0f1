"""Convert the Fashion-MNIST test split of Debian's package `dataset-fashion-mnist` into fashion_mnist_test.npz.

The package (version 0.0~git20200523.55506a9-1, Debian bookworm; upstream
https://github.com/zalandoresearch/fashion-mnist) installs the four IDX files of Fashion-MNIST
in /usr/share/datasets/fashion-mnist/. Only the test split is used here (the OOD negatives of
the dataset-based table need no training images). The script checks that the two input files
are the ones this file was made from (sha256 below), reads them with omnijax.data.idx, and
writes `images` (10000, 28, 28) uint8 and `labels` (10000,) uint8 unchanged, with
numpy.savez_compressed. The package need not be installed; unpacking it is enough:

    cd /tmp && apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb /tmp/fmnist
    python -m omnijax.data.offline.convert_debian_fashion_mnist /tmp/fmnist/usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from omnijax.data.idx import read_idx

DEBIAN_PACKAGE = "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"
DEBIAN_PACKAGE_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
INPUT_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
OUTPUT = Path(__file__).with_name("fashion_mnist_test.npz")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(idx_dir: Path, output: Path = OUTPUT) -> list[int]:
    """Write the npz file from the checked IDX files in idx_dir; returns the number of images per label."""
    for name, expected in INPUT_SHA256.items():
        found = sha256_of(idx_dir / name)
        if found != expected:
            raise ValueError(f"{idx_dir / name}: sha256 {found}, expected {expected} (from {DEBIAN_PACKAGE}); "
                             "another release would need its own recorded digests")
    images = read_idx(idx_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(idx_dir / "t10k-labels-idx1-ubyte.gz")
    if images.shape != (10_000, 28, 28) or labels.shape != (10_000,):
        raise ValueError(f"expected 10,000 28x28 images and labels, got {images.shape} and {labels.shape}")
    np.savez_compressed(output, images=images, labels=labels)
    return np.bincount(labels, minlength=10).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("idx_dir", type=Path, help="the unpacked package's usr/share/datasets/fashion-mnist")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    counts = convert(args.idx_dir, args.output)
    with np.load(args.output) as stored:
        digests = {key: hashlib.sha256(stored[key].tobytes()).hexdigest() for key in ("images", "labels")}
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes): {sum(counts):,} images, per label {counts}; "
          f"sha256 of the arrays' bytes: {digests}")


if __name__ == "__main__":
    main()
