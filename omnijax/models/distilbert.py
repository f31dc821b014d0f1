"""DistilBERT sequence classifier (Hugging Face's `DistilBertForSequenceClassification`) in Flax
NNX, with a loader for HF checkpoints (e.g. distilbert-base-uncased-finetuned-sst-2-english).

Architecture: word + learned position embeddings, LayerNorm (eps 1e-12); `n_layers` post-LN
blocks  h = LN(h + out_lin(attention(h))),  h = LN(h + lin2(act(lin1(h))))  with bidirectional
multi-head self-attention (q_lin, k_lin, v_lin): BERT's `PostLNEncoderBlock` under DistilBERT's
parameter names; then, on the first token's hidden state, pre_classifier -> ReLU -> classifier:
logits (num_labels,). Dropout is absent (inference).

Inputs are ONE sequence (no batch axis) with an all-ones attention mask: ids (L,) or one-hot /
real token vectors (L, V) (embedded by a matmul, so gradients w.r.t. the tokens exist).
Embedding-input entry point (same names on GPT2, Olmo, Bert): `token_embeddings(tokens)` ->
(L, dim) rows of the word-embedding matrix, before positions; `apply_embeddings(e)` -> logits;
`embedding_matrix()` -> (V, dim). bf16 (`dtype=jnp.bfloat16`): parameters and activations bf16,
LayerNorms, softmax and the classifier's accumulation float32; logits returned float32.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from omnijax.models import hf_checkpoint
from omnijax.models.bert import (ACTIVATIONS, LayerNorm, Linear, PostLNEncoderBlock, block_layout, check_embeddings,
                                 normal_param, token_vectors_to_embeddings)

__all__ = ["DistilBertClassifier", "DistilBertConfig", "DistilBertLoadError", "load_distilbert", "save_distilbert"]

LAYER_NORM_EPS = 1e-12  # fixed in Hugging Face's DistilBERT


class DistilBertLoadError(ValueError):
    """A DistilBERT checkpoint could not be found, read, or matched to the architecture."""


CHECKPOINT = hf_checkpoint.CheckpointKind(
    name="DistilBERT sequence classifier", error=DistilBertLoadError, model_type="distilbert",
    architectures=("DistilBertForSequenceClassification",), prefixes=("distilbert.",))


@dataclasses.dataclass(frozen=True)
class DistilBertConfig:
    """Sizes of a DistilBERT classifier; field names follow Hugging Face's `DistilBertConfig`
    (num_labels: the number of entries of its id2label; label_names: its values in label order,
    e.g. ("NEGATIVE", "POSITIVE") for SST-2, None for LABEL_0, LABEL_1, ...)."""

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    activation: str = "gelu"
    num_labels: int = 2
    sinusoidal_pos_embds: bool = False  # only recorded: the position table is loaded either way
    pad_token_id: int | None = 0
    label_names: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("vocab_size", "max_position_embeddings", "n_layers", "n_heads", "dim", "hidden_dim",
                     "num_labels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r} is not supported; supported: "
                             f"{', '.join(sorted(ACTIVATIONS))}")
        if self.label_names is not None and len(self.label_names) != self.num_labels:
            raise ValueError(f"label_names has {len(self.label_names)} entries, num_labels={self.num_labels}")

    @classmethod
    def from_hf_config(cls, config: dict[str, Any]) -> DistilBertConfig:
        """From the dict of a Hugging Face DistilBERT config.json."""
        hf_checkpoint.check_config_kind(config, CHECKPOINT)
        names = {field.name for field in dataclasses.fields(cls)}
        values = {k: v for k, v in config.items() if k in names and k != "label_names"}
        if config.get("id2label"):
            try:
                id2label = {int(k): str(v) for k, v in config["id2label"].items()}
                values["label_names"] = tuple(id2label[i] for i in range(len(id2label)))
            except (AttributeError, KeyError, TypeError, ValueError) as err:
                raise DistilBertLoadError(f"config.json's id2label is not a map of 0..n-1 to names: {err}") from err
            values["num_labels"] = len(id2label)
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise DistilBertLoadError(f"unsupported DistilBERT config: {err}") from err

    def to_hf_config(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        num_labels, names = fields.pop("num_labels"), fields.pop("label_names")
        names = names or tuple(f"LABEL_{i}" for i in range(num_labels))
        return {"model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"], **fields,
                "id2label": {str(i): name for i, name in enumerate(names)},
                "label2id": {name: i for i, name in enumerate(names)}}


_BLOCK_NAMES = {  # block part -> (attribute, Hugging Face name), in the checkpoint layout's order
    "query": ("q_lin", "attention.q_lin"), "key": ("k_lin", "attention.k_lin"), "value": ("v_lin", "attention.v_lin"),
    "attention_output": ("out_lin", "attention.out_lin"), "intermediate": ("lin1", "ffn.lin1"),
    "output": ("lin2", "ffn.lin2"), "attention_norm": ("sa_layer_norm", "sa_layer_norm"),
    "output_norm": ("output_layer_norm", "output_layer_norm"),
}


class DistilBertClassifier(nnx.Module):
    """DistilBERT sequence classifier for ONE sequence: tokens -> logits (num_labels,), float32.

    tokens: integer ids (L,) or token vectors (L, V), 1 <= L <= max_position_embeddings; the
    first token ([CLS]) is the one classified. Random init: normal(0, 0.02) weights, zero biases.
    """

    def __init__(self, config: DistilBertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        self.dtype = jnp.dtype(dtype)
        d = config.dim
        self.word_embeddings = normal_param(rngs.params(), (config.vocab_size, d), 0.02, self.dtype)
        self.position_embeddings = normal_param(rngs.params(), (config.max_position_embeddings, d), 0.02, self.dtype)
        self.embeddings_norm = LayerNorm(d, LAYER_NORM_EPS, self.dtype)
        self.layers = nnx.List([
            PostLNEncoderBlock(d, config.hidden_dim, num_heads=config.n_heads, activation=config.activation,
                               eps=LAYER_NORM_EPS, names=_BLOCK_NAMES, rngs=rngs, dtype=self.dtype)
            for _ in range(config.n_layers)])
        self.pre_classifier = Linear(d, d, key=rngs.params(), dtype=self.dtype)
        self.classifier = Linear(d, config.num_labels, key=rngs.params(), dtype=self.dtype)

    def embedding_matrix(self) -> jax.Array:
        """The word-embedding matrix, shape (V, dim)."""
        return self.word_embeddings[...]

    def token_embeddings(self, tokens) -> jax.Array:
        """(L,) ids or (L, V) token vectors -> their word embeddings (L, dim), before positions."""
        return token_vectors_to_embeddings(tokens, self.word_embeddings[...], self.dtype)

    def hidden_states(self, embeddings) -> jax.Array:
        """The transformer's last hidden state (L, dim), float32, from word embeddings (L, dim)."""
        cfg = self.config
        e = check_embeddings(embeddings, cfg.dim, cfg.max_position_embeddings)
        x = e.astype(jnp.float32) + self.position_embeddings[...][:e.shape[0]].astype(jnp.float32)
        h = self.embeddings_norm(x)
        for block in self.layers:
            h = block(h.astype(self.dtype))
        return h

    def apply_embeddings(self, embeddings) -> jax.Array:
        """Logits (num_labels,), float32, from word embeddings (L, dim): the entry point for
        differentiating w.r.t. the input embeddings.
        model(tokens) == model.apply_embeddings(model.token_embeddings(tokens))."""
        first = self.hidden_states(embeddings)[0].astype(self.dtype)
        pooled = jax.nn.relu(self.pre_classifier(first, accumulate_dtype=jnp.float32)).astype(self.dtype)
        return self.classifier(pooled, accumulate_dtype=jnp.float32)

    def __call__(self, tokens) -> jax.Array:
        return self.apply_embeddings(self.token_embeddings(tokens))


