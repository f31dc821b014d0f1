"""Parity of omnijax's Flax NNX BERT encoder and DistilBERT classifier with transformers' PyTorch
`BertModel` (last_hidden_state) and `DistilBertForSequenceClassification` (logits).

Small random configs (2 layers, width 32, vocabulary 100, 16 positions, 3 labels for DistilBERT),
every parameter perturbed away from HF's init, saved with save_pretrained (safetensors) and loaded
with `load_bert` / `load_distilbert`. Float32 outputs must agree to 1e-4 (absolute) for ids,
one-hot vectors and embedding inputs; the input-embedding gradient must match torch's.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import torch  # test-only dependency (the `test` extra pins torch==2.13.0)
import transformers
from flax import nnx

from omnijax.models.bert import (Bert, BertConfig, BertLoadError, l2_normalize, load_bert, mean_pool, save_bert,
                                 sentence_embedding)
from omnijax.models.distilbert import (DistilBertClassifier, DistilBertConfig, DistilBertLoadError, load_distilbert,
                                       save_distilbert)
from tests.parity_helpers import (bf16_worst_difference, check_bad_inputs, check_token_inputs, copy_checkpoint,
                                  embedding_gradients, perturbed, random_embeddings, run, run_embeddings, sequences,
                                  torch_forward)

torch.set_num_threads(1)

VOCAB, N_POS, WIDTH, LABELS = 100, 16, 32, 3
TOL = 1e-4
# bf16 keeps 8 mantissa bits (~0.4% relative); BERT's hidden states (post-LayerNorm) and the
# DistilBERT logits here are O(1) (measured: see the printed numbers)
BF16_TOL = 0.1


def _bert_config():
    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, max_position_embeddings=N_POS, type_vocab_size=2)


def _distilbert_config():
    return transformers.DistilBertConfig(vocab_size=VOCAB, dim=WIDTH, n_layers=2, n_heads=4, hidden_dim=64,
                                         max_position_embeddings=N_POS, num_labels=LABELS,
                                         id2label={0: "negative", 1: "neutral", 2: "positive"})


ARCHITECTURES = {
    # name: (HF config, HF class, loader, saver, error, HF output -> our output, output shape for length L)
    "bert": (_bert_config, transformers.BertModel, load_bert, save_bert, BertLoadError,
             lambda out: out.last_hidden_state[0], lambda length: (length, WIDTH)),
    "distilbert": (_distilbert_config, transformers.DistilBertForSequenceClassification, load_distilbert,
                   save_distilbert, DistilBertLoadError, lambda out: out.logits[0], lambda length: (LABELS,)),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (directory, HF model, our model), for both architectures."""
    made = {}
    for name, (make_config, hf_class, load, *_) in ARCHITECTURES.items():
        model = perturbed(hf_class, make_config())
        path = tmp_path_factory.mktemp(f"hf_{name}")
        model.save_pretrained(path, safe_serialization=True)
        made[name] = (path, model, load(path))
    return made


def _sequences():
    return sequences(VOCAB, (N_POS, 9, 1))


def _torch_output(name, model, ids=None, embeds=None):
    return ARCHITECTURES[name][5](torch_forward(model, ids, embeds)).double().numpy()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_outputs_match_transformers(checkpoints, name):
    _, hf, ours = checkpoints[name]
    worst = 0.0
    for ids in _sequences():
        ref = _torch_output(name, hf, ids)
        assert np.abs(ref).max() > 0.3  # non-trivial outputs
        out = run(ours, jnp.asarray(ids))
        assert out.shape == ARCHITECTURES[name][6](len(ids)) and out.dtype == jnp.float32
        worst = max(worst, np.abs(np.asarray(out, np.float64) - ref).max())
    print(f"{name} max |output diff| = {worst:.3g}")
    assert worst <= TOL


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_onehot_and_embedding_inputs_equal_ids(checkpoints, name):
    _, hf, ours = checkpoints[name]
    check_token_inputs(ours, _sequences()[0], VOCAB)
    # arbitrary real embeddings (not rows of the matrix) against transformers' inputs_embeds
    e = random_embeddings(N_POS, WIDTH)
    err = np.abs(np.asarray(run_embeddings(ours, jnp.asarray(e)), np.float64) - _torch_output(name, hf, embeds=e)).max()
    print(f"{name} inputs_embeds max |output diff| = {err:.3g}")
    assert err <= TOL


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_embedding_gradient_matches_torch(checkpoints, name):
    _, hf, ours = checkpoints[name]
    e = ours.embedding_matrix()[jnp.asarray(_sequences()[0])]
    weights = np.random.default_rng(3).standard_normal(ARCHITECTURES[name][6](N_POS)).astype(np.float32)
    grad, ref = embedding_gradients(ours, lambda e_torch: ARCHITECTURES[name][5](hf(inputs_embeds=e_torch)), e, weights)
    err = np.abs(grad - ref).max()
    print(f"{name} d/d embeddings max |diff| = {err:.3g} (scale {np.abs(ref).max():.3g})")
    assert np.abs(ref).max() > 1e-2 and err <= TOL * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_bf16_close_to_float32(checkpoints, name):
    path, _, ours = checkpoints[name]
    ours16 = ARCHITECTURES[name][2](path, dtype=jnp.bfloat16)
    assert ours16.word_embeddings[...].dtype == jnp.bfloat16 and ours16.dtype == jnp.bfloat16
    worst = bf16_worst_difference(ours16, ours, _sequences()[:2], VOCAB)
    print(f"{name} bf16 vs f32 max |output diff| = {worst:.3g}")
    assert worst <= BF16_TOL


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_save_is_read_by_transformers(checkpoints, name, tmp_path):
    _, hf, ours = checkpoints[name]
    _, hf_class, load, save, *_ = ARCHITECTURES[name]
    save(ours, tmp_path)
    reloaded = hf_class.from_pretrained(tmp_path).float().eval()
    if name == "distilbert":
        assert ours.config.label_names == ("negative", "neutral", "positive")
        assert reloaded.config.id2label == hf.config.id2label
    ids = _sequences()[0]
    assert np.abs(_torch_output(name, reloaded, ids) - _torch_output(name, hf, ids)).max() <= 1e-6
    np.testing.assert_array_equal(np.asarray(run(load(tmp_path), jnp.asarray(ids))), np.asarray(run(ours, jnp.asarray(ids))))


