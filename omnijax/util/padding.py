"""Array lengths padded to a short list of sizes, so that calls on similar sizes share one compiled
program (XLA compiles a program per shape; a padded length makes nearby shapes one)."""

from __future__ import annotations

import math

import numpy as np


def padded_length(n: int) -> int:
    """A length >= n from a short list: the next power of two up to 2**16; above, the next multiple
    of a quarter of the power of two below n (at most 25% padding instead of 100%, where the padded
    work would cost more than a compile)."""
    n = max(int(n), 1)
    if n <= 1 << 16:
        return 1 << (n - 1).bit_length()
    step = 1 << (n.bit_length() - 1 - 2)
    return -(-n // step) * step


def padded_size(shape: tuple[int, ...]) -> int:
    """`padded_length` of the number of elements of `shape`."""
    return padded_length(math.prod(shape))


def pad_tail(values, fill, length: int | None = None):
    """numpy `values` with their last axis padded to `length` (default `padded_length` of it) with `fill`."""
    n = values.shape[-1]
    length = padded_length(n) if length is None else length
    tail = np.full(values.shape[:-1] + (length - n,), fill, values.dtype)
    return np.concatenate([values, tail], axis=-1)
