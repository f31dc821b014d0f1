"""`python -m experiments.sst2` end to end on a tiny random DistilBertForSequenceClassification saved as
a Hugging Face directory with a WordLevel tokenizer.json ([CLS]/[SEP] frozen, texts per bin, verdict
in metrics.json); the range rule with the confident end high; fine-tuning (the loop on a toy task, the
encoder of a masked-LM checkpoint); --finetune without `datasets`; bad flags fail naming the flag."""

import csv
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from tests.hf_directories import perturbed, write_tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 20
SPECIAL = {0: "[PAD]", 1: "[UNK]", 2: "[CLS]", 3: "[SEP]"}


SCALE = 0.6  # of the noise added to the random weights


def tiny_config(**kw):
    from omnijax.models.distilbert import DistilBertConfig

    return DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=12, n_layers=1, n_heads=2, dim=16,
                            hidden_dim=32, **kw)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from omnijax.models.distilbert import DistilBertClassifier, save_distilbert
    from omnijax.models.gpt2 import GPT2, GPT2Config, save_gpt2

    root = tmp_path_factory.mktemp("sst2-models")
    dirs = {name: str(root / name) for name in ("bert", "gpt2", "noweights", "small_tok")}
    config = tiny_config(label_names=("NEGATIVE", "POSITIVE"))
    save_distilbert(perturbed(DistilBertClassifier(config, rngs=nnx.Rngs(0)), SCALE), dirs["bert"])
    write_tokenizer(dirs["bert"], VOCAB, SPECIAL)
    save_gpt2(GPT2(GPT2Config(vocab_size=VOCAB, n_positions=8, n_embd=16, n_layer=1, n_head=2), rngs=nnx.Rngs(0)),
              dirs["gpt2"])
    os.makedirs(dirs["noweights"])
    shutil.copy(os.path.join(dirs["bert"], "config.json"), dirs["noweights"])
    os.makedirs(dirs["small_tok"])
    write_tokenizer(dirs["small_tok"], VOCAB - 4, SPECIAL)
    return dirs


