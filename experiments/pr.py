"""Precision and recall over the input space of one or more sampling runs, from their annotations
(paper §3.2, Figs. 3-6).

    python -m experiments.pr --runs=runs/mnist-mlp-bce
    python -m experiments.pr --runs=runs/mnist-mlp-bce,runs/mnist-resnet-aug --cross_normalise

Each run directory needs rho.csv and samples.npz (python -m experiments.mnist, experiments.lm,
experiments.sst2, ...) and scores of its
samples in annotations.sqlite (python -m omnijax.annotation serve --run=DIR). Writes to --out:
pr.csv (run,threshold,precision,log_recall,precision_low,precision_high), pr.png (every run's PR
curve with its band), r_<run>.png (r(z) pooled over the annotators with its bootstrap interval, and
each annotator's own r(z), judges dashed: Fig. 6), r_annotators_<run>.csv (each annotator's r per
bin), convergence_<run>.png and summary.json (AUPR per run with its interval, the AUPR ratio of the
first two runs over their common recall range, the recall scale, excluded bins, judge use, Cohen's
kappa of every pair of annotators, and each judge's Spearman rho against the people's pooled r(z)).
r's interval and the PR band come from one set of bootstrap replicates over samples and annotators.
A judge is a model scoring as annotator (kind "judge"), or an FID per bin in <run>/judge_fid.csv
(bin,bin_lo,bin_hi,n_representatives,fid; -FID is ranked against r). It prints the AUPRs, the
agreement, the judges' Spearman rho and the AUPR ratio. --out defaults to the run's own
directory for one run, and for several to a directory beside the first run named for the
comparison, e.g. runs/pr-mnist-mlp-bce-vs-mnist-resnet-aug.
On any error it exits non-zero and writes nothing.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "Run directories, comma-separated; the AUPR ratio is the first over the second.")
flags.DEFINE_string("out", None, "Output directory (default: the run's directory for one run; for several, "
                    "pr-<run1>-vs-<run2>... beside the first run).")
flags.DEFINE_enum("positive", "high", ["high", "low"],
                  "high: z >= threshold is predicted positive (a classifier's logit or log-softmax; an "
                  "energy-based model's log-likelihood, --training=gen); low: z <= threshold (an NLL or energy). "
                  "When not given: the runs' own, from their metrics.json (experiments.lm writes low, "
                  "experiments.sst2 high), else high.")
flags.DEFINE_list("annotators", None, "Only these annotators' scores (default: everyone's but the judges', "
                  "which are held against the people instead; name a judge to count its scores); each must be "
                  "an annotator of every run.")
flags.DEFINE_boolean("cross_normalise", False,
                     "Put the runs' recalls on the first run's scale by cross-model normalisation (paper §2.3): "
                     "needs model/ in each run and one input space; otherwise each run's own ln rho is used "
                     "and the output says why.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; give the runs as --runs=A,B")
    if not FLAGS.runs:
        raise app.UsageError("--runs is required: one or more run directories, comma-separated")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every model it restores at INFO
    from experiments.workflows import pr_report

    try:
        runs = pr_report.load_runs(FLAGS.runs, FLAGS.annotators)
        norms = pr_report.normalisations(runs, FLAGS.cross_normalise)
        report = pr_report.build_report(runs, norms, _positive(FLAGS.runs))
        paths = pr_report.write_report(report, FLAGS.out or pr_report.default_out(FLAGS.runs))
    except pr_report.ReportError as err:
        raise app.UsageError(str(err))
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(pr_report.format_report(report, paths))


def _positive(run_dirs) -> str:
    """--positive when given, else the one the runs' metrics.json name ("positive"), else "high"."""
    if FLAGS["positive"].present:
        return FLAGS.positive
    named = {}
    for d in run_dirs:
        try:
            with open(os.path.join(d, "metrics.json")) as f:
                value = json.load(f).get("positive")
        except (OSError, ValueError, AttributeError):
            continue
        if value in ("high", "low"):
            named[d] = value
    if len(set(named.values())) > 1:
        raise app.UsageError(f"--runs disagree on which outputs are predicted positive (metrics.json: "
                             f"{named}); give --positive=high or --positive=low")
    return next(iter(named.values()), FLAGS.positive)


if __name__ == "__main__":
    app.run(main)
