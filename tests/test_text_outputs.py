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


def _text_run(tok, directory):
    """A run directory of a text run: samples.npz by the experiments' writer, texts.json by omnijax.text."""
    from experiments.workflows.results import write_samples_npz

    length = 3
    space = oj.InputSpace(shape=(length + 2,), num_categories=tok.vocab_size,
                          frozen_mask=np.array([True] + [False] * length + [True]),
                          frozen_values=np.array([101] + [0] * length + [102]))
    words = [["a", "red", "car"], ["the", "dog", "ran"], ["rain", "falls", "today"], ["blue", "sky", "[SEP]"]]
    seqs = np.asarray([[101] + [tok.encode(w)[0] if w != "[SEP]" else 102 for w in ws] + [102] for ws in words],
                      np.int32)
    est = FakeEstimate(space, [0.0, 0.5, 1.0], {0: (seqs[:2], np.array([0.1, 0.2])),
                                                 1: (seqs[2:], np.array([0.7, 0.9]))})
    est.representative_weights = lambda b: np.full(len(est.representatives(b)), 1 / max(1, len(est.representatives(b))))
    os.makedirs(directory, exist_ok=True)
    write_samples_npz(os.path.join(directory, "samples.npz"), est)
    texts = [" ".join(ws) for ws in words]
    assert [tok.decode(x[1:-1]) for x in seqs] == texts  # one token per word
    return est, texts


def test_annotation_serves_text_of_a_text_run(tok, tmp_path):
    import sqlite3
    import threading
    import urllib.request

    from omnijax.annotation import Store
    from omnijax.annotation.server import AnnotationApp, make_server

    workdir = str(tmp_path / "run")
    est, texts = _text_run(tok, workdir)
    # Imported before texts.json exists: a token run, shown as tokens; the texts arrive on re-import.
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        assert run.kind == "tokens" and all(s.text is None for s in store.samples(run.id))
    write_text_representatives(workdir, est, tok)
    with sqlite3.connect(str(tmp_path / "a.sqlite")) as db:  # a store made before text runs existed
        db.execute("ALTER TABLE samples DROP COLUMN text")
        db.execute("ALTER TABLE runs DROP COLUMN meta")
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        assert run.kind == "text" and run.meta["frozen_text"] == "[CLS] … [SEP]"
        assert run.num_categories == 30522  # texts.json's vocabulary, not the largest id sampled
        assert [s.text for s in store.samples(run.id)] == texts
        app = AnnotationApp(store, run, question="Same meaning as: a man plays guitar?")
        server = make_server(app, 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            get = lambda path: json.loads(urllib.request.urlopen(base + path, timeout=10).read())
            meta = get("/api/meta")
            assert meta["kind"] == "text" and meta["frozen_text"] == "[CLS] … [SEP]"
            assert not {"z", "bin", "bin_edges"} & set(meta)
            served = [s for g in range(meta["num_groups"])
                      for s in get(f"/api/group?annotator=alice&group={g}")["samples"]]
            assert sorted(s["text"] for s in served) == sorted(texts)  # "blue sky [SEP]": free [SEP] kept
            for s in served:  # the text belongs to its own input
                assert s["text"] == texts[[t[1:-1] for t in est_ids(est)].index(s["input"][1:-1])]
            page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
            assert 'typeof sample.text === "string"' in page and "sentence" in page
        finally:
            server.shutdown()
            server.server_close()
    # An image run is unchanged: no text, kind "image".
    with Store(str(tmp_path / "b.sqlite")) as store:
        from tests.test_annotation_store import make_run

        image_run = store.import_run(make_run(tmp_path / "images"))
        assert image_run.kind == "image" and AnnotationApp(store, image_run).meta()["kind"] == "image"
        assert "text" not in AnnotationApp(store, image_run).group("bob", 0)["samples"][0]


def est_ids(est):
    return [list(map(int, x)) for b in range(est.num_bins) for x in est.representatives(b)]


def test_texts_json_that_lacks_a_sample(tok, tmp_path):
    from omnijax.annotation.store import load_samples

    workdir = str(tmp_path / "run")
    est, texts = _text_run(tok, workdir)
    write_text_representatives(workdir, est, tok)
    path = os.path.join(workdir, TEXTS_FILE)
    with open(path) as f:
        payload = json.load(f)
    payload["texts"] = payload["texts"][1:]
    with open(path, "w") as f:
        json.dump(payload, f)
    assert load_samples(workdir)["texts"] == texts  # decoded with the tokenizer texts.json names
    payload["tokenizer"] = str(tmp_path / "gone")
    with open(path, "w") as f:
        json.dump(payload, f)
    with pytest.raises(ValueError, match=r"texts.json lacks the text of 1 of the 4 samples"):
        load_samples(workdir)
    with open(path, "w") as f:
        f.write('{"kind": "image"}')
    with pytest.raises(ValueError, match=r'kind "text"'):
        load_samples(workdir)


from tests.test_annotation_browser import Page, browser, start_browser  # noqa: E402,F401  (browser: a fixture)


def test_page_draws_the_texts_in_chromium(tok, tmp_path, browser):
    """The page itself (its JavaScript) shows a text run's inputs as their text, not token ids."""
    import threading

    from omnijax.annotation import Store
    from omnijax.annotation.server import AnnotationApp, make_server

    workdir = str(tmp_path / "run")
    est, texts = _text_run(tok, workdir)
    write_text_representatives(workdir, est, tok)
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        server = make_server(AnnotationApp(store, run), 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        driver = start_browser(str(tmp_path / "profile"), *browser)
        try:
            page = Page(driver, f"http://127.0.0.1:{server.server_address[1]}/")
            driver.get(page.url)
            page.login("alice")
            shown = []
            for _ in range(2):  # both groups
                page.wait.until(lambda d: page.find(".cell .sentence"))
                shown += page.read("return [...document.querySelectorAll('.cell .sentence')].map(e => e.textContent)")
                page.keys("]")
                page.wait.until(lambda d: page.title().startswith("Group 2") or len(shown) == 4)
            assert sorted(shown) == sorted(texts)
            frozen = page.read("return document.getElementById('frozen').textContent")
            assert frozen.endswith("[CLS] … [SEP]")
            assert not page.find(".cell canvas") and not page.find(".cell .tokens span")
        finally:
            driver.quit()
            server.shutdown()
            server.server_close()