def run_sst2(*flags, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "experiments.sst2", "--preset=smoke", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sst2_run(models, tmp_path_factory):
    """A run over the upper half of what random sentences give (the range from the flags: the range
    pilot is the LM test's; the rule's high-confidence side is tested below without sampling)."""
    from experiments.workflows import sst2 as flow
    from experiments.workflows.text_sampling import random_outputs

    model, _ = flow.load_classifier(models["bert"])
    z = random_outputs(flow.logit_target(model, 1), flow.sentence_space(4, VOCAB, 2, 3), jax.random.key(0))
    z_min, z_max = np.floor(np.median(z) * 10) / 10, np.ceil(np.quantile(z, 0.99) * 10) / 10
    workdir = str(tmp_path_factory.mktemp("sst2-run") / "bert")
    result = run_sst2(f"--model={models['bert']}", f"--workdir={workdir}", "--length=4", f"--z_min={z_min}",
                      f"--z_max={z_max}", "--annotate_per_bin=4")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, result, (z_min, z_max)


def test_sst2_run_end_to_end(sst2_run):
    workdir, result, (z_min, z_max) = sst2_run
    for name in ("rho.csv", "rho.png", "samples.npz", "vocab.json", "texts.json", "representatives.csv",
                 "representatives.md", "representatives.png", "range.json", "metrics.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["positive"] == "high" and metrics["label"] == 1 and metrics["label_name"] == "POSITIVE"
    assert (metrics["cls_id"], metrics["sep_id"]) == (2, 3)
    assert set(metrics["convergence"]) >= {"converged", "warnings"} and "verdict:" in result.stdout
    assert metrics["output_range"]["z_min"] == pytest.approx(z_min)
    assert metrics["output_range"]["z_max"] == pytest.approx(z_max)
    samples = np.load(os.path.join(workdir, "samples.npz"))
    assert samples["inputs"].shape[1:] == (6,) and len(samples["inputs"]) > 0
    assert np.all(samples["inputs"][:, 0] == 2) and np.all(samples["inputs"][:, -1] == 3)  # frozen [CLS], [SEP]
    with open(os.path.join(workdir, "representatives.csv")) as f:
        reps = list(csv.DictReader(f))
    names = lambda i: SPECIAL.get(int(i), f"w{i}")  # noqa: E731
    assert reps and all(r["text"] == " ".join(names(i) for i in r["token_ids"].split()[1:-1]) for r in reps)
    with open(os.path.join(workdir, "representatives.md")) as f:
        assert "[CLS] … [SEP]" in f.read()


def test_range_rule_with_the_confident_end_high():
    """SST-2: the upper bound is the edge of the HIGHEST bin with >= min_distinct sequences, the
    lower bound the budget's bins below it; LM (low): the mirror image."""
    from experiments.workflows.text_sampling import RangeRequest, choose_range, pilot_range_edges

    edges = np.round(np.arange(0, 11) * 0.5, 6)
    distinct = np.array([0, 3, 30, 31, 40, 40, 35, 30, 29, 2])
    high = RangeRequest("high", 0.5, 30, 12, 4, None, None, None, 20.0)
    record = choose_range(high, pilot_edges=edges, distinct=distinct)
    assert (record["z_max"], record["z_min"], record["num_bins"]) == (4.0, 2.5, 3)
    low = RangeRequest("low", 0.5, 30, 12, 4, None, None, 0.0, 0.0)
    record = choose_range(low, pilot_edges=edges, distinct=distinct)
    assert (record["z_min"], record["z_max"]) == (1.0, 2.5)
    record = choose_range(RangeRequest("high", 0.5, 30, 12, 4, -1.0, 7.0, None, 20.0))
    assert (record["z_min"], record["z_max"], record["confident_end_from"]) == (-1.0, 7.0, "--z_max")
    # The pilot's bins: from the random median towards the confident side, on the grid of bin widths.
    np.testing.assert_allclose(pilot_range_edges(high, 1.23)[[0, -1]], [1.0, 21.5])
    np.testing.assert_allclose(pilot_range_edges(low, 4.17)[[0, -1]], [0.0, 4.5])
    with pytest.raises(ValueError, match="--pilot_z_min=5"):
        pilot_range_edges(RangeRequest("low", 0.5, 30, 12, 4, None, None, 5.0, 0.0), 4.17)
    with pytest.raises(ValueError, match="--min_distinct=50.*--z_max"):
        choose_range(RangeRequest("high", 0.5, 50, 12, 4, None, None, None, 20.0), pilot_edges=edges,
                     distinct=distinct)


def test_finetune_loop_and_masked_lm_encoder(models, tmp_path):
    """The fine-tuning steps on a toy task (the first word decides the label) lower the loss and reach
    full accuracy; a masked-LM checkpoint gives its encoder, the head initialised."""
    from experiments.workflows import sst2 as flow
    from omnijax.models import hf_checkpoint
    from omnijax.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(models["bert"])
    rng = np.random.default_rng(0)
    words = rng.integers(4, VOCAB, (256, 4))
    sentences = [" ".join(f"w{w}" for w in row) for row in words]
    labels = (words[:, 0] < 12).astype(np.int32)  # the first word decides
    ids = flow.encode_sentences(tokenizer, sentences, 6, 2, 3, 0)
    assert ids.shape == (256, 8) and (ids[:, 0] == 2).all() and (ids[:, -1] == 3).all()
    # A DistilBertForMaskedLM-like directory: the encoder's tensors, vocab_* heads, no classifier.
    from omnijax.models.distilbert import DistilBertClassifier, save_distilbert

    fresh, masked = tmp_path / "fresh", str(tmp_path / "masked")
    save_distilbert(DistilBertClassifier(tiny_config(), rngs=nnx.Rngs(3)), fresh)
    tensors = hf_checkpoint.read_safetensors(fresh / "model.safetensors")
    tensors = {k: v for k, v in tensors.items() if not k.startswith(("classifier.", "pre_classifier."))}
    tensors["vocab_projector.bias"] = np.zeros(VOCAB, np.float32)
    with open(fresh / "config.json") as f:
        config = json.load(f)
    config.update(architectures=["DistilBertForMaskedLM"])
    config.pop("id2label"), config.pop("label2id")
    hf_checkpoint.write_directory(masked, tensors, config)
    model = flow.load_base_for_finetune(masked)
    assert model.config.label_names == ("NEGATIVE", "POSITIVE")
    np.testing.assert_array_equal(np.asarray(model.embedding_matrix()),
                                  tensors["distilbert.embeddings.word_embeddings.weight"])  # the encoder's
    before = flow.accuracy(model, ids, labels, positive=1)
    model, history = flow.finetune(model, ids, labels, epochs=8, batch_size=32, learning_rate=1e-2, log_every=8,
                                   log=lambda *_: None)
    assert history[-1]["loss"] < history[0]["loss"]
    assert flow.accuracy(model, ids, labels, positive=1) >= max(before, 0.9)


def test_flag_checks_name_the_flag(models):
    from experiments.workflows import sst2 as flow
    from omnijax.text.tokenizer import load_tokenizer

    model, _ = flow.load_classifier(models["bert"])
    tokenizer = load_tokenizer(models["bert"])
    with pytest.raises(flow.ClassifierError, match="--length=11 must lie in \\[1, 10\\]"):
        flow.check_length(model, 11)
    with pytest.raises(flow.ClassifierError, match="--cls_id=20 is outside"):
        flow.frozen_ids(tokenizer, VOCAB, 20, None)
    assert flow.frozen_ids(tokenizer, VOCAB, None, None) == (2, 3)
    with pytest.raises(flow.ClassifierError, match="--positive_label='joy'"):
        flow.positive_label(model, "joy")
    assert flow.positive_label(model, "negative") == 0 and flow.positive_label(model, None) == 1
    with pytest.raises(flow.ClassifierError, match="--model=.*gpt2.*not a DistilBERT"):
        flow.load_classifier(models["gpt2"])
    with pytest.raises(flow.ClassifierError, match="--model=.*model.safetensors"):
        flow.load_classifier(models["noweights"])


@pytest.mark.parametrize("case", ["finetune", "tokenizer", "length", "hub"])
def test_bad_command_lines_fail_naming_the_flag(models, tmp_path, case):
    workdir = tmp_path / "run"
    flags, named = {
        "finetune": (("--finetune", "--length=4"), "--finetune"),
        "tokenizer": ((f"--model={models['bert']}", f"--tokenizer={models['small_tok']}", "--length=4"), "--tokenizer"),
        "length": ((f"--model={models['bert']}", "--length=11"), "--length=11"),
        "hub": (("--model=no-such-owner/no-such-model",), "--model=no-such-owner/no-such-model"),
    }[case]
    result = run_sst2(f"--workdir={workdir}", *flags)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr[-2000:]
    if case in ("finetune", "hub"):
        assert "tried" in result.stderr  # what was tried (datasets / the local directory and the hub cache)
    assert not workdir.exists(), "nothing is written for a bad command line"
