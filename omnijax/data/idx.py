"""Read and write IDX files, the binary format of MNIST and its relatives (plain or gzip).

An IDX file is a 4-byte magic number, 0x00 0x00 <type> <ndim>, then ndim big-endian uint32
dimensions, then the values in row-major order. Types 0x08 (unsigned byte) and 0x0C (big-endian
int32) are supported: MNIST, Fashion-MNIST, KMNIST, EMNIST and QMNIST store images as 0x08
(ndim 3, magic 0x00000803) and labels as 0x08 (ndim 1, magic 0x00000801), except QMNIST's
labels, an int32 table of 8 columns per image (magic 0x00000C02), the class in the first.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08
INT32 = 0x0C
_DTYPES = {UNSIGNED_BYTE: np.dtype(np.uint8), INT32: np.dtype(">i4")}


def _open(path: Path, mode: str):
    return gzip.open(path, mode) if path.suffix == ".gz" else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzip-compressed when the name ends in .gz): uint8, or int32
    for type 0x0C.

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
    if type_code not in _DTYPES:
        raise ValueError(f"{path}: IDX value type 0x{type_code:02x} is not supported (only 0x08, unsigned byte, "
                         "and 0x0c, int32)")
    dtype = _DTYPES[type_code]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header_size} for {ndim} dims)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_size + dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {problem}: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 or int32 array as an IDX file (type 0x08 or 0x0C; gzip-compressed when the name ends in .gz)."""
    array = np.asarray(array)
    type_code = {np.dtype(np.uint8): UNSIGNED_BYTE, np.dtype(np.int32): INT32}.get(array.dtype)
    if type_code is None:
        raise ValueError(f"IDX writing supports uint8 and int32 arrays only, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with _open(Path(path), "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=_DTYPES[type_code]).tobytes())


def find_idx(directory: str | os.PathLike, name: str) -> Path | None:
    """The file `name` or `name.gz` in directory (plain preferred), or None when neither exists."""
    for candidate in (Path(directory) / name, Path(directory) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
