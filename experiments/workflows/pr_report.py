"""Precision and recall over the input space of sampling runs, from their annotations (paper §2.2,
§2.3, §3.2): the library behind `python -m experiments.pr`.

A run directory holds rho.csv (ln ρ per bin), samples.npz (representative inputs per bin) and
annotations.sqlite (their scores, from `python -m omnijax.annotation serve`). Per run this gives r(z) with
a bootstrap interval (both from the store's table, i.e. `omnijax.evaluation.bin_precision`, the one
definition of r), the PR curve with its band from the same bootstrap replicates, its AUPR, its
convergence with the annotated samples per bin, and the annotators held against each other
(`pr_annotators`: each one's r(z), Cohen's κ, judges' Spearman ρ against the people);
across runs, the AUPR ratio of the first two over their common recall range. Recalls of different
runs are comparable only on one scale: each run's own ln ρ (a fraction of all inputs, as its
sampler estimated it), or, when the runs carry their models, ln ρ shifted by cross-model
normalisation (Eq. 5, 6) onto the first run's scale.

Everything is read and computed before anything is written, and the files are written into a
temporary directory and moved into place, so a failed run overwrites nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import warnings

import numpy as np

from omnijax import evaluation as ev
from omnijax.evaluation import pr_plots as evaluation_plots
from omnijax.annotation.store import PrecisionTable, Store, load_samples
from experiments.workflows import pr_annotators

RUN_FILES = ("rho.csv", "samples.npz")
RHO_COLUMNS = ("bin_lo", "bin_hi", "log_rho")
NUM_BOOTSTRAP = 1000


class ReportError(ValueError):
    """Bad input, phrased for the command line (it names the flag or the run)."""


@dataclasses.dataclass
class RunData:
    """One run as read from disk: its bins, ln ρ, samples and the scores that count."""

    label: str                        # unique name in this report (the directory's name)
    workdir: str
    bin_edges: np.ndarray             # from samples.npz (rho.csv's are rounded)
    log_rho: np.ndarray               # from rho.csv
    samples: dict                     # load_samples: bin, z, inputs, bin_edges, ...
    table: PrecisionTable             # r(z) per bin with its interval, from the store (ev.bin_precision)
    scores_per_bin: list[np.ndarray]  # per bin (samples in file order, annotators), NaN = not scored
    weights_per_bin: list[np.ndarray]  # per bin, those samples' within-bin weights (samples.npz)
    annotators: dict[str, str]        # name -> kind of the annotators whose scores count
    disagreement: pr_annotators.RunAnnotators  # each annotator's r(z), κ, judges against the people


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """How a run's ln ρ is put on the report's recall scale: ln ρ + log_offset."""

    method: str                       # "absolute" or "cross-model"
    log_offset: float
    note: str                         # why, in words
    z_range: tuple[float, float] | None = None
    sampled_proportion: tuple[float, float] | None = None  # (first run, this run), Eq. 5/6 summed over Z


@dataclasses.dataclass
class RunReport:
    run: RunData
    normalisation: Normalisation
    pr: ev.PrecisionRecall            # log_recall on the report's scale (offset added)
    bins: ev.BinPrecision             # r(z) and its interval: the table's estimate, the r of the curve
    band: ev.PRBand                   # the curve's band, from the replicates of r's interval
    aupr: float                       # over the curve's own log-recall span, nats
    convergence: ev.PRConvergence | None
    convergence_note: str


@dataclasses.dataclass
class Report:
    runs: list[RunReport]
    positive: str
    aupr_ratio: float | None          # first run / second over their common log-recall range
    ratio_range: tuple[float, float] | None
    ratio_areas: tuple[float, float] | None
    ratio_note: str
    warnings: list[str]

    @property
    def judge_scores_used(self) -> bool:
        return any(r.run.table.n_judge_scores for r in self.runs)


# --------------------------------------------------------------------------------------------
# Reading runs.


def load_runs(run_dirs, annotators=None) -> list[RunData]:
    """Every run of --runs, checked; ReportError naming --runs, --annotators or the run on bad input."""
    if not run_dirs or any(not d for d in run_dirs):
        raise ReportError(f"--runs must list one or more run directories separated by commas, got {run_dirs!r}")
    paths = [os.path.abspath(d) for d in run_dirs]
    for d, path in zip(run_dirs, paths):
        if paths.count(path) > 1:
            raise ReportError(f"--runs lists {d} more than once")
        if not os.path.isdir(d):
            raise ReportError(f"--runs: {d} is not a directory")
        for name in RUN_FILES:
            if not os.path.isfile(os.path.join(d, name)):
                raise ReportError(f"--runs: {d} has no {name} (a sampling run writes it, e.g. "
                                  f"python -m experiments.mnist --workdir={d})")
    return [load_run(d, label, annotators) for d, label in zip(run_dirs, run_labels(run_dirs))]


def run_labels(run_dirs) -> list[str]:
    """Each run's directory name, with its position in --runs appended where two names clash."""
    names = [os.path.basename(os.path.abspath(d)) for d in run_dirs]
    return [n if names.count(n) == 1 else f"{n}-{i + 1}" for i, n in enumerate(names)]


