"""Bad input gets a clear error naming the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import omnijax as oj
from tests.models import random_mlp

SPACE = oj.InputSpace(shape=(3, 3), num_categories=2)
EDGES = np.linspace(-3, 3, 7)
GOOD = random_mlp(SPACE, seed=0)
FAST = dict(num_steps=400, steps_per_block=200, pilot_steps=100, num_groups=2, progress=False)


def estimate(output_fn=GOOD, space=SPACE, edges=EDGES, **kw):
    return oj.estimate_output_distribution(output_fn, space, edges, key=jax.random.key(0), **{**FAST, **kw})


@pytest.mark.parametrize("kwargs, match", [
    (dict(shape=(3, 3), num_categories=1), "num_categories"),
    (dict(shape=(3, 0), num_categories=2), "shape"),
    (dict(shape=(2,), num_categories=2, frozen_mask=np.array([True, False])), "frozen_values"),
    (dict(shape=(2,), num_categories=2, frozen_mask=np.array([True, False]), frozen_values=np.array([5, 0])),
     "frozen_values"),
    (dict(shape=(2,), num_categories=2, frozen_mask=np.array([1, 0]), frozen_values=np.array([0, 0])), "frozen_mask"),
])
def test_bad_space(kwargs, match):
    with pytest.raises(ValueError, match=match):
        oj.InputSpace(**kwargs)


def test_wrong_onehot_shape_names_output_fn():
    with pytest.raises(ValueError, match=r"output_fn.*\(3, 3, 2\)"):
        estimate(output_fn=lambda onehot: onehot.reshape(4, -1).sum())


def test_non_scalar_output_names_output_fn():
    with pytest.raises(ValueError, match="output_fn must return a scalar"):
        estimate(output_fn=lambda onehot: onehot.sum(-1))


@pytest.mark.parametrize("edges", [[0.0], [1.0, 0.0, 2.0], [0.0, np.nan], np.zeros((2, 2))])
def test_bad_bin_edges(edges):
    with pytest.raises(ValueError, match="bin_edges"):
        estimate(edges=edges)
    with pytest.raises(ValueError, match="bin_edges"):
        oj.enumerate_output_distribution(GOOD, SPACE, edges, progress=False)


@pytest.mark.parametrize("betas", [[0.0], [1.0, 0.0], [0.0, np.inf]])
def test_malformed_ladder(betas):
    with pytest.raises(ValueError, match="betas"):
        estimate(betas=betas)


def test_ladder_that_cannot_reach_the_range():
    edges = np.linspace(-20, 20, 11)  # far beyond what the model reaches at |beta| <= 0.01
    with pytest.raises(ValueError, match="betas cannot reach"):
        estimate(edges=edges, betas=[-0.01, 0.0, 0.01])


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="gibbs"), "method"), (dict(proposal="hmc"), "proposal"), (dict(num_groups=0), "num_groups"),
    (dict(num_steps=0), "num_steps"), (dict(swap_every=-1), "swap_every"), (dict(colour="red"), "colour"),
    (dict(key=0), "key"), (dict(num_bootstrap=1), "num_bootstrap"), (dict(num_bootstrap=-2), "num_bootstrap"),
])
def test_bad_knobs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        if "key" in kwargs:
            oj.estimate_output_distribution(GOOD, SPACE, EDGES, **{**FAST, **kwargs})
        else:
            estimate(**kwargs)


def test_nan_from_model_names_chain_and_step():
    def sometimes_nan(onehot):
        z = GOOD(onehot)
        return jnp.where(z > 1.0, jnp.nan, z)  # NaN on part of the space only
    with pytest.raises(oj.NonFiniteOutputError, match=r"group \d+, walker \d+\) at MH step \d+"):
        estimate(output_fn=sometimes_nan)


def test_nan_at_start_is_reported():
    with pytest.raises(oj.NonFiniteOutputError, match="NaN or inf"):
        estimate(output_fn=lambda onehot: jnp.log(onehot[0, 0, 1] - 2.0))


def test_linear_ladder_spaces_betas_between_bounds():
    np.testing.assert_allclose(oj.linear_ladder(-1.0, 2.0, 4), [-1.0, 0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="num_replicas"):
        oj.linear_ladder(-1.0, 1.0, 1)
    with pytest.raises(ValueError, match="beta_min"):
        oj.linear_ladder(1.0, -1.0, 3)
