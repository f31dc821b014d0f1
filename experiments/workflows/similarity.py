"""The sentence-similarity experiment's steps, so that experiments/similarity.py stays flags only.

z(x) = cos(s(x), s(ref)): s is the L2-normalised mean-pooled last hidden state of a BERT
sentence-embedding model (all-MiniLM-L6-v2 by default) over [CLS] x_1..x_L [SEP] (attention mask
all ones, mean over all L+2 positions as sentence-transformers does for that tokenisation), ref
the tokenised --reference sentence. The input space is every L-token sequence between a frozen
[CLS] and [SEP]: V^L inputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import omnijax as oj
from omnijax.models.bert import Bert, l2_normalize, load_bert, mean_pool, sentence_embedding
from omnijax.sampling.targets import make_value
from omnijax.sampling.token_target import token_target
from omnijax.text import check_vocabulary, load_tokenizer
from omnijax.util.digest import digest_arrays


@dataclasses.dataclass(frozen=True)
class SimilarityPreset:
    """How much to probe and sample (per chain-step on a 2-core CPU, MiniLM at L = 4: ~5 ms)."""

    length: int
    bin_width: float
    num_steps: int
    num_groups: int
    pilot_steps: int
    probe_steps: int
    probe_chains: int
    reservoir_size: int
    num_replicas: int | None = None
    steps_per_block: int = 100


PRESETS = {
    # A few minutes on 2 CPU cores, converged (4:27 wall, 167 s CPU at load ~8: 70 round trips, median
    # 2 per walker, weakest pair 0.49). The rung count is fixed for the reason given for "default".
    "smoke": SimilarityPreset(length=2, bin_width=0.1, num_steps=1_000, num_groups=4, pilot_steps=60,
                              probe_steps=60, probe_chains=4, reservoir_size=8, steps_per_block=100,
                              num_replicas=8),
    # Under an hour on 2 CPU cores, converged (see BUILD notes in /tmp/notes_similarity.md).
    # The pilot alone would place the maximum 64 rungs here (stuck high-beta pilot walkers inflate
    # the spread it measures), so the rung count is fixed and the burn-in places them.
    "default": SimilarityPreset(length=3, bin_width=0.05, num_steps=1_500, num_groups=6, pilot_steps=100,
                                probe_steps=100, probe_chains=8, reservoir_size=32, num_replicas=10),
}


class SimilarityToReference:
    """apply_embeddings(params, E, e (L+2, d)) -> cos(sentence embedding of e, reference): params =
    (the Bert's nnx state, the reference's unit sentence embedding (d,)). E is unused (BERT's
    output head is not tied to its input embeddings)."""

    def __init__(self, graphdef):
        self.graphdef = graphdef
        self.__name__ = "bert_cosine_similarity"

    def __call__(self, params, embedding, e):
        state, reference = params
        bert = nnx.merge(self.graphdef, state)
        return jnp.dot(l2_normalize(mean_pool(bert.apply_embeddings(e))), reference.astype(jnp.float32))

    def __eq__(self, other):
        return isinstance(other, SimilarityToReference) and other.graphdef == self.graphdef

    def __hash__(self):
        return hash(("bert_cosine_similarity", self.graphdef))


@dataclasses.dataclass
class Setup:
    model: Bert
    tokenizer: object
    reference_ids: list[int]
    target: object
    space: oj.InputSpace
    digest: str  # of the model's parameters, the reference and the space


class FlagError(ValueError):
    """Bad input, with the flag to blame in its message."""


def load(model_source, tokenizer_source, reference: str, length: int) -> Setup:
    """Model, tokenizer, reference and the token target; FlagError naming the flag at fault."""
    from omnijax.models.bert import BertLoadError

    try:
        model = load_bert(model_source)
    except BertLoadError as err:
        raise FlagError(f"--model={model_source}: {err}") from None
    config = model.config
    tokenizer_flag = "--tokenizer" if tokenizer_source is not None else "--model"
    source = model_source if tokenizer_source is None else tokenizer_source
    tokenizer = load_tokenizer(source, name=tokenizer_flag)
    check_vocabulary(tokenizer, config.vocab_size,
                     f"{tokenizer_flag}={source} (its tokenizer) and --model={model_source} (its vocab_size)")
    if tokenizer.cls_id is None or tokenizer.sep_id is None:
        raise FlagError(f"{tokenizer_flag}={source}: the tokenizer has no [CLS]/[SEP] tokens to frame a sentence")
    if length < 1:
        raise FlagError(f"--length must be >= 1, got {length}")
    if length + 2 > config.max_position_embeddings:
        raise FlagError(f"--length={length}: with [CLS] and [SEP] a sequence has {length + 2} positions, but the "
                        f"model has max_position_embeddings={config.max_position_embeddings}; use --length <= "
                        f"{config.max_position_embeddings - 2}")
    ids = tokenizer.encode(reference)
    if not ids:
        raise FlagError(f"--reference={reference!r} tokenizes to no tokens; give a sentence")
    if len(ids) + 2 > config.max_position_embeddings:
        raise FlagError(f"--reference has {len(ids)} tokens, more than the model's "
                        f"{config.max_position_embeddings - 2} (max_position_embeddings minus [CLS], [SEP])")
    reference_ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
    ref = sentence_embedding(model, jnp.asarray(reference_ids, jnp.int32))
    graphdef, state = nnx.split(model)
    target = token_target(SimilarityToReference(graphdef), model.embedding_matrix(), (state, ref))
    mask = np.zeros(length + 2, bool)
    mask[[0, -1]] = True
    values = np.zeros(length + 2, np.int32)
    values[0], values[-1] = tokenizer.cls_id, tokenizer.sep_id
    space = oj.InputSpace(shape=(length + 2,), num_categories=config.vocab_size, frozen_mask=mask,
                          frozen_values=values)
    digest = digest_arrays(*jax.tree.leaves(state), np.asarray(reference_ids), np.asarray([length]))[:12]
    return Setup(model, tokenizer, reference_ids, target, space, digest)


def output_range(setup: Setup, preset: SimilarityPreset, bin_width: float, key, cache_path: str | None = None,
                 log=print) -> dict:
    """Where to put the bins, from a short probe (cached in `cache_path`, keyed by its settings):

    * uniformly random sequences (512): the bulk of rho; the range starts at their median,
      rounded down to a multiple of bin_width, so the lowest bins hold about half of all inputs
      (the tail below, texts as dissimilar to the reference as most or more, is left out unless
      --z_min asks for it: sampling it needs negative betas, i.e. more rungs, and annotating it
      tells nothing a random text does not);
    * `probe_chains` token-GWG chains at beta = +8 / (std of z over random sequences) for
      `probe_steps` sweeps: the range ends where they settle (their mean z over the second half
      of the probe), rounded DOWN to a multiple of bin_width, so every bin lies inside what the
      sampler holds, not just touches (the paper likewise keeps only the output range where the
      sampler finds enough distinct inputs, §3.2). The best input they touched (probe_high) is
      reported; with the range ending at it, the top bins stay nearly empty.
    """
    settings = {"digest": setup.digest, "probe_steps": preset.probe_steps, "probe_chains": preset.probe_chains,
                "key": np.asarray(jax.random.key_data(key)).tolist(), "version": 3}
    if cache_path and os.path.isfile(cache_path):
        with open(cache_path) as f:
            cached = json.load(f)
        if cached.get("settings") == settings:
            log(f"probe: reusing {cache_path}")
            return _edges_from_probe(cached, bin_width)
    random_key, chain_key, step_key = jax.random.split(key, 3)
    space, target = setup.space, setup.target
    value = jax.jit(jax.vmap(make_value(target, space), in_axes=(None, 0)))
    x = space.apply_frozen(space.random_inputs(random_key, 512)).reshape(512, -1)
    started = time.perf_counter()
    log("probe: the model on 512 uniformly random sequences (compiling)")
    z_random = np.asarray(value(target.params, x))
    scale = float(np.std(z_random)) or 1.0
    beta = 8.0 / scale
    algo = oj.mcmc.token_gwg(target, space, beta=beta)
    chains = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(space.random_inputs(chain_key, preset.probe_chains),
                                                              algo.params)
    step = jax.jit(jax.vmap(algo.step, in_axes=(0, 0, None)))
    log(f"probe: {preset.probe_chains} token-GWG chains at beta {beta:.4g} for {preset.probe_steps} sweeps "
        f"(compiling)")
    high, last, settled = -np.inf, time.perf_counter(), []
    for i in range(preset.probe_steps):
        chains, _ = step(jax.random.split(jax.random.fold_in(step_key, i), preset.probe_chains), chains, algo.params)
        z = np.asarray(chains.z)
        high = max(high, float(np.max(z)))
        if i >= preset.probe_steps // 2:
            settled.append(float(np.mean(z)))
        if time.perf_counter() - last > 5.0 or i + 1 == preset.probe_steps:
            last = time.perf_counter()
            log(f"probe: sweep {i + 1}/{preset.probe_steps}, highest z {high:.4f}")
    best = np.asarray(chains.x)[int(np.argmax(np.asarray(chains.z)))]
    result = {"settings": settings, "random_mean": float(z_random.mean()), "random_std": scale,
              "random_median": float(np.median(z_random)), "random_min": float(z_random.min()),
              "random_max": float(z_random.max()), "probe_beta": beta, "probe_high": high,
              "probe_settled": float(np.mean(settled)),
              "probe_best_text": setup.tokenizer.decode(best[1:-1].tolist()),
              "seconds": round(time.perf_counter() - started, 1)}
    if cache_path:
        with open(cache_path, "w") as f:
            json.dump(result, f, indent=1)
    return _edges_from_probe(result, bin_width)


def _edges_from_probe(probe: dict, bin_width: float) -> dict:
    low = np.floor(probe["random_median"] / bin_width) * bin_width
    high = np.floor(probe["probe_settled"] / bin_width) * bin_width
    if high < low + 2 * bin_width:  # keep at least two bins
        high = low + 2 * bin_width
    return {**probe, "z_min": float(low), "z_max": float(high)}


def bin_edges(z_min: float, z_max: float, bin_width: float) -> np.ndarray:
    """Edges z_min, z_min + bin_width, ..., covering z_max (the last bin may end past it)."""
    count = max(1, int(np.ceil((z_max - z_min) / bin_width - 1e-9)))
    return np.round(z_min + bin_width * np.arange(count + 1), 10)


def settings_digest(setup: Setup, edges, settings: dict) -> str:
    """12 hex digits naming a sampling checkpoint: model, reference, space, bins and sampler settings."""
    return digest_arrays(np.asarray(edges, np.float64),
                         prefix=(setup.digest + json.dumps(settings, sort_keys=True)).encode())[:12]