def load_run(workdir: str, label: str, annotators=None) -> RunData:
    """rho.csv, samples.npz and the current scores of one run: of `annotators`, by default of every
    annotator of the run but the judges (reference models, held against the people instead; a run
    that only judges have scored uses theirs, flagged as such)."""
    try:
        samples = load_samples(workdir)
    except (OSError, ValueError) as err:
        raise ReportError(f"--runs: {err}") from None
    edges = np.asarray(samples["bin_edges"], np.float64)
    log_rho = _read_log_rho(os.path.join(workdir, "rho.csv"), edges)
    db = os.path.join(workdir, "annotations.sqlite")
    how = f"score its samples with python -m omnijax.annotation serve --run={workdir}"
    if not os.path.isfile(db):
        raise ReportError(f"run {label} ({workdir}) has no annotations: no annotations.sqlite; {how}")
    with Store(db) as store:
        run = store.find_run(workdir)
        if run is None:
            raise ReportError(f"run {label} ({workdir}) has no annotations: {db} holds no scores of the "
                              f"samples now in samples.npz (were they replaced after scoring?); {how}")
        kinds = store.annotators()
        unknown = sorted(set(annotators or ()) - set(kinds))
        if unknown:
            raise ReportError(f"--annotators: {unknown} have not annotated run {label} ({workdir}); its "
                              f"annotators are {sorted(kinds)}")
        counted = store.counted_annotators(run.id) if annotators is None else annotators
        table = store.bin_precision_table(run.id, counted, samples["weight"], num_bootstrap=NUM_BOOTSTRAP,
                                          seed=0)
        if not table.rows:
            chosen = f" by --annotators={','.join(annotators)}" if annotators else ""
            raise ReportError(f"run {label} ({workdir}) has no annotations: none of its samples is "
                              f"scored{chosen}; {how}")
        try:
            disagreement = pr_annotators.load(store, run.id, counted, samples["weight"], workdir, edges)
        except ValueError as err:
            raise ReportError(f"--runs: {err}") from None
    given = table.scores
    return RunData(label, workdir, edges, log_rho, samples, table, given.scores, given.weights, dict(given.kinds),
                   disagreement)


