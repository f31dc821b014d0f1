"""GPT-2 (the Hugging Face architecture) in Flax NNX, with a loader for HF checkpoints.

Architecture (as in Hugging Face's `GPT2LMHeadModel`): token embedding `wte` plus learned
position embedding `wpe`; `n_layer` pre-LayerNorm blocks
    h = h + attn(ln_1(h)),   h = h + mlp(ln_2(h))
with causal multi-head self-attention (fused q/k/v projection `c_attn`, output `c_proj`) and an
MLP `c_fc` -> activation -> `c_proj`; a final LayerNorm `ln_f`; logits = ln_f(h) @ wte.T (the
output head is tied to the token embedding). Projection weights are stored as HF's Conv1D
stores them, shape (in, out), so a checkpoint's tensors load without transposition.

Inputs are ONE sequence (no batch axis; vmap for batches): integer token ids of shape (L,), or
one-hot (or any real) token vectors of shape (L, V). One-hot inputs are embedded by a matmul with
`wte`, so gradients with respect to the tokens exist (what omnijax's samplers need).

Precision: `dtype=jnp.float32` (default) or `jnp.bfloat16`. With bf16, parameters and
activations are bf16, while LayerNorm statistics, the attention softmax, the logits matmul's
accumulation, and the log-softmax / NLL are computed in float32. Logits are returned in float32.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from omnijax.models import hf_checkpoint
from omnijax.models.hf_checkpoint import CONFIG_FILE, WEIGHTS_FILE  # noqa: F401 (CONFIG_FILE: re-exported)
from omnijax.sampling.targets import Target

__all__ = ["GPT2", "GPT2Config", "GPT2LoadError", "load_gpt2", "save_gpt2", "sequence_nll_fn"]

_ACTIVATIONS = {
    # HF "gelu_new" / "gelu_pytorch_tanh": the tanh approximation of GELU.
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


class GPT2LoadError(ValueError):
    """A GPT-2 checkpoint could not be found, read, or matched to the architecture."""


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """Sizes and options of a GPT-2; field names follow Hugging Face's `GPT2Config`."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; None -> 4 * n_embd
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    bos_token_id: int | None = 50256

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.activation_function not in _ACTIVATIONS:
            raise ValueError(f"activation_function={self.activation_function!r} is not supported; "
                             f"supported: {', '.join(sorted(_ACTIVATIONS))}")
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def inner_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def from_hf_config(cls, config: dict[str, Any]) -> GPT2Config:
        """From the dict of a Hugging Face GPT-2 `config.json`. Unknown keys are ignored;
        options this implementation does not provide (untied head, cross-attention) raise."""
        model_type = config.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise GPT2LoadError(f"config.json has model_type={model_type!r}, expected 'gpt2'")
        if not config.get("tie_word_embeddings", True):
            raise GPT2LoadError("tie_word_embeddings=False is not supported (the head is tied to wte)")
        if config.get("add_cross_attention", False):
            raise GPT2LoadError("add_cross_attention=True is not supported")
        names = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in config.items() if k in names})
        except ValueError as err:
            raise GPT2LoadError(f"unsupported GPT-2 config: {err}") from err


def _param(key, shape, std, dtype):
    return nnx.Param((std * jax.random.normal(key, shape, jnp.float32)).astype(dtype))


class _LayerNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype):
        self.weight = nnx.Param(jnp.ones((dim,), dtype))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype))
        self.eps = eps

    def __call__(self, x):
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(x.dtype)


class _Conv1D(nnx.Module):
    """HF's Conv1D: y = x @ weight + bias with weight of shape (in, out)."""

    def __init__(self, n_in: int, n_out: int, *, key, dtype, std: float = 0.02):
        self.weight = _param(key, (n_in, n_out), std, dtype)
        self.bias = nnx.Param(jnp.zeros((n_out,), dtype))

    def __call__(self, x):
        return x @ self.weight[...] + self.bias[...]


