"""`python -m experiments.pr` on two runs over all 4x4 binary images, counted exactly: the files it
writes, its AUPRs against omnijax.evaluation.precision_recall on the same inputs, cross-model normalisation against
a known offset, and its errors. Each command is a subprocess, as a user runs it. And one definition of r(z): the
store's table, `python -m omnijax.annotation precision`, omnijax.evaluation.bin_precision and the report agree
where samples have unequal numbers of annotators. And several annotators (Fig. 6, Appendix G): each one's r(z),
their agreement, and judges (a model's scores, an FID per bin) ranked against the people."""

import csv
import json
import os
import shutil
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

from omnijax import evaluation as ev
from omnijax.annotation import Judge, Oracle, Store, agreement, annotate
from omnijax.annotation.store import load_samples
from experiments.workflows import pr_report
from experiments.workflows.mnist import scores
from experiments.workflows.results import write_rho_csv
from omnijax.training.checkpoint import ModelSpec, save_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_BIN = 12      # representatives kept per bin
SHIFT_B = -2.0    # run B's ln ρ is off by this constant, as a sampler that does not know it would be
SKIPPED_BIN = 5   # run A: nobody scores this bin's samples

ALL = ((np.arange(2**16)[:, None] >> np.arange(16)) & 1).astype(np.int32).reshape(-1, 4, 4)


def truth(x):
    """The oracle: more pixels on than off."""
    return bool(x.sum() > 8)


def corner(inputs):
    """The judge: the top-left pixel is on."""
    return inputs[:, 0, 0].astype(np.float64)


