"""Flax NNX models that take one-hot inputs, so the samplers' gradients are exact."""