class _Attention(nnx.Module):
    def __init__(self, config: GPT2Config, layer_idx: int, *, rngs: nnx.Rngs, dtype):
        e = config.n_embd
        self.c_attn = _Conv1D(e, 3 * e, key=rngs.params(), dtype=dtype)
        self.c_proj = _Conv1D(e, e, key=rngs.params(), dtype=dtype)
        self.n_head = config.n_head
        scale = 1.0
        if config.scale_attn_weights:
            scale = (e // config.n_head) ** -0.5
        if config.scale_attn_by_inverse_layer_idx:
            scale /= float(layer_idx + 1)
        self.scale = scale

    def __call__(self, x):
        length, e = x.shape
        hd = e // self.n_head
        q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)
        q, k, v = (t.reshape(length, self.n_head, hd).transpose(1, 0, 2) for t in (q, k, v))
        scores = jnp.einsum("hqd,hkd->hqk", q, k, preferred_element_type=jnp.float32) * self.scale
        causal = jnp.tril(jnp.ones((length, length), bool))
        scores = jnp.where(causal[None], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = jnp.einsum("hqk,hkd->hqd", probs, v).transpose(1, 0, 2).reshape(length, e)
        return self.c_proj(out)


class _MLP(nnx.Module):
    def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs, dtype):
        self.c_fc = _Conv1D(config.n_embd, config.inner_dim, key=rngs.params(), dtype=dtype)
        self.c_proj = _Conv1D(config.inner_dim, config.n_embd, key=rngs.params(), dtype=dtype)
        self.activation = config.activation_function

    def __call__(self, x):
        return self.c_proj(_ACTIVATIONS[self.activation](self.c_fc(x)))


class _Block(nnx.Module):
    def __init__(self, config: GPT2Config, layer_idx: int, *, rngs: nnx.Rngs, dtype):
        self.ln_1 = _LayerNorm(config.n_embd, config.layer_norm_epsilon, dtype)
        self.attn = _Attention(config, layer_idx, rngs=rngs, dtype=dtype)
        self.ln_2 = _LayerNorm(config.n_embd, config.layer_norm_epsilon, dtype)
        self.mlp = _MLP(config, rngs=rngs, dtype=dtype)

    def __call__(self, h):
        h = h + self.attn(self.ln_1(h))
        return h + self.mlp(self.ln_2(h))


class GPT2(nnx.Module):
    """GPT-2 language model for ONE sequence: tokens -> next-token logits (L, V), float32.

    tokens: integer ids of shape (L,), or one-hot / real token vectors of shape (L, V)
    (embedded as tokens @ wte, so d logits / d tokens exists). Requires 1 <= L <= n_positions.
    Embedding-input entry point (the same names on OLMo, DistilBERT, BERT): token_embeddings(tokens)
    -> (L, n_embd) rows of wte, apply_embeddings(e) -> logits, embedding_matrix() -> wte; and, as
    on Olmo, final_hidden_states(e) (L, n_embd) and output_matrix() (V, n_embd) with
    logits = final_hidden_states(e) @ output_matrix().T.
    Parameter names mirror the HF checkpoint: wte, wpe, h[i].{ln_1, attn.c_attn, attn.c_proj,
    ln_2, mlp.c_fc, mlp.c_proj}, ln_f. Random init: normal(0, 0.02) weights, zero biases.
    """

    def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        self.dtype = jnp.dtype(dtype)
        self.wte = _param(rngs.params(), (config.vocab_size, config.n_embd), 0.02, self.dtype)
        self.wpe = _param(rngs.params(), (config.n_positions, config.n_embd), 0.01, self.dtype)
        self.h = nnx.List([_Block(config, i, rngs=rngs, dtype=self.dtype) for i in range(config.n_layer)])
        self.ln_f = _LayerNorm(config.n_embd, config.layer_norm_epsilon, self.dtype)

    def embedding_matrix(self) -> jax.Array:
        """The token embedding matrix wte, shape (V, n_embd) (also the tied output head)."""
        return self.wte[...]

    def token_embeddings(self, tokens) -> jax.Array:
        """(L,) ids or (L, V) token vectors -> their rows of wte, (L, n_embd), before positions."""
        cfg = self.config
        tokens = jnp.asarray(tokens)
        wte = self.wte[...]
        if tokens.ndim == 1 and jnp.issubdtype(tokens.dtype, jnp.integer):
            return jnp.take(wte, tokens, axis=0)
        if tokens.ndim == 2 and tokens.shape[-1] == cfg.vocab_size:
            return tokens.astype(self.dtype) @ wte
        raise ValueError(f"tokens must be integer ids of shape (L,) or token vectors of shape "
                         f"(L, {cfg.vocab_size}); got shape {tokens.shape} dtype {tokens.dtype}")

    def embed(self, tokens) -> jax.Array:
        """(L,) ids or (L, V) token vectors -> input embeddings (L, n_embd) with positions."""
        return self._add_positions(self.token_embeddings(tokens))

    def _add_positions(self, embeddings) -> jax.Array:
        embeddings = jnp.asarray(embeddings)
        n_pos, width = self.config.n_positions, self.config.n_embd
        if embeddings.ndim != 2 or embeddings.shape[-1] != width:
            raise ValueError(f"embeddings must have shape (L, {width}), got {embeddings.shape}")
        length = embeddings.shape[0]
        if not 1 <= length <= n_pos:
            raise ValueError(f"sequence length {length} must be in [1, n_positions={n_pos}]")
        return embeddings.astype(self.dtype) + self.wpe[...][:length]

    def output_matrix(self) -> jax.Array:
        """The (V, n_embd) matrix the logits are taken against: wte (the head is tied)."""
        return self.wte[...]

    def final_hidden_states(self, embeddings) -> jax.Array:
        """ln_f of the last block's output (L, n_embd), in the model dtype, from token embeddings
        (L, n_embd): logits = final_hidden_states(e) @ output_matrix().T."""
        h = self._add_positions(embeddings)
        for block in self.h:
            h = block(h)
        return self.ln_f(h)

    def apply_embeddings(self, embeddings) -> jnp.ndarray:
        """Logits (L, V), float32, from token embeddings (L, n_embd) (rows of wte for the tokens,
        before positions): the entry point for differentiating w.r.t. the input embeddings.
        model(tokens) == model.apply_embeddings(model.token_embeddings(tokens))."""
        h = self.final_hidden_states(embeddings)
        return jnp.einsum("le,ve->lv", h, self.wte[...], preferred_element_type=jnp.float32)

    def __call__(self, tokens) -> jnp.ndarray:
        return self.apply_embeddings(self.token_embeddings(tokens))


