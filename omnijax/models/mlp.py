"""The paper's MLP (Appendix E): flattened one-hot input -> hidden layer -> linear output.

The one MLP of the project: the trained MNIST models (ReLU, 128 hidden, the default), the
benchmarks' random MLPs (benchmarks/models.py) and the tests' random tanh MLPs
(tests/models.py `random_mlp`, no output bias, weights set with `set_weights`) are all this
module.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from omnijax.models.functional import as_output_fn

__all__ = ["ACTIVATIONS", "MLP", "as_output_fn"]

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


class MLP(nnx.Module):
    """num_outputs=1: one scalar logit (binary task); num_outputs>1: a logit vector.

    activation: "relu" (the paper's, default) or "tanh". output_bias=False drops the output
    layer's bias (its kernel alone maps the hidden layer to the outputs).
    """

    def __init__(self, input_shape: tuple[int, ...], num_categories: int, hidden: int = 128,
                 num_outputs: int = 1, *, activation: str = "relu", output_bias: bool = True,
                 rngs: nnx.Rngs):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        fan_in = num_categories
        for size in input_shape:
            fan_in *= size
        self.num_outputs = num_outputs
        self.activation = activation
        self.hidden = nnx.Linear(fan_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_outputs, use_bias=output_bias, rngs=rngs)

    def __call__(self, onehot: jnp.ndarray) -> jnp.ndarray:
        """ONE input's one-hot (*input_shape, K) -> scalar or (num_outputs,); vmap for batches."""
        h = ACTIVATIONS[self.activation](self.hidden(onehot.reshape(-1)))
        z = self.out(h)
        return z[0] if self.num_outputs == 1 else z

    def set_weights(self, hidden_kernel, hidden_bias, out_kernel, out_bias=None) -> None:
        """Replaces the parameters: hidden_kernel (fan_in, hidden), hidden_bias (hidden,),
        out_kernel (hidden, num_outputs) — or (hidden,) when num_outputs is 1 — and out_bias
        (num_outputs,), which must be None exactly when the module has no output bias."""
        out_kernel = jnp.asarray(out_kernel)
        if out_kernel.ndim == 1:
            out_kernel = out_kernel[:, None]
        has_bias = self.out.bias is not None
        if (out_bias is not None) != has_bias:
            raise ValueError(f"out_bias must be {'given' if has_bias else 'None'}: this MLP was built with "
                             f"output_bias={has_bias}")
        new = [(self.hidden.kernel, hidden_kernel, "hidden_kernel"), (self.hidden.bias, hidden_bias, "hidden_bias"),
               (self.out.kernel, out_kernel, "out_kernel")]
        if has_bias:
            new.append((self.out.bias, out_bias, "out_bias"))
        for param, value, name in new:
            value = jnp.asarray(value, param[...].dtype)
            if value.shape != param[...].shape:
                raise ValueError(f"{name} must have shape {param[...].shape}, got {value.shape}")
        for param, value, _ in new:
            param[...] = jnp.asarray(value, param[...].dtype)
