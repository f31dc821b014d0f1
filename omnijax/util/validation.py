"""Argument checks shared by the public entry points: clear ValueErrors that name the argument."""

from __future__ import annotations

import jax
import numpy as np


def check_positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_key(key, name: str = "key", allow_raw: bool = False) -> jax.Array:
    """One typed PRNG key, as made by jax.random.key(seed); with `allow_raw`, also a legacy raw
    uint32 key of shape (2,) from jax.random.PRNGKey(seed)."""
    typed = (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
             and key.shape == ())
    raw = allow_raw and isinstance(key, jax.Array) and key.dtype == np.uint32 and key.shape == (2,)
    if not (typed or raw):
        raise ValueError(f"{name} must be one typed PRNG key from jax.random.key(seed), got {key!r}")
    return key
