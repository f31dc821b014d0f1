"""Parity of omnijax's Flax NNX OLMo with Hugging Face transformers' PyTorch `OlmoForCausalLM`.

Two small random configs (2 layers, width 32, vocabulary 100, 16 positions): untied head with
grouped key/value heads and q/k/v clipping; tied head with attention biases. Every parameter is
perturbed away from HF's init so each tensor matters and logits are O(1). Checkpoints are saved
with save_pretrained (safetensors) and loaded with `omnijax.models.olmo.load_olmo`; float32
logits must agree to 1e-4 (absolute) for ids, one-hot vectors and embedding inputs.
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

import torch  # test-only dependency (the `test` extra pins torch==2.13.0)
import transformers
from flax import nnx

from omnijax.models.olmo import Olmo, OlmoConfig, OlmoLoadError, load_olmo, save_olmo
from tests.parity_helpers import (bf16_worst_difference, check_bad_inputs, check_token_inputs, copy_checkpoint,
                                  embedding_gradients, perturbed, random_embeddings, run, run_embeddings, sequences,
                                  torch_forward)

torch.set_num_threads(1)

VOCAB, N_POS, WIDTH = 100, 16, 32
TOL = 1e-4
BF16_LOGIT_TOL = 0.15  # bf16 keeps 8 mantissa bits (~0.4% relative); logits here reach ~4 (measured 0.04-0.06)
CLIP = 0.4

CONFIGS = {
    "untied_gqa_clip": dict(tie_word_embeddings=False, num_key_value_heads=2, clip_qkv=CLIP, attention_bias=False),
    "tied_bias": dict(tie_word_embeddings=True, num_key_value_heads=4, clip_qkv=None, attention_bias=True),
}


def _hf_config(**options):
    return transformers.OlmoConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, max_position_embeddings=N_POS, pad_token_id=0,
                                   eos_token_id=1, **options)


def _perturbed_model(config, seed=0):
    return perturbed(transformers.OlmoForCausalLM, config, seed)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def hf_olmo(request, tmp_path_factory):
    model = _perturbed_model(_hf_config(**CONFIGS[request.param]))
    path = tmp_path_factory.mktemp(f"hf_olmo_{request.param}")
    model.save_pretrained(path, safe_serialization=True)
    return path, model, load_olmo(path)


@pytest.fixture(scope="module")
def untied_dir(tmp_path_factory):
    model = _perturbed_model(_hf_config(**CONFIGS["untied_gqa_clip"]))
    path = tmp_path_factory.mktemp("hf_olmo_untied")
    model.save_pretrained(path, safe_serialization=True)
    return path, model


def _sequences():
    return sequences(VOCAB, (N_POS, 9, 1))


def _torch_logits(model, ids=None, embeds=None):
    return torch_forward(model, ids, embeds).logits[0].double().numpy()


def test_config_from_hf(hf_olmo):
    path, hf, ours = hf_olmo
    cfg = OlmoConfig.from_hf_config(json.loads((path / "config.json").read_text()))
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.max_position_embeddings) == (VOCAB, WIDTH, 2, N_POS)
    assert cfg.tie_word_embeddings == hf.config.tie_word_embeddings and cfg.clip_qkv == hf.config.clip_qkv
    assert cfg.kv_heads == hf.config.num_key_value_heads and cfg.rope_theta == 10000.0
    assert (ours.lm_head is None) == cfg.tie_word_embeddings


def test_logits_match_transformers(hf_olmo):
    _, hf, ours = hf_olmo
    worst = 0.0
    for ids in _sequences():
        ref = _torch_logits(hf, ids)
        assert np.abs(ref).max() > 0.5  # non-trivial logits
        out = run(ours, jnp.asarray(ids))
        assert out.shape == (len(ids), VOCAB) and out.dtype == jnp.float32
        worst = max(worst, np.abs(np.asarray(out, np.float64) - ref).max())
    print(f"OLMo max |logits diff| = {worst:.3g}")
    assert worst <= TOL


def test_onehot_and_embedding_inputs_equal_ids(hf_olmo):
    _, hf, ours = hf_olmo
    by_ids, rows = check_token_inputs(ours, _sequences()[0], VOCAB)
    head = nnx.jit(lambda model, e: model.final_hidden_states(e) @ model.output_matrix().T)(ours, rows)
    np.testing.assert_allclose(np.asarray(head), by_ids, atol=1e-5, rtol=0)
    # arbitrary real embeddings (not rows of the matrix) against transformers' inputs_embeds
    e = random_embeddings(N_POS, WIDTH)
    err = np.abs(np.asarray(run_embeddings(ours, jnp.asarray(e)), np.float64) - _torch_logits(hf, embeds=e)).max()
    print(f"OLMo inputs_embeds max |logits diff| = {err:.3g}")
    assert err <= TOL


def test_embedding_gradient_matches_torch(hf_olmo):
    _, hf, ours = hf_olmo
    rng = np.random.default_rng(3)
    e = ours.embedding_matrix()[jnp.asarray(_sequences()[0])]
    weights = rng.standard_normal((N_POS, VOCAB)).astype(np.float32)
    grad, ref = embedding_gradients(ours, lambda e_torch: hf(inputs_embeds=e_torch).logits[0], e, weights)
    err = np.abs(grad - ref).max()
    print(f"OLMo d/d embeddings max |diff| = {err:.3g} (scale {np.abs(ref).max():.3g})")
    assert np.abs(ref).max() > 0.1 and err <= TOL * max(1.0, np.abs(ref).max())


def test_clip_qkv_is_active(untied_dir, tmp_path):
    """Without clipping the logits differ: the parity above exercised the clip."""
    path, hf = untied_dir
    copy_checkpoint(path, tmp_path, edit_config=lambda config: {**config, "clip_qkv": None})
    ids = jnp.asarray(_sequences()[0])
    difference = float(jnp.abs(run(load_olmo(tmp_path), ids) - run(load_olmo(path), ids)).max())
    assert difference > 0.05, difference


def test_bf16_close_to_float32(hf_olmo):
    path, _, ours = hf_olmo
    ours16 = load_olmo(path, dtype=jnp.bfloat16)
    assert ours16.embed_tokens[...].dtype == jnp.bfloat16
    assert ours16.layers[0].mlp.up_proj.weight[...].dtype == jnp.bfloat16
    worst = bf16_worst_difference(ours16, ours, _sequences()[:2], VOCAB)
    print(f"OLMo bf16 vs f32 max |logits diff| = {worst:.3g}")
    assert worst <= BF16_LOGIT_TOL


def test_save_olmo_is_read_by_transformers(hf_olmo, tmp_path):
    _, hf, ours = hf_olmo
    save_olmo(ours, tmp_path)
    reloaded = transformers.OlmoForCausalLM.from_pretrained(tmp_path).float().eval()
    ids = _sequences()[0]
    assert np.abs(_torch_logits(reloaded, ids) - _torch_logits(hf, ids)).max() <= 1e-6
    np.testing.assert_array_equal(np.asarray(run(load_olmo(tmp_path), jnp.asarray(ids))), np.asarray(run(ours, jnp.asarray(ids))))


def test_random_init_and_bad_inputs():
    model = Olmo(OlmoConfig(vocab_size=11, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=8), rngs=nnx.Rngs(0))
    assert model(jnp.arange(8) % 11).shape == (8, 11)
    check_bad_inputs(model, max_length=8, vocab=11, width=16)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        OlmoConfig(num_attention_heads=4, num_key_value_heads=3)


def test_sharded_and_bf16_checkpoints_load(untied_dir, tmp_path):
    _, hf = untied_dir
    hf.save_pretrained(tmp_path / "sharded", safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ids = _sequences()[0]
    err = np.abs(np.asarray(run(load_olmo(tmp_path / "sharded"), jnp.asarray(ids)), np.float64) - _torch_logits(hf, ids)).max()
    assert err <= TOL
    hf16 = _perturbed_model(_hf_config(**CONFIGS["untied_gqa_clip"])).to(torch.bfloat16)
    hf16.save_pretrained(tmp_path / "bf16", safe_serialization=True)
    ours = load_olmo(tmp_path / "bf16")  # bf16 tensors read exactly, then held as float32
    expected = hf16.model.layers[1].mlp.down_proj.weight.float().detach().numpy()
    np.testing.assert_array_equal(np.asarray(ours.layers[1].mlp.down_proj.weight[...]), expected)
    # (transformers reading the bf16 file into float32; hf16.float() would keep bf16-rounded RoPE frequencies)
    hf32 = transformers.OlmoForCausalLM.from_pretrained(tmp_path / "bf16", dtype=torch.float32).eval()
    assert np.abs(np.asarray(run(ours, jnp.asarray(ids)), np.float64) - _torch_logits(hf32, ids)).max() <= TOL


def test_legacy_config_layout_and_unsupported_rope():
    legacy = {"model_type": "olmo", "architectures": ["OlmoForCausalLM"], "vocab_size": 50, "hidden_size": 16,
              "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 500.0,
              "rope_scaling": None, "tie_word_embeddings": True}
    assert OlmoConfig.from_hf_config(legacy).rope_theta == 500.0
    with pytest.raises(OlmoLoadError, match="rope_type='linear'"):
        OlmoConfig.from_hf_config({**legacy, "rope_scaling": {"type": "linear", "factor": 2.0}})


# ----------------------------------------------------------------------------- bad checkpoints

def test_other_architecture_is_refused(untied_dir, tmp_path):
    path, _ = untied_dir
    llama = copy_checkpoint(path, tmp_path,
                            edit_config=lambda c: {**c, "model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    with pytest.raises(OlmoLoadError, match=r"model_type='llama'.*expected model_type='olmo'"):
        load_olmo(llama)
    base = copy_checkpoint(path, tmp_path, edit_config=lambda c: {**c, "architectures": ["OlmoModel"]})
    with pytest.raises(OlmoLoadError, match=r"OlmoModel.*expected.*OlmoForCausalLM"):
        load_olmo(base)


def test_missing_weights_file_is_named(untied_dir, tmp_path):
    copy_checkpoint(untied_dir[0], tmp_path, weights=False)
    with pytest.raises(OlmoLoadError, match="lacks model.safetensors"):
        load_olmo(tmp_path)


def test_missing_and_misshapen_tensors_are_named(untied_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    path, _ = untied_dir
    copy_checkpoint(path, tmp_path, weights=False)
    tensors = load_file(str(path / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(OlmoLoadError, match=r"no tensor 'layers\.1\.mlp\.up_proj\.weight'.*\(64, 32\)"):
        load_olmo(tmp_path)
    save_file({k: v for k, v in tensors.items() if k != "lm_head.weight"}, str(tmp_path / "model.safetensors"))
    with pytest.raises(OlmoLoadError, match=r"no tensor 'lm_head\.weight'"):
        load_olmo(tmp_path)  # untied config: the head must be there
    key = "model.layers.0.self_attn.k_proj.weight"
    save_file({**tensors, key: np.ascontiguousarray(tensors[key].T)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(OlmoLoadError, match=r"k_proj\.weight.*\(32, 16\).*expected \(16, 32\)"):
        load_olmo(tmp_path)


def test_unknown_hub_id_names_the_argument(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OlmoLoadError, match=r"could not load OLMo 'omnijax-test/no-such-olmo'.*HF_HUB_OFFLINE"):
        load_olmo("omnijax-test/no-such-olmo")


def test_corrupt_weights_file_is_named(untied_dir, tmp_path):
    path, _ = untied_dir
    copy_checkpoint(path, tmp_path, weights=False)
    data = (path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(OlmoLoadError, match=r"could not read .*model\.safetensors.*data offsets"):
        load_olmo(tmp_path)
