"""Small models and brute-force ground truth shared by the tests."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from omnijax.models.mlp import MLP
from omnijax.sampling.spaces import InputSpace


def random_mlp(space: InputSpace, seed: int, hidden: int = 8, scale: float = 1.0) -> MLP:
    """A random 2-layer tanh MLP on the one-hot input, no output bias: omnijax's own MLP (an NNX
    module, callable as output_fn(onehot) -> scalar) with weights w1 ~ N * scale / sqrt(D),
    b1 ~ N * 0.1, w2 ~ N * 2.0 drawn from jax.random.key(seed)."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    fan_in = space.num_positions * space.num_categories
    w1 = jax.random.normal(k1, (fan_in, hidden)) * scale / np.sqrt(space.num_positions)
    b1 = jax.random.normal(k2, (hidden,)) * 0.1
    w2 = jax.random.normal(k3, (hidden,)) * 2.0
    model = MLP(space.shape, space.num_categories, hidden, activation="tanh", output_bias=False,
                rngs=nnx.Rngs(0))
    model.set_weights(w1, b1, w2)
    return model


def all_inputs(space: InputSpace) -> np.ndarray:
    """Every input of the space (free positions in row-major order), flat int32 (N, D)."""
    free = space.free_positions
    values = np.array(list(itertools.product(range(space.num_categories), repeat=len(free))), np.int32)
    x = np.tile(space.frozen_values.reshape(-1), (len(values), 1)).astype(np.int32)
    x[:, free] = values
    return x


def outputs_of(output_fn, space: InputSpace, x_flat: np.ndarray) -> np.ndarray:
    onehot = jax.nn.one_hot(x_flat, space.num_categories).reshape((-1,) + space.onehot_shape)
    return np.asarray(jax.jit(jax.vmap(output_fn))(onehot), np.float64)


def state_index(x_flat: np.ndarray, space: InputSpace) -> np.ndarray:
    """Index of each input in the order of `all_inputs`."""
    free = space.free_positions
    weights = space.num_categories ** np.arange(len(free) - 1, -1, -1)
    return (np.asarray(x_flat)[..., free] * weights).sum(-1)


class BlockTableModel:
    """z = sum over blocks of a per-block lookup table of the block's pixel pattern.

    Written as the multilinear extension in the one-hot input (exact at every input,
    differentiable), so gradient proposals apply; integer table entries make the exact
    output distribution a convolution of per-block histograms — countable for spaces far
    too large to enumerate (40 pixels: 10^12 inputs, rho spanning > 10 decades).
    """

    def __init__(self, num_blocks: int, block_size: int, max_value: int, seed: int):
        rng = np.random.default_rng(seed)
        self.block_size = block_size
        self.tables = rng.integers(0, max_value + 1, size=(num_blocks, 2 ** block_size))
        self.space = InputSpace((num_blocks * block_size,), 2)
        bits = (np.arange(2 ** block_size)[:, None] >> np.arange(block_size - 1, -1, -1)) & 1
        self._patterns = jnp.asarray(bits)  # (P, block_size) pattern bits, MSB first

    def output_fn(self, onehot):
        blocks = onehot.reshape(self.tables.shape[0], self.block_size, 2)
        # prob of each pattern under the (relaxed) one-hot: product over the block's pixels.
        chosen = jnp.take_along_axis(blocks[:, None, :, :], self._patterns[None, :, :, None], axis=-1)[..., 0]
        weight = jnp.prod(chosen, axis=-1)  # (num_blocks, P)
        return jnp.sum(weight * jnp.asarray(self.tables, jnp.float32))

    def exact_counts(self) -> np.ndarray:
        """counts[v] = number of inputs with output exactly v (exact integers as float64 object sums)."""
        total = np.array([1], dtype=object)
        for table in self.tables:
            block = np.zeros(table.max() + 1, dtype=object)
            np.add.at(block, table, 1)
            total = np.convolve(total, block)
        return total
