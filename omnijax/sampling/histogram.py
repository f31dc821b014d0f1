"""Output bins: validating caller-given bin edges and mapping outputs to bins."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def validate_bin_edges(bin_edges, name: str = "bin_edges") -> np.ndarray:
    """Return `bin_edges` as float64 numpy, or raise ValueError naming `name`.

    Edges must be a 1-D array of at least two finite values, strictly increasing.
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 edges, got shape {edges.shape}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{name} must be finite, got {edges}")
    steps = np.diff(edges)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ValueError(
            f"{name} must be strictly increasing; {name}[{i}]={edges[i]} >= {name}[{i + 1}]={edges[i + 1]}")
    return edges


def bin_index(z, bin_edges):
    """Bin of each output: i where edges[i] <= z < edges[i+1]; the last bin includes its top edge.

    Returns -1 below the first edge and num_bins above the last edge (NaN maps to num_bins).
    Works on jax arrays and inside jit (jnp), and on float32 numpy arrays, which stay in numpy:
    the same float32 comparisons without compiling a program for each new shape (the host-side
    summaries of a run call this on its records).
    """
    xp = np if isinstance(z, np.ndarray) and z.dtype == np.float32 else jnp
    edges = xp.asarray(bin_edges, xp.float32)
    num_bins = edges.shape[0] - 1
    idx = xp.searchsorted(edges, z, side="right") - 1
    idx = xp.where(z == edges[-1], num_bins - 1, idx)
    idx = xp.where(xp.isnan(z), num_bins, idx)
    return idx.astype(xp.int32)


def bin_counts(z, bin_edges) -> np.ndarray:
    """Samples per bin (num_bins,) int64 of outputs z (any shape); those outside the edges not counted."""
    edges = np.asarray(bin_edges)
    num_bins = edges.size - 1
    idx = np.asarray(bin_index(np.asarray(z, np.float32).reshape(-1), edges))
    return np.bincount(np.where(idx < 0, num_bins, idx), minlength=num_bins + 1)[:num_bins]