def _read_log_rho(path: str, edges: np.ndarray) -> np.ndarray:
    """ln ρ per bin from rho.csv, after checking its bins are those of samples.npz."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in RHO_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ReportError(f"--runs: {path} lacks the columns {missing}")
        rows = list(reader)
    try:
        lo, hi, log_rho = (np.array([float(row[c]) for row in rows]) for c in RHO_COLUMNS)
    except ValueError as err:
        raise ReportError(f"--runs: {path} holds a value that is not a number: {err}") from None
    if len(rows) != len(edges) - 1 or not np.allclose(
            np.append(lo, hi[-1:]), edges, rtol=1e-5, atol=1e-5 * np.abs(edges).max()):
        raise ReportError(f"--runs: the bins of {path} differ from the bin_edges of samples.npz beside it "
                          "(files of different sampling runs?)")
    if np.isnan(log_rho).any() or (log_rho > 0).any():
        raise ReportError(f"--runs: {path}: log_rho must be ln of a fraction of all inputs: <= 0, -inf for "
                          "an empty bin")
    return log_rho


# --------------------------------------------------------------------------------------------
# Recall scale.


class _CannotNormalise(Exception):
    """Why two runs cannot be cross-normalised; the report then uses their own ln ρ and says why."""


def normalisations(runs: list[RunData], cross_normalise: bool) -> list[Normalisation]:
    """Each run's offset onto the first run's recall scale: by cross-model normalisation where
    asked for and possible, else 0 (the run's own ln ρ), with the reason in the note."""
    if not cross_normalise or len(runs) == 1:
        why = "--cross_normalise not given" if len(runs) > 1 else "a single run"
        return [Normalisation("absolute", 0.0, f"the run's own ln rho ({why})") for _ in runs]
    result = [Normalisation("absolute", 0.0, "the first run sets the scale")]
    try:
        reference = _output_fn(runs[0])
    except _CannotNormalise as err:
        return result + [_impossible(err) for _ in runs[1:]]
    for run in runs[1:]:
        try:
            result.append(_cross_model(runs[0], run, *reference, *_output_fn(run)))
        except _CannotNormalise as err:
            result.append(_impossible(err))
    return result


def _impossible(err: _CannotNormalise) -> Normalisation:
    return Normalisation("absolute", 0.0, f"the run's own ln rho: cross-normalisation impossible, {err}")


def _output_fn(run: RunData):
    """(z of a batch of inputs by the run's model/, its ModelSpec); _CannotNormalise when unusable."""
    from experiments.workflows.mnist import scores
    from omnijax.training.checkpoint import load_model, read_spec

    model_dir = os.path.join(run.workdir, "model")
    if not os.path.isfile(os.path.join(model_dir, "model.json")):
        raise _CannotNormalise(f"run {run.label} has no model/ (model.json)")
    spec = read_spec(model_dir)
    shape = tuple(run.samples["inputs"].shape[1:])
    if shape != spec.input_shape:
        raise _CannotNormalise(f"the model of run {run.label} takes inputs of shape {spec.input_shape}, "
                               f"its samples have shape {shape}")
    task, target = "binary", 0
    if spec.num_outputs > 1:
        task, target = "multiclass", None
        metrics = os.path.join(run.workdir, "metrics.json")
        if os.path.isfile(metrics):
            with open(metrics) as f:
                target = json.load(f).get("target_class")
        if target is None:
            raise _CannotNormalise(f"the model of run {run.label} has {spec.num_outputs} outputs but no "
                                   "metrics.json names its target_class")
    model = load_model(model_dir, spec)

    def output_fn(inputs):
        return np.asarray(scores(model, inputs, spec.num_categories, task, target), np.float64)

    if not np.allclose(output_fn(run.samples["inputs"]), run.samples["z"], rtol=1e-3, atol=1e-3):
        raise _CannotNormalise(f"the model in {model_dir} does not reproduce the z of samples.npz "
                               "(retrained after sampling?)")
    return output_fn, spec


def _cross_model(ref: RunData, run: RunData, f_ref, spec_ref, f_run, spec_run) -> Normalisation:
    """Offset of `run` onto `ref`'s scale from both runs' samples evaluated by both models (Eq. 5, 6)."""
    if (spec_ref.input_shape, spec_ref.num_categories) != (spec_run.input_shape, spec_run.num_categories):
        raise _CannotNormalise(f"runs {ref.label} and {run.label} have different input spaces")
    common = [e for e in ref.bin_edges if np.isclose(run.bin_edges, e, rtol=1e-9, atol=1e-12).any()]
    if len(common) < 2:
        raise _CannotNormalise(f"runs {ref.label} and {run.label} share fewer than two bin edges, so no "
                               "range Z ends on bins of both")
    z_range = (float(common[0]), float(common[-1]))
    outputs = [np.column_stack([f_ref(r.samples["inputs"]), f_run(r.samples["inputs"])]) for r in (ref, run)]
    try:
        norm = ev.cross_model_normalisation(*outputs, z_range, weights_1=_stratum_weights(ref),
                                            weights_2=_stratum_weights(run))
        offsets = ev.cross_model_log_offsets(norm, ref.bin_edges, ref.log_rho, run.bin_edges, run.log_rho)
    except ValueError as err:
        raise _CannotNormalise(str(err)) from None
    note = f"cross-model normalisation against run {ref.label} over Z = [{z_range[0]:.6g}, {z_range[1]:.6g}]"
    return Normalisation("cross-model", float(offsets[1] - offsets[0]), note, z_range,
                         tuple(float(p) for p in norm.sampled_proportion))


def _stratum_weights(run: RunData) -> np.ndarray:
    """ρ_b / (samples of bin b) per sample: the per-bin reservoirs are strata, not a uniform draw."""
    b = run.samples["bin"]
    counts = np.bincount(b, minlength=len(run.log_rho))
    return np.exp(run.log_rho[b] - np.max(run.log_rho)) / counts[b]


# --------------------------------------------------------------------------------------------
# The report.


def build_report(runs: list[RunData], norms: list[Normalisation], positive: str = "high") -> Report:
    """PR curves, r(z) intervals, convergence and AUPRs of every run; the AUPR ratio of the first two."""
    notes, reports = [], []
    for run, norm in zip(runs, norms):
        log_rho = run.log_rho + norm.log_offset
        bins = run.table.estimate  # r(z) of the curve and its interval: one computation
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ev.MissingAnnotationWarning)  # reported below, per run
            pr = ev.precision_recall(run.bin_edges, log_rho, bins.r, positive)
            band = ev.precision_recall_band(run.bin_edges, log_rho, bins.r, bins.replicates, positive)
            convergence, convergence_note = _convergence(run, log_rho, positive)
        if pr.excluded_bins.size:
            notes.append(f"run {run.label}: bins {pr.excluded_bins.tolist()} (z in "
                         f"{_ranges(run.bin_edges, pr.excluded_bins)}) hold inputs but no annotated sample: "
                         "left out of precision and recall, not scored 0")
        if run.table.n_judge_scores:
            notes.append(f"run {run.label}: {run.table.n_judge_scores} scores come from a judge (a reference "
                         "model, not a person); the paper warns such scores are unreliable")
        if band.num_dropped:
            notes.append(f"run {run.label}: {band.num_dropped} of {band.num_dropped + band.num_replicates} "
                         "replicates drew only samples of weight 0 in some annotated bin and are left out of the PR band")
        reports.append(RunReport(run, norm, pr, bins, band, ev.aupr(pr), convergence, convergence_note))
    ratio, span, areas, ratio_note = None, None, None, "needs two runs"
    if len(reports) > 1:
        a, b = reports[0].pr, reports[1].pr
        try:
            span = ev.common_log_recall_range([a, b])
        except ValueError as err:
            ratio_note = str(err)
        else:
            areas = (ev.aupr(a, span), ev.aupr(b, span))
            ratio, ratio_note = ev.aupr_ratio(a, b), "over the common log-recall range of the first two runs"
    return Report(reports, positive, ratio, span, areas, ratio_note, notes)


