"""The MNIST pipeline's rho(z) against a model whose output distribution is known exactly.

A linear logit z = bias + scale * sum_i a_i x_i over binary 28x28 images, with integer pixel
weights a_i in {1, 2, 3}: the fraction of all 2^784 images with each weighted pixel sum S
follows from counting (p_i(S) = (p_{i-1}(S) + p_{i-1}(S - a_i)) / 2), so ln rho of every bin is
exact. The pipeline's own steps run on it: the NNX model through as_output_fn, bins from its
outputs on noise and on real MNIST-0/1 images, replica exchange + reweighting.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import omnijax as oj
from omnijax.data.mnist import load_mnist, quantize, select_digits
from omnijax.models.functional import as_output_fn
from omnijax.output_range import bin_edges_from_outputs
from omnijax.training.classifier import predict_outputs

SCALE, BIAS = 0.05, -39.2371


class LinearLogit(nnx.Module):
    """z = BIAS + SCALE * sum of a_i over the pixels that are on (a one-hot linear layer)."""

    def __init__(self, weights: np.ndarray):
        table = np.stack([np.zeros_like(weights), weights], axis=-1).astype(np.float32) * SCALE
        self.table = nnx.Param(jnp.asarray(table))

    def __call__(self, onehot):
        return BIAS + jnp.sum(onehot * self.table[...])


def exact_log_rho(weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """ln(fraction of all images) per bin, by counting weighted pixel sums in float64."""
    p = np.zeros(int(weights.sum()) + 1)
    p[0] = 1.0
    for a in weights.reshape(-1):
        p[a:] = 0.5 * p[a:] + 0.5 * p[:-a].copy()
        p[:a] *= 0.5
    z = BIAS + SCALE * np.arange(len(p))
    gap = np.min(np.abs(z[:, None] - edges[None, :]))
    assert gap > 1e-3, "a bin edge sits on an output value: float32 rounding would decide its bin"
    which = np.searchsorted(edges, z, side="right") - 1
    inside = (which >= 0) & (which < len(edges) - 1)
    with np.errstate(divide="ignore"):
        return np.log(np.bincount(which[inside], weights=p[inside], minlength=len(edges) - 1))


def test_pipeline_rho_matches_exact_counts_for_a_linear_logit():
    weights = np.random.default_rng(0).integers(1, 4, size=(28, 28))
    model = LinearLogit(weights)
    space = oj.InputSpace(shape=(28, 28), num_categories=2)
    digits = select_digits(load_mnist("train"), [0, 1])
    data_outputs = predict_outputs(model, quantize(digits.images[:500], 2), 2)
    noise_outputs = predict_outputs(model, np.asarray(space.random_inputs(jax.random.key(1), 512)), 2)
    edges = bin_edges_from_outputs({"uniform noise": noise_outputs, "training data": data_outputs}, 20)
    exact = exact_log_rho(weights, edges)
    populated = np.isfinite(exact)  # a bin below z(all pixels off) holds no image at all
    assert populated.sum() >= 18 and np.ptp(exact[populated]) > 6 * np.log(10), "rho spans > 6 decades"

    est = oj.estimate_output_distribution(as_output_fn(model), space, edges, key=jax.random.key(0),
                                          num_groups=8, num_steps=4_000, progress=False)
    sampled = np.isfinite(est.log_rho)
    assert not np.any(sampled & ~populated), "a sample landed in a bin that no input reaches"
    assert sampled.sum() >= populated.sum() - 2, f"only {sampled.sum()} of {populated.sum()} populated bins were reached"
    error = est.log_rho[sampled] - exact[sampled]
    print("overall constant:", error.mean(), "max |ln rho error| after removing it:", np.abs(error - error.mean()).max())
    error -= error.mean()  # as in the engine's accuracy tests
    assert np.abs(error).max() <= 0.15
    assert np.mean(np.abs(error) <= 2 * est.log_rho_stderr[sampled] + 1e-9) >= 0.8
