"""The paper's MLP (Appendix E): flattened one-hot input -> 128 hidden (ReLU) -> linear output."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from omnijax.models.functional import as_output_fn

__all__ = ["MLP", "as_output_fn"]


class MLP(nnx.Module):
    """num_outputs=1: one scalar logit (binary task); num_outputs>1: a logit vector."""

    def __init__(self, input_shape: tuple[int, ...], num_categories: int, hidden: int = 128,
                 num_outputs: int = 1, *, rngs: nnx.Rngs):
        fan_in = num_categories
        for size in input_shape:
            fan_in *= size
        self.num_outputs = num_outputs
        self.hidden = nnx.Linear(fan_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_outputs, rngs=rngs)

    def __call__(self, onehot: jnp.ndarray) -> jnp.ndarray:
        """ONE input's one-hot (*input_shape, K) -> scalar or (num_outputs,); vmap for batches."""
        h = nnx.relu(self.hidden(onehot.reshape(-1)))
        z = self.out(h)
        return z[0] if self.num_outputs == 1 else z
