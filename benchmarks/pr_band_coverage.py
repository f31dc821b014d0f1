"""How often the PR band and r's interval cover the truth, in a simulation with annotators who differ.

    python -m benchmarks.pr_band_coverage --annotators=3 --sd=0.1
    python -m benchmarks.pr_band_coverage --annotators=3 --sd=0.1 --per_bin_annotators   # the old resampling

8 bins with true precision falling 0.9 -> 0.1, 15 samples per bin, annotators whose leniency (a shift
of P(score = 1)) is drawn N(0, --sd) once per simulation and shared across the bins; the truth is the
annotator population's mean (shift 0). The band comes from `bin_precision`'s replicates (annotators
drawn once per replicate for all bins) or, with --per_bin_annotators, from replicates drawn for
each bin on its own, the scheme it replaced. Prints coverage per threshold, per bin and of AUPR.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("annotators", 3, "Annotators per simulation.")
flags.DEFINE_float("sd", 0.1, "Spread of the annotators' leniency.")
flags.DEFINE_integer("simulations", 300, "Simulated annotation campaigns.")
flags.DEFINE_boolean("per_bin_annotators", False, "Resample the annotators of each bin on its own (old scheme).")


def main(argv):
    del argv
    from omnijax import evaluation as ev

    if FLAGS.annotators < 1 or FLAGS.simulations < 1 or FLAGS.sd < 0:
        raise app.UsageError("--annotators and --simulations must be >= 1 and --sd >= 0")
    edges = np.linspace(0, 1, 9)
    log_rho = np.log(np.linspace(8, 1, 8) / 36)
    truth = np.linspace(0.9, 0.1, 8)
    pr_true = ev.precision_recall(edges, log_rho, truth, "low")
    rng = np.random.default_rng(0)
    cov_pr, cov_r, cov_aupr = [], [], []
    for sim in range(FLAGS.simulations):
        shifts = rng.normal(0, FLAGS.sd, FLAGS.annotators)
        scores = [np.column_stack([rng.random(15) < np.clip(p + s, 0, 1) for s in shifts]).astype(float)
                  for p in truth]
        bp = ev.bin_precision(scores, num_bootstrap=1000, seed=sim)
        replicates = bp.replicates
        if FLAGS.per_bin_annotators:
            replicates = np.column_stack([ev.bin_precision([s], num_bootstrap=1000, seed=1000 * sim + b).replicates[:, 0]
                                          for b, s in enumerate(scores)])
        band = ev.precision_recall_band(edges, log_rho, bp.r, replicates, "low")
        cov_pr.append((band.precision_low <= pr_true.precision) & (pr_true.precision <= band.precision_high))
        cov_r.append((bp.ci_low <= truth) & (truth <= bp.ci_high))
        cov_aupr.append(band.aupr_low <= ev.aupr(pr_true) <= band.aupr_high)
        if (sim + 1) % 50 == 0:
            print(f"  {sim + 1}/{FLAGS.simulations} simulations", flush=True)
    print(f"sd={FLAGS.sd} annotators={FLAGS.annotators} "
          f"{'per-bin' if FLAGS.per_bin_annotators else 'shared'} annotator draws: PR band coverage per threshold "
          f"{np.mean(cov_pr, 0).round(2)}; r interval coverage per bin {np.mean(cov_r, 0).round(2)}; "
          f"AUPR interval {np.mean(cov_aupr):.2f}")


if __name__ == "__main__":
    app.run(main)
