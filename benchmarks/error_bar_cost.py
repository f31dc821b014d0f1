"""What ln rho's error bars cost: `uncertainty.log_rho_with_error_bars` (the full data's MBAR solve,
then `num_bootstrap` resamples of the groups, each solving the whole run and both halves) on one set
of replica-exchange records, timed in wall and process CPU time. One JSON line.

    python -m benchmarks.error_bar_cost                        # synthetic records at MNIST scale
    python -m benchmarks.error_bar_cost --records=run.npz      # a run's records: arrays z, slot
                                                               #   (records, groups, rungs), betas, edges
    python -m benchmarks.error_bar_cost --records_per_group=8 --rungs=6 --num_bootstrap=4   # tiny (tests)

The synthetic records have the size of the default MNIST MLP run's resampled records (134 records x
16 groups x 83 rungs = 177,952 samples, every one a distinct output): each rung's output is a
Gaussian AR(1) process (autocorrelation 0.9 per record) about its tilted mean, on a Gaussian density
of states, so neighbouring rungs overlap as an adapted ladder's do.
"""
import json
import time

import jax
import numpy as np
from absl import app, flags

from omnijax.sampling import uncertainty

FLAGS = flags.FLAGS


def define_flags():
    """The records and the bootstrap (defined when run, not on import)."""
    flags.DEFINE_string("records", None, "An .npz with z, slot (records, groups, rungs), betas, edges; "
                        "default: synthetic records of the sizes below.")
    flags.DEFINE_integer("records_per_group", 134, "Synthetic records per walker.", lower_bound=2)
    flags.DEFINE_integer("groups", 16, "Synthetic independent groups.", lower_bound=2)
    flags.DEFINE_integer("rungs", 83, "Synthetic ladder rungs (walkers per group).", lower_bound=2)
    flags.DEFINE_integer("num_bootstrap", 100, "Bootstrap resamples.", lower_bound=2)
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic records and of the resampling.")


def synthetic_records(records: int, groups: int, rungs: int, seed: int, sigma: float = 6.0, corr: float = 0.9):
    """(z, slot, betas, edges): on ln rho(z) = -z^2 / (2 sigma^2) the tilted law at beta is
    N(sigma^2 beta, sigma^2); each walker stays at its rung (slot) and moves by AR(1) steps."""
    rng = np.random.default_rng(seed)
    betas = np.linspace(-1.2, 1.2, rungs).astype(np.float32)
    noise = np.empty((records, groups, rungs))
    e = rng.normal(size=(groups, rungs))
    for t in range(records):
        e = corr * e + np.sqrt(1 - corr ** 2) * rng.normal(size=(groups, rungs))
        noise[t] = e
    z = (sigma ** 2 * betas + sigma * noise).astype(np.float32)
    slot = np.broadcast_to(np.arange(rungs, dtype=np.int32), z.shape).copy()
    edges = np.linspace(z.min() - 1e-3, z.max() + 1e-3, 41).astype(np.float32)
    return z, slot, betas, edges


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if FLAGS.records:
        with np.load(FLAGS.records) as data:
            missing = {"z", "slot", "betas", "edges"} - set(data.files)
            if missing:
                raise app.UsageError(f"--records={FLAGS.records} lacks arrays {sorted(missing)}")
            z, slot, betas, edges = (data[k] for k in ("z", "slot", "betas", "edges"))
    else:
        z, slot, betas, edges = synthetic_records(FLAGS.records_per_group, FLAGS.groups, FLAGS.rungs, FLAGS.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    bars = uncertainty.log_rho_with_error_bars(z, slot, betas, edges, jax.random.key(FLAGS.seed),
                                               num_bootstrap=FLAGS.num_bootstrap, progress=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"samples": int(z.size), "records": int(z.shape[0]), "groups": int(z.shape[1]),
                      "rungs": int(z.shape[2]), "num_bootstrap": FLAGS.num_bootstrap, "wall_s": wall, "cpu_s": cpu,
                      "bootstrap_s": bars.bootstrap_seconds,
                      "mean_iterations_per_resample_solve": bars.bootstrap_iterations,
                      "bins_filled": int(np.isfinite(bars.log_rho).sum())}), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