def sequence_nll_fn(model: GPT2, bos_id: int | None = None):
    """output_fn(onehot (L, V)) -> z, the mean negative log-likelihood per token (float32 scalar).

    With tokens t_1..t_L (rows of `onehot`), the model reads the context
    [BOS, t_1, ..., t_{L-1}] (length L, so L <= n_positions) and logits row i predicts t_{i+1}:
        z = -(1/L) * sum_{i=1..L} log softmax(logits_{i-1})[t_i],
    every token of the sequence is scored, the first one conditioned on BOS alone. The
    log-probability of t_i is taken as <onehot_i, log_softmax(logits_{i-1})>, so z and its
    gradient w.r.t. the one-hot (through both the context and the scored targets) are defined
    for real-valued inputs too. Log-softmax and the mean are float32 for any model dtype.
    `bos_id` defaults to config.bos_token_id. One input (no batch axis), as
    `omnijax.estimate_output_distribution` expects. Returns an omnijax `Target`: callable as
    output_fn(onehot), its parameters passed to the samplers' compiled calls as arguments.
    """
    if bos_id is None:
        bos_id = model.config.bos_token_id
    if bos_id is None or not 0 <= int(bos_id) < model.config.vocab_size:
        raise ValueError(f"bos_id must be a token id in [0, {model.config.vocab_size}), got {bos_id}")
    bos_id = int(bos_id)
    vocab = model.config.vocab_size
    graphdef, state = nnx.split(model)
    return Target(_SequenceNLL(graphdef, bos_id, vocab), state)


class _SequenceNLL:
    """apply(state, onehot (L, V)) -> mean NLL per token (see `sequence_nll_fn`)."""

    def __init__(self, graphdef, bos_id: int, vocab: int):
        self.graphdef, self.bos_id, self.vocab = graphdef, bos_id, vocab
        self.__name__ = "sequence_nll"

    def __call__(self, state, onehot):
        onehot = jnp.asarray(onehot)
        if onehot.ndim != 2 or onehot.shape[-1] != self.vocab:
            raise ValueError(f"onehot must have shape (L, {self.vocab}), got {onehot.shape}")
        bos = jax.nn.one_hot(jnp.array([self.bos_id]), self.vocab, dtype=onehot.dtype)
        context = jnp.concatenate([bos, onehot[:-1]], axis=0)
        logits = nnx.merge(self.graphdef, state)(context)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        return -jnp.mean(jnp.sum(onehot.astype(jnp.float32) * logp, axis=-1))

    def __eq__(self, other):
        return (isinstance(other, _SequenceNLL) and other.graphdef == self.graphdef
                and (other.bos_id, other.vocab) == (self.bos_id, self.vocab))

    def __hash__(self):
        return hash((self.graphdef, self.bos_id, self.vocab))


