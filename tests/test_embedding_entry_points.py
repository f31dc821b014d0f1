"""The embedding-input entry point shared by omnijax's Hugging Face architectures (GPT2, Olmo, Bert,
DistilBertClassifier): token_embeddings(tokens) -> (L, d) rows of embedding_matrix() (V, d), and
apply_embeddings(e) -> the model's output, with model(tokens) == apply_embeddings(token_embeddings(
tokens)). Token-space proposals differentiate the output w.r.t. e; by the chain rule the gradient
w.r.t. a one-hot input must then be grad_e @ W.T. GPT-2's embedding input is also checked against
transformers' `inputs_embeds` (the other three are in their parity test files).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import torch  # test-only dependency (the `test` extra pins torch==2.13.0)
import transformers
from flax import nnx

from omnijax.models.bert import Bert, BertConfig
from omnijax.models.distilbert import DistilBertClassifier, DistilBertConfig
from omnijax.models.gpt2 import GPT2, GPT2Config, load_gpt2
from omnijax.models.olmo import Olmo, OlmoConfig

torch.set_num_threads(1)

VOCAB, LENGTH = 23, 7

MODELS = {
    "gpt2": lambda: GPT2(GPT2Config(vocab_size=VOCAB, n_positions=8, n_embd=16, n_layer=1, n_head=2), rngs=nnx.Rngs(0)),
    "olmo": lambda: Olmo(OlmoConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, max_position_embeddings=8), rngs=nnx.Rngs(0)),
    "bert": lambda: Bert(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=32, max_position_embeddings=8), rngs=nnx.Rngs(0)),
    "distilbert": lambda: DistilBertClassifier(DistilBertConfig(vocab_size=VOCAB, dim=16, n_layers=1, n_heads=2,
                                                                hidden_dim=32, max_position_embeddings=8),
                                               rngs=nnx.Rngs(0)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_entry_point_reproduces_the_model_and_its_onehot_gradient(name):
    model = MODELS[name]()
    ids = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, LENGTH))
    onehot = jax.nn.one_hot(ids, VOCAB)
    matrix = model.embedding_matrix()
    assert matrix.shape == (VOCAB, 16)
    e = model.token_embeddings(ids)
    np.testing.assert_array_equal(np.asarray(e), np.asarray(matrix[ids]))
    np.testing.assert_allclose(np.asarray(model.token_embeddings(onehot)), np.asarray(e), atol=1e-7)
    output = nnx.jit(lambda m, x: m(x))(model, ids)
    np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m.apply_embeddings(x))(model, e)), np.asarray(output),
                               atol=1e-6, rtol=0)
    weights = jnp.asarray(np.random.default_rng(1).standard_normal(output.shape), jnp.float32)
    grad_e = jax.jit(jax.grad(lambda x: jnp.sum(model.apply_embeddings(x) * weights)))(e)
    grad_onehot = jax.jit(jax.grad(lambda x: jnp.sum(model(x) * weights)))(onehot)
    assert grad_e.shape == (LENGTH, 16) and float(jnp.abs(grad_e).max()) > 0
    np.testing.assert_allclose(np.asarray(grad_onehot), np.asarray(grad_e @ matrix.T), atol=1e-5, rtol=1e-4)


def test_gpt2_embedding_input_matches_transformers(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=50, n_positions=16, bos_token_id=49,
                                     eos_token_id=49)
    hf = transformers.GPT2LMHeadModel(config).float().eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.15 * torch.randn_like(param))
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = load_gpt2(tmp_path)
    e = 0.5 * np.random.default_rng(2).standard_normal((16, 32)).astype(np.float32)
    with torch.no_grad():
        ref = hf(inputs_embeds=torch.tensor(e[None])).logits[0].double().numpy()
    logits = nnx.jit(lambda m, x: m.apply_embeddings(x))(ours, jnp.asarray(e))
    assert np.abs(np.asarray(logits, np.float64) - ref).max() <= 1e-4
    head = nnx.jit(lambda m, x: m.final_hidden_states(x) @ m.output_matrix().T)(ours, jnp.asarray(e))
    np.testing.assert_allclose(np.asarray(head), np.asarray(logits), atol=1e-5, rtol=0)
