"""Pictures people look at: rho(z) with its error band, and grids of representative inputs.

Figures are `matplotlib.figure.Figure` objects saved with `savefig`: no backend is chosen and
no pyplot state is touched, so importing or calling this module changes nothing for the caller.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_log_rho(path, bin_edges, log_rho, stderr=None, exact_log_rho=None, title="", xlabel="output z",
                 converged=None):
    """rho(z) per bin on a log axis, with a ±2 stderr band and, if given, the exact values.

    converged: optional bool per bin; bins marked False get a hollow red marker and a red band
    over their z range (the estimate's verdict says not to trust them)."""
    centers = (bin_edges[:-1] + bin_edges[1:]) / 2
    finite = np.isfinite(log_rho)
    log10 = np.log10(np.e)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(centers[finite], log_rho[finite] * log10, "o-", ms=3, label="sampled")
    if converged is not None:
        bad = ~np.asarray(converged, bool)
        for i, b in enumerate(np.flatnonzero(bad)):
            ax.axvspan(bin_edges[b], bin_edges[b + 1], color="tab:red", alpha=0.12, lw=0,
                       label="not converged" if i == 0 else None)
        shown = bad & finite
        if shown.any():
            ax.plot(centers[shown], log_rho[shown] * log10, "o", ms=6, mfc="none", mec="tab:red")
    if stderr is not None:
        band = finite & np.isfinite(stderr)
        ax.fill_between(centers[band], (log_rho[band] - 2 * stderr[band]) * log10,
                        (log_rho[band] + 2 * stderr[band]) * log10, alpha=0.3, label="±2 s.e.")
    if exact_log_rho is not None:
        known = np.isfinite(exact_log_rho)
        ax.plot(centers[known], exact_log_rho[known] * log10, "k--", lw=1, label="exact")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("log10 ρ(z)  (fraction of all inputs)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_representative_images(path, rows, labels, image_shape, per_row=8, title="", num_categories=None):
    """A grid: one row per bin (label at left), up to `per_row` distinct inputs each, as images.

    rows: list of integer arrays (n_i, *image_shape); category 0 is drawn black and category
    num_categories - 1 (default: the row's largest value) full intensity. image_shape (H, W, 3)
    is drawn in colour, each channel's level as that colour's intensity; (H, W) in grey.
    """
    colour = len(image_shape) == 3 and image_shape[-1] == 3
    num_rows = max(len(rows), 1)
    fig = Figure(figsize=(per_row * 0.9, num_rows * 0.9 + 0.4))
    axes = fig.subplots(num_rows, per_row, squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        top = max(int(np.max(images)), 1) if num_categories is None else num_categories - 1
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
            elif colour:
                ax.imshow(np.asarray(images[c]).reshape(image_shape) / top, interpolation="nearest")
            else:
                ax.imshow(np.asarray(images[c]).reshape(image_shape), cmap="gray", vmin=0, vmax=top,
                          interpolation="nearest")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_representative_sequences(path, rows, labels, marks=None, per_row=6, title=""):
    """A grid of token sequences as text, one row per output bin.

    rows[i]: list of strings (the bin's representatives); labels[i]: the row's label (e.g. "z≈1.8");
    marks[i][j]: optional bool per sequence, drawn green (True) or red (False), e.g. an oracle's verdict.
    """
    fig = Figure(figsize=(1.6 + 1.3 * per_row, 0.35 * max(len(rows), 1) + 0.8))
    ax = fig.subplots()
    ax.axis("off")
    for i, (row, label) in enumerate(zip(rows, labels)):
        y = 1 - (i + 0.5) / max(len(rows), 1)
        ax.text(0.0, y, label, fontsize=9, va="center", transform=ax.transAxes)
        for j, text in enumerate(row[:per_row]):
            colour = "black" if marks is None else ("tab:green" if marks[i][j] else "tab:red")
            ax.text(0.14 + j * (0.86 / per_row), y, text, fontsize=9, va="center", family="monospace",
                    color=colour, transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=120, bbox_inches="tight")
