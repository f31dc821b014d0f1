"""Sampled against exact: ln rho(z) and the precision per bin r(z) next to the enumerated truth.

This is the paper's validation (§3.1, Fig. 2): on a space small enough to count, the sampler's
ln rho per bin and the fraction of positives among its representatives must match the
enumeration. `agreement` measures that over the bins where the comparison means something:
ln rho where the bin holds enough inputs, r where enough distinct samples were annotated.
"""

from __future__ import annotations

import csv
import math

import numpy as np

from omnijax.sampling.enumerate import ExactOutputDistribution
from omnijax.sampling.result import OutputDistributionEstimate

COLUMNS = ("bin_lo", "bin_hi", "log_rho_exact", "log_rho_sampled", "log_rho_stderr", "r_exact", "r_sampled",
           "n_samples")


def comparison_table(exact: ExactOutputDistribution, est: OutputDistributionEstimate,
                     annotations: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One row per bin (the COLUMNS). `annotations[b]` holds the scores in [0, 1] of bin b's distinct
    representatives; r_sampled is their mean weighted by `est.representative_weights` (NaN where
    none) and n_samples their count."""
    if not np.array_equal(exact.bin_edges, est.bin_edges):
        raise ValueError("the exact and sampled distributions must share their bin edges")
    if len(annotations) != est.num_bins:
        raise ValueError(f"annotations must hold one array per bin ({est.num_bins}), got {len(annotations)}")
    counts = np.array([len(a) for a in annotations])
    r_sampled = np.array([np.dot(est.representative_weights(b), a) if len(a) else np.nan
                          for b, a in enumerate(annotations)], np.float64)
    return {
        "bin_lo": exact.bin_edges[:-1], "bin_hi": exact.bin_edges[1:],
        "log_rho_exact": exact.log_rho, "log_rho_sampled": est.log_rho, "log_rho_stderr": est.log_rho_stderr,
        "r_exact": exact.statistic_mean(), "r_sampled": r_sampled, "n_samples": counts,
    }


def agreement(table: dict[str, np.ndarray], space_size: int, *, min_inputs: int = 100,
              min_annotated: int = 30) -> dict[str, float | int]:
    """Largest |ln rho_sampled - ln rho_exact| over bins holding >= `min_inputs` inputs, and largest
    |r_sampled - r_exact| over those of them with >= `min_annotated` annotated samples.

    A bin the sampler never reached counts as an infinite error, so a missed bin cannot pass.
    """
    inputs = np.exp(table["log_rho_exact"]) * space_size
    rho_bins = inputs >= min_inputs * (1 - 1e-9)
    r_bins = rho_bins & (table["n_samples"] >= min_annotated)
    log_rho_error = np.abs(table["log_rho_sampled"][rho_bins] - table["log_rho_exact"][rho_bins])
    log_rho_error = np.where(np.isfinite(log_rho_error), log_rho_error, np.inf)
    r_error = np.abs(table["r_sampled"][r_bins] - table["r_exact"][r_bins])
    return {
        "bins_compared_log_rho": int(rho_bins.sum()),
        "max_abs_log_rho_error": float(log_rho_error.max()) if log_rho_error.size else math.nan,
        "bins_compared_r": int(r_bins.sum()),
        "max_abs_r_error": float(r_error.max()) if r_error.size else math.nan,
    }


def write_comparison_csv(path, table: dict[str, np.ndarray]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in zip(*(table[c] for c in COLUMNS)):
            writer.writerow([f"{v:.6g}" if isinstance(v, (float, np.floating)) else int(v) for v in row])


def plot_comparison(path, table: dict[str, np.ndarray], title: str = "") -> None:
    """Fig. 2 style: ln rho(z) as lines (sampled with 2-sigma bars), r(z) as bars, exact beside sampled."""
    from matplotlib.figure import Figure

    centres = (table["bin_lo"] + table["bin_hi"]) / 2
    width = table["bin_hi"] - table["bin_lo"]
    fig = Figure(figsize=(8, 4.5))
    rho_axis = fig.subplots()
    r_axis = rho_axis.twinx()
    r_axis.bar(centres - width / 4, np.nan_to_num(table["r_exact"]), width / 2, color="tab:gray", alpha=0.45,
               label="r(z) exact")
    r_axis.bar(centres + width / 4, np.nan_to_num(table["r_sampled"]), width / 2, color="tab:orange", alpha=0.55,
               label="r(z) sampled (oracle on representatives)")
    r_axis.set_ylim(0, 1.05)
    r_axis.set_ylabel("r(z): fraction satisfying the constraint")
    exact = np.where(np.isfinite(table["log_rho_exact"]), table["log_rho_exact"], np.nan)
    sampled = np.where(np.isfinite(table["log_rho_sampled"]), table["log_rho_sampled"], np.nan)
    stderr = np.where(np.isfinite(table["log_rho_stderr"]), table["log_rho_stderr"], 0.0)
    rho_axis.plot(centres, exact, "k-", lw=2, label="ln ρ(z) exact (enumeration)")
    rho_axis.errorbar(centres, sampled, yerr=2 * stderr, fmt="o--", color="tab:blue", ms=4, capsize=2,
                      label="ln ρ(z) sampled (replica exchange + MBAR)")
    rho_axis.set_xlabel("z (mean NLL per token)")
    rho_axis.set_ylabel("ln ρ(z)")
    rho_axis.set_zorder(r_axis.get_zorder() + 1)
    rho_axis.patch.set_visible(False)
    handles = rho_axis.get_legend_handles_labels()[0] + r_axis.get_legend_handles_labels()[0]
    rho_axis.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    rho_axis.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