# ----------------------------------------------------------------------------- loading

def _layout(config: DistilBertConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Checkpoint key (without "distilbert.") -> (attribute path in DistilBertClassifier, shape)."""
    d, inner, labels = config.dim, config.hidden_dim, config.num_labels
    layout = {
        "embeddings.word_embeddings.weight": ("word_embeddings", (config.vocab_size, d)),
        "embeddings.position_embeddings.weight": ("position_embeddings", (config.max_position_embeddings, d)),
        "embeddings.LayerNorm.weight": ("embeddings_norm.weight", (d,)),
        "embeddings.LayerNorm.bias": ("embeddings_norm.bias", (d,)),
        "pre_classifier.weight": ("pre_classifier.weight", (d, d)), "pre_classifier.bias": ("pre_classifier.bias", (d,)),
        "classifier.weight": ("classifier.weight", (labels, d)), "classifier.bias": ("classifier.bias", (labels,)),
    }
    for i in range(config.n_layers):
        layout.update(block_layout(_BLOCK_NAMES, d, inner, f"transformer.layer.{i}.", f"layers.{i}."))
    return layout


def load_distilbert(path_or_hub_id: str | os.PathLike, *, dtype=jnp.float32,
                    hub_timeout: float = 5.0) -> DistilBertClassifier:
    """A DistilBertClassifier with the weights of a Hugging Face DistilBertForSequenceClassification
    checkpoint (config.json + model.safetensors; a local directory, else a hub id).

    Raises DistilBertLoadError for another architecture (a DistilBertModel or masked-LM checkpoint
    has no classifier), a missing file or tensor, or a shape that does not fit config.json.
    """
    directory = hf_checkpoint.resolve_directory(path_or_hub_id, CHECKPOINT, hub_timeout)
    config = DistilBertConfig.from_hf_config(hf_checkpoint.read_config(directory, CHECKPOINT))
    tensors = hf_checkpoint.read_tensors(directory, CHECKPOINT)
    model = nnx.eval_shape(lambda: DistilBertClassifier(config, rngs=nnx.Rngs(0), dtype=dtype))
    return hf_checkpoint.load_parameters(model, tensors, _layout(config), CHECKPOINT,
                                         directory / hf_checkpoint.WEIGHTS_FILE, model.dtype,
                                         lambda key: key == "embeddings.position_ids")


def save_distilbert(model: DistilBertClassifier, directory: str | os.PathLike,
                    extra_config: dict[str, Any] | None = None) -> Path:
    """Write `model` as a Hugging Face DistilBertForSequenceClassification directory
    (config.json + model.safetensors, float32), which `load_distilbert` and transformers read."""
    layout = _layout(model.config)
    tensors = {("" if key.startswith(("pre_classifier.", "classifier.")) else "distilbert.") + key: value
               for key, value in hf_checkpoint.tensors_of(model, layout).items()}
    return hf_checkpoint.write_directory(directory, tensors, {**model.config.to_hf_config(), **(extra_config or {})})
