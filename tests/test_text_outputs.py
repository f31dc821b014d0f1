"""omnijax.text on the real all-MiniLM-L6-v2 tokenizer: loading, vocabulary checks, and the text
representatives of a (fake) estimate over [CLS] x x x x [SEP]."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

import omnijax as oj
from omnijax.models.bert import minilm_directory
from omnijax.text import TEXTS_FILE, check_vocabulary, load_tokenizer, write_text_representatives


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(minilm_directory())


def test_load_decode_and_vocabulary(tok, tmp_path):
    assert tok.vocab_size == 30522
    assert (tok.cls_id, tok.sep_id, tok.pad_id) == (101, 102, 0)
    assert {0, 100, 101, 102, 103} <= tok.special_ids
    ids = tok.encode("A man is playing a guitar.")
    assert ids == [1037, 2158, 2003, 2652, 1037, 2858, 1012]  # no padding to 128, no [CLS]/[SEP]
    assert tok.decode(ids) == "a man is playing a guitar."
    assert tok.decode([2000, 102, 2001]) == "to [SEP] was"  # special tokens written out
    assert tok.token(2003) == "is"
    # a tokenizer.json file loads too
    assert load_tokenizer(minilm_directory() / "tokenizer.json").vocab_size == 30522
    assert check_vocabulary(tok, 30522, "--model") is tok
    with pytest.raises(ValueError, match=r"--tokenizer.*30522 tokens.*50257"):
        check_vocabulary(tok, 50257, "--tokenizer")
    with pytest.raises(ValueError, match=r"outside"):
        tok.decode([30522])
    with pytest.raises(ValueError, match=r"--model=.*no tokenizer in"):
        load_tokenizer(tmp_path, name="--model")
    with pytest.raises(ValueError, match=r"--model='no/such-model-xyz': no tokenizer found"):
        load_tokenizer("no/such-model-xyz", name="--model", hub_timeout=1.0)


class FakeEstimate:
    """What write_text_representatives reads of an estimate."""

    def __init__(self, space, edges, reps):
        self.space, self.bin_edges, self.num_bins = space, np.asarray(edges, float), len(edges) - 1
        self._reps = reps  # bin -> (inputs, outputs)

    def representatives(self, b):
        return self._reps.get(b, (np.zeros((0,) + self.space.shape, np.int32), None))[0]

    def representative_outputs(self, b):
        return self._reps.get(b, (None, np.zeros(0)))[1]


def test_write_text_representatives(tok, tmp_path):
    length = 4
    mask = np.array([True] + [False] * length + [True])
    values = np.array([101] + [0] * length + [102])
    space = oj.InputSpace(shape=(length + 2,), num_categories=tok.vocab_size, frozen_mask=mask, frozen_values=values)
    sentences = ["a man plays guitar", "the cat sat down", "dogs run [SEP] fast", "hello world $x$ `y`"]
    seqs = []
    for s in sentences:
        ids = tok.encode(s)[:length]
        ids += [1012] * (length - len(ids))
        seqs.append([101] + ids + [102])
    seqs = np.asarray(seqs, np.int32)
    reps = {0: (seqs[:1], np.array([0.1])), 2: (seqs[1:], np.array([0.55, 0.6, 0.58]))}
    est = FakeEstimate(space, [0.0, 0.25, 0.5, 0.75], reps)
    paths = write_text_representatives(str(tmp_path), est, tok, per_bin=2, title="fake")
    assert set(paths) == {"representatives.csv", "representatives.md", "representatives.png", TEXTS_FILE}
    with open(paths["representatives.csv"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["bin", "bin_lo", "bin_hi", "z", "token_ids", "text"]
    assert [r["bin"] for r in rows] == ["0", "2", "2"]  # per_bin=2 keeps two of bin 2's three
    assert rows[0]["text"] == "a man plays guitar"  # frozen [CLS]/[SEP] stripped
    assert rows[0]["token_ids"] == " ".join(map(str, seqs[0]))  # the whole sequence
    assert rows[2]["text"] == "dogs run [SEP] fast"  # a [SEP] at a free position stays
    assert (rows[1]["bin_lo"], rows[1]["bin_hi"], rows[1]["z"]) == ("0.5", "0.75", "0.55")
    md = open(paths["representatives.md"]).read()
    assert "[CLS] … [SEP]" in md and "## bin 1: z in [0.25, 0.5) (0 representatives)" in md
    assert "a man plays guitar" in md and "the cat sat down" in md and "hello" not in md
    with open(paths[TEXTS_FILE]) as f:
        texts = json.load(f)
    assert texts["kind"] == "text" and texts["frozen_positions"] == [0, length + 1]
    assert texts["tokenizer"].endswith("tokenizer.json") and texts["vocab_size"] == 30522
    assert [t["text"] for t in texts["texts"]][-1].startswith("hello world $")  # all, not per_bin
    assert len(texts["texts"]) == 4 and texts["texts"][1]["token_ids"] == seqs[1].tolist()
    from PIL import Image

    with Image.open(paths["representatives.png"]) as im:
        assert im.size[0] > 400 and im.size[1] > 100
        assert np.asarray(im.convert("L")).min() < 100  # something is drawn
    # a bin-less estimate (nothing sampled) still writes every file
    empty = FakeEstimate(space, [0.0, 1.0], {})
    paths = write_text_representatives(str(tmp_path / "empty"), empty, tok)
    assert all(os.path.isfile(p) for p in paths.values())
    with pytest.raises(ValueError, match="per_bin"):
        write_text_representatives(str(tmp_path), est, tok, per_bin=0)
