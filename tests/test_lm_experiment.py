"""`python -m experiments.lm` end to end on a tiny random OLMo (untied head) saved as a Hugging Face
directory with a WordLevel tokenizer.json: range pilot -> output range by the paper's rule -> sampling
-> rho.csv/png, samples.npz, text representatives, metrics.json with the verdict; a rerun resumes; the
run is accepted by experiments.pr (positive=low from metrics.json). The OLMo token target (tied and
untied head, vocabulary restricted to the tokenizer's ids) against the model's own NLL and the one-hot
path's gains; bad flags fail naming the flag. (Sampled vs enumerated rho through the embedding path
for a tiny causal LM: tests/test_token_proposals.py.)"""

import csv
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.hf_directories import perturbed, write_tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 16
BOS = 15


SCALE = 0.5  # of the noise added to the random weights


def tiny_olmo(tied, vocab=VOCAB, seed=0):
    from omnijax.models.olmo import Olmo, OlmoConfig

    config = OlmoConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=8, tie_word_embeddings=tied,
                        eos_token_id=BOS, pad_token_id=0, bos_token_id=None)
    return perturbed(Olmo(config, rngs=nnx.Rngs(seed)), SCALE)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from omnijax.models.distilbert import DistilBertClassifier, DistilBertConfig, save_distilbert
    from omnijax.models.gpt2 import GPT2, GPT2Config, save_gpt2
    from omnijax.models.olmo import save_olmo

    root = tmp_path_factory.mktemp("lm-models")
    dirs = {name: str(root / name) for name in ("olmo", "gpt2", "bert", "noweights")}
    save_olmo(tiny_olmo(tied=False), dirs["olmo"])
    write_tokenizer(dirs["olmo"], VOCAB, {BOS: "<|endoftext|>"})
    config = GPT2Config(vocab_size=VOCAB, n_positions=8, n_embd=16, n_layer=1, n_head=2, bos_token_id=BOS)
    save_gpt2(perturbed(GPT2(config, rngs=nnx.Rngs(0)), SCALE), dirs["gpt2"])
    write_tokenizer(dirs["gpt2"], VOCAB, {BOS: "<|endoftext|>"})
    bert = DistilBertConfig(vocab_size=20, max_position_embeddings=12, n_layers=1, n_heads=2, dim=16, hidden_dim=32)
    save_distilbert(DistilBertClassifier(bert, rngs=nnx.Rngs(0)), dirs["bert"])
    write_tokenizer(dirs["bert"], 20, {0: "[PAD]", 1: "[UNK]", 2: "[CLS]", 3: "[SEP]"})
    os.makedirs(dirs["noweights"])
    shutil.copy(os.path.join(dirs["gpt2"], "config.json"), dirs["noweights"])
    return dirs