def write_run(workdir, seed, edges, shift, rng):
    """A run directory like experiments.mnist leaves, from exact counts: model/, rho.csv, samples.npz."""
    spec = ModelSpec("mlp", (4, 4), 2, training={"task": "binary", "training": "bce"})
    model = spec.build(seed)
    save_model(os.path.join(workdir, "model"), model, spec)
    z = scores(model, ALL, 2, "binary", 0)
    counts = np.histogram(z, edges)[0]
    with np.errstate(divide="ignore"):
        log_rho = np.log(counts / len(ALL)) + shift
    write_rho_csv(os.path.join(workdir, "rho.csv"), types.SimpleNamespace(
        num_bins=len(counts), bin_edges=edges, log_rho=log_rho, log_rho_stderr=np.zeros(len(counts)),
        n_samples=counts))
    bins = np.digitize(z, edges) - 1
    picked = np.concatenate([rng.permutation(np.flatnonzero(bins == b))[:PER_BIN] for b in range(len(counts))])
    np.savez_compressed(os.path.join(workdir, "samples.npz"), bin=bins[picked].astype(np.int32),
                        z=z[picked].astype(np.float32), inputs=ALL[picked], bin_edges=edges)
    return z


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs A and B of two random MLPs on one set of bins. A: the oracle scores all but one populated
    bin; B: the oracle and a judge score everything. C: B without its model; D: B unannotated."""
    root = tmp_path_factory.mktemp("pr")
    a, b = str(root / "a"), str(root / "b")
    rng = np.random.default_rng(0)
    probe = [scores(ModelSpec("mlp", (4, 4), 2).build(s), ALL, 2, "binary", 0) for s in (0, 1)]
    edges = np.linspace(np.quantile(np.concatenate(probe), 0.3), max(p.max() for p in probe) + 1e-3, 17)
    write_run(a, 0, edges, 0.0, rng)
    write_run(b, 1, edges, SHIFT_B, rng)
    oracle = Oracle("truth", truth)
    with Store(os.path.join(a, "annotations.sqlite")) as store:
        run = store.import_run(a)
        store.add_annotator(oracle.name, oracle.kind)
        kept = [s for s in store.samples(run.id) if s.bin != SKIPPED_BIN]
        store.add_scores(oracle.name, zip([s.id for s in kept], oracle.score(np.stack([s.input for s in kept]))))
    with Store(os.path.join(b, "annotations.sqlite")) as store:
        run = store.import_run(b)
        annotate(store, run.id, oracle)
        annotate(store, run.id, Judge("corner", corner))
    c, d = str(root / "c"), str(root / "d")
    shutil.copytree(b, c, ignore=shutil.ignore_patterns("model"))
    shutil.copytree(b, d, ignore=shutil.ignore_patterns("annotations.sqlite*"))
    return types.SimpleNamespace(root=root, a=a, b=b, c=c, d=d)


def run_pr(*flags):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "experiments.pr", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def direct_pr(workdir, judge: bool, skipped=None):
    """The PR curve by omnijax.evaluation.precision_recall from rho.csv, samples.npz and the annotators' rules."""
    with open(os.path.join(workdir, "rho.csv")) as f:
        log_rho = np.array([float(row["log_rho"]) for row in csv.DictReader(f)])
    samples = np.load(os.path.join(workdir, "samples.npz"))
    per_sample = np.array([truth(x) for x in samples["inputs"]], np.float64)
    if judge:
        per_sample = (per_sample + corner(samples["inputs"])) / 2
    r = np.array([per_sample[samples["bin"] == b].mean() if b != skipped and (samples["bin"] == b).any()
                  else np.nan for b in range(len(log_rho))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ev.MissingAnnotationWarning)
        return ev.precision_recall(samples["bin_edges"], log_rho, r, "high")


def read_pr_csv(path):
    with open(path) as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["run", "threshold", "precision", "log_recall", "precision_low", "precision_high"]
        rows = list(reader)
    curves = {}
    for row in rows:
        curves.setdefault(row["run"], []).append([float(row[k]) for k in reader.fieldnames[1:]])
    return {name: np.array(values) for name, values in curves.items()}


def bin_means(values, bins, num_bins):
    """Per bin, the mean of `values` over its samples; NaN for a bin without samples."""
    return np.array([values[bins == b].mean() if (bins == b).any() else np.nan for b in range(num_bins)])


def test_two_runs_match_the_evaluation_library(runs, tmp_path):
    out = str(tmp_path / "out")
    result = run_pr(f"--runs={runs.a},{runs.c}", f"--out={out}", "--cross_normalise")
    assert result.returncode == 0, result.stderr[-3000:]
    names = ["pr.csv", "pr.png", "r_a.png", "r_c.png", "convergence_a.png", "convergence_c.png", "summary.json",
             "r_annotators_a.csv", "r_annotators_c.csv"]
    assert sorted(os.listdir(out)) == sorted(names)
    for name in names:
        if name.endswith(".png"):
            with open(os.path.join(out, name), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)

    pr_a, pr_c = direct_pr(runs.a, judge=False, skipped=SKIPPED_BIN), direct_pr(runs.c, judge=False)
    assert [r["run"] for r in summary["runs"]] == ["a", "c"]
    assert summary["runs"][0]["aupr"] == pytest.approx(ev.aupr(pr_a), rel=1e-9)
    assert summary["runs"][1]["aupr"] == pytest.approx(ev.aupr(pr_c), rel=1e-9)
    ratio = ev.aupr_ratio(pr_a, pr_c)
    assert summary["aupr_ratio"]["value"] == pytest.approx(ratio, rel=1e-9)
    assert summary["aupr_ratio"]["runs"] == ["a", "c"]
    assert summary["aupr_ratio"]["log_recall_range"] == pytest.approx(ev.common_log_recall_range([pr_a, pr_c]))
    assert f"AUPR ratio a / c = {ratio:.4g}" in result.stdout

    curves = read_pr_csv(os.path.join(out, "pr.csv"))
    for name, pr in (("a", pr_a), ("c", pr_c)):
        np.testing.assert_allclose(curves[name][:, :3], np.column_stack([pr.thresholds, pr.precision, pr.log_recall]),
                                   rtol=1e-12, atol=0)
        low, high = curves[name][:, 3], curves[name][:, 4]   # the band, from the replicates of r's interval
        known = ~np.isnan(pr.precision)
        assert (low[known] <= pr.precision[known] + 1e-12).all() and (pr.precision[known] <= high[known] + 1e-12).all()

    # Run c has no model/, so its recall keeps its own ln ρ, and the output says so.
    assert summary["normalisation"] == "absolute"
    assert [r["normalisation"]["method"] for r in summary["runs"]] == ["absolute", "absolute"]
    assert "has no model/" in summary["runs"][1]["normalisation"]["note"]
    assert "cross-normalisation impossible" in result.stdout
    # The bin nobody scored is excluded and reported, never scored 0; by default the judge is not
    # counted in r(z) (it is held against the people below), and the output says so.
    assert [b["bin"] for b in summary["runs"][0]["excluded_bins"]] == [SKIPPED_BIN]
    assert summary["runs"][1]["excluded_bins"] == []
    assert f"bins [{SKIPPED_BIN}]" in result.stderr and "not scored 0" in result.stderr
    assert not summary["judge_scores_used"] and summary["runs"][1]["n_judge_scores"] == 0
    assert summary["runs"][1]["annotators"] == {"truth": "oracle"}
    assert "judge corner's scores are held against the people, not counted in r(z)" in result.stdout
    # The judge is ranked against the (oracle) people: Spearman of the bins' r(z), over bins both scored.
    samples = np.load(os.path.join(runs.c, "samples.npz"))
    own = [bin_means(np.array([f(x) for x in samples["inputs"]], float), samples["bin"], len(samples["bin_edges"]) - 1)
           for f in (truth, lambda x: corner(x[None])[0])]
    expected = ev.spearman(*(np.round(v, 12) for v in own[::-1]))
    (judge,) = summary["runs"][1]["judges"]
    assert judge == {"judge": "corner", "source": "scores", "against": ["truth"],
                     "spearman": pytest.approx(expected.rho), "n_bins": expected.n}
    assert f"judge corner's r(z) vs the people's pooled r(z) (truth): Spearman rho {expected.rho:.3g} over " \
           f"{expected.n} bins" in result.stdout
    assert summary["runs"][0]["judges"] == []


def test_cross_normalisation_recovers_the_unknown_constant(runs, tmp_path):
    out = str(tmp_path / "out")
    result = run_pr(f"--runs={runs.a},{runs.b}", f"--out={out}", "--cross_normalise", "--annotators=truth")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["normalisation"] == "cross-model" and not summary["judge_scores_used"]
    norm = summary["runs"][1]["normalisation"]
    assert norm["method"] == "cross-model"
    assert norm["log_offset"] == pytest.approx(-SHIFT_B, abs=0.3)  # B's ln ρ was off by SHIFT_B
    pr_a, pr_b = direct_pr(runs.a, judge=False, skipped=SKIPPED_BIN), direct_pr(runs.b, judge=False)
    shifted = pr_b._replace(log_recall=pr_b.log_recall + norm["log_offset"])
    assert summary["aupr_ratio"]["value"] == pytest.approx(ev.aupr_ratio(pr_a, shifted), rel=1e-9)
    np.testing.assert_allclose(read_pr_csv(os.path.join(out, "pr.csv"))["b"][:, 2], shifted.log_recall, rtol=1e-12)


def test_run_without_annotations_fails_naming_it(runs, tmp_path):
    out = tmp_path / "out"
    result = run_pr(f"--runs={runs.a},{runs.d}", f"--out={out}")
    assert result.returncode != 0
    assert f"run d ({runs.d}) has no annotations" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("case, named", [
    ("missing_dir", "--runs: {root}/nowhere is not a directory"),
    ("no_samples", "--runs: {root}/empty has no samples.npz"),
    ("unknown_annotator", "--annotators: ['nobody'] have not annotated run a"),
])
def test_bad_input_fails_and_overwrites_nothing(runs, case, named):
    os.makedirs(runs.root / "empty", exist_ok=True)
    shutil.copy(os.path.join(runs.a, "rho.csv"), runs.root / "empty")
    flags = {"missing_dir": [f"--runs={runs.a},{runs.root}/nowhere"],
             "no_samples": [f"--runs={runs.root}/empty"],
             "unknown_annotator": [f"--runs={runs.a},{runs.b}", "--annotators=truth,nobody"]}[case]
    out = runs.root / "kept"
    out.mkdir(exist_ok=True)
    (out / "pr.csv").write_text("earlier result\n")
    result = run_pr(*flags, f"--out={out}")
    assert result.returncode != 0
    assert named.format(root=runs.root) in result.stderr
    assert os.listdir(out) == ["pr.csv"] and (out / "pr.csv").read_text() == "earlier result\n"


# --------------------------------------------------------------------------------------------
# One definition of r(z): the store, `omnijax.annotation precision`, omnijax.evaluation and the report agree.

# Per bin: (samples, annotators alice, bob, carol), NaN = not scored. Samples have 1 to 3 annotators,
# so each sample's mean (the definition) and the pool of all scores (the old evaluation path) differ.
UNEQUAL = [
    np.array([[1.0, 1.0, 1.0], [0.0, np.nan, np.nan], [0.0, np.nan, np.nan], [1.0, 0.0, np.nan]]),
    np.array([[0.0, 0.0, 1.0], [1.0, np.nan, np.nan], [np.nan, np.nan, np.nan]]),   # one unscored sample
    np.array([[1.0, np.nan, 0.5], [1.0, 1.0, np.nan], [0.0, np.nan, np.nan]]),
]
UNEQUAL_WEIGHTS = [np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.25, 0.25]), np.array([0.6, 0.3, 0.1])]


