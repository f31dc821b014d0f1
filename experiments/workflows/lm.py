"""The language-model experiment's steps (paper §3.2, Appendix I), so that experiments/lm.py stays
flags only: load a causal LM (GPT-2 or OLMo, told apart by config.json's model_type), check the
flags against it, and write its mean NLL per token as a token target.

z(t_1..t_L) = -(1/L) sum_i log p(t_i | BOS, t_1..t_{i-1}): the model reads [BOS, t_1..t_{L-1}]
(BOS frozen first, not part of the sampled space; so L <= the model's positions) and every
sampled token is scored. GPT-2: `omnijax.sampling.token_target.gpt2_sequence_nll_target`.
OLMo (and a vocabulary restricted to the tokenizer's ids): `causal_lm_nll_target` below, tied or
untied head (it lives here, not next to the GPT-2 target, because omnijax/sampling is another
engineer's; it is small, about 40 lines, and could move there).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
from flax import nnx

from omnijax.models import hf_checkpoint
from omnijax.sampling.token_target import gpt2_sequence_nll_target, token_target

FAMILIES = ("gpt2", "olmo")


class LMLoadError(ValueError):
    """The --model checkpoint could not be had or is not a causal LM this experiment takes."""


_KIND = hf_checkpoint.CheckpointKind(name="causal language model (GPT-2 or OLMo)", error=LMLoadError,
                                     model_type="gpt2|olmo")


def load_causal_lm(source: str, *, bf16: bool = False):
    """(model, family, directory) for a local Hugging Face directory or a hub id. The family comes
    from config.json's model_type ("gpt2" -> omnijax.models.gpt2.load_gpt2, "olmo" ->
    omnijax.models.olmo.load_olmo). LMLoadError names the sources tried, the architecture found
    or the file that is missing."""
    from omnijax.models.gpt2 import GPT2LoadError, load_gpt2
    from omnijax.models.olmo import OlmoLoadError, load_olmo

    directory = hf_checkpoint.resolve_directory(source, _KIND)
    config_path = directory / hf_checkpoint.CONFIG_FILE
    if not config_path.is_file():
        raise LMLoadError(f"{source!r} ({directory}) has no {hf_checkpoint.CONFIG_FILE}; expected a Hugging Face "
                          f"GPT-2 or OLMo directory ({hf_checkpoint.CONFIG_FILE} + {hf_checkpoint.WEIGHTS_FILE})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LMLoadError(f"could not read {config_path}: {err}") from err
    family = config.get("model_type") if isinstance(config, dict) else None
    if family not in FAMILIES:
        raise LMLoadError(f"{config_path} is a checkpoint of another architecture (model_type={family!r}, "
                          f"architectures={config.get('architectures') if isinstance(config, dict) else None}); "
                          f"this experiment takes causal LMs with model_type 'gpt2' (GPT2LMHeadModel) or "
                          f"'olmo' (OlmoForCausalLM)")
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    try:
        model = (load_gpt2 if family == "gpt2" else load_olmo)(directory, dtype=dtype)
    except (GPT2LoadError, OlmoLoadError) as err:
        raise LMLoadError(str(err)) from err
    return model, family, directory


def vocab_size(model) -> int:
    return int(model.config.vocab_size)


def max_positions(model, family: str) -> int:
    return int(model.config.n_positions if family == "gpt2" else model.config.max_position_embeddings)


def default_bos(model, family: str) -> int | None:
    """config.json's bos_token_id; OLMo checkpoints leave it null and start documents with their
    EOS (<|endoftext|>, 50279), so its eos_token_id then."""
    config = model.config
    bos = getattr(config, "bos_token_id", None)
    if bos is None and family == "olmo":
        bos = getattr(config, "eos_token_id", None)
    return None if bos is None else int(bos)


def check_flags(model, family: str, *, length: int, bos_id: int | None) -> int:
    """The BOS id to use; ValueError naming --length or --bos_id when they do not fit the model."""
    positions, vocab = max_positions(model, family), vocab_size(model)
    if not 1 <= length <= positions:
        name = "n_positions" if family == "gpt2" else "max_position_embeddings"
        raise ValueError(f"--length={length} must lie in [1, {positions}]: the model reads [BOS, t_1..t_(L-1)] "
                         f"and has {positions} positions ({name} in config.json)")
    if bos_id is None:
        bos_id = default_bos(model, family)
        if bos_id is None:
            raise ValueError("--bos_id is required: config.json names no bos_token_id (or eos_token_id)")
    if not 0 <= bos_id < vocab:
        raise ValueError(f"--bos_id={bos_id} is outside the model's vocabulary [0, {vocab})")
    return int(bos_id)


def sequence_nll_target(model, family: str, bos_id: int, num_tokens: int | None = None):
    """The mean NLL per token with BOS first, as a token target over the ids [0, num_tokens)
    (default: the model's whole vocabulary); see the module docstring."""
    if family == "gpt2" and num_tokens in (None, vocab_size(model)):
        return gpt2_sequence_nll_target(model, bos_id)
    return causal_lm_nll_target(model, bos_id, num_tokens)


# ----------------------------------------------------------------------------- OLMo (and restricted vocabularies)

def causal_lm_nll_target(model, bos_id: int, num_tokens: int | None = None):
    """The mean next-token NLL of a causal LM with `final_hidden_states`, `embedding_matrix` and
    `output_matrix` (omnijax's Olmo, GPT2) as a token target, BOS first; the space's tokens are the
    ids [0, num_tokens) (default: the whole vocabulary; fewer for a padded embedding whose last
    rows no tokenizer produces, e.g. OLMo's 50,304 rows for 50,280 tokens; the softmax still runs
    over every row of the head).

    Tied head (GPT-2, OLMo-1B's tie_word_embeddings): as `gpt2_sequence_nll_target`, E = the
    embedding, the scored token's logit is h_{i-1} . e_i and the normaliser logsumexp(h_{i-1} @ E.T)
    reads the parameter. Untied head (OLMo-7B): a token plays two roles through two matrices, its
    input embedding E[t] and its head row W[t]. The token target's embedding is then the
    concatenation [E | W] (V, 2d): e_i = [E[t_i], W[t_i]], the network reads e_i[:d], the scored
    logit is h_{i-1} . e_i[d:], the normaliser reads the parameter W. So u = dz/de (L, 2d) carries
    both roles of a token, and the gains (E'[k] - E'[t_i]) . u_i are exactly the one-hot path's
    first-order change of z. (The (V, 2d) copy costs 2Vd numbers beside the model: 0.8 GB for
    OLMo-7B in bf16.) BOS's row is read from the model's embedding matrix.
    """
    vocab = int(model.config.vocab_size)
    n = vocab if num_tokens is None else int(num_tokens)
    if not 2 <= n <= vocab:
        raise ValueError(f"num_tokens must lie in [2, {vocab}], got {num_tokens}")
    if not 0 <= int(bos_id) < vocab:
        raise ValueError(f"bos_id must be a token id in [0, {vocab}), got {bos_id}")
    tied = getattr(model, "lm_head", None) is None
    embedding = model.embedding_matrix()[:n]
    if not tied:
        embedding = jnp.concatenate([embedding, model.output_matrix()[:n].astype(embedding.dtype)], axis=1)
    graphdef, state = nnx.split(model)
    hidden = int(model.embedding_matrix().shape[1])
    return token_target(_CausalLMSequenceNLL(graphdef, int(bos_id), hidden, tied, n == vocab), embedding, state)


def olmo_sequence_nll_target(model, bos_id: int, num_tokens: int | None = None):
    """`causal_lm_nll_target` for omnijax.models.olmo.Olmo (tied or untied head)."""
    return causal_lm_nll_target(model, bos_id, num_tokens)


class _CausalLMSequenceNLL:
    """apply_embeddings(state, E', e (L, d')) -> mean NLL per token (see causal_lm_nll_target)."""

    def __init__(self, graphdef, bos_id: int, hidden: int, tied: bool, full: bool):
        self.graphdef, self.bos_id, self.hidden, self.tied, self.full = graphdef, bos_id, hidden, tied, full
        self.__name__ = "causal_lm_sequence_nll"

    def __call__(self, state, embedding, e):
        lm = nnx.merge(self.graphdef, state)
        d = self.hidden
        e_in, e_out = (e, e) if self.tied else (e[:, :d], e[:, d:])
        if self.full:  # the head is (a part of) the token embedding parameter
            head = embedding if self.tied else embedding[:, d:]
        else:
            head = lm.output_matrix()
        bos = lm.embedding_matrix()[self.bos_id]
        context = jnp.concatenate([bos[None].astype(e_in.dtype), e_in[:-1]], axis=0)
        h = lm.final_hidden_states(context)
        logits = jnp.einsum("ld,vd->lv", h, head.astype(h.dtype), preferred_element_type=jnp.float32)
        scored = jnp.einsum("ld,ld->l", h, e_out.astype(h.dtype), preferred_element_type=jnp.float32)
        return -jnp.mean(scored - jax.nn.logsumexp(logits, axis=-1))

    def _key(self):
        return (self.graphdef, self.bos_id, self.hidden, self.tied, self.full)

    def __eq__(self, other):
        return isinstance(other, _CausalLMSequenceNLL) and other._key() == self._key()

    def __hash__(self):
        return hash(self._key())


def model_label(source: str) -> str:
    """A short name for the default workdir: the directory's or hub id's last part."""
    return os.path.basename(os.path.normpath(str(source))) or "model"