def _convergence(run: RunData, log_rho: np.ndarray, positive: str):
    """PR convergence for 1, 2, 4, ... annotated samples per bin up to the most any bin has."""
    most = int(run.table.estimate.n_scored.max())
    counts = sorted({2 ** k for k in range(most.bit_length()) if 2 ** k < most} | {most})
    try:
        return ev.pr_convergence(run.bin_edges, log_rho, run.scores_per_bin, np.array(counts),
                                 weights_per_bin=run.weights_per_bin, positive=positive), ""
    except ValueError as err:
        return None, f"no convergence figure: {err}"


def _ranges(edges: np.ndarray, bins) -> str:
    return ", ".join(f"[{edges[b]:.4g}, {edges[b + 1]:.4g})" for b in bins)


# --------------------------------------------------------------------------------------------
# Writing.


def default_out(run_dirs) -> str:
    """One run: its own directory. Several: a directory beside the first, named for the comparison."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    return os.path.join(os.path.dirname(os.path.abspath(run_dirs[0])), "pr-" + "-vs-".join(run_labels(run_dirs)))


def write_report(report: Report, out: str) -> list[str]:
    """pr.csv, pr.png, r_<run>.png, r_annotators_<run>.csv, convergence_<run>.png and summary.json in
    `out`; returns the paths.

    The files are made in a temporary directory inside `out` and moved into place once all exist."""
    try:
        os.makedirs(out, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".pr-", dir=out)
    except OSError as err:
        raise ReportError(f"--out={out}: {err}") from None
    try:
        names = _write_files(report, staging)
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(out, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [os.path.join(out, name) for name in names]


def _write_files(report: Report, directory: str) -> list[str]:
    names = ["pr.csv", "pr.png"]
    with open(os.path.join(directory, "pr.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "threshold", "precision", "log_recall", "precision_low", "precision_high"])
        for r in report.runs:
            for row in zip(r.pr.thresholds, r.pr.precision, r.pr.log_recall, r.band.precision_low,
                           r.band.precision_high):
                writer.writerow([r.run.label, *(repr(float(v)) for v in row)])
    side = "z >= threshold" if report.positive == "high" else "z <= threshold"
    evaluation_plots.plot_pr_curves(os.path.join(directory, "pr.png"), {r.run.label: r.pr for r in report.runs},
                                    title=f"precision over all inputs ({side} predicted positive)",
                                    bands={r.run.label: r.band for r in report.runs})
    for r in report.runs:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", r.run.label)
        who = r.run.disagreement
        evaluation_plots.plot_bin_precision(
            os.path.join(directory, f"r_{safe}.png"), r.run.bin_edges, r.bins.r, r.bins.ci_low,
            r.bins.ci_high, log_rho=r.run.log_rho + r.normalisation.log_offset,
            title=f"{r.run.label}: r(z) pooled over {', '.join(r.run.annotators)}\n95% bootstrap interval "
                  "over samples and annotators",
            annotators={n: who.r[n].r for n in who.names} if len(who.names) > 1 else None,
            judges=[n for n in who.names if who.kinds[n] == "judge"])
        names.append(f"r_{safe}.png")
        _write_annotator_csv(os.path.join(directory, f"r_annotators_{safe}.csv"), r)
        names.append(f"r_annotators_{safe}.csv")
        if r.convergence is not None:
            evaluation_plots.plot_convergence(os.path.join(directory, f"convergence_{safe}.png"), r.convergence,
                                              title=f"{r.run.label}: PR with the annotated samples per bin")
            names.append(f"convergence_{safe}.png")
    names.append("summary.json")
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump(summary(report), f, indent=2)
    return names


def _write_annotator_csv(path: str, r: RunReport) -> None:
    """Each annotator's own r(z) per bin it scored (long format: one row per bin and annotator)."""
    who, edges = r.run.disagreement, r.run.bin_edges
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin", "bin_lo", "bin_hi", "annotator", "kind", "r", "n_scored"])
        for b in range(len(edges) - 1):
            for name in who.names:
                own = who.r[name]
                if own.n_scored[b]:
                    writer.writerow([b, repr(float(edges[b])), repr(float(edges[b + 1])), name, who.kinds[name],
                                     repr(float(own.r[b])), int(own.n_scored[b])])


