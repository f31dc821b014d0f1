"""A small ResNet after the Gibbs-with-Gradients EBM ResNet (Grathwohl et al. 2021), on one-hot pixels.

Layout: a 3x3 conv maps the K one-hot channels to 3 channels (the paper's Appendix E; an
image with its own channel axis, e.g. RGB (H, W, 3), has 3K: every (channel, category) pair),
a 3x3 stem conv to `channels`, two stride-2 residual blocks (28x28 -> 14x14 -> 7x7), then
`num_plain_blocks` stride-1 residual blocks, a global mean pool and a linear output.
Residual blocks are two 3x3 SAME convs with Swish, as in GWG; a block that downsamples
takes its shortcut through a strided 1x1 conv. GWG uses 64 channels and 6 plain blocks
(601k parameters, ~74 MFLOP per 28x28 image); our defaults (24 channels, 2 plain blocks:
44k parameters, ~7.7 MFLOP) are ~10x cheaper, because the samplers evaluate the model and
its input gradient for many steps.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx

EMBED_CHANNELS = 3


class ResidualBlock(nnx.Module):
    """swish(conv2(swish(conv1(h))) + shortcut(h)); stride 2 halves height and width."""

    def __init__(self, channels: int, stride: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(channels, channels, (3, 3), strides=stride, padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, (3, 3), padding="SAME", rngs=rngs)
        self.shortcut = (nnx.Conv(channels, channels, (1, 1), strides=stride, rngs=rngs)
                         if stride != 1 else None)

    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        skip = h if self.shortcut is None else self.shortcut(h)
        return nnx.swish(self.conv2(nnx.swish(self.conv1(h))) + skip)


class ResNet(nnx.Module):
    """num_outputs=1: one scalar (logit or negative energy); num_outputs>1: a logit vector."""

    def __init__(self, input_shape: tuple[int, ...], num_categories: int, num_outputs: int = 1,
                 channels: int = 24, num_plain_blocks: int = 2, *, rngs: nnx.Rngs):
        # Convolutions and the global pool work for any height and width; only channels matter.
        in_channels = num_categories * math.prod(input_shape[2:])
        self.num_outputs = num_outputs
        self.embed = nnx.Conv(in_channels, EMBED_CHANNELS, (3, 3), padding="SAME", rngs=rngs)
        self.stem = nnx.Conv(EMBED_CHANNELS, channels, (3, 3), padding="SAME", rngs=rngs)
        strides = [2, 2] + [1] * num_plain_blocks
        self.blocks = nnx.List([ResidualBlock(channels, s, rngs=rngs) for s in strides])
        self.out = nnx.Linear(channels, num_outputs, rngs=rngs)

    def __call__(self, onehot: jnp.ndarray) -> jnp.ndarray:
        """ONE image's one-hot (H, W, [C,] K) -> scalar or (num_outputs,); vmap for batches."""
        h = onehot.reshape(onehot.shape[:2] + (-1,))  # fold image channels and categories together
        h = self.stem(self.embed(h))
        for block in self.blocks:
            h = block(h)
        z = self.out(h.mean(axis=(0, 1)))
        return z[0] if self.num_outputs == 1 else z
