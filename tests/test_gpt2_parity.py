"""Parity of omnijax's Flax NNX GPT-2 with Hugging Face transformers' PyTorch GPT-2.

A small random `transformers.GPT2LMHeadModel` is saved with save_pretrained (safetensors) and
loaded with `omnijax.models.gpt2.load_gpt2`; logits and per-sequence mean NLL must agree to
1e-4 (absolute, float32). All parameters, biases and LayerNorm affines included, are perturbed
away from HF's init (zero biases, unit LN weights, std 0.02) so every tensor matters and the
logits are O(1).
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import torch  # test-only dependency (the `test` extra pins torch==2.13.0)
import transformers
from flax import nnx

from omnijax.models.gpt2 import GPT2, GPT2Config, GPT2LoadError, load_gpt2, sequence_nll_fn
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import check_output_fn, make_value_and_grad
from tests.parity_helpers import copy_checkpoint, sequences, torch_forward

VOCAB, N_POS, BOS = 50, 16, 49
TOL = 1e-4
BF16_LOGIT_TOL = 0.15  # bf16 has an 8-bit mantissa (~0.4% relative); logits here are O(1-5)
BF16_NLL_TOL = 0.03


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=N_POS,
                                     bos_token_id=BOS, eos_token_id=BOS, activation_function="gelu_new")
    model = transformers.GPT2LMHeadModel(config).float().eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.1 if name.endswith("bias") or "ln_" in name else 0.15
            param.add_(scale * torch.randn_like(param))
    path = tmp_path_factory.mktemp("hf_gpt2")
    model.save_pretrained(path, safe_serialization=True)
    return path, model


@pytest.fixture(scope="module")
def ours(hf_dir):
    return load_gpt2(hf_dir[0])


def _sequences():
    return sequences(VOCAB, (N_POS, N_POS, 9, 1))


def _torch_logits(model, ids):
    return torch_forward(model, ids).logits[0].double().numpy()


def _torch_nll(model, ids):
    """Mean NLL per token: context [BOS] + ids[:-1] predicts every token of ids."""
    context = np.concatenate([[BOS], ids[:-1]])
    logp = torch.log_softmax(torch.tensor(_torch_logits(model, context)), dim=-1).numpy()
    return -np.mean(logp[np.arange(len(ids)), ids])


def test_config_from_hf(hf_dir):
    cfg = GPT2Config.from_hf_config(json.loads((hf_dir[0] / "config.json").read_text()))
    assert (cfg.vocab_size, cfg.n_positions, cfg.n_embd, cfg.n_layer, cfg.n_head) == (VOCAB, N_POS, 32, 2, 2)
    assert cfg.activation_function == "gelu_new" and cfg.layer_norm_epsilon == 1e-5 and cfg.bos_token_id == BOS
    assert cfg.inner_dim == 128


def test_logits_and_nll_match_transformers(hf_dir, ours):
    _, hf = hf_dir
    nll_fn = jax.jit(sequence_nll_fn(ours, BOS))
    logit_err = nll_err = 0.0
    for ids in _sequences():
        ref = _torch_logits(hf, ids)
        assert np.abs(ref).max() > 0.5  # non-trivial logits
        out = ours(jnp.asarray(ids))
        assert out.shape == (len(ids), VOCAB) and out.dtype == jnp.float32
        got = np.asarray(out, np.float64)
        logit_err = max(logit_err, np.abs(got - ref).max())
        onehot = jax.nn.one_hot(ids, VOCAB)
        nll_err = max(nll_err, abs(float(nll_fn(onehot)) - _torch_nll(hf, ids)))
    print(f"max |logits diff| = {logit_err:.3g}, max |NLL diff| = {nll_err:.3g}")
    assert logit_err <= TOL
    assert nll_err <= TOL


def test_onehot_input_equals_ids(ours):
    for ids in _sequences():
        by_ids = ours(jnp.asarray(ids))
        by_onehot = ours(jax.nn.one_hot(ids, VOCAB))
        np.testing.assert_allclose(np.asarray(by_onehot), np.asarray(by_ids), atol=1e-6, rtol=0)


def test_gradient_wrt_onehot_matches_finite_difference(ours):
    ids = _sequences()[0]
    nll_fn = sequence_nll_fn(ours, BOS)
    onehot = jax.nn.one_hot(ids, VOCAB)
    grad = np.asarray(jax.jit(jax.grad(nll_fn))(onehot))
    assert grad.shape == (N_POS, VOCAB) and np.all(np.isfinite(grad))
    # a context position (feeds later predictions and is itself scored), off its current token
    pos, cat = 3, (int(ids[3]) + 7) % VOCAB
    eps = 1e-2
    f = jax.jit(nll_fn)
    plus = float(f(onehot.at[pos, cat].add(eps)))
    minus = float(f(onehot.at[pos, cat].add(-eps)))
    fd = (plus - minus) / (2 * eps)
    print(f"d NLL / d onehot[{pos}, {cat}]: autodiff {grad[pos, cat]:.6g}, central difference {fd:.6g}")
    assert abs(grad[pos, cat]) > 1e-3
    assert abs(fd - grad[pos, cat]) <= 2e-3 + 1e-2 * abs(fd), (fd, grad[pos, cat])


def test_nll_fn_is_an_omnijax_output_fn(ours):
    space = InputSpace((6,), VOCAB)
    nll_fn = sequence_nll_fn(ours)  # bos defaults to config.bos_token_id
    check_output_fn(nll_fn, space)
    x = jnp.asarray(_sequences()[0][:6])
    z, g = jax.jit(make_value_and_grad(nll_fn, space))(nll_fn.params, x)
    assert z.shape == () and g.shape == (6, VOCAB) and np.isfinite(float(z)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(float(z), float(sequence_nll_fn(ours, BOS)(jax.nn.one_hot(x, VOCAB))), atol=1e-6)


def test_bf16_close_to_float32(hf_dir, ours):
    path, _ = hf_dir
    ours16 = load_gpt2(path, dtype=jnp.bfloat16)
    assert ours16.wte[...].dtype == jnp.bfloat16 and ours16.h[0].mlp.c_fc.weight[...].dtype == jnp.bfloat16
    nll32, nll16 = sequence_nll_fn(ours, BOS), sequence_nll_fn(ours16, BOS)
    worst_logit = worst_nll = 0.0
    for ids in _sequences():
        l32, l16 = ours(jnp.asarray(ids)), ours16(jnp.asarray(ids))
        assert l16.dtype == jnp.float32
        worst_logit = max(worst_logit, float(jnp.abs(l16 - l32).max()))
        onehot = jax.nn.one_hot(ids, VOCAB)
        z16 = nll16(onehot)
        assert z16.dtype == jnp.float32
        worst_nll = max(worst_nll, abs(float(z16) - float(nll32(onehot))))
    print(f"bf16 vs f32: max |logits diff| = {worst_logit:.3g}, max |NLL diff| = {worst_nll:.3g}")
    assert worst_logit <= BF16_LOGIT_TOL
    assert worst_nll <= BF16_NLL_TOL


def test_random_init_and_bad_inputs():
    cfg = GPT2Config(vocab_size=11, n_positions=8, n_embd=16, n_layer=1, n_head=4)
    model = GPT2(cfg, rngs=nnx.Rngs(0))
    assert model(jnp.arange(8) % 11).shape == (8, 11)
    with pytest.raises(ValueError, match="n_positions"):
        model(jnp.zeros(9, jnp.int32))
    with pytest.raises(ValueError, match="token vectors"):
        model(jnp.zeros((3, 12)))
    with pytest.raises(ValueError, match="divisible"):
        GPT2Config(n_embd=10, n_head=3)


def test_missing_weights_file_is_named(hf_dir, tmp_path):
    copy_checkpoint(hf_dir[0], tmp_path, weights=False)
    with pytest.raises(GPT2LoadError, match="model.safetensors"):
        load_gpt2(tmp_path)


def test_wrong_shape_names_the_key(hf_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    copy_checkpoint(hf_dir[0], tmp_path, weights=False)
    tensors = load_file(str(hf_dir[0] / "model.safetensors"))
    key = "transformer.h.1.mlp.c_fc.weight"
    tensors[key] = np.ascontiguousarray(tensors[key].T)  # (128, 32) instead of (32, 128)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(GPT2LoadError, match=r"h\.1\.mlp\.c_fc\.weight.*\(128, 32\).*\(32, 128\)"):
        load_gpt2(tmp_path)


def test_unreachable_hub_id_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(GPT2LoadError, match=r"omnijax-test/no-such-gpt2.*tried.*local directory.*Hugging Face"):
        load_gpt2("omnijax-test/no-such-gpt2")
    assert time.monotonic() - start < 10.0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(GPT2LoadError, match="HF_HUB_OFFLINE"):
        load_gpt2("omnijax-test/no-such-gpt2")
    assert time.monotonic() - start < 10.0
