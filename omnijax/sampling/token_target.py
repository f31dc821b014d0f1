"""Models whose input is a token sequence, in the form the token proposals need.

A token target is an omnijax `Target` whose parameters are `TokenParams(embedding, model)`, E
of shape (V, d) and the rest of the model's parameters, and whose output is written as a
function of the input EMBEDDINGS:

    z = apply_embeddings(model_params, E, e),   e = E[x]  (D, d): the rows of the input tokens

`make_embedding_value_and_grad` embeds by gather and differentiates z with respect to e only:
u = dz/de, shape (D, d), instead of the (D, V) gradient with respect to a one-hot input. The
first-order gain of putting token k at position i is then (E[k] - E[x_i]) . u_i, the (D, V)
table u @ E.T, which the token proposals (`proposals.tokens`) form transiently.

Tied heads. A language model whose output head reuses E (GPT-2: logits = h @ E.T) uses a
token in two roles: as context (its embedding enters the network) and as the scored target
(its logit h_{i-1} . E[x_i]). `apply_embeddings` must write BOTH through e, e.g. the target's
logit as h_{i-1} . e_i, while the normaliser logsumexp(h_{i-1} @ E.T) and every other use of
the head read the parameter E. Then u carries both roles and the gains are exactly the
first-order change of z when the input token changes, the same gains as the one-hot path's
(`gpt2_sequence_nll_target` does this, and tests/test_token_proposals.py checks the equality
against `omnijax.models.gpt2.sequence_nll_fn`). E itself is never differentiated here.

The same target also works as a one-hot target (`Target.apply(params, onehot)` embeds by
onehot @ E), so enumeration and the one-hot proposals (small V) take it unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, as_target, make_value_and_grad


class TokenParams(NamedTuple):
    """Parameters of a token target: the embedding matrix E (V, d) and the rest of the model."""

    embedding: jax.Array
    model: Any = ()


class EmbeddingApply:
    """apply(TokenParams, onehot (..., V)) of a token target: embeds by onehot @ E, then calls
    apply_embeddings(model, E, e (D, d)). `embedded(params, x)` embeds flat ids by gather."""

    def __init__(self, apply_embeddings: Callable[[Any, jax.Array, jax.Array], jax.Array]):
        if not callable(apply_embeddings):
            raise ValueError(f"apply_embeddings must be callable, got {type(apply_embeddings).__name__}")
        self.apply_embeddings = apply_embeddings
        self.__name__ = f"tokens:{getattr(apply_embeddings, '__name__', type(apply_embeddings).__name__)}"

    def __call__(self, params: TokenParams, onehot):
        embedding = params.embedding
        onehot = jnp.asarray(onehot)
        e = onehot.reshape(-1, embedding.shape[0]).astype(embedding.dtype) @ embedding
        return self.apply_embeddings(params.model, embedding, e)

    def embedded(self, params: TokenParams, x):
        return self.apply_embeddings(params.model, params.embedding, jnp.take(params.embedding, x, axis=0))

    def __eq__(self, other):
        return isinstance(other, EmbeddingApply) and other.apply_embeddings == self.apply_embeddings

    def __hash__(self):
        return hash(("tokens", self.apply_embeddings))


def token_target(apply_embeddings, embedding, params: Any = ()) -> Target:
    """A token target: z = apply_embeddings(params, embedding, e) with e = embedding[x] (D, d).

    embedding: the (V, d) matrix (a model parameter: passed to every compiled call, never
    folded in); params: the rest of the model's parameters (any pytree). See the module
    docstring for how a tied output head must use e and E."""
    embedding = jnp.asarray(embedding)
    if embedding.ndim != 2:
        raise ValueError(f"embedding must be a (V, d) matrix, got shape {embedding.shape}")
    return Target(EmbeddingApply(apply_embeddings), TokenParams(embedding, params))


def is_token_target(target) -> bool:
    return isinstance(target, Target) and isinstance(target.apply, EmbeddingApply)


def check_token_target(target, space: InputSpace, name: str = "model") -> Target:
    """The target, if it is a token target whose vocabulary is the space's K; ValueError otherwise."""
    if not is_token_target(target):
        raise ValueError(f"{name} must be a token target (omnijax.sampling.token_target.token_target(...) or "
                         f"gpt2_sequence_nll_target(...)) for a token proposal, got {target!r}; the one-hot "
                         f"proposals (gwg, dlp) take any model")
    vocab = target.params.embedding.shape[0]
    if vocab != space.num_categories:
        raise ValueError(f"{name}'s embedding has {vocab} rows but the space has num_categories="
                         f"{space.num_categories}: they must agree (one category per token)")
    return target


