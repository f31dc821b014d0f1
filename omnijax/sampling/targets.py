"""The model as the samplers see it: z = apply(params, one-hot input), params a jit argument.

A user hands omnijax a model in one of three forms, and `as_target` turns each into a
`Target`, a pytree whose only leaves are the model's parameters:

  * a Flax NNX module, called on ONE input's one-hot array: split into graph and state, the
    state being the parameters;
  * `apply(params, onehot)` together with `params=` (any pytree);
  * a plain function `output_fn(onehot)`. Whatever arrays it closes over are part of the
    function, so XLA folds them into every compiled program as constants: fine for small
    models, slow to compile and heavy in memory for large ones (use one of the two forms above).

The samplers pass `target.params` into every jitted call, so the weights are arguments of
the compiled programs, never constants in them. `apply` maps ONE input's one-hot float array
of shape `space.shape + (K,)` to a scalar; working on the relaxed one-hot lets JAX
differentiate z with respect to every category.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from omnijax.sampling.spaces import InputSpace
from omnijax.util.digest import digest_arrays

OutputFn = Callable[[jax.Array], jax.Array]


@jax.tree_util.register_pytree_node_class
class Target:
    """A model output z = apply(params, onehot) with its parameters; a pytree of the params.

    Calling it, `target(onehot)`, evaluates the model. Two targets with the same `apply` share
    compiled programs whatever their parameter values.
    """

    def __init__(self, apply: Callable[[Any, jax.Array], jax.Array], params: Any = ()):
        self.apply = apply
        self.params = params

    def __call__(self, onehot: jax.Array) -> jax.Array:
        return self.apply(self.params, onehot)

    def tree_flatten(self):
        return (self.params,), self.apply

    @classmethod
    def tree_unflatten(cls, apply, children):
        return cls(apply, children[0])

    def __repr__(self) -> str:
        leaves = jax.tree.leaves(self.params)
        size = sum(int(np.prod(np.shape(leaf))) for leaf in leaves)
        return f"Target(apply={getattr(self.apply, '__name__', self.apply)!r}, {len(leaves)} arrays, {size} values)"


class _Closed:
    """apply(params, onehot) for a plain output_fn(onehot): params are empty."""

    def __init__(self, fn: OutputFn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, params, onehot):
        del params
        return self.fn(onehot)

    def __eq__(self, other):
        return isinstance(other, _Closed) and other.fn is self.fn

    def __hash__(self):
        return hash(("closed", id(self.fn)))


class _Merged:
    """apply(state, onehot) of an NNX module: merge the graph with the state and call it."""

    def __init__(self, graphdef):
        self.graphdef = graphdef
        self.__name__ = f"nnx:{type(graphdef).__name__}"

    def __call__(self, state, onehot):
        return nnx.merge(self.graphdef, state)(onehot)

    def __eq__(self, other):
        return isinstance(other, _Merged) and other.graphdef == self.graphdef

    def __hash__(self):
        return hash(self.graphdef)


def as_target(model, params: Any = None, name: str = "output_fn") -> Target:
    """A `Target` from a Target, an NNX module, apply(params, onehot) with `params`, or a plain
    output_fn(onehot) (see the module docstring). ValueError naming `name` otherwise."""
    if isinstance(model, Target):
        if params is not None:
            raise ValueError(f"params was given for a {name} that is already an omnijax Target")
        return model
    if isinstance(model, nnx.Module):
        if params is not None:
            raise ValueError(f"params was given together with an NNX module as {name}; the module "
                             f"carries its own parameters")
        graphdef, state = nnx.split(model)
        return Target(_Merged(graphdef), state)
    if not callable(model):
        raise ValueError(f"{name} must be a Flax NNX module, a function of one one-hot input, or "
                         f"apply(params, onehot) with params=..., got {type(model).__name__}")
    if params is None:
        return Target(_Closed(model), ())
    return Target(model, params)


def parameter_digest(target: Target, probe_shape: tuple[int, ...]) -> str:
    """sha256 of the model's parameters: its params pytree and, for a plain function, its
    jaxpr at one input of `probe_shape` with the arrays it closes over. Two runs of one model
    with other weights get different digests."""
    leaves = list(jax.tree.leaves(target.params))
    computation = b""
    if isinstance(target.apply, _Closed):
        jaxpr = jax.make_jaxpr(target.apply.fn)(jax.ShapeDtypeStruct(probe_shape, jnp.float32))
        computation = str(jaxpr.jaxpr).encode()  # the computation, literals included
        leaves += [c for c in jaxpr.consts if hasattr(c, "shape")]
    return digest_arrays(*leaves, prefix=computation)


def scalar_result(fn, probe, name: str, what: str) -> jax.ShapeDtypeStruct:
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


def check_target(target: Target, space: InputSpace, name: str = "output_fn") -> None:
    """Raise ValueError unless the target maps one one-hot input of `space` to a real scalar."""
    what = f"one one-hot input of shape {space.onehot_shape} (space.shape + (num_categories,))"
    probe = jax.ShapeDtypeStruct(space.onehot_shape, jnp.float32)
    out = scalar_result(lambda x: target.apply(target.params, x), probe, name, what)
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"{name} must return a floating-point scalar, got dtype {out.dtype}")


def check_output_fn(output_fn, space: InputSpace, name: str = "output_fn", params: Any = None) -> Target:
    """`as_target(output_fn, params)`, checked against `space` (see `check_target`)."""
    target = as_target(output_fn, params, name)
    check_target(target, space, name)
    return target


def make_value_and_grad(target: Target, space: InputSpace):
    """`vg(params, x) -> (z, grad)` for ONE input given as FLAT integer categories x (D,).

    Samplers keep inputs flat; z is a float32 scalar and grad, shape (D, K), is
    dz/d(one-hot) at one_hot(x): the first-order change of z for every (site, category).
    """
    apply = as_target(target).apply

    def value(flat_onehot, params):
        onehot = flat_onehot.reshape(space.onehot_shape)
        return jnp.asarray(apply(params, onehot), jnp.float32)

    vg = jax.value_and_grad(value)

    def value_and_grad(params, x):
        z, grad = vg(space.one_hot(x), params)
        return z, grad.astype(jnp.float32)

    return value_and_grad


def make_value(target: Target, space: InputSpace):
    """`value(params, x) -> z` for ONE input given as flat integer categories x (D,)."""
    apply = as_target(target).apply

    def value(params, x):
        onehot = space.one_hot(x).reshape(space.onehot_shape)
        return jnp.asarray(apply(params, onehot), jnp.float32)

    return value
