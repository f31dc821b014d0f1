"""Discrete input spaces: every input is an integer array of `shape` with values in [0, K).

Some positions may be frozen to fixed values (e.g. `[CLS]` and `[SEP]` around a sentence);
samplers never change them and the space counts only the free positions.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.util.padding import padded_size


@dataclasses.dataclass(frozen=True, eq=False)
class InputSpace:
    """The set {0..K-1}^shape, with optional frozen positions.

    Args:
      shape: shape of one input (e.g. (28, 28) for an image, (L,) for a sequence).
      num_categories: K, the number of values each position takes (2 for binary pixels).
      frozen_mask: optional boolean array of `shape`; True marks a frozen position.
      frozen_values: integer array of `shape` giving the values of frozen positions
        (ignored where the mask is False). Required when `frozen_mask` is given.
    """

    shape: tuple[int, ...]
    num_categories: int
    frozen_mask: np.ndarray | None = None
    frozen_values: np.ndarray | None = None

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, int):
            shape = (shape,)
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError as err:
            raise ValueError(f"shape must be a tuple of positive ints, got {self.shape!r}") from err
        if not shape or any(s <= 0 for s in shape):
            raise ValueError(f"shape must be a non-empty tuple of positive ints, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        k = self.num_categories
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
            raise ValueError(f"num_categories must be an int >= 2, got {k!r}")
        object.__setattr__(self, "num_categories", int(k))
        if self.frozen_mask is None:
            if self.frozen_values is not None:
                raise ValueError("frozen_values was given without frozen_mask")
            mask = np.zeros(shape, dtype=bool)
            values = np.zeros(shape, dtype=np.int32)
        else:
            mask = np.asarray(self.frozen_mask)
            if mask.shape != shape or mask.dtype != bool:
                raise ValueError(
                    f"frozen_mask must be a boolean array of shape {shape}, got "
                    f"dtype {mask.dtype} shape {mask.shape}")
            if self.frozen_values is None:
                raise ValueError("frozen_mask was given without frozen_values")
            values = np.asarray(self.frozen_values)
            if values.shape != shape or not np.issubdtype(values.dtype, np.integer):
                raise ValueError(
                    f"frozen_values must be an integer array of shape {shape}, got "
                    f"dtype {values.dtype} shape {values.shape}")
            bad = mask & ((values < 0) | (values >= k))
            if bad.any():
                raise ValueError(
                    f"frozen_values must lie in [0, {k}) at frozen positions; "
                    f"position {tuple(np.argwhere(bad)[0])} holds {values[bad][0]}")
            if mask.all():
                raise ValueError("frozen_mask freezes every position: nothing to sample")
            values = np.where(mask, values, 0).astype(np.int32)
        mask.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "frozen_mask", mask)
        object.__setattr__(self, "frozen_values", values)

    @property
    def num_positions(self) -> int:
        return math.prod(self.shape)

    @property
    def num_free(self) -> int:
        return int(self.num_positions - self.frozen_mask.sum())

    @property
    def log_size(self) -> float:
        """ln of the number of inputs in the space (free positions only)."""
        return self.num_free * math.log(self.num_categories)

    @property
    def size(self) -> int:
        """Number of inputs in the space, as an exact Python int."""
        return self.num_categories ** self.num_free

    @property
    def onehot_shape(self) -> tuple[int, ...]:
        return self.shape + (self.num_categories,)

    @property
    def free_positions(self) -> np.ndarray:
        """Flat indices of the free positions, in row-major order."""
        return np.flatnonzero(~self.frozen_mask.reshape(-1)).astype(np.int32)

    def one_hot(self, x: jax.Array, dtype=jnp.float32) -> jax.Array:
        """Integer inputs (..., *shape) -> one-hot (..., *shape, K)."""
        return jax.nn.one_hot(x, self.num_categories, dtype=dtype)

    def apply_frozen(self, x: jax.Array) -> jax.Array:
        """Overwrite the frozen positions of integer inputs (..., *shape) with their values."""
        return jnp.where(self.frozen_mask, jnp.asarray(self.frozen_values, x.dtype), x)

    def random_inputs(self, key: jax.Array, num: int | None = None) -> jax.Array:
        """Uniformly random inputs, int32 of shape (num, *shape) (or `shape` if num is None).

        The categories are the first entries of one flat draw of a padded length (at least
        MIN_DRAW): under JAX's partitionable threefry (its default) they equal
        jax.random.randint(key, that shape, ...) bit for bit, while calls of nearby sizes, and
        every small call, share one compiled draw."""
        shape = (() if num is None else (int(num),)) + self.shape
        size = math.prod(shape)
        flat = _uniform_categories(key, max(padded_size(shape), MIN_DRAW), self.num_categories)
        return self.apply_frozen(flat[:size].reshape(shape))

    def check_inputs(self, x, name: str = "x") -> np.ndarray:
        """Validate integer inputs of shape (..., *shape); returns them as an int32 numpy array."""
        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be integer category indices, got dtype {arr.dtype}")
        if arr.shape[arr.ndim - len(self.shape):] != self.shape:
            raise ValueError(f"{name} must have trailing shape {self.shape}, got {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_categories):
            raise ValueError(f"{name} values must lie in [0, {self.num_categories})")
        if np.any(self.frozen_mask & (arr != self.frozen_values)):
            raise ValueError(f"{name} changes a frozen position")
        return arr.astype(np.int32)


# The smallest flat draw of `random_inputs`: an estimate's probe, pilot starts and group starts on a
# small space then share one compile (~0.3 s each on a 2-core CPU) for 3-6 ms a call (measured).
MIN_DRAW = 1 << 18


@functools.partial(jax.jit, static_argnums=(1, 2))
def _uniform_categories(key: jax.Array, size: int, num_categories: int) -> jax.Array:
    """`size` uniform categories in [0, num_categories), int32, flat."""
    return jax.random.randint(key, (size,), 0, num_categories, dtype=jnp.int32)