def run_lm(*flags, offline=True, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"  # a hub id is looked up in the local cache only: no network wait
    return subprocess.run([sys.executable, "-m", "experiments.lm", "--preset=smoke", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


RUN_FLAGS = ("--length=4", "--min_distinct=10", "--annotation_budget=40", "--annotate_per_bin=4")


@pytest.fixture(scope="module")
def olmo_run(models, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("lm-run") / "olmo")
    result = run_lm(f"--model={models['olmo']}", f"--workdir={workdir}", *RUN_FLAGS)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, result


def test_olmo_run_end_to_end(olmo_run):
    workdir, result = olmo_run
    for name in ("rho.csv", "rho.png", "samples.npz", "vocab.json", "texts.json", "representatives.csv",
                 "representatives.md", "representatives.png", "range.json", "range-pilot.json", "metrics.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(workdir, "range-pilot.json")) as f:  # what a rerun with other bounds reuses
        assert json.load(f)["distinct"] == metrics["output_range"]["pilot_distinct"]
    assert metrics["family"] == "olmo" and metrics["positive"] == "low" and metrics["bos_id"] == BOS
    assert set(metrics["convergence"]) >= {"converged", "warnings"}
    assert "verdict:" in result.stdout
    # The range rule: the lowest pilot bin holding >= --min_distinct distinct sequences, then
    # ceil(40 / 4) = 10 bins of 0.1 above it.
    rule = metrics["output_range"]
    counts, pilot_edges = np.array(rule["pilot_distinct"]), np.array(rule["pilot_bin_edges"])
    assert rule["confident_end_from"] == "range pilot"
    assert rule["z_min"] == pytest.approx(pilot_edges[np.flatnonzero(counts >= 10)[0]])
    assert rule["num_bins"] == 10 and rule["z_max"] == pytest.approx(rule["z_min"] + 1.0)
    with open(os.path.join(workdir, "rho.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and list(rows[0])[-1] == "converged"
    log_rho = np.array([float(r["log_rho"]) for r in rows])
    assert np.isfinite(log_rho).any() and np.all(log_rho[np.isfinite(log_rho)] <= 1e-6)
    samples = np.load(os.path.join(workdir, "samples.npz"))
    assert samples["inputs"].shape[1:] == (4,) and samples["inputs"].max() < VOCAB
    # The texts decode: every CSV row's text is its token ids through the tokenizer.
    with open(os.path.join(workdir, "representatives.csv")) as f:
        reps = list(csv.DictReader(f))
    assert reps and all(r["text"] == " ".join(
        "<|endoftext|>" if int(i) == BOS else f"w{i}" for i in r["token_ids"].split()) for r in reps)
    with open(os.path.join(workdir, "vocab.json")) as f:
        assert json.load(f)[:2] == ["w0", "w1"]


def test_rerun_resumes_without_recomputing(olmo_run, models):
    workdir, _ = olmo_run
    with open(os.path.join(workdir, "rho.csv")) as f:
        before = f.read()
    result = run_lm(f"--model={models['olmo']}", f"--workdir={workdir}", *RUN_FLAGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "range.json" in result.stderr and "range pilot:" not in result.stderr  # the range is reused
    with open(os.path.join(workdir, "rho.csv")) as f:  # restored from the finished checkpoint
        assert f.read() == before


def test_pr_accepts_lm_runs(olmo_run, tmp_path):
    """Two annotated lm runs (the run and a copy) through experiments.pr: positive=low comes from
    metrics.json, and the AUPR ratio of a run to itself is 1."""
    from omnijax.annotation import Oracle, Store, annotate

    workdir, _ = olmo_run
    runs = [str(tmp_path / "a"), str(tmp_path / "b")]
    for run in runs:
        shutil.copytree(workdir, run, ignore=shutil.ignore_patterns("sampling-*", "range-pilot-*"))
        with Store(os.path.join(run, "annotations.sqlite")) as store:
            imported = store.import_run(run)
            annotate(store, imported.id, Oracle("even-first-token", lambda x: bool(int(x[0]) % 2 == 0)))
    out = str(tmp_path / "pr")
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-m", "experiments.pr", f"--runs={','.join(runs)}", f"--out={out}"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["positive"] == "low"
    assert summary["aupr_ratio"]["value"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the OLMo target


def reference_onehot_nll(model, onehot, vocab):
    """The one-hot path: context [BOS, t_1..t_{L-1}] embedded by onehot @ E, t_i scored by onehot . logp."""
    full = jnp.zeros((onehot.shape[0], vocab)).at[:, :onehot.shape[1]].set(onehot)
    context = jnp.concatenate([jax.nn.one_hot(jnp.array([BOS]), vocab), full[:-1]])
    return -jnp.mean(jnp.sum(full * jax.nn.log_softmax(model(context), -1), -1))


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("num_tokens", [VOCAB, 12])
def test_olmo_target_is_the_nll_and_its_gains_are_the_onehot_gains(tied, num_tokens):
    """z equals the model's own mean NLL, and (E'[k] - E'[x_i]) . u_i equals the one-hot path's gains:
    both roles of a token (context and scored target) are in u, with a tied or an untied head and
    with the space restricted to the first ids (the softmax still over all of them)."""
    import omnijax as oj
    from experiments.workflows.lm import causal_lm_nll_target
    from omnijax.sampling.token_target import make_embedding_value_and_grad

    model = tiny_olmo(tied)
    target = causal_lm_nll_target(model, BOS, num_tokens)
    space = oj.InputSpace((5,), num_tokens)
    x = jnp.array([1, 3, 0, 7, 2])
    z, u = make_embedding_value_and_grad(target, space)(target.params, x)
    context = jnp.concatenate([jnp.array([BOS]), x[:-1]])
    nll = -jnp.mean(jax.nn.log_softmax(model(context), -1)[jnp.arange(5), x])
    assert float(z) == pytest.approx(float(nll), abs=1e-5)
    onehot = jax.nn.one_hot(x, num_tokens)
    g = jax.grad(lambda o: reference_onehot_nll(model, o, VOCAB))(onehot)
    gains = u @ target.params.embedding.T
    at_x = lambda t: t - jnp.sum(t * onehot, -1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(at_x(gains), at_x(g), atol=1e-5)
    assert target.params.embedding.shape == (num_tokens, 16 if tied else 32)


# ----------------------------------------------------------------------------- bad input


def test_flag_checks_name_the_flag(models):
    from experiments.workflows import lm as flow
    from omnijax.text.tokenizer import check_vocabulary, load_tokenizer

    model, family, _ = flow.load_causal_lm(models["gpt2"])
    assert family == "gpt2"
    with pytest.raises(ValueError, match="--length=9 must lie in \\[1, 8\\]"):
        flow.check_flags(model, family, length=9, bos_id=None)
    with pytest.raises(ValueError, match="--bos_id=16 is outside"):
        flow.check_flags(model, family, length=4, bos_id=16)
    assert flow.check_flags(model, family, length=8, bos_id=None) == BOS
    olmo, family, _ = flow.load_causal_lm(models["olmo"])
    assert family == "olmo" and flow.check_flags(olmo, family, length=4, bos_id=None) == BOS  # its EOS
    with pytest.raises(ValueError, match="--tokenizer.* 20 tokens but the model's vocabulary has 16"):
        check_vocabulary(load_tokenizer(models["bert"]), VOCAB, "--tokenizer")
    with pytest.raises(flow.LMLoadError, match="another architecture.*'distilbert'"):
        flow.load_causal_lm(models["bert"])
    with pytest.raises(flow.LMLoadError, match="model.safetensors"):
        flow.load_causal_lm(models["noweights"])


@pytest.mark.parametrize("case", ["length", "tokenizer", "hub"])
def test_bad_command_lines_fail_naming_the_flag(models, tmp_path, case):
    workdir = tmp_path / "run"
    flags, named = {
        "length": ((f"--model={models['gpt2']}", "--length=9"), "--length=9"),
        "tokenizer": ((f"--model={models['gpt2']}", f"--tokenizer={models['bert']}", "--length=4"), "--tokenizer"),
        "hub": (("--model=no-such-owner/no-such-model", "--length=4"), "--model=no-such-owner/no-such-model"),
    }[case]
    result = run_lm(f"--workdir={workdir}", *flags)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr[-2000:]
    if case == "hub":
        assert "tried" in result.stderr and "local directory" in result.stderr  # the sources tried
    assert not workdir.exists(), "nothing is written for a bad command line"


def test_bf16_targets_follow_the_float32_ones(models):
    """--bf16: both families load in bfloat16, and z of the token target stays near float32's."""
    from experiments.workflows import lm as flow
    from omnijax.models.gpt2 import sequence_nll_fn

    x = jnp.array([1, 3, 0, 7])
    for name in ("gpt2", "olmo"):
        zs = []
        for bf16 in (False, True):
            model, family, _ = flow.load_causal_lm(models[name], bf16=bf16)
            assert model.dtype == (jnp.bfloat16 if bf16 else jnp.float32)
            target = flow.sequence_nll_target(model, family, BOS)
            zs.append(float(target(jax.nn.one_hot(x, VOCAB))))
            if name == "gpt2" and not bf16:  # the GPT-2 target is the one-hot sequence NLL
                assert zs[0] == pytest.approx(float(sequence_nll_fn(model, BOS)(jax.nn.one_hot(x, VOCAB))), abs=1e-5)
        assert zs[1] == pytest.approx(zs[0], abs=0.05 * abs(zs[0]))
