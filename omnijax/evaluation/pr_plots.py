"""Figures for the input-space evaluation: PR curves of several models with their bands (Figs. 3, 4),
r(z) with its interval and each annotator's own r(z) (Fig. 6) and PR convergence with the
annotated samples per bin (Fig. 5).

Recall axes show log10 of the unnormalised recall (decades read more easily than nats); the
AUPR numbers of `omnijax.evaluation.precision_recall` are in nats (divide by ln 10 for decades).
Figures are `matplotlib.figure.Figure` objects saved with `savefig`: no backend, no pyplot state.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from omnijax.evaluation.precision_recall import PRBand, PRConvergence, PrecisionRecall

_LOG10_E = np.log10(np.e)


def plot_pr_curves(path, curves: dict[str, PrecisionRecall], title: str = "",
                   bands: dict[str, PRBand] | None = None) -> None:
    """Precision against log10 recall for each named model, on one figure; with `bands`, each
    named curve's precision band, drawn at the curve's own recall."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (name, pr) in enumerate(curves.items()):
        keep = np.isfinite(pr.log_recall)
        colour = f"C{i % 10}"
        ax.plot(pr.log_recall[keep] * _LOG10_E, pr.precision[keep], "o-", ms=3, color=colour, label=name)
        band = (bands or {}).get(name)
        if band is not None:
            ax.fill_between(pr.log_recall[keep] * _LOG10_E, band.precision_low[keep], band.precision_high[keep],
                            color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("log10 recall (unnormalised)")
    ax.set_ylabel("precision")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def plot_bin_precision(path, bin_edges, r, ci_low, ci_high, log_rho=None, title: str = "",
                       xlabel: str = "output z", annotators: dict[str, np.ndarray] | None = None,
                       judges=()) -> None:
    """r(z) per bin with its confidence band (Fig. 6); with log_rho, log10 ρ(z) on a second axis.

    annotators: name -> that annotator's own r(z), one line each (people solid; the names in
    `judges`, models used as annotators, dashed and labelled "judge"). Bins with r = NaN (no
    annotations) are left as gaps.
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    r, ci_low, ci_high = (np.asarray(a, dtype=np.float64) for a in (r, ci_low, ci_high))
    fig = Figure(figsize=(7, 4.6))
    ax = fig.subplots()
    ax.fill_between(centers, ci_low, ci_high, color="C0", alpha=0.25, lw=0, label="confidence interval")
    ax.plot(centers, r, "o-", ms=3, color="C0", lw=2, label="r(z)" if not annotators else "r(z), pooled")
    for i, (name, own) in enumerate((annotators or {}).items()):
        own = np.asarray(own, dtype=np.float64)
        judge = name in judges
        ax.plot(centers, own, "--" if judge else "-", marker="x" if judge else ".", ms=4, lw=1,
                color=f"C{(i + 2) % 10}", label=f"judge {name}" if judge else name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("precision per bin r(z)")
    ax.set_ylim(-0.03, 1.03)
    # Below the axes: inside, the legend would hide lines of one axis or the other.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, fontsize=8, frameon=False)
    if log_rho is not None:
        log_rho = np.asarray(log_rho, dtype=np.float64)
        twin = ax.twinx()
        finite = np.isfinite(log_rho)
        twin.plot(centers[finite], log_rho[finite] * _LOG10_E, "s:", ms=3, color="C1")
        twin.set_ylabel("log10 ρ(z)", color="C1")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def plot_convergence(path, convergence: PRConvergence, title: str = "") -> None:
    """Left: the PR curve for each number of annotated samples per bin; right: AUPR against it."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(convergence.sample_counts)))
    for n, precision, log_recall, colour in zip(convergence.sample_counts, convergence.precision,
                                                convergence.log_recall, colours):
        keep = np.isfinite(log_recall)
        left.plot(log_recall[keep] * _LOG10_E, precision[keep], "o-", ms=2, color=colour,
                  label=f"{n} per bin")
    left.set_xlabel("log10 recall (unnormalised)")
    left.set_ylabel("precision")
    left.set_ylim(-0.03, 1.03)
    left.legend(fontsize=8)
    right.plot(convergence.sample_counts, convergence.aupr, "o-")
    right.set_xlabel("annotated samples per bin")
    right.set_ylabel("AUPR over the common recall range (nats)")
    fig.suptitle(title)
    _save(fig, path)


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
