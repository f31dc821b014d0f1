"""Trained models on disk: Orbax parameters plus a JSON sidecar (model.json) naming the architecture.

The sidecar lets a later run rebuild the model before restoring its weights, and refuse a
checkpoint of another architecture with an error phrased in the run's own flags.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

import orbax.checkpoint as ocp
from flax import nnx

from omnijax.models import build_model

SPEC_FILE = "model.json"
STATE_DIR = "state"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What build_model needs to rebuild a model, plus free-form notes on how it was trained."""

    name: str
    input_shape: tuple[int, ...]
    num_categories: int
    num_outputs: int = 1
    training: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))

    def build(self, seed: int = 0) -> nnx.Module:
        return build_model(self.name, self.input_shape, self.num_categories, self.num_outputs, seed)


def save_model(directory: str | os.PathLike, model: nnx.Module, spec: ModelSpec, *,
               overwrite: bool = False) -> str:
    """Write the model's parameters and spec into `directory`; returns its absolute path.

    Raises FileExistsError when `directory` already holds anything, unless overwrite=True
    (which replaces only a previous model checkpoint's own files).
    """
    directory = os.path.abspath(os.fspath(directory))
    if os.path.isdir(directory) and os.listdir(directory):
        if not overwrite:
            raise FileExistsError(f"{directory} is not empty; refusing to overwrite a checkpoint there "
                                  "(choose a new directory or pass overwrite=True)")
        _remove_checkpoint_files(directory)
    os.makedirs(directory, exist_ok=True)
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer:
        checkpointer.save(os.path.join(directory, STATE_DIR), args=ocp.args.StandardSave(nnx.state(model)))
    # The sidecar is written last, so its presence marks a complete checkpoint.
    temporary = os.path.join(directory, SPEC_FILE + ".tmp")
    with open(temporary, "w") as f:
        json.dump(dataclasses.asdict(spec), f, indent=2)
    os.replace(temporary, os.path.join(directory, SPEC_FILE))
    return directory


def read_spec(directory: str | os.PathLike) -> ModelSpec:
    """The spec saved in `directory`; FileNotFoundError when it holds no model checkpoint."""
    directory = os.path.abspath(os.fspath(directory))
    path = os.path.join(directory, SPEC_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model checkpoint in {directory} (missing {SPEC_FILE}); "
                                "train a model into that directory first")
    with open(path) as f:
        return ModelSpec(**json.load(f))


def load_model(directory: str | os.PathLike, expected_spec: ModelSpec) -> nnx.Module:
    """The model saved in `directory`, after checking it has the expected architecture.

    Raises ValueError naming each mismatch, e.g. "checkpoint in DIR is a cnn model but
    --model=mlp was requested".
    """
    directory = os.path.abspath(os.fspath(directory))
    saved = read_spec(directory)
    mismatches = _mismatches(saved, expected_spec)
    if mismatches:
        raise ValueError(f"checkpoint in {directory} " + "; ".join(mismatches))
    graphdef, abstract_state = nnx.split(nnx.eval_shape(saved.build))
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer:
        state = checkpointer.restore(os.path.join(directory, STATE_DIR),
                                     args=ocp.args.StandardRestore(abstract_state))
    return nnx.merge(graphdef, state)


def _mismatches(saved: ModelSpec, expected: ModelSpec) -> list[str]:
    found = []
    if saved.name != expected.name:
        found.append(f"is a {saved.name} model but --model={expected.name} was requested")
    for field in ("input_shape", "num_categories", "num_outputs"):
        have, want = getattr(saved, field), getattr(expected, field)
        if have != want:
            found.append(f"has {field}={have} but {field}={want} was requested")
    return found


def _remove_checkpoint_files(directory: str) -> None:
    """Delete a previous model checkpoint's files (and nothing else) from `directory`."""
    if os.path.isdir(os.path.join(directory, STATE_DIR)):
        shutil.rmtree(os.path.join(directory, STATE_DIR))
    for name in (SPEC_FILE, SPEC_FILE + ".tmp"):
        if os.path.exists(os.path.join(directory, name)):
            os.remove(os.path.join(directory, name))
