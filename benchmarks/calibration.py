"""Calibration of replica exchange's error bars on exactly known output distributions.

    python -m benchmarks.calibration                                   # default spaces, 8 seeds
    python -m benchmarks.calibration --spaces=bits48,mlp4x4 --seeds=4 --num_steps=2000

For every space and seed, `oj.estimate_output_distribution(method="pt")` runs with its defaults
except for --num_steps/--num_groups, and every bin that both the exact answer and the estimate
fill is scored by z = (ln rho_est - ln rho_exact) / stderr, for the reported stderr (bootstrap
over groups + drift between the run's halves, `omnijax.sampling.uncertainty`) and for the
bootstrap-only part (est.diagnostics["log_rho_stderr_bootstrap"], the old error bar). Errors are
absolute: ln rho is normalised over all inputs, so no constant is removed (removing the mean
error over bins moves the bulk bins, whose error is tiny, by the tails' errors, and the reported
stderr is not that of the shifted error). The centred variant is written too, for comparison.
Pooled over all runs: the fraction of bins with |z| <= 2 (target >= 0.9) and the largest |z|
(target <= 4). Bins with an infinite stderr (undetermined: e.g. filled in one half of the run
only) are left out of the coverage and counted separately.

Spaces: bits<N>, potts<L>, blocks<B>x<n> from `benchmarks/accuracy_spaces.py` (exact by
counting), and mlp<H>x<W>, a random tanh MLP (tests/models.py) on H x W binary pixels, exact by
enumeration (continuous outputs). Writes calibration.csv (one row per bin and run) and
calibration.json (pooled numbers and per-run times) under --out; prints progress every run and
a heartbeat at least every 10 s.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from omnijax.util.heartbeat import Heartbeat

FLAGS = flags.FLAGS
flags.DEFINE_list("spaces", ["bits48", "potts24", "blocks4x8", "mlp4x4"],
                  "Spaces: bits<N>, potts<L>, blocks<B>x<n> (benchmarks/accuracy_spaces.py) or mlp<H>x<W>.")
flags.DEFINE_integer("seeds", 8, "Independent runs (keys 0..seeds-1) per space.")
flags.DEFINE_integer("num_steps", 3000, "num_steps of every run.")
flags.DEFINE_integer("num_groups", 8, "num_groups of every run.")
flags.DEFINE_integer("space_seed", 0, "Seed of the spaces' random weights.")
flags.DEFINE_string("out", "runs/calibration", "Output directory.")

HEARTBEAT_S = 5.0
_MLP = re.compile(r"^mlp(\d+)x(\d+)$")


def exact_case(name: str, space_seed: int):
    """(output_fn, space, edges, exact ln rho per bin) of the space called `name`."""
    import omnijax as oj

    match = _MLP.match(name)
    if match:
        from tests.models import random_mlp

        space = oj.InputSpace(shape=(int(match.group(1)), int(match.group(2))), num_categories=2)
        output_fn = random_mlp(space, seed=space_seed, hidden=16, scale=2.0)
        probe = oj.enumerate_output_distribution(output_fn, space, np.array([-1e6, 1e6]), progress=False)
        edges = np.linspace(probe.min_output, probe.max_output, 21)
        exact = oj.enumerate_output_distribution(output_fn, space, edges, progress=False)
        return output_fn, space, edges, np.asarray(exact.log_rho, np.float64)
    from benchmarks import accuracy_spaces

    return accuracy_spaces.exact_case(name, space_seed)


def bin_rows(name: str, seed: int, exact: np.ndarray, est) -> list[dict]:
    """One row per bin that both the exact answer and the estimate fill."""
    both = np.isfinite(exact) & np.isfinite(est.log_rho)
    err = est.log_rho - exact
    centred = err - err[both].mean()
    boot = est.diagnostics["log_rho_stderr_bootstrap"]
    bias = est.diagnostics["log_rho_bias"]
    return [{"space": name, "seed": seed, "bin": int(b), "exact": exact[b], "log_rho": est.log_rho[b],
             "err": err[b], "err_centred": centred[b], "stderr": est.log_rho_stderr[b], "stderr_bootstrap": boot[b],
             "bias": bias[b], "z": err[b] / est.log_rho_stderr[b], "z_bootstrap": err[b] / boot[b],
             "z_centred": centred[b] / est.log_rho_stderr[b], "n_samples": int(est.n_samples[b]),
             "in_ci": bool(est.log_rho_ci_low[b] <= exact[b] <= est.log_rho_ci_high[b])}
            for b in np.flatnonzero(both)]


def coverage(z: np.ndarray) -> dict:
    """Number of bins, fraction with |z| <= 2, how many have |z| > 4, and the largest |z|."""
    z = np.abs(np.asarray(z, np.float64))
    determined = np.isfinite(z) & ~np.isnan(z)
    return {"bins": int(z.size), "within_2": float(np.mean(z <= 2)) if z.size else float("nan"),
            "beyond_4": int(np.sum(z > 4)), "worst": float(np.max(z[determined])) if determined.any() else float("nan")}


def pooled(rows: list[dict]) -> dict:
    """Pooled coverage of the reported, bootstrap-only and centred scores, overall and per space."""
    def summary(subset):
        undetermined = int(sum(not np.isfinite(r["stderr"]) for r in subset))
        subset = [r for r in subset if np.isfinite(r["stderr"])]
        return {"total": coverage([r["z"] for r in subset]), "bootstrap_only": coverage([r["z_bootstrap"] for r in subset]),
                "centred": coverage([r["z_centred"] for r in subset]),
                "ci_covers": float(np.mean([r["in_ci"] for r in subset])) if subset else float("nan"),
                "undetermined_bins": undetermined}
    spaces = sorted({r["space"] for r in rows})
    return {"all": summary(rows), **{s: summary([r for r in rows if r["space"] == s]) for s in spaces}}


def run_one(name, seed, case, num_steps, num_groups) -> tuple[list[dict], dict]:
    import jax

    import omnijax as oj

    output_fn, space, edges, exact = case
    start = time.perf_counter()
    est = oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(seed), num_steps=num_steps,
                                          num_groups=num_groups, progress=False)
    seconds = time.perf_counter() - start
    boot_s = float(est.diagnostics["bootstrap_seconds"])
    timing = {"space": name, "seed": seed, "seconds": seconds, "bootstrap_seconds": boot_s,
              "bootstrap_iterations": est.diagnostics["bootstrap_iterations"], "replicas": len(est.betas),
              "converged": bool(est.diagnostics["converged"])}
    return bin_rows(name, seed, exact, est), timing


def check_flags():
    for name in FLAGS.spaces:
        if not _MLP.match(name):
            from benchmarks import accuracy_spaces
            accuracy_spaces.parse_name(name)  # ValueError naming the space
    for flag in ("seeds", "num_steps", "num_groups"):
        if getattr(FLAGS, flag) < (2 if flag == "num_groups" else 1):
            raise ValueError(f"--{flag} must be >= {2 if flag == 'num_groups' else 1}, got {getattr(FLAGS, flag)}")


def main(argv):
    del argv
    check_flags()
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, timings, beat = [], [], Heartbeat(HEARTBEAT_S)
    try:
        for name in FLAGS.spaces:
            beat.phase(f"{name}: exact answer")
            case = exact_case(name, FLAGS.space_seed)
            for seed in range(FLAGS.seeds):
                beat.phase(f"{name} seed {seed}")
                new_rows, timing = run_one(name, seed, case, FLAGS.num_steps, FLAGS.num_groups)
                rows += new_rows
                timings.append(timing)
                run = coverage([r["z"] for r in new_rows])
                print(f"{name} seed {seed}: {timing['seconds']:.1f} s (bootstrap {timing['bootstrap_seconds']:.1f} s, "
                      f"{timing['bootstrap_iterations']:.1f} it) | {run['bins']} bins, |z|<=2 {run['within_2']:.2f}, "
                      f"worst {run['worst']:.2f}, bootstrap-only worst "
                      f"{coverage([r['z_bootstrap'] for r in new_rows])['worst']:.2f}", flush=True)
    finally:
        beat.close()
    with open(out / "calibration.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"flags": {k: getattr(FLAGS, k) for k in ("spaces", "seeds", "num_steps", "num_groups", "space_seed")},
               "pooled": pooled(rows), "runs": timings}
    (out / "calibration.json").write_text(json.dumps(summary, indent=1, default=float))
    for space, s in summary["pooled"].items():
        t, b = s["total"], s["bootstrap_only"]
        print(f"{space:>10}: {t['bins']} bins | reported stderr: |z|<=2 {t['within_2']:.3f}, >4 in {t['beyond_4']}, "
              f"worst {t['worst']:.2f} | bootstrap only: |z|<=2 {b['within_2']:.3f}, >4 in {b['beyond_4']}, "
              f"worst {b['worst']:.2f} | 95% CI covers {s['ci_covers']:.3f} | undetermined {s['undetermined_bins']}")
    print(f"wrote {out / 'calibration.csv'} and {out / 'calibration.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    app.run(main)
