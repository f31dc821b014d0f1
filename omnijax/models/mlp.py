"""The paper's MLP (Appendix E): flattened one-hot input -> 128 hidden (ReLU) -> one scalar."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    def __init__(self, input_shape: tuple[int, ...], num_categories: int, hidden: int = 128, *, rngs: nnx.Rngs):
        fan_in = num_categories
        for size in input_shape:
            fan_in *= size
        self.hidden = nnx.Linear(fan_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, onehot: jnp.ndarray) -> jnp.ndarray:
        """ONE input's one-hot (*input_shape, K) -> scalar; vmap for batches."""
        h = nnx.relu(self.hidden(onehot.reshape(-1)))
        return self.out(h)[0]


def as_output_fn(model: nnx.Module):
    """A pure function onehot -> z of the model's current parameters (for the samplers)."""
    graphdef, state = nnx.split(model)

    def output_fn(onehot):
        return nnx.merge(graphdef, state)(onehot)

    return output_fn
