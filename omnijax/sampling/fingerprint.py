"""What identifies a run, so that a checkpoint directory is resumed only by the same run.

One fingerprint for every method: the space (shape, K, frozen mask and values), the model's
parameters (a digest), the PRNG key and the method's settings. `RunCheckpointer` compares it
key by key and names what differs when it refuses a directory.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, parameter_digest
from omnijax.util.digest import digest_arrays


def space_fingerprint(space: InputSpace) -> dict[str, Any]:
    return {"space_shape": list(space.shape), "num_categories": space.num_categories,
            "frozen_mask": digest_arrays(space.frozen_mask), "frozen_values": digest_arrays(space.frozen_values)}


def key_fingerprint(key: jax.Array) -> list:
    return np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                      else key).tolist()


def run_fingerprint(method: str, space: InputSpace, target: Target | None, key: jax.Array | None,
                    settings: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of a run of `method` (settings: every knob that changes its results)."""
    fingerprint = {"method": method, **space_fingerprint(space)}
    if target is not None:
        fingerprint["model_parameters"] = parameter_digest(target, space.onehot_shape)
    if key is not None:
        fingerprint["key"] = key_fingerprint(key)
    return with_settings(fingerprint, settings)


def with_settings(fingerprint: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """`fingerprint` plus `settings`, which may not redefine its entries: one run's several parts
    (a pilot, its stages, the main run) share what identifies the run, digested once."""
    overlap = set(fingerprint) & set(settings)
    if overlap:
        raise ValueError(f"settings may not redefine {sorted(overlap)}")
    return {**fingerprint, **settings}
