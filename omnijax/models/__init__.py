"""Flax NNX models that take one-hot inputs, so the samplers' gradients are exact."""

from __future__ import annotations

from flax import nnx

from omnijax.models.cnn import CNN
from omnijax.models.functional import as_output_fn
from omnijax.models.mlp import MLP
from omnijax.models.resnet import ResNet

MODELS = {"mlp": MLP, "cnn": CNN, "resnet": ResNet}

__all__ = ["CNN", "MLP", "MODELS", "ResNet", "as_output_fn", "build_model"]


def build_model(name: str, input_shape: tuple[int, ...], num_categories: int, num_outputs: int = 1,
                seed: int = 0) -> nnx.Module:
    """A freshly initialised model of architecture `name` (a key of MODELS)."""
    if name not in MODELS:
        raise ValueError(f"unknown model={name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name](tuple(input_shape), num_categories, num_outputs=num_outputs, rngs=nnx.Rngs(seed))
