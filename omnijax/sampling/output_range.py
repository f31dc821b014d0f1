"""Choosing the output range to sample from the model itself.

A trained model's interesting outputs lie between what it gives uniformly random inputs (the
bulk of rho) and what it gives its training data (the confident tail), and a little beyond
both: the sampler goes past the data, which is where OmniInput finds inputs no test set has.
"""

from __future__ import annotations

import numpy as np


def bin_edges_from_outputs(reference_outputs: dict[str, np.ndarray], num_bins: int,
                           margin: float = 0.25) -> np.ndarray:
    """`num_bins` equal bins over [lowest, highest] of all reference outputs, widened on each side
    by `margin` times that span.

    reference_outputs maps a name (e.g. "uniform noise", "training data") to the model's outputs
    on those inputs; a non-finite output raises ValueError naming its set, since it would say
    nothing about where to put the bins.
    """
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    lows, highs = [], []
    for name, outputs in reference_outputs.items():
        outputs = np.asarray(outputs, np.float64).reshape(-1)
        if outputs.size == 0:
            raise ValueError(f"reference outputs {name!r} are empty")
        bad = np.flatnonzero(~np.isfinite(outputs))
        if bad.size:
            raise ValueError(f"the model gave {bad.size} non-finite outputs on {name} "
                             f"(first at index {bad[0]}: {outputs[bad[0]]})")
        lows.append(outputs.min())
        highs.append(outputs.max())
    low, high = min(lows), max(highs)
    span = max(high - low, 1e-6 * max(1.0, abs(low), abs(high)))
    return np.linspace(low - margin * span, high + margin * span, num_bins + 1)
