"""The toy GPT-2 validation (paper §3.1): the task, generation, the HF-format checkpoint, and the
experiment end to end, where sampled ln rho(z) and r(z) must match the enumerated truth."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnijax.data import digit_sum
from experiments.workflows import toy as flow
from omnijax.models.gpt2 import GPT2, load_gpt2, save_gpt2
from omnijax.training.language_model import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E2E_LENGTH = 5
CHI2_999 = {84: 125.3, 99: 143.1}  # chi-square 0.999 quantiles by degrees of freedom


def chi_square(observed, expected):
    return float(np.sum((observed - expected) ** 2 / expected))


def random_toy_model(length, seed=0, num_layers=2, embed_dim=16, scale=0.1):
    """A small toy GPT-2 with every parameter perturbed by `scale`, so that its next-digit
    distributions are far from uniform (at 0.1, the 100 two-digit sequences' probabilities span 0.002-0.045)."""
    model = GPT2(flow.model_config(length, num_layers, 2, embed_dim), rngs=nnx.Rngs(seed))
    leaves, treedef = jax.tree.flatten(nnx.state(model, nnx.Param))
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    nnx.update(model, jax.tree.unflatten(treedef, [leaf + scale * jax.random.normal(k, leaf.shape)
                                                   for leaf, k in zip(leaves, keys)]))
    return model


@pytest.mark.parametrize("divisor", [7, 30])
def test_completion_counts_match_brute_force(divisor):
    for length in range(1, 6):
        sequences = np.array(list(itertools.product(range(10), repeat=length)))
        assert digit_sum.num_satisfying(length, divisor) == digit_sum.satisfies(sequences, divisor).sum()


def test_satisfying_sequences_are_drawn_uniformly():
    sequences = np.asarray(digit_sum.sample_satisfying(jax.random.key(0), 85 * 200, 4, 30))
    assert digit_sum.satisfies(sequences, 30).all()
    codes = sequences @ (10 ** np.arange(3, -1, -1))
    allowed = np.array([c for c in range(10_000) if sum(map(int, f"{c:04d}")) % 30 == 0])
    assert set(np.unique(codes)) <= set(allowed)
    counts = np.array([np.sum(codes == c) for c in allowed])
    assert chi_square(counts, np.full(85, 200.0)) < CHI2_999[84]


def test_generation_samples_the_models_digit_distribution():
    model = random_toy_model(2)
    generated = generate(model, jax.random.key(5), 20_000, 2)
    counts = np.bincount(generated[:, 0] * 10 + generated[:, 1], minlength=100)
    # Exact probabilities: BOS is never drawn, so each step is a softmax over the ten digits.
    first, second = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    contexts = np.stack([np.full(100, digit_sum.BOS), first.ravel()], axis=1)
    logits = np.asarray(jax.vmap(model)(jnp.asarray(contexts)))[:, :, :10]
    log_p = jax.nn.log_softmax(logits, axis=-1)
    exact = np.exp(log_p[:, 0, :][np.arange(100), first.ravel()] + log_p[:, 1, :][np.arange(100), second.ravel()])
    assert exact.sum() == pytest.approx(1.0, abs=1e-5)
    assert exact.min() * 20_000 > 5, "the chi-square approximation needs 5 expected per cell"
    assert chi_square(counts, exact * 20_000) < CHI2_999[99]


def test_saved_model_reloads_here_and_in_transformers(tmp_path):
    import torch
    import transformers

    model = random_toy_model(4)
    save_gpt2(model, tmp_path, {flow.TASK_KEY: {"length": 4, "divisor": 30}})
    tokens = jnp.array([digit_sum.BOS, 3, 9, 1])
    np.testing.assert_array_equal(load_gpt2(tmp_path)(tokens), model(tokens))
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).float().eval()
    with torch.no_grad():
        hf_logits = hf(torch.tensor(np.asarray(tokens))[None]).logits[0].numpy()
    np.testing.assert_allclose(hf_logits, np.asarray(model(tokens)), atol=1e-4)


def test_checkpoint_that_does_not_fit_the_flags_is_refused(tmp_path):
    save_gpt2(random_toy_model(5), tmp_path / "l5", {flow.TASK_KEY: {"length": 5, "divisor": 30}})
    with pytest.raises(ValueError, match=r"trained on sequences of length 5, but --length=4"):
        flow.load_toy_model(tmp_path / "l5", 4, 30)
    with pytest.raises(ValueError, match=r"trained with divisor 30, but --divisor=7"):
        flow.load_toy_model(tmp_path / "l5", 5, 7)
    config = flow.model_config(5, 1, 2, 16)
    wide = GPT2(dataclasses.replace(config, vocab_size=12), rngs=nnx.Rngs(0))
    save_gpt2(wide, tmp_path / "v12")
    with pytest.raises(ValueError, match=r"vocab_size=12, but the toy task's vocabulary is the digits 0-9 plus BOS"):
        flow.load_toy_model(tmp_path / "v12", 5, 30)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        flow.load_toy_model(tmp_path / "missing", 5, 30)


