"""Read and write IDX files, the binary format of MNIST and its relatives (plain or gzip).

An IDX file is a 4-byte magic number, 0x00 0x00 <type> <ndim>, then ndim big-endian uint32
dimensions, then the values in row-major order. Only type 0x08 (unsigned byte) is supported:
it is the one MNIST, Fashion-MNIST, KMNIST, EMNIST and QMNIST use for images (ndim 3, magic
0x00000803) and labels (ndim 1, magic 0x00000801).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The uint8 array stored in an IDX file (gzip-compressed when the name ends in .gz).

    Raises ValueError naming the path when the magic number, the dimensions or the size is wrong.
    """
    path = Path(path)
    try:
        with _open(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: not a readable gzip file ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; "
                         f"expected 000008<ndim>, e.g. 00000803 for images, 00000801 for labels)")
    type_code, ndim = raw[2], raw[3]
    if type_code != UNSIGNED_BYTE:
        raise ValueError(f"{path}: IDX value type 0x{type_code:02x} is not supported (only 0x08, unsigned byte)")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header_size} for {ndim} dims)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {problem}: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip-compressed when the name ends in .gz)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX writing supports uint8 arrays only, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, UNSIGNED_BYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with _open(Path(path), "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())


def find_idx(directory: str | os.PathLike, name: str) -> Path | None:
    """The file `name` or `name.gz` in directory (plain preferred), or None when neither exists."""
    for candidate in (Path(directory) / name, Path(directory) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