def test_one_definition_of_r_with_unequal_annotators_per_sample(tmp_path):
    workdir = str(tmp_path / "unequal")
    os.makedirs(workdir)
    edges = np.array([-1.0, 0.0, 1.0, 2.0])
    bins = np.concatenate([[b] * len(s) for b, s in enumerate(UNEQUAL)]).astype(np.int32)
    inputs = ALL[np.random.default_rng(5).choice(len(ALL), len(bins), replace=False)]
    np.savez_compressed(os.path.join(workdir, "samples.npz"), bin=bins, z=(edges[bins] + 0.5).astype(np.float32),
                        inputs=inputs, bin_edges=edges, weight=np.concatenate(UNEQUAL_WEIGHTS))
    write_rho_csv(os.path.join(workdir, "rho.csv"), types.SimpleNamespace(
        num_bins=3, bin_edges=edges, log_rho=np.log([0.6, 0.3, 0.1]), log_rho_stderr=np.zeros(3),
        n_samples=np.array([len(s) for s in UNEQUAL])))
    names = ["alice", "bob", "carol"]
    with Store(os.path.join(workdir, "annotations.sqlite")) as store:
        run = store.import_run(workdir)
        ids = {b: [s.id for s in store.samples(run.id, bin=b)] for b in range(3)}
        for j, name in enumerate(names):
            store.add_annotator(name)
            store.add_scores(name, [(ids[b][i], s[i, j]) for b, s in enumerate(UNEQUAL) for i in range(len(s))
                                    if not np.isnan(s[i, j])])
        table = store.bin_precision_table(run.id, sample_weights=load_samples(workdir)["weight"])

    # The definition by hand: each scored sample's mean score, weighted by its weight.
    expected = []
    for s, w in zip(UNEQUAL, UNEQUAL_WEIGHTS):
        scored = ~np.isnan(s).all(axis=1)
        expected.append(np.sum(w[scored] * np.nanmean(s[scored], axis=1)) / np.sum(w[scored]))
    pooled = [np.nansum(w @ np.nan_to_num(s)) / np.sum(w @ ~np.isnan(s)) for s, w in zip(UNEQUAL, UNEQUAL_WEIGHTS)]
    assert np.abs(np.subtract(expected, pooled)).max() > 0.05   # the case tells the two definitions apart

    library = ev.bin_precision(UNEQUAL, weights_per_bin=UNEQUAL_WEIGHTS, num_bootstrap=1000, seed=0)
    np.testing.assert_allclose(library.r, expected, rtol=1e-12)
    np.testing.assert_allclose(table.r(), expected, rtol=1e-12)
    np.testing.assert_array_equal([row.n_scored for row in table.rows], [4, 2, 3])

    # `python -m omnijax.annotation precision` prints the store's table.
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    cli = subprocess.run([sys.executable, "-m", "omnijax.annotation", "precision", f"--run={workdir}"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    rows = list(csv.DictReader(cli.stdout.splitlines()))
    np.testing.assert_allclose([float(row["r"]) for row in rows], expected, rtol=1e-12)

    # The report: its curve's r and its intervals are one computation, the library's.
    runs = pr_report.load_runs([workdir])
    report = pr_report.build_report(runs, pr_report.normalisations(runs, False), "high")
    (r,) = report.runs
    np.testing.assert_allclose(r.bins.r, expected, rtol=1e-12)
    np.testing.assert_array_equal(r.bins.ci_low, library.ci_low)     # same seed, same resampling
    np.testing.assert_array_equal(r.bins.ci_high, library.ci_high)
    assert (r.bins.ci_low <= r.bins.r).all() and (r.bins.r <= r.bins.ci_high).all()
    assert r.pr.precision[0] == pytest.approx(expected[2], rel=1e-12)  # the top bin alone
    rho = np.array([0.6, 0.3, 0.1])
    assert r.pr.precision[-1] == pytest.approx(rho @ expected / rho.sum(), rel=1e-6)  # rho.csv keeps 6 digits
    out = str(tmp_path / "out")
    result = run_pr(f"--runs={workdir}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        (summary,) = json.load(f)["runs"]
    np.testing.assert_allclose([row["r"] for row in summary["r"]], expected, rtol=1e-12)
    np.testing.assert_allclose([row["ci_low"] for row in summary["r"]], library.ci_low, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Several people and a judge (Fig. 6, Appendix G).


def test_people_and_judges_agreement_and_rank_correlation(runs, tmp_path):
    """Two people (alice exact; bob wrong wherever the bottom-right pixel is on) and the corner judge
    score a copy of run B; an FID judge left judge_fid.csv. The report's per-annotator r(z), κ and the
    judges' Spearman ρ against the people's pooled r(z) match the same numbers computed from the rules."""
    e = str(tmp_path / "e")
    shutil.copytree(runs.d, e)
    samples = np.load(os.path.join(e, "samples.npz"))
    x, bins, edges = samples["inputs"], samples["bin"], samples["bin_edges"]
    num_bins = len(edges) - 1
    rules = {"alice": np.array([truth(v) for v in x], float)}
    rules["bob"] = np.where(x[:, 3, 3] == 1, 1 - rules["alice"], rules["alice"])
    rules["corner"] = corner(x)
    with Store(os.path.join(e, "annotations.sqlite")) as store:
        run = store.import_run(e)
        for name in ("alice", "bob"):
            store.add_annotator(name)
            store.add_scores(name, [(s.id, rules[name][s.index]) for s in store.samples(run.id)])
        annotate(store, run.id, Judge("corner", corner))
        kappa = agreement(store, "alice", "bob", run.id)
    own = {name: bin_means(v, bins, num_bins) for name, v in rules.items()}
    people = bin_means((rules["alice"] + rules["bob"]) / 2, bins, num_bins)
    fid = np.round(4 * (1 - people)) * 10                      # ties, and lower for the bins people score higher
    fid[np.flatnonzero(~np.isnan(people))[0]] = np.nan         # a bin the FID judge left empty
    with open(os.path.join(e, "judge_fid.csv"), "w") as f:
        f.write("bin,bin_lo,bin_hi,n_representatives,fid\n")
        for b in np.flatnonzero(~np.isnan(people)):
            cell = "" if np.isnan(fid[b]) else fid[b]
            f.write(f"{b},{float(edges[b])!r},{float(edges[b + 1])!r},{int((bins == b).sum())},{cell}\n")
    # Bins whose r is one fraction (e.g. 5/12) tie, though computed two ways they may differ in the last bit.
    by_judge, by_fid = ev.spearman(np.round(own["corner"], 12), np.round(people, 12)), ev.spearman(-fid, people)
    assert by_fid.n == by_judge.n - 1 and by_fid.rho > 0.5    # -FID ranks the bins as the people do

    # The judge named in --annotators counts in r(z) (flagged), and is still held against the people.
    out = str(tmp_path / "out")
    result = run_pr(f"--runs={e}", f"--out={out}", "--annotators=alice,bob,corner")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        (summary,) = json.load(f)["runs"]
    np.testing.assert_allclose([row["r"] for row in summary["r"]],
                               bin_means(sum(rules.values()) / 3, bins, num_bins)[~np.isnan(people)], rtol=1e-12)
    assert summary["n_judge_scores"] > 0 and "judge" in result.stderr
    assert summary["judges"] == [
        {"judge": "corner", "source": "scores", "against": ["alice", "bob"], "spearman": pytest.approx(by_judge.rho),
         "n_bins": by_judge.n},
        {"judge": "FID", "source": os.path.join(e, "judge_fid.csv"), "against": ["alice", "bob"],
         "spearman": pytest.approx(by_fid.rho), "n_bins": by_fid.n}]
    assert f"Spearman rho {by_judge.rho:.3g} over {by_judge.n} bins" in result.stdout
    assert f"-FID per bin ({e}/judge_fid.csv) vs the people's pooled r(z) (alice, bob): Spearman rho " \
           f"{by_fid.rho:.3g} over {by_fid.n} bins" in result.stdout
    pairs = {(g["a"], g["b"]): g for g in summary["agreement"]}
    assert sorted(pairs) == [("alice", "bob"), ("alice", "corner"), ("bob", "corner")]
    assert pairs["alice", "bob"]["kappa"] == pytest.approx(kappa.kappa) and pairs["alice", "bob"]["n"] == kappa.n
    assert pairs["bob", "corner"]["involves_judge"] and not pairs["alice", "bob"]["involves_judge"]
    assert f"agreement alice / bob: Cohen's kappa {kappa.kappa:.3g}" in result.stdout
    with open(os.path.join(out, "r_annotators_e.csv")) as f:
        rows = list(csv.DictReader(f))
    for name, kind in (("alice", "person"), ("bob", "person"), ("corner", "judge")):
        mine = [row for row in rows if row["annotator"] == name]
        assert {row["kind"] for row in mine} == {kind}
        np.testing.assert_array_equal([int(row["bin"]) for row in mine], np.flatnonzero(~np.isnan(own[name])))
        np.testing.assert_allclose([float(row["r"]) for row in mine], own[name][~np.isnan(own[name])], rtol=1e-12)

    # Only the people's scores make the pooled r(z); the judges are still held against them.
    (data,) = pr_report.load_runs([e], ["alice", "bob"])
    np.testing.assert_allclose(data.table.r(), people, rtol=1e-12)
    assert [(j.judge, j.rho, j.n_bins) for j in data.disagreement.judges] == [
        ("corner", pytest.approx(by_judge.rho), by_judge.n), ("FID", pytest.approx(by_fid.rho), by_fid.n)]
    # A judge_fid.csv of other bins is refused, naming the file.
    with open(os.path.join(e, "judge_fid.csv"), "a") as f:
        f.write(f"0,{float(edges[0]) + 1.0!r},{float(edges[1])!r},3,5.0\n")
    with pytest.raises(pr_report.ReportError,
                       match=r"judge_fid.csv line \d+: bin 0 is \[.*\(a file of another run\?\)"):
        pr_report.load_runs([e])
