"""OLMo (Hugging Face's `OlmoForCausalLM`: OLMo-1B-hf, OLMo-7B-hf) in Flax NNX, with a loader.

Architecture: token embedding `embed_tokens`; `num_hidden_layers` pre-norm decoder blocks
    h = h + attn(LN(h)),   h = h + down_proj(act(gate_proj(LN(h))) * up_proj(LN(h)))   (SwiGLU)
where LN is a LayerNorm WITHOUT weight or bias (eps 1e-5, in float32); causal multi-head
attention with q/k/v/o projections (bias per `attention_bias`), optional grouped key/value heads
(`num_key_value_heads`), q/k/v clipped to [-clip_qkv, clip_qkv] when `clip_qkv` is set, and rotary
position embeddings (rotate-half convention, inverse frequencies rope_theta^(-2i/head_dim), only
the "default" RoPE type); a final parameter-free LN; logits = LN(h) @ lm_head.T, where lm_head is
`embed_tokens` itself when `tie_word_embeddings` (OLMo-1B) and a separate matrix otherwise (7B).

Inputs are ONE sequence (no batch axis; vmap for batches): ids (L,) or one-hot / real token
vectors (L, V) (embedded by a matmul, so gradients w.r.t. the tokens exist); 1 <= L <=
max_position_embeddings. Embedding-input entry point (same names on GPT2, Bert,
DistilBertClassifier): `token_embeddings(tokens)` -> (L, d) rows of embed_tokens;
`apply_embeddings(e)` -> logits; `embedding_matrix()` -> embed_tokens (V, d);
`output_matrix()` -> the (V, d) matrix the logits are taken against (embed_tokens when tied);
`final_hidden_states(e)` -> (L, d) with logits = final_hidden_states(e) @ output_matrix().T.

Precision: `dtype=jnp.bfloat16` keeps parameters and activations in bf16, with LayerNorms, the
rotary rotation, the softmax and the logits' accumulation in float32; logits are float32.
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
from omnijax.models.bert import ACTIVATIONS, Linear, check_embeddings, normal_param, token_vectors_to_embeddings

__all__ = ["Olmo", "OlmoConfig", "OlmoLoadError", "load_olmo", "save_olmo"]

LAYER_NORM_EPS = 1e-5  # fixed in Hugging Face's OlmoLayerNorm


class OlmoLoadError(ValueError):
    """An OLMo checkpoint could not be found, read, or matched to the architecture."""


CHECKPOINT = hf_checkpoint.CheckpointKind(name="OLMo", error=OlmoLoadError, model_type="olmo",
                                          architectures=("OlmoForCausalLM",), prefixes=("model.",))


@dataclasses.dataclass(frozen=True)
class OlmoConfig:
    """Sizes and options of an OLMo; field names follow Hugging Face's `OlmoConfig`
    (rope_theta: rope_parameters["rope_theta"] of transformers 5, top-level in older configs)."""

    vocab_size: int = 50304
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None  # None -> num_attention_heads
    head_dim: int | None = None  # None -> hidden_size // num_attention_heads
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    attention_bias: bool = False
    clip_qkv: float | None = None
    tie_word_embeddings: bool = False
    pad_token_id: int | None = 1
    bos_token_id: int | None = None
    eos_token_id: int | None = 50279

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "max_position_embeddings"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} must be divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.kv_heads < 1 or self.num_attention_heads % self.kv_heads:
            raise ValueError(f"num_attention_heads={self.num_attention_heads} must be a multiple of "
                             f"num_key_value_heads={self.kv_heads}")
        if self.attention_head_dim % 2:
            raise ValueError(f"the head dimension {self.attention_head_dim} must be even (rotary embeddings)")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported; supported: "
                             f"{', '.join(sorted(ACTIVATIONS))}")
        if self.clip_qkv is not None and not self.clip_qkv > 0:
            raise ValueError(f"clip_qkv must be None or > 0, got {self.clip_qkv}")

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads if self.num_key_value_heads is not None else self.num_attention_heads

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf_config(cls, config: dict[str, Any]) -> OlmoConfig:
        """From the dict of a Hugging Face OLMo config.json (transformers 4 or 5 layout). RoPE
        scaling other than the default raises OlmoLoadError."""
        hf_checkpoint.check_config_kind(config, CHECKPOINT)
        rope = dict(config.get("rope_parameters") or {})
        scaling = config.get("rope_scaling")
        if scaling:
            rope.setdefault("rope_type", scaling.get("rope_type", scaling.get("type")))
        rope_type = rope.get("rope_type", "default")
        if rope_type != "default":
            raise OlmoLoadError(f"rope_type={rope_type!r} is not supported (only the default RoPE)")
        names = {field.name for field in dataclasses.fields(cls)}
        values = {k: v for k, v in config.items() if k in names}
        values["rope_theta"] = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
        if isinstance(values.get("eos_token_id"), list):
            values["eos_token_id"] = values["eos_token_id"][0] if values["eos_token_id"] else None
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise OlmoLoadError(f"unsupported OLMo config: {err}") from err

    def to_hf_config(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["num_key_value_heads"] = self.kv_heads
        if fields["head_dim"] is None:
            del fields["head_dim"]
        theta = fields.pop("rope_theta")
        return {"model_type": "olmo", "architectures": ["OlmoForCausalLM"], **fields,
                "rope_parameters": {"rope_type": "default", "rope_theta": theta}}


def _parameter_free_layer_norm(x):
    """OLMo's LayerNorm: no weight, no bias, eps 1e-5; computed and returned in float32."""
    x32 = jnp.asarray(x, jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    return (x32 - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS)


def _rotary(x, cos, sin):
    """Rotate x (heads, L, head_dim) by position: x*cos + rotate_half(x)*sin, in float32."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


class _Attention(nnx.Module):
    def __init__(self, config: OlmoConfig, *, rngs: nnx.Rngs, dtype):
        d, hd = config.hidden_size, config.attention_head_dim
        heads, kv = config.num_attention_heads, config.kv_heads
        bias = config.attention_bias
        self.q_proj = Linear(d, heads * hd, key=rngs.params(), dtype=dtype, bias=bias)
        self.k_proj = Linear(d, kv * hd, key=rngs.params(), dtype=dtype, bias=bias)
        self.v_proj = Linear(d, kv * hd, key=rngs.params(), dtype=dtype, bias=bias)
        self.o_proj = Linear(heads * hd, d, key=rngs.params(), dtype=dtype, bias=bias)
        self.num_heads, self.kv_heads, self.head_dim = heads, kv, hd
        self.clip_qkv = config.clip_qkv

    def __call__(self, x, cos, sin):
        length = x.shape[0]
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.clip_qkv is not None:
            q, k, v = (jnp.clip(t, -self.clip_qkv, self.clip_qkv) for t in (q, k, v))
        q = q.reshape(length, self.num_heads, self.head_dim).transpose(1, 0, 2)
        k, v = (t.reshape(length, self.kv_heads, self.head_dim).transpose(1, 0, 2) for t in (k, v))
        q, k = _rotary(q, cos, sin), _rotary(k, cos, sin)
        group = self.num_heads // self.kv_heads  # query head h reads key/value head h // group
        k, v = jnp.repeat(k, group, axis=0), jnp.repeat(v, group, axis=0)
        scores = jnp.einsum("hqd,hkd->hqk", q, k, preferred_element_type=jnp.float32) * self.head_dim ** -0.5
        causal = jnp.tril(jnp.ones((length, length), bool))
        scores = jnp.where(causal[None], scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = jnp.einsum("hqk,hkd->hqd", probs, v).transpose(1, 0, 2).reshape(length, self.num_heads * self.head_dim)
        return self.o_proj(out)


class _MLP(nnx.Module):
    def __init__(self, config: OlmoConfig, *, rngs: nnx.Rngs, dtype):
        d, inner = config.hidden_size, config.intermediate_size
        self.gate_proj = Linear(d, inner, key=rngs.params(), dtype=dtype, bias=False)
        self.up_proj = Linear(d, inner, key=rngs.params(), dtype=dtype, bias=False)
        self.down_proj = Linear(inner, d, key=rngs.params(), dtype=dtype, bias=False)
        self.activation = config.hidden_act

    def __call__(self, x):
        return self.down_proj(ACTIVATIONS[self.activation](self.gate_proj(x)) * self.up_proj(x))


class _Block(nnx.Module):
    def __init__(self, config: OlmoConfig, *, rngs: nnx.Rngs, dtype):
        self.self_attn = _Attention(config, rngs=rngs, dtype=dtype)
        self.mlp = _MLP(config, rngs=rngs, dtype=dtype)

    def __call__(self, h, cos, sin):
        h = h + self.self_attn(_parameter_free_layer_norm(h).astype(h.dtype), cos, sin)
        return h + self.mlp(_parameter_free_layer_norm(h).astype(h.dtype))


class Olmo(nnx.Module):
    """OLMo causal language model for ONE sequence: tokens -> next-token logits (L, V), float32.

    Parameter names mirror the HF checkpoint (without "model."): embed_tokens, layers[i].{self_attn.
    {q,k,v,o}_proj, mlp.{gate,up,down}_proj}, lm_head (None when tied). Random init: normal(0, 0.02).
    """

    def __init__(self, config: OlmoConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.config = config
        self.dtype = jnp.dtype(dtype)
        self.embed_tokens = normal_param(rngs.params(), (config.vocab_size, config.hidden_size), 0.02, self.dtype)
        self.layers = nnx.List([_Block(config, rngs=rngs, dtype=self.dtype) for _ in range(config.num_hidden_layers)])
        self.lm_head = (None if config.tie_word_embeddings else
                        Linear(config.hidden_size, config.vocab_size, key=rngs.params(), dtype=self.dtype, bias=False))

    def embedding_matrix(self) -> jax.Array:
        """The input embedding matrix embed_tokens, shape (V, hidden_size)."""
        return self.embed_tokens[...]

    def output_matrix(self) -> jax.Array:
        """The (V, hidden_size) matrix the logits are taken against: lm_head, or embed_tokens if tied."""
        return self.embed_tokens[...] if self.lm_head is None else self.lm_head.weight[...]

    def token_embeddings(self, tokens) -> jax.Array:
        """(L,) ids or (L, V) token vectors -> their rows of embed_tokens, (L, hidden_size)."""
        return token_vectors_to_embeddings(tokens, self.embed_tokens[...], self.dtype)

    def _rotary_tables(self, length: int):
        hd = self.config.attention_head_dim
        inv_freq = 1.0 / (self.config.rope_theta ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
        freqs = np.arange(length, dtype=np.float32)[:, None] * inv_freq.astype(np.float32)[None]
        angles = jnp.asarray(np.concatenate([freqs, freqs], axis=-1), jnp.float32)
        return jnp.cos(angles), jnp.sin(angles)

    def final_hidden_states(self, embeddings) -> jax.Array:
        """The normalised last hidden state (L, hidden_size), in the model dtype, from token
        embeddings (L, d): logits = final_hidden_states(e) @ output_matrix().T."""
        cfg = self.config
        h = check_embeddings(embeddings, cfg.hidden_size, cfg.max_position_embeddings).astype(self.dtype)
        cos, sin = self._rotary_tables(h.shape[0])
        for block in self.layers:
            h = block(h, cos, sin)
        return _parameter_free_layer_norm(h).astype(self.dtype)

    def apply_embeddings(self, embeddings) -> jax.Array:
        """Logits (L, V), float32, from token embeddings (L, hidden_size) (rows of embed_tokens for
        the tokens): the entry point for differentiating w.r.t. the input embeddings.
        model(tokens) == model.apply_embeddings(model.token_embeddings(tokens))."""
        h = self.final_hidden_states(embeddings)
        return jnp.einsum("ld,vd->lv", h, self.output_matrix(), preferred_element_type=jnp.float32)

    def __call__(self, tokens) -> jax.Array:
        return self.apply_embeddings(self.token_embeddings(tokens))


# ----------------------------------------------------------------------------- loading

def _layout(config: OlmoConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Checkpoint key (without "model.") -> (attribute path in Olmo, shape)."""
    d, inner, hd = config.hidden_size, config.intermediate_size, config.attention_head_dim
    q_width, kv_width = config.num_attention_heads * hd, config.kv_heads * hd
    layout = {"embed_tokens.weight": ("embed_tokens", (config.vocab_size, d))}
    if not config.tie_word_embeddings:
        layout["lm_head.weight"] = ("lm_head.weight", (config.vocab_size, d))
    shapes = {"self_attn.q_proj": (q_width, d), "self_attn.k_proj": (kv_width, d), "self_attn.v_proj": (kv_width, d),
              "self_attn.o_proj": (d, q_width), "mlp.gate_proj": (inner, d), "mlp.up_proj": (inner, d),
              "mlp.down_proj": (d, inner)}
    for i in range(config.num_hidden_layers):
        for name, shape in shapes.items():
            layout[f"layers.{i}.{name}.weight"] = (f"layers.{i}.{name}.weight", shape)
            if config.attention_bias and name.startswith("self_attn."):
                layout[f"layers.{i}.{name}.bias"] = (f"layers.{i}.{name}.bias", (shape[0],))
    return layout


def load_olmo(path_or_hub_id: str | os.PathLike, *, dtype=jnp.float32, hub_timeout: float = 5.0) -> Olmo:
    """An Olmo with the weights of a Hugging Face OlmoForCausalLM checkpoint.

    `path_or_hub_id`: a local directory (config.json + model.safetensors, or a sharded
    model.safetensors.index.json), or else a hub id ("allenai/OLMo-1B-hf") fetched with
    huggingface_hub. With tie_word_embeddings the head is embed_tokens (a stored lm_head.weight
    must equal it). Raises OlmoLoadError for another architecture, a missing file or tensor, or a
    shape that does not fit config.json, naming what was expected.
    """
    directory = hf_checkpoint.resolve_directory(path_or_hub_id, CHECKPOINT, hub_timeout)
    config = OlmoConfig.from_hf_config(hf_checkpoint.read_config(directory, CHECKPOINT))
    tensors = hf_checkpoint.read_tensors(directory, CHECKPOINT)
    if config.tie_word_embeddings and "lm_head.weight" in tensors and "embed_tokens.weight" in tensors:
        head, embed = tensors["lm_head.weight"], tensors["embed_tokens.weight"]
        if head.shape != embed.shape or not np.array_equal(head, embed):
            raise OlmoLoadError("tie_word_embeddings=True but tensor 'lm_head.weight' differs from "
                                "'model.embed_tokens.weight'")

    def ignorable(key: str) -> bool:  # the tied head checked above; old checkpoints' RoPE buffers
        return (config.tie_word_embeddings and key == "lm_head.weight") or key.endswith("rotary_emb.inv_freq")

    model = nnx.eval_shape(lambda: Olmo(config, rngs=nnx.Rngs(0), dtype=dtype))
    return hf_checkpoint.load_parameters(model, tensors, _layout(config), CHECKPOINT,
                                         directory / hf_checkpoint.WEIGHTS_FILE, model.dtype, ignorable)


def save_olmo(model: Olmo, directory: str | os.PathLike, extra_config: dict[str, Any] | None = None) -> Path:
    """Write `model` as a Hugging Face OlmoForCausalLM directory (config.json + model.safetensors,
    float32), which `load_olmo` and transformers both read."""
    tensors = {("" if key == "lm_head.weight" else "model.") + key: value
               for key, value in hf_checkpoint.tensors_of(model, _layout(model.config)).items()}
    return hf_checkpoint.write_directory(directory, tensors, {**model.config.to_hf_config(), **(extra_config or {})})
