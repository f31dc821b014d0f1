"""Fréchet distance between feature sets (FID, Heusel et al. 2017; paper Appendix G), per output bin.

Each set of feature vectors is summarised by a Gaussian (mean, covariance) and the distance is

    d² = |μ1 − μ2|² + Tr(Σ1 + Σ2 − 2 (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}),

the squared 2-Wasserstein distance between the two Gaussians; "FID" is this d². The matrix square
roots are taken in float64 from symmetric eigendecompositions, eigenvalues within round-off of 0
(negative ones too) set to 0, so a singular covariance (fewer samples than feature dimensions, the
usual case for a bin's few representatives) is handled exactly. A Gaussian needs at least two samples: a bin with
fewer gets FID NaN with the reason, never an exception.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


class TooFewSamples(ValueError):
    """A covariance needs at least two samples (with positive weight)."""


@dataclasses.dataclass(frozen=True)
class Gaussian:
    """Mean and covariance of a feature set; n samples, n_effective = (Σw)² / Σw² (Kish; n when unweighted)."""
    mean: np.ndarray
    cov: np.ndarray
    n: int
    n_effective: float


def fit_gaussian(features, weights=None, *, name: str = "features") -> Gaussian:
    """Mean and covariance of features (n, d); with weights (n,), nonnegative, the weighted ones.

    The covariance is unbiased: 1/(n-1) without weights (as numpy.cov), and with weights
    normalised to sum 1, Σ w (x-μ)(x-μ)ᵀ / (1 - Σw²), which reduces to it for equal weights.
    Raises TooFewSamples when fewer than two samples (of positive weight) are given, and
    ValueError naming `name` for anything else that is not a finite (n, d) array.
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples, feature dimensions), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    if weights is None:
        w = np.full(len(x), 1.0)
    else:
        w = np.asarray(weights, np.float64)
        if w.shape != (len(x),) or not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError(f"weights of {name} must be {len(x)} finite nonnegative numbers, got shape {w.shape}")
        x, w = x[w > 0], w[w > 0]
    if len(x) < 2:
        raise TooFewSamples(f"{name}: {len(x)} sample{'' if len(x) == 1 else 's'}"
                            f"{' of positive weight' if weights is not None else ''}; a covariance needs at least 2")
    w = w / w.sum()
    mean = w @ x
    centred = x - mean
    cov = (centred * w[:, None]).T @ centred / (1.0 - np.sum(w * w))
    return Gaussian(mean, (cov + cov.T) / 2, len(x), float(1.0 / np.sum(w * w)))


def _clip_round_off(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those within round-off of 0 (below n·eps·max|λ|, as
    numpy.linalg.matrix_rank's tolerance; negative ones among them) set to 0: the square root
    would turn a round-off of 1e-16 into an error of 1e-8."""
    tolerance = len(values) * np.finfo(np.float64).eps * float(np.max(np.abs(values), initial=0.0))
    return np.where(values > tolerance, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric PSD square root of a symmetric PSD matrix (round-off eigenvalues set to 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(_clip_round_off(values))) @ vectors.T


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    """d² between two Gaussians (the formula of the module docstring); ValueError if their dimensions differ."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"the two feature sets have different dimensions: {a.mean.shape[0]} and {b.mean.shape[0]}")
    root_a = _psd_sqrt(a.cov)
    middle = root_a @ b.cov @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sum(np.sqrt(_clip_round_off(eigenvalues))))
    d2 = float(np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov) + np.trace(b.cov) - 2.0 * trace_sqrt)
    return max(d2, 0.0)  # a squared distance; only round-off makes it negative


def fid(features_a, features_b, weights_a=None, weights_b=None) -> float:
    """FID between two feature sets (n, d) and (m, d); TooFewSamples if either has fewer than 2."""
    return frechet_distance(fit_gaussian(features_a, weights_a, name="features_a"),
                            fit_gaussian(features_b, weights_b, name="features_b"))


@dataclasses.dataclass(frozen=True)
class BinFID:
    """FID of one output bin's representatives against the reference set; NaN with `reason` when undefined."""
    bin: int
    lo: float
    hi: float
    n_representatives: int
    n_effective: float   # Kish effective sample size of the weights used (n when unweighted); NaN if undefined
    fid: float
    reason: str = ""


def fid_per_bin(features, bins, bin_edges, reference: Gaussian, weights=None) -> list[BinFID]:
    """One BinFID per bin of bin_edges: the bin's representatives (features (N, d), bins (N,) in
    [0, len(bin_edges) - 1)) against `reference`, e.g. `fit_gaussian` of the MNIST test 1s' features.

    weights (N,): within-bin sample weights (samples.npz's "weight"); None counts every representative once.
    """
    features = np.asarray(features, np.float64)
    bins = np.asarray(bins)
    edges = np.asarray(bin_edges, np.float64)
    num_bins = len(edges) - 1
    if num_bins < 1:
        raise ValueError(f"bin_edges must hold at least 2 edges, got {len(edges)}")
    if features.ndim != 2 or bins.shape != (len(features),):
        raise ValueError(f"features must be (N, d) and bins (N,), got shapes {features.shape} and {bins.shape}")
    if len(bins) and (bins.min() < 0 or bins.max() >= num_bins):
        raise ValueError(f"bins must lie in [0, {num_bins}), got {bins.min()}..{bins.max()}")
    if weights is not None:
        weights = np.asarray(weights, np.float64)
        if weights.shape != bins.shape:
            raise ValueError(f"weights must hold one weight per representative ({len(bins)}), "
                             f"got shape {weights.shape}")
    rows = []
    for b in range(num_bins):
        members = bins == b
        count = int(members.sum())
        try:
            fitted = fit_gaussian(features[members], None if weights is None else weights[members],
                                  name=f"bin {b}")
        except TooFewSamples as err:
            rows.append(BinFID(b, float(edges[b]), float(edges[b + 1]), count, math.nan, math.nan,
                               f"FID undefined: {err}"))
            continue
        rows.append(BinFID(b, float(edges[b]), float(edges[b + 1]), count, fitted.n_effective,
                           frechet_distance(fitted, reference)))
    return rows