def run_toy(*flags):
    return subprocess.run([sys.executable, "-m", "experiments.toy", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The experiment at L = 5 (10^5 sequences): a 2-layer model, the smoke preset."""
    workdir = tmp_path_factory.mktemp("toy") / "run"
    done = run_toy(f"--length={E2E_LENGTH}", "--preset=smoke", "--num_layers=2", "--embed_dim=32",
                   f"--workdir={workdir}")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, done


def read_comparison(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}, list(rows[0])


def test_sampled_rho_and_precision_match_enumeration(toy_run):
    workdir, _ = toy_run
    table, columns = read_comparison(workdir / "comparison.csv")
    assert columns == ["bin_lo", "bin_hi", "log_rho_exact", "log_rho_sampled", "log_rho_stderr", "r_exact",
                       "r_sampled", "n_samples"]
    sequences_per_bin = np.exp(table["log_rho_exact"]) * 10 ** E2E_LENGTH
    assert np.isclose(sequences_per_bin.sum(), 10 ** E2E_LENGTH)  # the bins cover every sequence
    compared = sequences_per_bin >= 100
    assert compared.sum() >= 6
    assert np.abs(table["log_rho_sampled"][compared] - table["log_rho_exact"][compared]).max() <= 0.15
    annotated = compared & (table["n_samples"] >= 30)
    assert annotated.sum() >= 6
    assert np.abs(table["r_sampled"][annotated] - table["r_exact"][annotated]).max() <= 0.1
    # The comparison is not trivial: r varies across bins, from largely satisfying to not at all.
    assert table["r_exact"][annotated].max() > 0.3 and table["r_exact"][annotated].min() < 0.1


def test_outputs_and_metrics(toy_run):
    workdir, done = toy_run
    for name in ("comparison.png", "representatives.png", "rho.png"):
        assert (workdir / name).stat().st_size > 5_000
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["space_size"] == 10 ** E2E_LENGTH
    assert metrics["num_satisfying_exact"] == 3247
    assert 0 <= metrics["generation_rate"] <= 1 and metrics["training_history"]
    assert metrics["max_abs_log_rho_error"] <= 0.15 and metrics["max_abs_r_error"] <= 0.1
    assert "max |ln rho sampled - exact|" in done.stdout
    with open(workdir / "representatives.csv") as f:
        rows = list(csv.DictReader(f))
    sequences = np.array([[int(c) for c in row["sequence"]] for row in rows])
    np.testing.assert_array_equal([float(row["oracle_score"]) for row in rows], digit_sum.satisfies(sequences, 30))
    z = flow.sequence_nll(load_gpt2(workdir / "model"), sequences)
    np.testing.assert_allclose(z, [float(row["z"]) for row in rows], atol=1e-4)
    assert all(float(row["bin_lo"]) <= zi <= float(row["bin_hi"]) + 1e-4 for row, zi in zip(rows, z))


def test_a_checkpoint_for_another_length_stops_the_run(toy_run, tmp_path):
    workdir, _ = toy_run
    done = run_toy("--length=4", f"--model_dir={workdir / 'model'}", f"--workdir={tmp_path}")
    assert done.returncode != 0
    assert "trained on sequences of length 5, but --length=4" in done.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("flags, message", [
    (["--model_dir=/nonexistent/toy"], "--model_dir=/nonexistent/toy does not exist"),
    (["--length=0"], "--length must be an int in [1, 12]"),
    (["--embed_dim=30"], "--embed_dim=30 must be a multiple of --num_heads=4"),
])
def test_bad_flags_are_named(flags, message, tmp_path):
    done = run_toy(*flags, f"--workdir={tmp_path / 'run'}")
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_agreement_counts_a_missed_bin_as_an_infinite_error():
    from experiments.workflows.exact_comparison import agreement

    table = {"log_rho_exact": np.log([0.5, 0.3, 0.2 - 1e-4, 1e-4]), "log_rho_sampled": np.log([0.5, 0.31, 0.2, 1e-3]),
             "r_exact": np.array([0.0, 0.5, 1.0, 1.0]), "r_sampled": np.array([0.05, 0.3, np.nan, 0.0]),
             "n_samples": np.array([40, 29, 0, 50])}
    checks = agreement(table, space_size=10_000)  # the last bin holds 1 input: not compared
    assert checks["bins_compared_log_rho"] == 3 and checks["bins_compared_r"] == 1
    assert checks["max_abs_log_rho_error"] == pytest.approx(np.log(0.31 / 0.3))
    assert checks["max_abs_r_error"] == pytest.approx(0.05)
    table["log_rho_sampled"][1] = -np.inf
    assert agreement(table, space_size=10_000)["max_abs_log_rho_error"] == np.inf
