"""Pieces of the tiny Hugging Face model directories the experiment tests write: random weights moved
far enough from their init that z varies across sequences, and a word-level tokenizer.json."""

import os

import jax
from flax import nnx


def perturbed(model, scale: float, seed: int = 1):
    """`model` with `scale` times standard normal noise added to every parameter."""
    leaves, treedef = jax.tree.flatten(nnx.state(model, nnx.Param))
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    nnx.update(model, jax.tree.unflatten(treedef, [leaf + scale * jax.random.normal(k, leaf.shape)
                                                   for leaf, k in zip(leaves, keys)]))
    return model


def write_tokenizer(directory, vocab: int, special: dict):
    """A WordLevel tokenizer.json of `vocab` ids: special names where given, else w<i>."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {special.get(i, f"w{i}"): i for i in range(vocab)}
    tokenizer = Tokenizer(models.WordLevel(words, unk_token=special.get(1, "w1")))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(os.path.join(directory, "tokenizer.json"))