def make_embedding_value_and_grad(target: Target, space: InputSpace):
    """`vg(params, x) -> (z, u)` for ONE flat input x (D,) of token ids: z float32 and
    u = dz/de (D, d) float32, e = E[x] embedded by gather (E is not differentiated)."""
    target = check_token_target(as_target(target), space)
    apply = target.apply

    def value(e, params):
        return jnp.asarray(apply.apply_embeddings(params.model, params.embedding, e), jnp.float32)

    vg = jax.value_and_grad(value)

    def value_and_grad(params, x):
        z, u = vg(jnp.take(params.embedding, x, axis=0), params)
        return z, u.astype(jnp.float32)

    return value_and_grad


def make_value_and_grad_for(target: Target, space: InputSpace, proposal):
    """The `value_and_grad` whose gradient `proposal.compress` takes: with respect to the input
    embeddings for a token proposal, else with respect to the one-hot input."""
    if getattr(proposal, "input_gradient", "onehot") == "embedding":
        return make_embedding_value_and_grad(target, space)
    return make_value_and_grad(target, space)


# ------------------------------------------------------------------------------ GPT-2


def gpt2_sequence_nll_target(model, bos_id: int | None = None) -> Target:
    """The mean next-token NLL of `omnijax.models.gpt2.GPT2` as a token target: the same z as
    `sequence_nll_fn(model, bos_id)` (context [BOS, t_1..t_{L-1}], every token scored), written
    through the input embeddings with the tied head scored consistently (module docstring):
    the target token's logit is h_{i-1} . e_i, the normaliser uses the parameter E."""
    from flax import nnx

    config = model.config
    if bos_id is None:
        bos_id = config.bos_token_id
    if bos_id is None or not 0 <= int(bos_id) < config.vocab_size:
        raise ValueError(f"bos_id must be a token id in [0, {config.vocab_size}), got {bos_id}")
    graphdef, state = nnx.split(model)
    return token_target(_GPT2SequenceNLL(graphdef, int(bos_id)), model.wte[...], state)


class _GPT2SequenceNLL:
    """apply_embeddings(state, E, e (L, d)) -> mean NLL per token (see gpt2_sequence_nll_target):
    the GPT2 module's embedding-input entry point for the network, the parameter E as the head."""

    def __init__(self, graphdef, bos_id: int):
        self.graphdef, self.bos_id = graphdef, bos_id
        self.__name__ = "gpt2_sequence_nll"

    def __call__(self, state, embedding, e):
        from flax import nnx

        gpt2 = nnx.merge(self.graphdef, state)
        context = jnp.concatenate([embedding[self.bos_id][None].astype(e.dtype), e[:-1]], axis=0)
        h = gpt2.final_hidden_states(context)  # positions, blocks, ln_f (omnijax.models.gpt2)
        logits = jnp.einsum("le,ve->lv", h, embedding, preferred_element_type=jnp.float32)
        scored = jnp.einsum("le,le->l", h, e, preferred_element_type=jnp.float32)  # h_{i-1} . e_i
        return -jnp.mean(scored - jax.nn.logsumexp(logits, axis=-1))

    def __eq__(self, other):
        return isinstance(other, _GPT2SequenceNLL) and (other.graphdef, other.bos_id) == (self.graphdef, self.bos_id)

    def __hash__(self):
        return hash((self.graphdef, self.bos_id))
