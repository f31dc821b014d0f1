"""The paper's CNN (Appendix E): two 2-layer 3x3 conv blocks (32 and 128 channels) -> linear output.

Our reading of the unstated details: the one-hot categories are the K input channels (an
image with its own channel axis, e.g. RGB (H, W, 3), gets 3K: every (channel, category) pair);
convolutions use SAME padding and ReLU; each block ends with a 2x2 max-pool, so a 28x28
image becomes 7x7x128 features, flattened into one fully-connected output layer.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx

BLOCK_CHANNELS = (32, 128)


class ConvBlock(nnx.Module):
    """Two 3x3 SAME convolutions with ReLU, then a 2x2 max-pool (halves height and width)."""

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        self.first = nnx.Conv(in_channels, out_channels, (3, 3), padding="SAME", rngs=rngs)
        self.second = nnx.Conv(out_channels, out_channels, (3, 3), padding="SAME", rngs=rngs)

    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        h = nnx.relu(self.second(nnx.relu(self.first(h))))
        return nnx.max_pool(h, (2, 2), strides=(2, 2))


class CNN(nnx.Module):
    """num_outputs=1: one scalar logit (binary task); num_outputs>1: a logit vector."""

    def __init__(self, input_shape: tuple[int, ...], num_categories: int, num_outputs: int = 1,
                 *, rngs: nnx.Rngs):
        height, width, *image_channels = input_shape
        self.num_outputs = num_outputs
        blocks, channels = [], num_categories * math.prod(image_channels)
        for out_channels in BLOCK_CHANNELS:
            blocks.append(ConvBlock(channels, out_channels, rngs=rngs))
            channels, height, width = out_channels, height // 2, width // 2
        self.blocks = nnx.List(blocks)
        self.out = nnx.Linear(height * width * channels, num_outputs, rngs=rngs)

    def __call__(self, onehot: jnp.ndarray) -> jnp.ndarray:
        """ONE image's one-hot (H, W, [C,] K) -> scalar or (num_outputs,); vmap for batches."""
        h = onehot.reshape(onehot.shape[:2] + (-1,))  # fold image channels and categories together
        for block in self.blocks:
            h = block(h)
        z = self.out(h.reshape(-1))
        return z[0] if self.num_outputs == 1 else z
