"""A small checkpointed enumeration used by the SIGKILL resume test:
`python -m tests.enumerate_job CHECKPOINT_DIR [OUT.npz]`.

2**18 inputs in chunks of 2**9, 8 chunks per call: 64 calls, a checkpoint every 4. The model
is apply(params, onehot) with float32 normal weights and the statistic is a non-dyadic real,
so the float sums would show any change in the order they are added in.
"""

import sys

import jax.numpy as jnp
import numpy as np

import omnijax.sampling.enumerate as enum_mod
from omnijax.sampling.spaces import InputSpace

SPACE = InputSpace((18,), 2)
EDGES = np.linspace(-5.0, 2.0, 29)
CHUNK_SIZE = 2**9
CALL_INPUTS = 2**12
CHECKPOINT_EVERY = 4
NUM_CALLS = SPACE.size // CALL_INPUTS


def params():
    rng = np.random.default_rng(0)
    d = SPACE.num_positions * SPACE.num_categories
    return {"w1": rng.normal(size=(d, 16)).astype(np.float32) / 3,
            "b1": rng.normal(size=16).astype(np.float32) * 0.1,
            "w2": rng.normal(size=16).astype(np.float32) / 2}


def apply(p, onehot):
    return jnp.tanh(onehot.reshape(-1) @ p["w1"] + p["b1"]) @ p["w2"]


def statistic(x):
    return jnp.sin(0.37 * jnp.sum(x * jnp.arange(1, x.size + 1)))


def run(checkpoint_dir, progress=False):
    """The enumeration, with the module's call and checkpoint spacing set for this job only."""
    saved = enum_mod._CALL_INPUTS, enum_mod._CHECKPOINT_EVERY
    enum_mod._CALL_INPUTS, enum_mod._CHECKPOINT_EVERY = CALL_INPUTS, CHECKPOINT_EVERY
    try:
        return enum_mod.enumerate_output_distribution(
            apply, SPACE, EDGES, params=params(), statistic_fn=statistic, chunk_size=CHUNK_SIZE,
            progress=progress, checkpoint_dir=checkpoint_dir)
    finally:
        enum_mod._CALL_INPUTS, enum_mod._CHECKPOINT_EVERY = saved


def as_arrays(result):
    return dict(counts=result.counts, below=result.num_below, above=result.num_above,
                stat=result.statistic_sum, lo=result.min_output, hi=result.max_output)


if __name__ == "__main__":
    result = run(sys.argv[1])
    if len(sys.argv) > 2:
        np.savez(sys.argv[2], **as_arrays(result))
