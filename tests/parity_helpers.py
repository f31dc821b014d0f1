"""What the parity tests against transformers' PyTorch models (BERT, DistilBERT, OLMo, GPT-2,
MiniLM) share: compiled calls, perturbed HF models, the test sequences, torch forward passes, the
checks every architecture runs alike (one-hot and embedding inputs, input-embedding gradients,
bf16 against float32) and copies of a checkpoint directory for the bad-checkpoint tests."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import torch  # test-only dependency (the `test` extra pins torch==2.13.0)
from flax import nnx

# compiled calls (about 3x faster than op-by-op on these tiny models; the same code runs)
run = nnx.jit(lambda model, tokens: model(tokens))
run_embeddings = nnx.jit(lambda model, e: model.apply_embeddings(e))


def perturbed(hf_class, config, seed: int = 0):
    """A float32 eval-mode `hf_class(config)` with every parameter moved by 0.15 standard normal
    noise away from HF's init (so each tensor matters and outputs are O(1))."""
    torch.manual_seed(seed)
    model = hf_class(config).float().eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.15 * torch.randn_like(param))
    return model


def sequences(vocab: int, lengths) -> list[np.ndarray]:
    """Random token ids (seed 1), one sequence of each length."""
    rng = np.random.default_rng(1)
    return [rng.integers(0, vocab, size=n) for n in lengths]


def torch_forward(model, ids=None, embeds=None):
    """The HF model's output (no grad) for one sequence of ids, or of input embeddings (L, d)."""
    with torch.no_grad():
        if embeds is not None:
            return model(inputs_embeds=torch.tensor(np.asarray(embeds)[None], dtype=torch.float32))
        return model(torch.tensor(np.asarray(ids)[None], dtype=torch.long))


def random_embeddings(length: int, width: int) -> np.ndarray:
    """Arbitrary real input embeddings (not rows of the matrix), float32 (seed 2)."""
    return 0.5 * np.random.default_rng(2).standard_normal((length, width)).astype(np.float32)


def check_token_inputs(ours, ids, vocab: int) -> tuple[np.ndarray, jax.Array]:
    """Assert ids, one-hot vectors and their embedding rows give the same output (1e-6) and that
    token_embeddings are the rows; return (output of the ids, the rows)."""
    by_ids = np.asarray(run(ours, jnp.asarray(ids)))
    rows = ours.embedding_matrix()[jnp.asarray(ids)]
    np.testing.assert_array_equal(np.asarray(ours.token_embeddings(jnp.asarray(ids))), np.asarray(rows))
    np.testing.assert_allclose(np.asarray(run(ours, jax.nn.one_hot(ids, vocab))), by_ids, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(run_embeddings(ours, rows)), by_ids, atol=1e-6, rtol=0)
    return by_ids, rows


def embedding_gradients(ours, hf_output, e, weights) -> tuple[np.ndarray, np.ndarray]:
    """d sum(output * weights) / d input embeddings `e`, ours (jit) and torch's; `hf_output` maps
    the torch embeddings (1, L, d) to the output compared."""
    grad = np.asarray(jax.jit(jax.grad(lambda x: jnp.sum(ours.apply_embeddings(x) * weights)))(e))
    e_torch = torch.tensor(np.asarray(e)[None], requires_grad=True)
    (hf_output(e_torch) * torch.tensor(weights)).sum().backward()
    return grad, e_torch.grad[0].numpy()


def bf16_worst_difference(ours16, ours, id_sequences, vocab: int) -> float:
    """Largest |bf16 - float32 output| over the sequences; asserts bf16 returns float32 and that its
    one-hot input gives its ids' output (1e-6)."""
    worst = 0.0
    for ids in id_sequences:
        out16 = run(ours16, jnp.asarray(ids))
        assert out16.dtype == jnp.float32
        worst = max(worst, float(jnp.abs(out16 - run(ours, jnp.asarray(ids))).max()))
    np.testing.assert_allclose(np.asarray(run(ours16, jax.nn.one_hot(ids, vocab))), np.asarray(out16), atol=1e-6)
    return worst


def check_bad_inputs(model, max_length: int, vocab: int, width: int) -> None:
    """Assert `model` refuses (ValueError naming each) a sequence longer than max_position_embeddings,
    token vectors of another vocabulary and input embeddings of another width."""
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(jnp.zeros(max_length + 1, jnp.int32))
    with pytest.raises(ValueError, match="token vectors"):
        model(jnp.zeros((3, vocab + 1)))
    with pytest.raises(ValueError, match=rf"embeddings must have shape \(L, {width}\)"):
        model.apply_embeddings(jnp.zeros((3, width - 1)))


def copy_checkpoint(source, target, *, weights: bool = True, edit_config=None):
    """`target` with `source`'s config.json (passed through `edit_config` when given) and, with
    `weights`, its model.safetensors."""
    if weights:
        shutil.copy(source / "model.safetensors", target / "model.safetensors")
    if edit_config is None:
        shutil.copy(source / "config.json", target / "config.json")
    else:
        (target / "config.json").write_text(json.dumps(edit_config(json.loads((source / "config.json").read_text()))))
    return target
