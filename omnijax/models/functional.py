"""NNX models as omnijax Targets: z = apply(state, onehot), the state passed as a jit argument."""

from __future__ import annotations

import jax
from flax import nnx

from omnijax.sampling.targets import Target, as_target


def as_output_fn(model: nnx.Module) -> Target:
    """The model's output on one one-hot input, as a Target of its current parameters."""
    return as_target(model)


class _LogSoftmaxOf:
    """apply(state, onehot) = log softmax(model logits)[target_class]; equal for equal graphs."""

    def __init__(self, graphdef, target_class: int):
        self.graphdef, self.target_class = graphdef, int(target_class)
        self.__name__ = f"log_softmax[{self.target_class}]"

    def __call__(self, state, onehot):
        return jax.nn.log_softmax(nnx.merge(self.graphdef, state)(onehot))[self.target_class]

    def __eq__(self, other):
        return (isinstance(other, _LogSoftmaxOf) and other.graphdef == self.graphdef
                and other.target_class == self.target_class)

    def __hash__(self):
        return hash((self.graphdef, self.target_class))


def as_log_softmax_fn(model: nnx.Module, target_class: int) -> Target:
    """onehot -> log softmax(logits)[target_class] of a multi-class model: the early appendix's
    target for evaluating one class of a multi-class classifier."""
    graphdef, state = nnx.split(model)
    return Target(_LogSoftmaxOf(graphdef, target_class), state)
