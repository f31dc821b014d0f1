"""Flax NNX models that take one-hot inputs, so the samplers' gradients are exact.

The image models (MLP, CNN, ResNet) are built by `build_model`. The Hugging Face architectures
load checkpoints (config.json + model.safetensors, a local directory or a hub id) and take ONE
sequence of ids (L,) or token vectors (L, V): GPT2 (`load_gpt2`), Olmo (`load_olmo`), Bert
(`load_bert`, last hidden state) and DistilBertClassifier (`load_distilbert`, logits). Each also
has the embedding-input entry point token_embeddings(tokens) -> (L, d), apply_embeddings(e) and
embedding_matrix() -> (V, d).
"""

from __future__ import annotations

from flax import nnx

from omnijax.models.bert import Bert, load_bert
from omnijax.models.cnn import CNN
from omnijax.models.distilbert import DistilBertClassifier, load_distilbert
from omnijax.models.functional import as_output_fn
from omnijax.models.gpt2 import GPT2, load_gpt2
from omnijax.models.mlp import MLP
from omnijax.models.olmo import Olmo, load_olmo
from omnijax.models.resnet import ResNet

MODELS = {"mlp": MLP, "cnn": CNN, "resnet": ResNet}

__all__ = ["CNN", "GPT2", "MLP", "MODELS", "Bert", "DistilBertClassifier", "Olmo", "ResNet", "as_output_fn",
           "build_model", "load_bert", "load_distilbert", "load_gpt2", "load_olmo"]


def build_model(name: str, input_shape: tuple[int, ...], num_categories: int, num_outputs: int = 1,
                seed: int = 0) -> nnx.Module:
    """A freshly initialised model of architecture `name` (a key of MODELS)."""
    if name not in MODELS:
        raise ValueError(f"unknown model={name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name](tuple(input_shape), num_categories, num_outputs=num_outputs, rngs=nnx.Rngs(seed))
