"""Models for the benchmarks (the trained MNIST models will live in omnijax/models/).

The MLP matches the paper's architecture on binary 28x28 images: the one-hot input
(28, 28, 2) is flattened into the first Dense layer, 1568 -> hidden -> 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from omnijax.sampling.spaces import InputSpace

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


class MLP(nnx.Module):
    """One-hot image -> Dense(hidden) -> activation -> Dense(1): one logit per image."""

    def __init__(self, space: InputSpace, hidden: int, activation: str, *, rngs: nnx.Rngs):
        fan_in = space.num_positions * space.num_categories
        self.hidden = nnx.Linear(fan_in, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 1, rngs=rngs)
        self.activation = ACTIVATIONS[activation]

    def __call__(self, onehot: jax.Array) -> jax.Array:
        h = self.activation(self.hidden(onehot.reshape(-1)))
        return self.out(h)[0]


def mlp_output_fn(space: InputSpace, hidden: int = 128, activation: str = "tanh", seed: int = 0,
                  impl: str = "function"):
    """output_fn(onehot (28, 28, 2)) -> scalar for a randomly initialised MLP.

    impl="function": plain jnp with closed-over weights; impl="nnx": the same network as a
    Flax NNX module, called through nnx.merge (both lower to the same XLA).
    """
    model = MLP(space, hidden, activation, rngs=nnx.Rngs(seed))
    if impl == "nnx":
        graphdef, params = nnx.split(model)
        return lambda onehot: nnx.merge(graphdef, params)(onehot)
    if impl != "function":
        raise ValueError(f"impl must be 'function' or 'nnx', got {impl!r}")
    w1, b1 = jnp.asarray(model.hidden.kernel[...]), jnp.asarray(model.hidden.bias[...])
    w2, b2 = jnp.asarray(model.out.kernel[...])[:, 0], jnp.asarray(model.out.bias[...])[0]
    act = ACTIVATIONS[activation]

    def output_fn(onehot):
        return act(onehot.reshape(-1) @ w1 + b1) @ w2 + b2

    return output_fn


MODELS = {
    "mlp_tanh": lambda space, impl: mlp_output_fn(space, 128, "tanh", impl=impl),
    "mlp_relu": lambda space, impl: mlp_output_fn(space, 128, "relu", impl=impl),
    # Wider, for seeing how the per-input sampler overhead weighs against a costlier model.
    "mlp_tanh_h512": lambda space, impl: mlp_output_fn(space, 512, "tanh", impl=impl),
}