def summary(report: Report) -> dict:
    """What summary.json holds: AUPRs (nats of log recall), the ratio, scale, exclusions, judge use."""
    first_two = [r.run.label for r in report.runs[:2]]
    return {
        "positive": report.positive,
        "aupr_units": "nats of natural-log recall (divide by ln 10 for decades)",
        "aupr_ratio": {"runs": first_two if len(first_two) == 2 else None, "value": _number(report.aupr_ratio),
                       "aupr": None if report.ratio_areas is None else [_number(a) for a in report.ratio_areas],
                       "log_recall_range": _pair(report.ratio_range), "note": report.ratio_note},
        "normalisation": _scale(report),
        "judge_scores_used": report.judge_scores_used,
        "warnings": report.warnings,
        "runs": [_run_summary(r) for r in report.runs],
    }


def _scale(report: Report) -> str:
    """"cross-model" when every run after the first was put on its scale, "absolute" when none was."""
    methods = {r.normalisation.method for r in report.runs[1:]}
    return "absolute" if methods <= {"absolute"} else "cross-model" if methods == {"cross-model"} else "mixed"


def _run_summary(r: RunReport) -> dict:
    finite = r.pr.log_recall[np.isfinite(r.pr.log_recall)]
    return {
        "run": r.run.label,
        "dir": os.path.abspath(r.run.workdir),
        "aupr": _number(r.aupr),
        "log_recall_span": [float(finite[0]), float(finite[-1])] if finite.size else None,
        "normalisation": {"method": r.normalisation.method, "log_offset": r.normalisation.log_offset,
                          "note": r.normalisation.note, "z_range": _pair(r.normalisation.z_range),
                          "sampled_proportion": _pair(r.normalisation.sampled_proportion)},
        "excluded_bins": [{"bin": int(b), "lo": float(r.run.bin_edges[b]), "hi": float(r.run.bin_edges[b + 1])}
                          for b in r.pr.excluded_bins],
        "annotators": r.run.annotators,
        "r": [{"bin": b, "lo": float(r.run.bin_edges[b]), "hi": float(r.run.bin_edges[b + 1]),
               "r": _number(r.bins.r[b]), "ci_low": _number(r.bins.ci_low[b]), "ci_high": _number(r.bins.ci_high[b]),
               "n_scored": int(r.bins.n_scored[b])} for b in range(len(r.bins.r)) if r.bins.n_scored[b]],
        "n_scores": sum(row.n_scores for row in r.run.table.rows),
        "pr_band": {"confidence": 0.95, "aupr_interval": [_number(r.band.aupr_low), _number(r.band.aupr_high)],
                    "num_replicates": r.band.num_replicates, "num_dropped": r.band.num_dropped,
                    "resampling": "the bootstrap replicates of r's interval (samples and annotators)"},
        "agreement": [{"a": g.a, "b": g.b, "a_kind": g.a_kind, "b_kind": g.b_kind, "n": g.n,
                       "fraction_agree": g.fraction_agree, "kappa": _number(g.kappa),
                       "mean_abs_diff": g.mean_abs_diff, "involves_judge": g.involves_judge}
                      for g in r.run.disagreement.agreement],
        "judges": [{"judge": j.judge, "source": j.source, "against": j.against, "spearman": _number(j.rho),
                    "n_bins": j.n_bins} for j in r.run.disagreement.judges],
        "annotator_notes": r.run.disagreement.notes,
        "n_judge_scores": r.run.table.n_judge_scores,
        "convergence_aupr": None if r.convergence is None else
        {"samples_per_bin": r.convergence.sample_counts.tolist(), "aupr": [_number(a) for a in r.convergence.aupr]},
        "convergence_note": r.convergence_note,
    }


