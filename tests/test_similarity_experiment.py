"""experiments.similarity end to end on the real all-MiniLM-L6-v2 weights, in a test-sized
configuration (one free token; the smoke preset's time is measured in the notes), its rerun
resuming from the checkpoint, and every bad input refused naming its flag."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FLAGS = ["--preset=smoke", "--length=1", "--num_steps=60", "--pilot_steps=20", "--probe_steps=10",
              "--num_groups=2", "--num_replicas=3", "--reservoir_size=4", "--per_bin=3"]


def run_experiment(*flags, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "experiments.similarity", *flags], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("similarity") / "run")
    done = run_experiment(*TEST_FLAGS, f"--workdir={workdir}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return workdir, done


def test_end_to_end_outputs(finished):
    import jax.numpy as jnp

    from omnijax.models.bert import load_bert, minilm_directory, sentence_embedding
    from omnijax.text import load_tokenizer

    workdir, done = finished
    assert "verdict: " in done.stdout
    for name in ("rho.csv", "rho.png", "samples.npz", "representatives.csv", "representatives.md",
                 "representatives.png", "texts.json", "metrics.json", "probe.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    conv = metrics["convergence"]
    assert isinstance(conv["converged"], bool) and isinstance(conv["warnings"], list)
    assert ("verdict: converged" in done.stdout) == conv["converged"]
    assert metrics["proposal"] == "token_gwg" and metrics["length"] == 1 and metrics["output_range"] == "probe"
    edges = np.asarray(metrics["bin_edges"])
    probe = metrics["probe"]
    assert np.allclose(np.diff(edges), 0.1)  # the smoke preset's bin width
    assert edges[0] <= probe["random_median"] < edges[0] + 0.1 + 1e-9  # from the bulk ...
    assert edges[-1] <= max(probe["probe_settled"], edges[0] + 0.2) + 1e-9  # ... to where the probe settled
    assert probe["probe_settled"] <= probe["probe_high"]
    with open(os.path.join(workdir, "rho.csv")) as f:
        rho = list(csv.DictReader(f))
    assert len(rho) == len(edges) - 1 and {r["converged"] for r in rho} <= {"0", "1"}
    # Every representative's z is the model's: recomputed through the plain (ids) path of the BERT.
    model = load_bert(minilm_directory())
    tok = load_tokenizer(minilm_directory())
    ref = sentence_embedding(model, jnp.asarray([101, *tok.encode(metrics["reference"]), 102]))
    with open(os.path.join(workdir, "representatives.csv")) as f:
        reps = list(csv.DictReader(f))
    assert reps
    for r in reps:
        ids = [int(i) for i in r["token_ids"].split()]
        assert len(ids) == 3 and ids[0] == 101 and ids[-1] == 102
        assert r["text"] == tok.decode(ids[1:-1])  # frozen [CLS]/[SEP] stripped
        z = float(jnp.dot(sentence_embedding(model, jnp.asarray(ids)), ref))
        assert abs(z - float(r["z"])) < 1e-4
        assert float(r["bin_lo"]) - 1e-6 <= z < float(r["bin_hi"]) + 1e-6
    with open(os.path.join(workdir, "texts.json")) as f:
        texts = json.load(f)
    with np.load(os.path.join(workdir, "samples.npz")) as npz:
        assert len(texts["texts"]) == len(npz["inputs"])


def test_rerun_resumes_from_the_checkpoint(finished):
    workdir, first = finished
    with open(os.path.join(workdir, "rho.csv")) as f:
        before = f.read()
    again = run_experiment(*TEST_FLAGS, f"--workdir={workdir}")
    assert again.returncode == 0, again.stderr[-5000:]
    assert "probe: reusing" in again.stderr and "sampling: resuming from" in again.stderr
    with open(os.path.join(workdir, "rho.csv")) as f:
        after = f.read()
    assert after == before  # the finished checkpoint, bit for bit, not a new run


def test_bad_input_names_the_flag(tmp_path):
    """Each bad input is refused before any sampling, naming its flag: in-process for the loader's
    checks, and through the command line for two (a usage error, no traceback, nothing written)."""
    import re

    from experiments.workflows.similarity import load
    from omnijax.models.bert import minilm_directory

    minilm = str(minilm_directory())
    # A tokenizer of another vocabulary, a GPT-2 checkpoint, a BERT directory without weights.
    (tmp_path / "other_tok").mkdir()
    (tmp_path / "other_tok" / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1, "b": 2}, "unk_token": "[UNK]"}}))
    from flax import nnx

    from omnijax.models.gpt2 import GPT2, GPT2Config, save_gpt2

    save_gpt2(GPT2(GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2), rngs=nnx.Rngs(0)),
              tmp_path / "not_bert")
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text((minilm_directory() / "config.json").read_text())
    cases = [
        ((minilm, None, "a man", 511), r"^--length=511: .* 513 positions, but the model has max_position_embeddings=512"),
        ((minilm, None, "   ", 4), r"^--reference='   ' tokenizes to no tokens"),
        ((minilm, str(tmp_path / "other_tok"), "a man", 4),
         r"^--tokenizer=.*other_tok.*has 3 tokens but the model's vocabulary has 30522"),
        ((str(tmp_path / "not_bert"), None, "a man", 4), r"^--model=.*not_bert: .*gpt2"),
        ((str(tmp_path / "no_weights"), None, "a man", 4), r"^--model=.*no_weights: .*model.safetensors"),
        ((str(tmp_path / "nothing_here"), None, "a man", 4), r"^--model=.*nothing_here: "),
        ((minilm, str(tmp_path / "not_bert"), "a man", 4), r"^--tokenizer=.*not_bert.*: no tokenizer in"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError) as err:
            load(*args)
        assert re.search(message, str(err.value)), (args, str(err.value))
    for flags, message in [(["--length=600"], r"--length=600: .* 602 positions"),
                           (["--z_min=0.5", "--z_max=0.2"], r"--z_min must be < --z_max")]:
        done = run_experiment(*flags, f"--workdir={tmp_path / 'run'}", timeout=120)
        assert done.returncode != 0 and re.search(message, done.stderr), done.stderr[-3000:]
        assert "Traceback" not in done.stderr and not (tmp_path / "run" / "rho.csv").exists()
