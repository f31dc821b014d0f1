"""Pure-function view of an NNX model, the form the samplers differentiate."""

from __future__ import annotations

import jax
from flax import nnx


def as_output_fn(model: nnx.Module):
    """A pure function onehot -> z of the model's current parameters (for the samplers)."""
    graphdef, state = nnx.split(model)

    def output_fn(onehot):
        return nnx.merge(graphdef, state)(onehot)

    return output_fn


def as_log_softmax_fn(model: nnx.Module, target_class: int):
    """onehot -> log softmax(logits)[target_class] of a multi-class model: the early appendix's
    target for evaluating one class of a multi-class classifier."""
    logits_fn = as_output_fn(model)

    def output_fn(onehot):
        return jax.nn.log_softmax(logits_fn(onehot))[target_class]

    return output_fn
