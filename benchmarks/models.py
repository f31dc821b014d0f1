"""Models for the benchmarks: randomly initialised copies of omnijax's own MLP (omnijax/models/mlp.py).

The MLP matches the paper's architecture on binary 28x28 images: the one-hot input
(28, 28, 2) is flattened into the first Dense layer, 1568 -> hidden -> 1.
"""

from __future__ import annotations

from flax import nnx

from omnijax.models.mlp import MLP
from omnijax.sampling.spaces import InputSpace

IMPLS = ("function", "nnx")


def mlp_output_fn(space: InputSpace, hidden: int = 128, activation: str = "tanh", seed: int = 0) -> MLP:
    """A randomly initialised omnijax MLP (an NNX module; called on one one-hot input of `space`
    it returns one logit)."""
    return MLP(space.shape, space.num_categories, hidden, activation=activation, rngs=nnx.Rngs(seed))


def _model(hidden: int, activation: str):
    def build(space: InputSpace, impl: str = "nnx") -> MLP:
        # impl is the benchmark's --model_impl; both values now give the same NNX module.
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        return mlp_output_fn(space, hidden, activation)

    return build


MODELS = {
    "mlp_tanh": _model(128, "tanh"),
    "mlp_relu": _model(128, "relu"),
    # Wider, for seeing how the per-input sampler overhead weighs against a costlier model.
    "mlp_tanh_h512": _model(512, "tanh"),
}
