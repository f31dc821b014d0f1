"""Writing an estimate to disk: rho.csv, samples.npz and the two pictures; traditional.csv, the
dataset-based table; and the experiments' JSON records, each written whole or not at all."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from omnijax.evaluation.plots import plot_log_rho, plot_representative_images


def bin_converged(est) -> np.ndarray:
    """Per bin: False where the estimate's verdict distrusts the bin (`diagnostics["bin_converged"]`:
    bins named in a warning, every bin after a run-wide one); True for estimates without a verdict."""
    diagnostics = getattr(est, "diagnostics", None) or {}
    return np.asarray(diagnostics.get("bin_converged", np.ones(est.num_bins, bool)), bool)


def convergence_summary(est) -> dict:
    """The verdict for metrics.json: converged, warnings, round trips and the weakest swap pair."""
    d = getattr(est, "diagnostics", None) or {}
    summary = {"converged": bool(d.get("converged", False)), "warnings": list(d.get("warnings", [])),
               "unconverged_bins": [int(b) for b in d.get("unconverged_bins", [])]}
    for name in ("round_trips_total", "round_trips_median", "walkers_without_round_trip", "num_walkers",
                 "weakest_swap_acceptance"):
        if name in d:
            summary[name] = d[name]
    if "groups_without_round_trip" in d:
        summary["groups_without_round_trip"] = [int(g) for g in d["groups_without_round_trip"]]
        summary["num_groups"] = int(len(d["round_trips_per_group"]))
    if "weakest_pair" in d:
        summary["weakest_pair"] = [int(i) for i in d["weakest_pair"]]
        summary["weakest_pair_betas"] = [float(b) for b in d["weakest_pair_betas"]]
    return summary


def print_verdict(est, out=print) -> None:
    """One line with the verdict, then each warning."""
    s = convergence_summary(est)
    extra = ""
    if "round_trips_total" in s:
        # Estimates saved before the per-group count existed have no num_groups: say only what they hold.
        groups = (f" and {len(s['groups_without_round_trip'])}/{s['num_groups']} groups" if "num_groups" in s
                  else "")
        extra = (f" | round trips {s['round_trips_total']} (median per walker {s['round_trips_median']:g}, "
                 f"{s['walkers_without_round_trip']}/{s['num_walkers']} walkers{groups} with none) | weakest swap "
                 f"pair {tuple(s['weakest_pair'])} at {s['weakest_swap_acceptance']:.3f}")
    out(f"verdict: {'converged' if s['converged'] else 'NOT converged'}{extra}")
    for warning in s["warnings"]:
        out(f"  warning: {warning}")


def write_rho_csv(path, est) -> None:
    """Columns bin_lo,bin_hi,log_rho,log_rho_stderr,n_samples,converged (1 or 0, see `bin_converged`;
    numeric so that np.loadtxt still reads the file)."""
    converged = bin_converged(est)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin_lo", "bin_hi", "log_rho", "log_rho_stderr", "n_samples", "converged"])
        for b in range(est.num_bins):
            writer.writerow([f"{est.bin_edges[b]:.6g}", f"{est.bin_edges[b + 1]:.6g}", f"{est.log_rho[b]:.6g}",
                             f"{est.log_rho_stderr[b]:.6g}", int(est.n_samples[b]),
                             int(converged[b])])


def write_samples_npz(path, est) -> None:
    """Representative inputs of every bin, ready for annotation: arrays bin, z, inputs, bin_edges, and
    weight (per bin summing to 1: `est.representative_weights`, which make a weighted mean of
    annotations estimate the fraction over all the bin's inputs)."""
    bins, zs, inputs, weights = [], [], [], []
    for b in range(est.num_bins):
        reps = est.representatives(b)
        bins.extend([b] * len(reps))
        zs.extend(est.representative_outputs(b))
        inputs.extend(reps)
        weights.extend(est.representative_weights(b) if len(reps) else [])
    shape = (0,) + est.space.shape
    np.savez_compressed(path, bin=np.asarray(bins, np.int32), z=np.asarray(zs, np.float32),
                        inputs=np.asarray(inputs, np.int32).reshape((-1,) + est.space.shape) if inputs
                        else np.zeros(shape, np.int32), bin_edges=est.bin_edges,
                        weight=np.asarray(weights, np.float64))


def write_run_outputs(workdir, est, title="", image_shape=None, max_rows=16) -> dict[str, str]:
    """rho.csv, rho.png, samples.npz and (for image spaces) representatives.png in `workdir`.

    image_shape: (H, W) for grey images, (H, W, 3) for colour ones."""
    os.makedirs(workdir, exist_ok=True)
    paths = {name: os.path.join(workdir, name) for name in ("rho.csv", "rho.png", "samples.npz")}
    write_rho_csv(paths["rho.csv"], est)
    plot_log_rho(paths["rho.png"], est.bin_edges, est.log_rho, est.log_rho_stderr, title=title,
                 converged=bin_converged(est))
    write_samples_npz(paths["samples.npz"], est)
    if image_shape is not None:
        filled = [b for b in range(est.num_bins) if len(est.representatives(b))]
        shown = filled[:: max(1, -(-len(filled) // max_rows))]
        paths["representatives.png"] = os.path.join(workdir, "representatives.png")
        plot_representative_images(
            paths["representatives.png"], [est.representatives(b) for b in shown],
            [f"z≈{(est.bin_edges[b] + est.bin_edges[b + 1]) / 2:.2f}" for b in shown], image_shape, title=title,
            num_categories=est.space.num_categories)
    return paths


TRADITIONAL_FIELDS = ["model", "negatives", "status", "source", "aupr", "auroc", "fpr95", "n_positive", "n_negative",
                      "seconds"]
_NUMERIC = {"aupr": float, "auroc": float, "fpr95": float, "n_positive": int, "n_negative": int, "seconds": float}


def write_traditional_csv(path, rows: list[dict]) -> None:
    """traditional.csv: one row per model and negative set (`traditional_rows` of experiments.workflows.mnist);
    metrics as fractions, empty for an unavailable set, whose status says why."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TRADITIONAL_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_traditional_csv(path) -> list[dict]:
    """The rows of a traditional.csv, numbers as numbers (absent ones left out). ValueError naming the
    file when its header lacks a column a table needs."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [name for name in ("model", "negatives", "status", "aupr", "auroc", "fpr95")
                   if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a traditional.csv (no column {', '.join(missing)})")
        rows = []
        for raw in reader:
            row = {key: value for key, value in raw.items() if key not in _NUMERIC}
            row.update({key: _NUMERIC[key](raw[key]) for key in _NUMERIC if raw.get(key)})
            rows.append(row)
    return rows


def write_json(path: str, obj) -> None:
    """`obj` as indented JSON at `path`, written whole or not at all (a temporary file, then a rename)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(path + ".tmp", path)
