"""How often the PR band, r's interval and the AUPR interval cover the truth, in a simulation with
annotators who differ.

    python -m benchmarks.pr_band_coverage --annotators=3 --sd=0.1 --simulations=2000
    python -m benchmarks.pr_band_coverage --annotators=3 --sd=0              # no leniency, own noise
    python -m benchmarks.pr_band_coverage --annotators=3 --identical         # everyone gives one score
    python -m benchmarks.pr_band_coverage --annotators=3 --sd=0.1 --scored_fraction=0.5  # partial overlap
    python -m benchmarks.pr_band_coverage --annotators=3 --sd=0.1 --per_bin_annotators
    python -m benchmarks.pr_band_coverage --annotators=1 --sd=0 --p_edge=0.97  # edge bins at 0.97 and 0.03

8 bins with true precision falling linearly from --p_edge (0.9) to 1 - --p_edge (the edge bins,
where a bin of few samples often scores all ones, or all zeros), --samples per bin, annotators
whose leniency (a shift of P(score = 1)) is drawn N(0, --sd) once per simulated campaign and
shared across the bins; each annotator scores each sample on their own (Bernoulli). With --identical every annotator gives
each sample the same score (one Bernoulli draw per sample): annotators who agree exactly. With
--scored_fraction < 1 each annotator scores each sample with that probability (a campaign where
each person scored a random part; samples nobody scored stay unscored rows). The truth
is the annotator population's mean, E over the shift s of clip(p + s, 0, 1) (p itself with --sd=0
or --identical). The band comes from `bin_precision`'s replicates or, with --per_bin_annotators,
from replicates computed for each bin on its own.

Prints, per threshold and per bin, the fraction of campaigns whose 95% band / interval covers the
truth, the range over thresholds with its binomial standard error sqrt(c (1 - c) / campaigns), the
AUPR interval's coverage, and the mean widths (band: mean over campaigns and thresholds of
precision_high - precision_low). --json writes the same numbers to a file.
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("annotators", 3, "Annotators per simulated campaign.")
flags.DEFINE_float("sd", 0.1, "Spread of the annotators' leniency.")
flags.DEFINE_integer("simulations", 300, "Simulated annotation campaigns.")
flags.DEFINE_integer("samples", 15, "Samples per bin.")
flags.DEFINE_integer("bootstrap", 1000, "Bootstrap replicates per campaign.")
flags.DEFINE_boolean("identical", False, "Every annotator gives each sample the same score.")
flags.DEFINE_float("scored_fraction", 1.0, "Each annotator scores each sample with this probability (NaN otherwise).")
flags.DEFINE_boolean("per_bin_annotators", False, "Compute the replicates of each bin on its own.")
flags.DEFINE_float("p_edge", 0.9, "True precision of the first bin; the 8 bins fall linearly to 1 - p_edge.")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")

EDGES = np.linspace(0, 1, 9)
LOG_RHO = np.log(np.linspace(8, 1, 8) / 36)


def population_mean(p: np.ndarray, sd: float) -> np.ndarray:
    """E over s ~ N(0, sd) of clip(p + s, 0, 1), by Gauss-Hermite quadrature (p where sd = 0)."""
    if sd == 0:
        return np.asarray(p, np.float64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    return np.clip(p[:, None] + sd * nodes[None, :], 0, 1) @ (weights / weights.sum())


def simulate(ev, annotators: int, sd: float, simulations: int, samples: int = 15, bootstrap: int = 1000,
             identical: bool = False, per_bin: bool = False, scored_fraction: float = 1.0, seed: int = 0,
             progress: bool = False, p_edge: float = 0.9) -> dict:
    """Coverage and widths over `simulations` campaigns (module docstring); ev is omnijax.evaluation."""
    P = np.linspace(p_edge, 1 - p_edge, 8)
    truth = P if identical else population_mean(P, sd)
    pr_true = ev.precision_recall(EDGES, LOG_RHO, truth, "low")
    aupr_true = ev.aupr(pr_true)
    rng = np.random.default_rng(seed)
    cov_pr, cov_r, cov_aupr, width_pr, width_r, width_aupr = [], [], [], [], [], []
    start = time.perf_counter()
    for sim in range(simulations):
        if identical:
            scores = [np.repeat((rng.random(samples) < p)[:, None], annotators, axis=1).astype(float) for p in P]
        else:
            shifts = rng.normal(0, sd, annotators)
            scores = [np.column_stack([rng.random(samples) < np.clip(p + s, 0, 1) for s in shifts]).astype(float)
                      for p in P]
        if scored_fraction < 1:
            scores = [np.where(rng.random(s.shape) < scored_fraction, s, np.nan) for s in scores]
        bp = ev.bin_precision(scores, num_bootstrap=bootstrap, seed=sim)
        replicates = bp.replicates
        if per_bin:
            replicates = np.column_stack([ev.bin_precision([s], num_bootstrap=bootstrap, seed=1000 * sim + b).replicates[:, 0]
                                          for b, s in enumerate(scores)])
        band = ev.precision_recall_band(EDGES, LOG_RHO, bp.r, replicates, "low")
        cov_pr.append((band.precision_low <= pr_true.precision) & (pr_true.precision <= band.precision_high))
        cov_r.append((bp.ci_low <= truth) & (truth <= bp.ci_high))
        cov_aupr.append(band.aupr_low <= aupr_true <= band.aupr_high)
        width_pr.append(band.precision_high - band.precision_low)
        width_r.append(bp.ci_high - bp.ci_low)
        width_aupr.append(band.aupr_high - band.aupr_low)
        if progress and (sim + 1) % 500 == 0:
            print(f"  {sim + 1}/{simulations} campaigns", flush=True)
    seconds = time.perf_counter() - start
    pr, r = np.mean(cov_pr, 0), np.mean(cov_r, 0)
    aupr_cov = float(np.mean(cov_aupr))

    def se(c):
        return np.sqrt(np.asarray(c) * (1 - np.asarray(c)) / simulations)

    return {"annotators": annotators, "sd": sd, "identical": identical, "per_bin": per_bin,
            "scored_fraction": scored_fraction, "p_edge": p_edge, "truth": np.asarray(truth).tolist(),
            "simulations": simulations, "samples": samples, "bootstrap": bootstrap,
            "pr_coverage": pr.tolist(), "pr_coverage_se": se(pr).tolist(),
            "r_coverage": r.tolist(), "r_coverage_se": se(r).tolist(),
            "aupr_coverage": aupr_cov, "aupr_coverage_se": float(se(aupr_cov)),
            "pr_width": np.mean(width_pr, 0).tolist(), "pr_width_mean": float(np.mean(width_pr)),
            "r_width": np.mean(width_r, 0).tolist(), "r_width_mean": float(np.mean(width_r)),
            "aupr_width_mean": float(np.mean(width_aupr)), "seconds": seconds}


def summary(res: dict) -> str:
    pr, pr_se, r = np.array(res["pr_coverage"]), np.array(res["pr_coverage_se"]), np.array(res["r_coverage"])
    kind = "identical scores" if res["identical"] else f"sd={res['sd']}"
    if res["scored_fraction"] < 1:
        kind += f" scored_fraction={res['scored_fraction']}"
    if res.get("p_edge", 0.9) != 0.9:
        kind += f" p_edge={res['p_edge']}"
    lo, hi = int(np.argmin(pr)), int(np.argmax(pr))
    return (f"{kind} annotators={res['annotators']} campaigns={res['simulations']}"
            f"{' (per-bin replicates)' if res['per_bin'] else ''}:\n"
            f"  PR band coverage per threshold {pr.round(3)}\n"
            f"    range {pr[lo]:.3f}±{pr_se[lo]:.3f} .. {pr[hi]:.3f}±{pr_se[hi]:.3f}; "
            f"mean band width {res['pr_width_mean']:.4f} (per threshold {np.round(res['pr_width'], 3)})\n"
            f"  r interval coverage per bin {r.round(3)}; range {r.min():.3f} .. {r.max():.3f}; "
            f"mean width {res['r_width_mean']:.4f} (per bin {np.round(res['r_width'], 3)})\n"
            f"  AUPR interval coverage {res['aupr_coverage']:.3f}±{res['aupr_coverage_se']:.3f}; "
            f"mean width {res['aupr_width_mean']:.4f}\n"
            f"  {res['seconds']:.0f} s")


def main(argv):
    del argv
    from omnijax import evaluation as ev

    if (FLAGS.annotators < 1 or FLAGS.simulations < 1 or FLAGS.sd < 0 or FLAGS.samples < 1
            or not 0 < FLAGS.scored_fraction <= 1 or not 0.5 < FLAGS.p_edge <= 1):
        raise app.UsageError("--annotators, --simulations and --samples must be >= 1, --sd >= 0, "
                             "--scored_fraction in (0, 1] and --p_edge in (0.5, 1]")
    res = simulate(ev, FLAGS.annotators, FLAGS.sd, FLAGS.simulations, FLAGS.samples, FLAGS.bootstrap,
                   FLAGS.identical, FLAGS.per_bin_annotators, FLAGS.scored_fraction, progress=True,
                   p_edge=FLAGS.p_edge)
    print(summary(res))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
