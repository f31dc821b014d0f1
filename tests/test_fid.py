"""FID per output bin (omnijax.evaluation.fid) and the judge experiment (python -m experiments.judge).

The Fréchet distance is checked on exact Gaussians (mean and covariance given, not sampled) against
closed forms, and the experiment end to end on a small fabricated run with a judge CNN trained for
two steps.
"""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from omnijax.evaluation.fid import Gaussian, TooFewSamples, fid, fid_per_bin, fit_gaussian, frechet_distance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gaussian(mean, cov) -> Gaussian:
    return Gaussian(np.asarray(mean, float), np.asarray(cov, float), 100, 100.0)


def random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_diagonal_covariances_match_the_closed_form():
    a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 0.0])
    mu_a, mu_b = np.array([0.0, 1.0, -2.0, 3.0]), np.array([1.0, 1.0, 0.5, 3.0])
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(gaussian(mu_a, np.diag(a)), gaussian(mu_b, np.diag(b))) == pytest.approx(expected,
                                                                                                      rel=1e-10)


def test_non_commuting_covariances_match_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    assert not np.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real  # the usual FID formula, Tr (Σ1 Σ2)^{1/2}
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(gaussian(mu1, s1), gaussian(mu2, s2)) == pytest.approx(expected, rel=1e-8)


def test_symmetric_zero_on_itself_and_exact_for_singular_covariances():
    rng = np.random.default_rng(1)
    a = gaussian(rng.normal(size=5), random_spd(rng, 5, rank=2))   # rank 2 of 5: a bin's few samples
    b = gaussian(rng.normal(size=5), random_spd(rng, 5))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    x = rng.normal(size=(40, 5))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)
    # One dimension shifted by 3 and nothing else: exactly 9.
    assert fid(x, x + np.array([0, 0, 3.0, 0, 0])) == pytest.approx(9.0, rel=1e-9)


def test_fit_gaussian_weights_and_too_few_samples():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3))
    plain = fit_gaussian(x)
    assert np.allclose(plain.cov, np.cov(x, rowvar=False)) and plain.n_effective == 30
    w = rng.uniform(0.1, 2.0, size=30)
    weighted = fit_gaussian(x, w)
    assert np.allclose(weighted.mean, np.average(x, axis=0, weights=w))
    assert np.allclose(weighted.cov, np.cov(x, rowvar=False, aweights=w))
    assert weighted.n_effective == pytest.approx(w.sum() ** 2 / np.sum(w ** 2))
    with pytest.raises(TooFewSamples, match="1 sample; a covariance needs at least 2"):
        fit_gaussian(x[:1])
    with pytest.raises(TooFewSamples, match="positive weight"):
        fit_gaussian(x[:3], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="2-D"):
        fit_gaussian(x[0])


def test_fid_per_bin_gives_nan_with_a_reason_for_bins_under_two_samples():
    rng = np.random.default_rng(3)
    reference = fit_gaussian(rng.normal(size=(50, 4)))
    features = rng.normal(size=(7, 4)) + 1.0
    bins = np.array([0, 0, 0, 0, 0, 2, 1])  # bin 1 and 2: one each; bin 3: none
    rows = fid_per_bin(features, bins, [0.0, 1.0, 2.0, 3.0, 4.0], reference)
    assert [r.bin for r in rows] == [0, 1, 2, 3] and [r.n_representatives for r in rows] == [5, 1, 1, 0]
    assert rows[0].fid == pytest.approx(frechet_distance(fit_gaussian(features[:5]), reference)) and not rows[0].reason
    for row in rows[1:]:
        assert math.isnan(row.fid) and "FID undefined" in row.reason and "needs at least 2" in row.reason
    with pytest.raises(ValueError, match=r"bins must lie in \[0, 4\)"):
        fid_per_bin(features, bins + 2, [0.0, 1.0, 2.0, 3.0, 4.0], reference)


def fabricated_run(workdir):
    """Three bins: real MNIST 1s (binarised like the runs), pixel noise, one lone sample; a fourth empty."""
    from omnijax.data.mnist import load_mnist, quantize

    test = load_mnist("test", source="offline")
    ones = quantize(test.images[test.labels == 1][:6], 2)
    noise = np.random.default_rng(0).integers(0, 2, size=(6, 28, 28))
    inputs = np.concatenate([noise, ones, noise[:1]]).astype(np.int32)
    bins = np.array([0] * 6 + [1] * 6 + [2], np.int32)
    os.makedirs(workdir)
    np.savez(os.path.join(workdir, "samples.npz"), bin=bins, z=(bins + 0.5).astype(np.float32), inputs=inputs,
             bin_edges=np.arange(5, dtype=np.float64), weight=np.full(len(bins), 1.0))
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump({"grey_levels": 2}, f)
    return bins


def test_judge_experiment_on_a_fabricated_run(tmp_path):
    from omnijax.annotation import Oracle, Store, annotate

    run, judge_dir = str(tmp_path / "run"), str(tmp_path / "judge")
    bins = fabricated_run(run)
    with Store(os.path.join(run, "annotations.sqlite")) as store:
        run_id = store.import_run(run).id
        store.add_annotator("alice", "person")
        samples = store.samples(run_id)
        store.add_scores("alice", [(s.id, 1.0 if s.bin == 1 else 0.0) for s in samples if s.bin in (0, 1)])
        annotate(store, run_id, Oracle("always-one", lambda x: 1.0))  # not a person: not in the humans column
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-m", "experiments.judge", f"--run={run}", f"--judge_dir={judge_dir}",
                             "--judge_train_limit=64", "--judge_batch_size=32", "--judge_epochs=1"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    with open(os.path.join(run, "judge_fid.csv"), newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["bin", "bin_lo", "bin_hi", "n_representatives", "fid"]
        fids = list(reader)
    assert [int(r["bin"]) for r in fids] == [0, 1, 2, 3]
    assert [int(r["n_representatives"]) for r in fids] == list(np.bincount(bins, minlength=4))
    assert float(fids[0]["fid"]) > 0 and float(fids[1]["fid"]) > 0 and fids[2]["fid"] == fids[3]["fid"] == ""

    with open(os.path.join(run, "judge_table.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["bin"]) for r in table] == [0, 1, 2, 3]
    assert [r["humans_r"] for r in table] == ["0.0", "1.0", "", ""]       # alice only, never the oracle
    assert all(0.0 <= float(r["judge_r"]) <= 1.0 for r in table[:3]) and table[3]["judge_r"] == ""
    assert "FID undefined" in table[2]["note"]
    assert os.path.getsize(os.path.join(run, "judge_fid.png")) > 0
    assert "Spearman rho(-FID, humans' r) over the 2 bins" in result.stdout

    with open(os.path.join(judge_dir, "k2", "training.json")) as f:
        record = json.load(f)
    assert record["steps"] == 2 and record["seed"] == 0 and record["train_images"] == 64
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["data_source"]
    with Store(os.path.join(run, "annotations.sqlite")) as store:
        kinds = store.annotators()
        judges = [name for name, kind in kinds.items() if kind == "judge"]
        assert len(judges) == 1 and len(store.current_scores(run_id, annotator=judges[0])) == len(bins)