def test_mean_pooled_sentence_embedding(checkpoints):
    _, hf, ours = checkpoints["bert"]
    ids = _sequences()[0]
    hidden = torch.tensor(_torch_output("bert", hf, ids))
    ref = torch.nn.functional.normalize(hidden.mean(dim=0), dim=-1).numpy()
    got = np.asarray(nnx.jit(sentence_embedding)(ours, jnp.asarray(ids)))
    assert got.shape == (WIDTH,) and abs(np.linalg.norm(got) - 1) < 1e-5
    assert np.abs(got - ref).max() <= TOL
    mask = np.array([1] * 10 + [0] * 6)
    np.testing.assert_allclose(np.asarray(mean_pool(hidden.numpy(), mask)), hidden.numpy()[:10].mean(0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(l2_normalize(np.array([3.0, 4.0]))), [0.6, 0.8], atol=1e-7)


def test_bert_head_checkpoint_loads_its_encoder(tmp_path):
    """A BertForSequenceClassification checkpoint ("bert." keys, pooler, classifier) loads as its encoder."""
    classifier = perturbed(transformers.BertForSequenceClassification, _bert_config(), seed=4)
    classifier.save_pretrained(tmp_path, safe_serialization=True)
    ids = _sequences()[1]
    ref = _torch_output("bert", classifier.bert, ids)
    assert np.abs(np.asarray(run(load_bert(tmp_path), jnp.asarray(ids)), np.float64) - ref).max() <= TOL


def test_random_init_and_bad_inputs():
    bert = Bert(BertConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=8), rngs=nnx.Rngs(0))
    distil = DistilBertClassifier(DistilBertConfig(vocab_size=11, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                                   max_position_embeddings=8, num_labels=2), rngs=nnx.Rngs(0))
    assert bert(jnp.arange(3)).shape == (3, 16)  # op by op, uncompiled
    assert run(bert, jnp.arange(8) % 11).shape == (8, 16) and run(distil, jnp.arange(8) % 11).shape == (2,)
    for model in (bert, distil):
        check_bad_inputs(model, max_length=8, vocab=11, width=16)
    with pytest.raises(BertLoadError, match="position_embedding_type='relative_key'"):
        BertConfig.from_hf_config({"model_type": "bert", "position_embedding_type": "relative_key"})


# ----------------------------------------------------------------------------- bad checkpoints

@pytest.mark.parametrize("name,other", [("bert", "distilbert"), ("distilbert", "bert")])
def test_other_architecture_is_refused(checkpoints, name, other):
    load, error = ARCHITECTURES[name][2], ARCHITECTURES[name][4]
    expected = {"bert": "model_type='bert'", "distilbert": "model_type='distilbert'"}[name]
    with pytest.raises(error, match=f"is not a .*model_type='{other}'.*expected {expected}"):
        load(checkpoints[other][0])


def test_distilbert_without_classifier_is_refused(checkpoints, tmp_path):
    copy_checkpoint(checkpoints["distilbert"][0], tmp_path,
                    edit_config=lambda config: {**config, "architectures": ["DistilBertModel"]})
    with pytest.raises(DistilBertLoadError, match=r"DistilBertModel.*expected.*DistilBertForSequenceClassification"):
        load_distilbert(tmp_path)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_missing_weights_file_is_named(checkpoints, name, tmp_path):
    copy_checkpoint(checkpoints[name][0], tmp_path, weights=False)
    with pytest.raises(ARCHITECTURES[name][4], match="lacks model.safetensors"):
        ARCHITECTURES[name][2](tmp_path)


@pytest.mark.parametrize("name,key,pattern", [
    ("bert", "encoder.layer.1.intermediate.dense.weight", r"encoder\.layer\.1\.intermediate\.dense\.weight.*\(64, 32\)"),
    ("distilbert", "classifier.weight", r"classifier\.weight.*\(3, 32\)"),
    ("distilbert", "distilbert.transformer.layer.0.ffn.lin2.bias", r"transformer\.layer\.0\.ffn\.lin2\.bias.*\(32,\)"),
])
def test_missing_and_misshapen_tensors_are_named(checkpoints, tmp_path, name, key, pattern):
    from safetensors.numpy import load_file, save_file

    path = checkpoints[name][0]
    load, error = ARCHITECTURES[name][2], ARCHITECTURES[name][4]
    copy_checkpoint(path, tmp_path, weights=False)
    tensors = load_file(str(path / "model.safetensors"))
    assert key in tensors
    save_file({k: v for k, v in tensors.items() if k != key}, str(tmp_path / "model.safetensors"))
    with pytest.raises(error, match="no tensor .*" + pattern):
        load(tmp_path)
    save_file({**tensors, key: np.zeros((5,) + tensors[key].shape, np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(error, match=r"has shape \(5, .*expected"):
        load(tmp_path)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_unknown_hub_id_names_the_argument(monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ARCHITECTURES[name][4], match=r"could not load .*'omnijax-test/no-such-model'.*HF_HUB_OFFLINE"):
        ARCHITECTURES[name][2]("omnijax-test/no-such-model")
