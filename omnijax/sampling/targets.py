"""Wrapping a user's model output z = f(one-hot input) into what the samplers need.

`output_fn` maps ONE input's one-hot float array of shape `space.shape + (K,)` to a scalar.
Working on the relaxed one-hot lets JAX differentiate f with respect to every category.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from omnijax.sampling.spaces import InputSpace

OutputFn = Callable[[jax.Array], jax.Array]


def scalar_result(fn, probe: jax.ShapeDtypeStruct, name: str, what: str) -> jax.ShapeDtypeStruct:
    """Abstract result of fn(probe); ValueError naming `name` unless it evaluates to a scalar.

    `what` describes the probe for the message (e.g. "one one-hot input of shape (4, 4, 2)").
    """
    if not callable(fn):
        raise ValueError(f"{name} must be callable, got {type(fn).__name__}")
    try:
        out = jax.eval_shape(fn, probe)
    except Exception as err:  # the user's function rejected the shape: say what we passed.
        raise ValueError(f"{name} could not be evaluated on {what}: {type(err).__name__}: {err}") from err
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{name} must return a scalar for {what}, got output of shape {shape}; "
                         f"reduce it to one number (e.g. one logit)")
    return out


def check_output_fn(output_fn: OutputFn, space: InputSpace, name: str = "output_fn") -> None:
    """Raise ValueError unless `output_fn` maps one one-hot input of `space` to a real scalar."""
    what = f"one one-hot input of shape {space.onehot_shape} (space.shape + (num_categories,))"
    out = scalar_result(output_fn, jax.ShapeDtypeStruct(space.onehot_shape, jnp.float32), name, what)
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"{name} must return a floating-point scalar, got dtype {out.dtype}")


def make_value_and_grad(output_fn: OutputFn, space: InputSpace):
    """Returns `vg(x) -> (z, grad)` for ONE input given as FLAT integer categories x of shape (D,).

    Samplers keep inputs flat; z is a float32 scalar and grad, shape (D, K), is
    dz/d(one-hot) at one_hot(x) — the first-order change of z for every (site, category).
    """

    def value(flat_onehot):
        onehot = flat_onehot.reshape(space.onehot_shape)
        return jnp.asarray(output_fn(onehot), jnp.float32)

    vg = jax.value_and_grad(value)

    def value_and_grad(x):
        z, grad = vg(space.one_hot(x))
        return z, grad.astype(jnp.float32)

    return value_and_grad


def make_value(output_fn: OutputFn, space: InputSpace):
    """Returns `value(x) -> z` for ONE input given as flat integer categories x of shape (D,)."""

    def value(x):
        onehot = space.one_hot(x).reshape(space.onehot_shape)
        return jnp.asarray(output_fn(onehot), jnp.float32)

    return value
