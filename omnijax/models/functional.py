"""Pure-function view of an NNX model, the form the samplers differentiate."""

from __future__ import annotations

from flax import nnx


def as_output_fn(model: nnx.Module):
    """A pure function onehot -> z of the model's current parameters (for the samplers)."""
    graphdef, state = nnx.split(model)

    def output_fn(onehot):
        return nnx.merge(graphdef, state)(onehot)

    return output_fn
