"""Resuming a training run from its checkpoints: what identifies the run, and where it stopped.

A training checkpoint may only be continued by the very run that wrote it, or the result
would silently mix two runs. The run's identity is a JSON fingerprint (RunCheckpointer
refuses a directory whose fingerprint differs); the helpers here turn what decides the
result (data, initial model, key, learning-rate schedule) into short JSON values.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from omnijax.sampling.checkpoint import RunCheckpointer
from omnijax.util.digest import digest_arrays


def digest(*arrays) -> str:
    """16 hex digits of SHA-256 over the arrays' dtypes, shapes and values (PRNG keys by their data)."""
    return digest_arrays(*arrays)[:16]


def parameter_digest(model: nnx.Module) -> str:
    """12 hex digits identifying the model's parameters (runs name their sampling checkpoints
    after them); the samplers' checkpoints compare the full digest (`targets.parameter_digest`)."""
    return digest_arrays(*jax.tree.leaves(nnx.state(model, nnx.Param)))[:12]


def model_fingerprint(model: nnx.Module) -> dict[str, Any]:
    """The model's class, its parameters' paths, shapes and dtypes, and a digest of its initial state."""
    params = jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
    return {"class": type(model).__name__,
            "params": {jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)] for path, leaf in params},
            "initial_state": digest(*jax.tree.leaves(nnx.state(model)))}


def learning_rate_fingerprint(learning_rate, num_updates: int):
    """A float as it is; an optax schedule by a digest of its values at every update it will serve."""
    if callable(learning_rate):
        return {"schedule": digest(jax.vmap(learning_rate)(jnp.arange(num_updates)))}
    return learning_rate


def resume(checkpoint_dir: str, fingerprint: dict[str, Any], state: Any) -> tuple[RunCheckpointer, int, Any]:
    """(checkpointer, units done, state): the newest checkpoint of this run in `checkpoint_dir`,
    or (checkpointer, 0, `state`) when there is none yet.

    Raises ValueError naming checkpoint_dir when the directory holds another run.
    """
    checkpointer = RunCheckpointer(checkpoint_dir, fingerprint)
    try:
        restored = checkpointer.restore_latest(state)
    except BaseException:
        checkpointer.close()
        raise
    return (checkpointer, 0, state) if restored is None else (checkpointer, *restored)


def resume_note(unit: str, done: int, total: int) -> str:
    """The progress note of a resumed run: where it goes on, or that it had already finished."""
    if done < total:
        return f"resuming training at {unit} {done + 1}/{total}"
    return f"training already finished ({total}/{total} {unit}s restored)"
