"""One way to identify arrays by content: SHA-256 over their dtypes, shapes and bytes."""

from __future__ import annotations

import hashlib

import jax
import numpy as np


def digest_arrays(*arrays, prefix: bytes = b"") -> str:
    """Hex SHA-256 of `prefix` and each array's dtype, shape and values (PRNG keys by their data)."""
    hasher = hashlib.sha256(prefix)
    for array in arrays:
        if isinstance(array, jax.Array) and jax.dtypes.issubdtype(array.dtype, jax.dtypes.prng_key):
            array = jax.random.key_data(array)
        array = np.ascontiguousarray(np.asarray(array))
        hasher.update(f"{array.dtype}{array.shape}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()
