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

Null check of the verdict's group-agreement and drift tests (`omnijax.sampling.diagnostics`):
every bin row also carries the bin's agreement F (est.diagnostics["group_agreement"]), its
upper-tail p-value under F(G-1, G(K-1)), the drift in standard errors and its two-sided
Student-t p-value (G-1 dof), n_effective, and `tested` (filled and n_effective >=
diagnostics.MIN_EFFECTIVE, the verdict's own condition). Every run records its verdict
(converged, warnings) and whether the agreement (drift) test flagged some tested bin at the
verdict's Bonferroni limit (recomputed with diagnostics.f_upper / t_two_sided). Over the
accurate runs (every bin within 3 standard errors of the exact answer), "null_check" pools the
tested bins: the fractions of p-values below 0.1, 0.01 and 0.001 (calibrated: about those
numbers), the largest deviation of their empirical distribution from uniform (KS D; bins of
one run are not independent, so no KS p-value is given), the mean F against the F
distribution's mean, the family-wise flag rates with a Wilson 95% interval, and the same split
by space, by the bin's records (n_samples: its rarity), by n_effective and by tau = n_samples /
n_effective. (tau and n_effective come from the groups' spread of counts, which moves with F's
numerator: a split by them is confounded with F; the split by n_samples is not.) p-values use
scipy.stats, which the venv has.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from omnijax.sampling import diagnostics as diagnostics_lib
from omnijax.util.heartbeat import Heartbeat

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The script's flags, defined when it runs as a script only: its functions are imported by
    tests in processes that also import other benchmarks defining flags of the same names."""
    flags.DEFINE_list("spaces", ["bits48", "potts24", "blocks4x8", "mlp4x4"],
                      "Spaces: bits<N>, potts<L>, blocks<B>x<n> (benchmarks/accuracy_spaces.py) or mlp<H>x<W>.")
    flags.DEFINE_integer("seeds", 8, "Independent runs (keys 0..seeds-1) per space.")
    flags.DEFINE_integer("num_steps", 3000, "num_steps of every run.")
    flags.DEFINE_integer("num_groups", 8, "num_groups of every run.")
    flags.DEFINE_integer("space_seed", 0, "Seed of the spaces' random weights.")
    flags.DEFINE_string("out", "runs/calibration", "Output directory.")
    flags.DEFINE_float("max_minutes", 0.0, "Start no new seed (over all spaces) after this many minutes; 0: no "
                       "limit. calibration.json records the seeds done.")


HEARTBEAT_S = 5.0
WRITE_EVERY = 10  # runs between rewrites of calibration.csv/json (and at the end)
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


ACCURATE_Z = 3.0
P_LEVELS = (0.1, 0.01, 0.001)
NEFF_BANDS = ((10.0, 100.0), (100.0, 1000.0), (1000.0, 10000.0), (10000.0, math.inf))
N_SAMPLES_BANDS = ((0.0, 1000.0), (1000.0, 10000.0), (10000.0, 100000.0), (100000.0, math.inf))
TAU_BANDS = ((1.0, 1.5), (1.5, 3.0), (3.0, 10.0), (10.0, math.inf))  # tau = n_samples / n_effective


def f_sf(f, d1: int, d2: int):
    """P(F(d1, d2) > f), elementwise; NaN where f is NaN."""
    from scipy import stats

    return stats.f.sf(np.asarray(f, np.float64), d1, d2)


def t_two_sided_p(t, dof: int):
    """P(|T_dof| > |t|), elementwise; NaN where t is NaN."""
    from scipy import stats

    return 2.0 * stats.t.sf(np.abs(np.asarray(t, np.float64)), dof)


def tested_bins(diagnostics: dict, n_samples) -> np.ndarray:
    """The bins `diagnostics_lib.pt_verdict` tests for agreement and drift."""
    return (np.asarray(n_samples) > 0) & (np.asarray(diagnostics["n_effective"]) >= diagnostics_lib.MIN_EFFECTIVE)


def verdict_flags(diagnostics: dict, n_samples) -> dict:
    """Whether the agreement and drift tests of `pt_verdict` flag some tested bin, with the
    limits it uses (`diagnostics.verdict_limits`)."""
    tested = tested_bins(diagnostics, n_samples)
    num_tested = int(tested.sum())
    groups, k = int(diagnostics["num_groups"]), int(diagnostics["num_batches"])
    out = {"num_tested": num_tested, "agreement_limit": float("nan"), "drift_limit": float("nan"),
           "agreement_flagged": False, "drift_flagged": False}
    if num_tested and groups > 1 and k > 1:
        out["agreement_limit"], out["drift_limit"] = diagnostics_lib.verdict_limits(num_tested, groups, k)
        agreement = np.asarray(diagnostics["group_agreement"], np.float64)
        drift = np.abs(np.asarray(diagnostics["drift_sigma"], np.float64))
        out["agreement_flagged"] = bool(np.any(tested & ~(agreement <= out["agreement_limit"])))
        out["drift_flagged"] = bool(np.any(tested & ~(drift <= out["drift_limit"])))
    return out


def bin_rows(name: str, seed: int, exact: np.ndarray, est) -> list[dict]:
    """One row per bin that both the exact answer and the estimate fill."""
    both = np.isfinite(exact) & np.isfinite(est.log_rho)
    d = est.diagnostics
    groups, k = int(d["num_groups"]), int(d["num_batches"])
    agreement = np.asarray(d["group_agreement"], np.float64)
    drift = np.asarray(d["drift_sigma"], np.float64)
    agreement_p = f_sf(agreement, groups - 1, groups * (k - 1))
    drift_p = t_two_sided_p(drift, groups - 1)
    n_eff = np.asarray(d["n_effective"], np.float64)
    tested = tested_bins(d, est.n_samples)
    err = est.log_rho - exact
    centred = err - err[both].mean()
    boot = est.diagnostics["log_rho_stderr_bootstrap"]
    bias = est.diagnostics["log_rho_bias"]
    return [{"space": name, "seed": seed, "bin": int(b), "exact": exact[b], "log_rho": est.log_rho[b],
             "err": err[b], "err_centred": centred[b], "stderr": est.log_rho_stderr[b], "stderr_bootstrap": boot[b],
             "bias": bias[b], "z": err[b] / est.log_rho_stderr[b], "z_bootstrap": err[b] / boot[b],
             "z_centred": centred[b] / est.log_rho_stderr[b], "n_samples": int(est.n_samples[b]),
             "in_ci": bool(est.log_rho_ci_low[b] <= exact[b] <= est.log_rho_ci_high[b]),
             "agreement_f": agreement[b], "agreement_p": agreement_p[b], "drift_sigma": drift[b],
             "drift_p": drift_p[b], "n_effective": n_eff[b], "tested": bool(tested[b])}
            for b in np.flatnonzero(both)]


def wilson(k: int, n: int) -> list[float]:
    """Wilson 95% interval of a binomial proportion k / n."""
    if n == 0:
        return [float("nan"), float("nan")]
    z, phat = 1.959963984540054, k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def ks_uniform(p) -> float:
    """sup |empirical CDF of p - uniform CDF| (NaN when p is empty)."""
    p = np.sort(np.asarray(p, np.float64))
    n = p.size
    if not n:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - p), np.max(p - (i - 1) / n)))


def p_summary(p) -> dict:
    """Count, NaN count, fractions below P_LEVELS and KS D of a set of p-values."""
    p = np.asarray(p, np.float64)
    finite = p[np.isfinite(p)]
    return {"bins": int(p.size), "nan": int(p.size - finite.size),
            **{f"below_{level:g}": float(np.mean(finite < level)) if finite.size else float("nan")
               for level in P_LEVELS},
            **{f"count_below_{level:g}": int(np.sum(finite < level)) for level in P_LEVELS},
            "ks_d": ks_uniform(finite)}


def accurate_runs(rows: list[dict]) -> set:
    """(space, seed) of the runs whose every bin has |z| <= ACCURATE_Z."""
    runs = {}
    for r in rows:
        key = (r["space"], r["seed"])
        runs[key] = runs.get(key, True) and bool(abs(r["z"]) <= ACCURATE_Z)
    return {key for key, ok in runs.items() if ok}


def null_check(rows: list[dict], runs: list[dict]) -> dict:
    """The agreement and drift tests' p-values over the tested bins of the accurate runs, and the
    family-wise flag rates of those runs (see the module docstring)."""
    good = accurate_runs(rows)
    bins = [r for r in rows if (r["space"], r["seed"]) in good and r["tested"]]
    good_runs = [r for r in runs if (r["space"], r["seed"]) in good]

    def section(subset, run_subset):
        f = np.array([r["agreement_f"] for r in subset], np.float64)
        out = {"agreement": p_summary([r["agreement_p"] for r in subset]),
               "drift": p_summary([r["drift_p"] for r in subset]),
               "agreement_mean_f": float(np.nanmean(f)) if np.isfinite(f).any() else float("nan")}
        if run_subset is not None:
            n = len(run_subset)
            for test in ("agreement", "drift"):
                k = sum(bool(r[f"{test}_flagged"]) for r in run_subset)
                out[test].update({"runs": n, "flagged": k, "flag_rate": k / n if n else float("nan"),
                                  "flag_rate_ci95": wilson(k, n)})
        return out

    tau = lambda r: r["n_samples"] / r["n_effective"] if r["n_effective"] > 0 else math.inf
    spaces = sorted({r["space"] for r in rows})
    groups_k = {(r["num_groups"], r["num_batches"]) for r in good_runs if "num_groups" in r}
    return {
        "accurate_z": ACCURATE_Z, "runs": len(runs), "accurate_runs": len(good_runs),
        "null_mean_f": {f"G={g},K={k}": (g * (k - 1)) / (g * (k - 1) - 2) for g, k in sorted(groups_k)
                        if g * (k - 1) > 2},
        "all": section(bins, good_runs),
        "by_space": {s: section([r for r in bins if r["space"] == s], [r for r in good_runs if r["space"] == s])
                     for s in spaces},
        "by_n_effective": {f"[{lo:g}, {hi:g})": section([r for r in bins if lo <= r["n_effective"] < hi], None)
                           for lo, hi in NEFF_BANDS},
        "by_n_samples": {f"n [{lo:g}, {hi:g})": section([r for r in bins if lo <= r["n_samples"] < hi], None)
                         for lo, hi in N_SAMPLES_BANDS},
        "by_tau": {f"tau [{lo:g}, {hi:g})": section([r for r in bins if lo <= tau(r) < hi], None)
                   for lo, hi in TAU_BANDS},
    }


def print_null_check(check: dict) -> None:
    def line(label, s):
        a, d = s["agreement"], s["drift"]
        text = (f"{label:>28}: {a['bins']:5d} bins | agreement p<0.1 {a['below_0.1']:.3f} <0.01 {a['below_0.01']:.4f} "
                f"<0.001 {a['below_0.001']:.4f} KS {a['ks_d']:.3f} mean F {s['agreement_mean_f']:.3f}"
                f" | drift p<0.1 {d['below_0.1']:.3f} <0.01 {d['below_0.01']:.4f} <0.001 {d['below_0.001']:.4f} "
                f"KS {d['ks_d']:.3f}")
        if "runs" in a:
            text += (f" | flagged runs: agreement {a['flagged']}/{a['runs']} [{a['flag_rate_ci95'][0]:.3f}, "
                     f"{a['flag_rate_ci95'][1]:.3f}], drift {d['flagged']}/{d['runs']}")
        print(text)
    print(f"null check over {check['accurate_runs']} of {check['runs']} runs with every |z| <= {check['accurate_z']:g} "
          f"(F's null mean {check['null_mean_f']}):")
    line("all", check["all"])
    for group in ("by_space", "by_n_samples", "by_n_effective", "by_tau"):
        for label, s in check[group].items():
            if s["agreement"]["bins"]:
                line(label, s)


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
              "converged": bool(est.diagnostics["converged"]), "warnings": list(est.diagnostics["warnings"]),
              "num_steps_run": int(est.diagnostics["num_steps"]), "num_groups": int(est.diagnostics["num_groups"]),
              "num_batches": int(est.diagnostics["num_batches"]),
              **verdict_flags(est.diagnostics, est.n_samples)}
    return bin_rows(name, seed, exact, est), timing


def check_flags():
    for name in FLAGS.spaces:
        if not _MLP.match(name):
            from benchmarks import accuracy_spaces
            accuracy_spaces.parse_name(name)  # ValueError naming the space
    for flag in ("seeds", "num_steps", "num_groups"):
        if getattr(FLAGS, flag) < (2 if flag == "num_groups" else 1):
            raise ValueError(f"--{flag} must be >= {2 if flag == 'num_groups' else 1}, got {getattr(FLAGS, flag)}")


def write_outputs(out: Path, rows: list[dict], timings: list[dict]) -> dict:
    """calibration.csv and calibration.json from the runs so far (rewritten every WRITE_EVERY runs,
    so an interrupted study keeps what it finished)."""
    if rows:
        with open(out / "calibration.csv.tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (out / "calibration.csv.tmp").replace(out / "calibration.csv")
    summary = {"flags": {k: getattr(FLAGS, k) for k in ("spaces", "seeds", "num_steps", "num_groups", "space_seed",
                                                         "max_minutes")},
               "seeds_done": len({r["seed"] for r in timings}),
               "pooled": pooled(rows), "null_check": null_check(rows, timings), "runs": timings}
    (out / "calibration.json.tmp").write_text(json.dumps(summary, indent=1, default=float))
    (out / "calibration.json.tmp").replace(out / "calibration.json")
    return summary


def main(argv):
    del argv
    check_flags()
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, timings, beat = [], [], Heartbeat(HEARTBEAT_S)
    start, seeds_done = time.perf_counter(), 0
    try:
        cases = {}
        for name in FLAGS.spaces:
            beat.phase(f"{name}: exact answer")
            cases[name] = exact_case(name, FLAGS.space_seed)
        # Seeds outer, spaces inner: a study cut short by --max_minutes stays balanced over spaces.
        for seed in range(FLAGS.seeds):
            if FLAGS.max_minutes and time.perf_counter() - start > 60 * FLAGS.max_minutes:
                print(f"--max_minutes={FLAGS.max_minutes:g} reached: stopping after {seeds_done} seeds", flush=True)
                break
            seeds_done = seed + 1
            for name in FLAGS.spaces:
                case = cases[name]
                beat.phase(f"{name} seed {seed}")
                new_rows, timing = run_one(name, seed, case, FLAGS.num_steps, FLAGS.num_groups)
                rows += new_rows
                timings.append(timing)
                if len(timings) % WRITE_EVERY == 0:
                    write_outputs(out, rows, timings)
                run = coverage([r["z"] for r in new_rows])
                print(f"{name} seed {seed}: {timing['seconds']:.1f} s (bootstrap {timing['bootstrap_seconds']:.1f} s, "
                      f"{timing['bootstrap_iterations']:.1f} it) | {run['bins']} bins, |z|<=2 {run['within_2']:.2f}, "
                      f"worst {run['worst']:.2f}, bootstrap-only worst "
                      f"{coverage([r['z_bootstrap'] for r in new_rows])['worst']:.2f} | converged "
                      f"{timing['converged']}, {timing['num_tested']} tested, agreement flagged "
                      f"{timing['agreement_flagged']}, drift flagged {timing['drift_flagged']}", flush=True)
    finally:
        beat.close()
    summary = write_outputs(out, rows, timings)
    for space, s in summary["pooled"].items():
        t, b = s["total"], s["bootstrap_only"]
        print(f"{space:>10}: {t['bins']} bins | reported stderr: |z|<=2 {t['within_2']:.3f}, >4 in {t['beyond_4']}, "
              f"worst {t['worst']:.2f} | bootstrap only: |z|<=2 {b['within_2']:.3f}, >4 in {b['beyond_4']}, "
              f"worst {b['worst']:.2f} | 95% CI covers {s['ci_covers']:.3f} | undetermined {s['undetermined_bins']}")
    print_null_check(summary["null_check"])
    print(f"wrote {out / 'calibration.csv'} and {out / 'calibration.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