def _annotator_lines(who: pr_annotators.RunAnnotators) -> list[str]:
    """Agreement of each pair, and each judge's Spearman ρ against the people, as printed."""
    def named(name):
        return f"{name} (judge)" if who.kinds.get(name) == "judge" else name
    lines = [f"agreement {named(g.a)} / {named(g.b)}: Cohen's kappa {g.kappa:.3g}, {100 * g.fraction_agree:.3g}% "
             f"agree, over {g.n} samples both scored (label: score >= 0.5)" for g in who.agreement]
    for j in who.judges:
        what = f"judge {j.judge}'s r(z)" if j.source == "scores" else f"-FID per bin ({j.source})"
        lines.append(f"{what} vs the people's pooled r(z) ({', '.join(j.against)}): Spearman rho {j.rho:.3g} "
                     f"over {j.n_bins} bins {'both scored' if j.source == 'scores' else 'with both'}")
    return lines + who.notes


def _number(value) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return None if value is None or not math.isfinite(value) else float(value)


def _pair(values) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def format_report(report: Report, paths: list[str]) -> str:
    """What the command prints: the scale, each run's AUPR, the ratio and the files written."""
    lines = []
    for r in report.runs:
        lines.append(f"run {r.run.label}: AUPR {r.aupr:.4g} nats (95% interval {r.band.aupr_low:.4g} to "
                     f"{r.band.aupr_high:.4g}); recall scale: {r.normalisation.method} "
                     f"({r.normalisation.note}; ln rho offset {r.normalisation.log_offset:+.4g})")
        lines.extend(f"run {r.run.label}: {line}" for line in _annotator_lines(r.run.disagreement))
    if report.aupr_ratio is None:
        lines.append(f"AUPR ratio: not available ({report.ratio_note})")
    else:
        a, b = (r.run.label for r in report.runs[:2])
        lines.append(f"AUPR ratio {a} / {b} = {report.aupr_ratio:.4g} over their common log recall "
                     f"[{report.ratio_range[0]:.4g}, {report.ratio_range[1]:.4g}] (areas {report.ratio_areas[0]:.4g}"
                     f" and {report.ratio_areas[1]:.4g} nats)")
    lines.append("wrote " + ", ".join(paths))
    return "\n".join(lines)
