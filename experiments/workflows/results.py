"""Writing an estimate to disk: rho.csv, samples.npz and the two pictures."""

from __future__ import annotations

import csv
import os

import numpy as np

from omnijax.evaluation.plots import plot_log_rho, plot_representative_images


def write_rho_csv(path, est) -> None:
    """Columns bin_lo,bin_hi,log_rho,log_rho_stderr,n_samples."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin_lo", "bin_hi", "log_rho", "log_rho_stderr", "n_samples"])
        for b in range(est.num_bins):
            writer.writerow([f"{est.bin_edges[b]:.6g}", f"{est.bin_edges[b + 1]:.6g}", f"{est.log_rho[b]:.6g}",
                             f"{est.log_rho_stderr[b]:.6g}", int(est.n_samples[b])])


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
    plot_log_rho(paths["rho.png"], est.bin_edges, est.log_rho, est.log_rho_stderr, title=title)
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
