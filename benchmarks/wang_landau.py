"""Wang–Landau against exact counting: the stopping-rule defaults, the appendix-H directional
heuristic and the old fixed-length defaults, on sums of integer-weighted bits.

    python -m benchmarks.wang_landau                          # bits64 and bits100, all three
    python -m benchmarks.wang_landau --spaces=bits64 --configs=default --out=/tmp/wl.json

Space bits<N>: z = sum_i a_i x_i over N binary inputs, a_i drawn from {-2, -1, 1, 2, 3} (seed
--seed); the fraction p(S) of all 2^N inputs with each sum S follows from counting
(p_i(S) = (p_{i-1}(S) + p_{i-1}(S - a_i)) / 2). The window is the whole reachable range, cut
into --bins48/--bins100 bins with edges half-way between integer sums, so every input lies in
it and ln rho spans N ln 2 (44 decades at 100 bits). Error: max |Δ ln rho| over the bins
holding rho >= 1e-12.

Configs (each with the same key):
  default      estimate_output_distribution(method="wang_landau") defaults: the stopping rule.
  directional  the same with beta_rule="directional" (appendix H heuristic).
  old          the defaults before the stopping rule: 20,000 fixed steps, classic 0.8 halving.
Both rule configs get the same max_steps (--budget_factor x the fewest steps the rule needs,
which is also the default budget at factor 4). Prints one JSON line per run and a table; --out
saves the rows as JSON.
"""

from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

from benchmarks.accuracy_spaces import bits_distribution

FLAGS = flags.FLAGS
flags.DEFINE_list("spaces", ["bits64", "bits100"], "bits<N> spaces.")
flags.DEFINE_list("configs", ["default", "directional", "old"], "default | directional | old.")
flags.DEFINE_integer("bins64", 48, "Bins of a 64-bit space (others: --bins_other).")
flags.DEFINE_integer("bins_other", 64, "Bins of any other space.")
flags.DEFINE_float("budget_factor", 4.0, "max_steps of the rule configs, in units of the fewest steps the rule needs.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and of the run key.")
flags.DEFINE_string("out", None, "Write the rows as JSON here.")

WEIGHTS = (-2, -1, 1, 2, 3)
RHO_FLOOR = 1e-12
LOG_F_FINAL = 1e-5  # the library default (wang_landau_estimate.LOG_F_FINAL); kept here to size budgets
WALKERS = 8         # the library default walkers_per_group


def weights_of(num_bits: int, seed: int) -> np.ndarray:
    """Integer weights a_i of the space bits<num_bits>."""
    return np.random.default_rng([seed, num_bits]).choice(WEIGHTS, size=num_bits).astype(np.int64)


def edges_and_exact(weights: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges half-way between integer sums over the whole range, and exact ln rho per bin."""
    lowest, p = bits_distribution(weights)
    cuts = np.unique(np.round(np.linspace(0, len(p), num_bins + 1)))
    if len(cuts) != num_bins + 1:
        raise ValueError(f"num_bins={num_bins} exceeds the {len(p)} distinct sums")
    edges = lowest - 0.5 + cuts
    which = np.searchsorted(edges, lowest + np.arange(len(p)), side="right") - 1
    return edges, np.log(np.bincount(which, weights=p, minlength=num_bins))


def model_of(weights: np.ndarray):
    """The oj.Target z = sum_i a_i x_i on one one-hot input (N, 2); weights are its params."""
    import jax.numpy as jnp
    import omnijax as oj
    table = jnp.asarray(np.stack([np.zeros_like(weights), weights], axis=-1).astype(np.float32))
    return oj.Target(lambda params, onehot: jnp.sum(onehot * params), table)


def options_of(config: str, num_bins: int, budget_factor: float) -> dict:
    """Keywords of estimate_output_distribution for one config."""
    budget = int(budget_factor * np.ceil(num_bins / (WALKERS * LOG_F_FINAL)))
    if config == "default":
        return {"max_steps": budget}
    if config == "directional":
        return {"max_steps": budget, "beta_rule": "directional"}
    if config == "old":
        return {"num_steps": 20_000, "halving_flatness": 0.8}
    raise ValueError(f"configs must be default, directional or old, got {config!r}")


def run_one(space_name: str, config: str, seed: int) -> dict:
    """One estimate, timed, compared with exact counting."""
    import jax
    import omnijax as oj
    num_bits = int(space_name.removeprefix("bits"))
    weights = weights_of(num_bits, seed)
    num_bins = FLAGS.bins64 if num_bits == 64 else FLAGS.bins_other
    edges, exact = edges_and_exact(weights, num_bins)
    options = options_of(config, num_bins, FLAGS.budget_factor)
    wall, cpu = time.perf_counter(), time.process_time()
    est = oj.estimate_output_distribution(model_of(weights), oj.InputSpace((num_bits,), 2), edges,
                                          key=jax.random.key(seed), method="wang_landau", **options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    counted = exact >= np.log(RHO_FLOOR)
    error = np.abs(est.log_rho[counted] - exact[counted])
    d = est.diagnostics
    return {"space": space_name, "bins": num_bins, "bins_counted": int(counted.sum()), "config": config,
            "options": options, "max_abs_dlnrho": float(error.max()), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "steps": int(d["num_steps"]), "converged": bool(d["converged"]),
            "stopped_by": d["stopped_by"], "final_log_f": float(np.max(d["final_log_f"])),
            "flatness_since_reduction": float(np.min(d["stopping_rule"]["flatness_since_reduction"])),
            "warnings": d["warnings"]}


def table(rows: list[dict]) -> str:
    """Markdown table of the rows."""
    lines = ["| space | config | max abs dln rho | wall s | CPU s | steps | converged | stopped by | min H/mean H |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['space']} ({r['bins']} bins) | {r['config']} | {r['max_abs_dlnrho']:.3f} | "
                     f"{r['wall_s']} | {r['cpu_s']} | {r['steps']:,} | {r['converged']} | {r['stopped_by']} | "
                     f"{r['flatness_since_reduction']:.2f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    rows = []
    for space_name in FLAGS.spaces:
        if not space_name.startswith("bits") or not space_name[4:].isdigit():
            raise ValueError(f"spaces must be bits<N>, got {space_name!r}")
        for config in FLAGS.configs:
            row = run_one(space_name, config, FLAGS.seed)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(table(rows), flush=True)
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    app.run(main)
