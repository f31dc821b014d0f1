"""Checkpoints of a sampling run (Orbax): the whole pytree state plus a JSON fingerprint.

A run writes a checkpoint every few blocks; Orbax finalises each one atomically, so a run
killed mid-save resumes from the previous one. The fingerprint (the run's settings) must
match on resume: a directory that holds another run is never overwritten.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class RunCheckpointer:
    """Save/restore (block index, state pytree) in `directory` for a run with `fingerprint`."""

    def __init__(self, directory: str | os.PathLike, fingerprint: dict[str, Any], keep: int = 2):
        self.directory = os.path.abspath(os.fspath(directory))
        self.fingerprint = _jsonable(fingerprint)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "meta"))

    def restore_latest(self, like: Any) -> tuple[int, Any] | None:
        """(block, state) of the newest checkpoint, state shaped like `like`; None if there is none.

        Raises ValueError naming checkpoint_dir when the checkpoint belongs to another run.
        """
        step = self._manager.latest_step()
        if step is None:
            return None
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta["fingerprint"] != self.fingerprint:
            changed = sorted(k for k in set(meta["fingerprint"]) | set(self.fingerprint)
                             if meta["fingerprint"].get(k) != self.fingerprint.get(k))
            raise ValueError(
                f"checkpoint_dir={self.directory!r} holds a run with other settings "
                f"(differs in: {', '.join(changed)}); use a new directory or the same settings")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
        return int(meta["block"]), restored

    def save(self, block: int, state: Any) -> None:
        meta = {"block": int(block), "fingerprint": self.fingerprint}
        self._manager.save(block, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def _jsonable(value):
    """Turn numpy scalars/arrays and tuples into plain JSON types, so fingerprints compare equal."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