# ----------------------------------------------------------------------------- loading

CHECKPOINT = hf_checkpoint.CheckpointKind(name="GPT-2", error=GPT2LoadError, model_type="gpt2",
                                          prefixes=("transformer.",))


def _layout(config: GPT2Config) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Checkpoint key (without "transformer.") -> (attribute path in GPT2, shape)."""
    e, inner = config.n_embd, config.inner_dim
    layout = {"wte.weight": ("wte", (config.vocab_size, e)), "wpe.weight": ("wpe", (config.n_positions, e)),
              "ln_f.weight": ("ln_f.weight", (e,)), "ln_f.bias": ("ln_f.bias", (e,))}
    shapes = {"ln_1.weight": (e,), "ln_1.bias": (e,), "attn.c_attn.weight": (e, 3 * e), "attn.c_attn.bias": (3 * e,),
              "attn.c_proj.weight": (e, e), "attn.c_proj.bias": (e,), "ln_2.weight": (e,), "ln_2.bias": (e,),
              "mlp.c_fc.weight": (e, inner), "mlp.c_fc.bias": (inner,), "mlp.c_proj.weight": (inner, e),
              "mlp.c_proj.bias": (e,)}
    for i in range(config.n_layer):
        layout.update({f"h.{i}.{name}": (f"h.{i}.{name}", shape) for name, shape in shapes.items()})
    return layout


def _load_from_dir(directory: Path, dtype) -> GPT2:
    config = GPT2Config.from_hf_config(hf_checkpoint.read_config(directory, CHECKPOINT))
    tensors = hf_checkpoint.read_tensors(directory, CHECKPOINT)
    layout = _layout(config)
    where = directory / WEIGHTS_FILE
    if "lm_head.weight" in tensors and "wte.weight" in tensors:
        head = tensors["lm_head.weight"]
        if head.shape != tensors["wte.weight"].shape or not np.array_equal(head, tensors["wte.weight"]):
            raise GPT2LoadError("tensor 'lm_head.weight' differs from 'wte.weight'; only tied heads are supported")
    # HF's causal-mask buffers in old checkpoints, and the tied head checked above
    ignorable = lambda key: key == "lm_head.weight" or key.endswith(("attn.bias", "attn.masked_bias"))  # noqa: E731
    model = nnx.eval_shape(lambda: GPT2(config, rngs=nnx.Rngs(0), dtype=dtype))
    return hf_checkpoint.load_parameters(model, tensors, layout, CHECKPOINT, where, model.dtype, ignorable)


def save_gpt2(model: GPT2, directory: str | os.PathLike, extra_config: dict[str, Any] | None = None) -> Path:
    """Write `model` as a Hugging Face GPT-2 directory (config.json + model.safetensors, float32),
    which `load_gpt2` and transformers' `GPT2LMHeadModel.from_pretrained` both read.

    `extra_config` entries are added to config.json (e.g. the task a toy model was trained on);
    the weights file is written first and config.json last, so a complete config marks a complete
    checkpoint.
    """
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "tie_word_embeddings": True,
              **dataclasses.asdict(model.config), "n_ctx": model.config.n_positions, **(extra_config or {})}
    return hf_checkpoint.write_directory(directory, hf_checkpoint.tensors_of(model, _layout(model.config)), config)


def load_gpt2(path_or_hub_id: str | os.PathLike, *, dtype=jnp.float32, hub_timeout: float = 5.0) -> GPT2:
    """A GPT2 with the weights of a Hugging Face GPT-2 checkpoint.

    `path_or_hub_id`: a local directory holding config.json and model.safetensors (keys with or
    without the "transformer." prefix), or else a hub id ("gpt2", "owner/name") fetched with
    huggingface_hub.snapshot_download (only the config and safetensors files; from the local HF
    cache when HF_HUB_OFFLINE is set). Every tensor's shape is checked against config.json. Raises
    GPT2LoadError naming the missing file / mismatching key, or, for a hub id that cannot be had,
    the sources tried. Network waits are bounded by `hub_timeout` seconds.
    """
    return _load_from_dir(hf_checkpoint.resolve_directory(path_or_hub_id, CHECKPOINT, hub_timeout), dtype)
