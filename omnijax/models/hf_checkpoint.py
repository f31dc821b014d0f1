"""Reading and writing Hugging Face checkpoint directories for omnijax's Flax NNX models.

One place for what every loader (gpt2, olmo, distilbert, bert) needs: find the directory (a local
path, else a hub id through huggingface_hub.snapshot_download), read and check config.json against
the architecture the loader implements, read the safetensors weights (one file or an index of
shards; float32, float16 and bfloat16 tensors, memory-mapped, no torch needed), check every tensor
against the shapes the config implies, and set them into an abstract (`nnx.eval_shape`) model.
Each model describes its checkpoint by a `CheckpointKind` (names for messages, the loader's error
class, the accepted model_type / architectures) and a layout {checkpoint key: (our attribute path,
shape)}. Every failure raises the kind's error class (a ValueError) naming what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "WEIGHTS_INDEX_FILE", "CheckpointKind", "check_config_kind",
           "hub_offline", "load_parameters", "read_config", "read_safetensors", "read_tensors",
           "resolve_directory", "tensors_of", "variable_at", "write_directory"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"  # sharded checkpoints (e.g. OLMo-7B)

Layout = Mapping[str, tuple[str, tuple[int, ...]]]  # checkpoint key -> (attribute path, shape)

_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


@dataclasses.dataclass(frozen=True)
class CheckpointKind:
    """What one loader accepts: `name` for messages ("GPT-2"), `error` (the loader's ValueError
    subclass), `model_type` (config.json's), `architectures` (accepted entries of config.json's
    `architectures`; None accepts any), `prefixes` (stripped from tensor keys, e.g. "model.")."""

    name: str
    error: type[ValueError]
    model_type: str
    architectures: tuple[str, ...] | None = None
    prefixes: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- directory

def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for the local Hugging Face cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_reachable(timeout: float) -> bool:
    """Whether a TCP connection to the hub endpoint opens within `timeout` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=min(timeout, 5.0)):
            return True
    except OSError:
        return False


def resolve_directory(path_or_hub_id: str | os.PathLike, kind: CheckpointKind, hub_timeout: float = 5.0) -> Path:
    """The local directory of a checkpoint: `path_or_hub_id` itself when it is a directory, else
    the snapshot of that hub id (config.json and the safetensors files only; from the local cache
    when HF_HUB_OFFLINE is set or the hub is unreachable). Raises kind.error naming the argument
    and the sources tried. Network waits are bounded by `hub_timeout` seconds."""
    source = str(path_or_hub_id)
    local = Path(source).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise kind.error(f"{source!r} is a file; expected a {kind.name} directory with {CONFIG_FILE} "
                         f"and {WEIGHTS_FILE}, or a hub id")
    tried = [f"local directory {str(local)!r} (not found)"]
    try:
        import huggingface_hub
    except ImportError:
        raise kind.error(f"could not load {kind.name} {source!r}: tried {tried[0]}; "
                         "huggingface_hub is not installed, so the hub was not tried") from None
    offline = hub_offline()
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if not offline and not proxied and not _hub_reachable(hub_timeout):
        offline = True
        tried.append("Hugging Face hub (https://huggingface.co unreachable)")
    try:
        snapshot = huggingface_hub.snapshot_download(
            repo_id=source, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, "model-*.safetensors"],
            local_files_only=offline, etag_timeout=hub_timeout)
    except Exception as err:  # not found, offline and not cached, network failure, bad id
        what = "local Hugging Face cache" if offline else "Hugging Face hub"
        if offline and hub_offline():
            what += " (HF_HUB_OFFLINE is set)"
        tried.append(f"{what}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        raise kind.error(f"could not load {kind.name} {source!r}; tried: " + "; ".join(tried)) from err
    return Path(snapshot)


def read_config(directory: Path, kind: CheckpointKind) -> dict[str, Any]:
    """config.json of `directory` as a dict, after checking that the weights are there too and that
    the config is of `kind` (check_config_kind)."""
    config_path = directory / CONFIG_FILE
    has_weights = (directory / WEIGHTS_FILE).is_file() or (directory / WEIGHTS_INDEX_FILE).is_file()
    missing = [name for name, present in ((CONFIG_FILE, config_path.is_file()), (WEIGHTS_FILE, has_weights))
               if not present]
    if missing:
        raise kind.error(f"{kind.name} directory {directory} lacks {', '.join(missing)} "
                         f"(needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise kind.error(f"could not read {config_path}: {err}") from err
    if not isinstance(config, dict):
        raise kind.error(f"{config_path} does not hold a JSON object")
    check_config_kind(config, kind, config_path)
    return config


def check_config_kind(config: Mapping[str, Any], kind: CheckpointKind, where: Any = CONFIG_FILE) -> None:
    """Raise kind.error unless config's model_type (when given) is kind.model_type and one of its
    architectures (when given) is accepted by kind."""
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    expected = f"model_type={kind.model_type!r}"
    if kind.architectures is not None:
        expected += f" and architectures {' or '.join(kind.architectures)}"
    found = f"model_type={model_type!r}, architectures={list(architectures)}"
    if model_type is not None and model_type != kind.model_type:
        raise kind.error(f"{where} is not a {kind.name} checkpoint ({found}); expected {expected}")
    if kind.architectures is not None and architectures and not set(architectures) & set(kind.architectures):
        raise kind.error(f"{where} is a checkpoint of another architecture ({found}); expected {expected}")


# ----------------------------------------------------------------------------- tensors

def read_safetensors(path: Path, error: type[ValueError] = ValueError) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file as read-only memory-mapped numpy arrays (bfloat16 as
    ml_dtypes.bfloat16). Parses the format itself (8-byte little-endian header length, JSON header,
    raw little-endian data) so bf16 checkpoints need neither torch nor a copy."""
    import ml_dtypes

    dtypes = {**_SAFETENSORS_DTYPES, "BF16": ml_dtypes.bfloat16}
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 0 < header_len <= 100_000_000:
                raise ValueError(f"implausible header length {header_len}")
            header = json.loads(f.read(header_len))
        data_start = 8 + header_len
        size = path.stat().st_size
        raw = np.memmap(path, dtype=np.uint8, mode="r") if size > data_start else np.zeros(0, np.uint8)
        tensors = {}
        for key, info in header.items():
            if key == "__metadata__":
                continue
            if info["dtype"] not in dtypes:
                raise ValueError(f"tensor {key!r} has unsupported dtype {info['dtype']}")
            dtype = np.dtype(dtypes[info["dtype"]]).newbyteorder("<")
            shape = tuple(int(n) for n in info["shape"])
            begin, end = (data_start + int(o) for o in info["data_offsets"])
            if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or end > size:
                raise ValueError(f"tensor {key!r}: data offsets do not fit its shape {shape} and dtype")
            tensors[key] = raw[begin:end].view(dtype).reshape(shape)
        return tensors
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise error(f"could not read {path}: {err}") from err


def read_tensors(directory: Path, kind: CheckpointKind) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by key, with kind.prefixes stripped: model.safetensors, or the
    shards listed in model.safetensors.index.json."""
    single = directory / WEIGHTS_FILE
    if single.is_file():
        files = [single]
    else:
        index_path = directory / WEIGHTS_INDEX_FILE
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise kind.error(f"could not read the shard index {index_path}: {err}") from err
        files = [directory / name for name in sorted(set(weight_map.values()))]
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise kind.error(f"{index_path} lists weight files that are missing: {', '.join(absent[:5])}")
    tensors: dict[str, np.ndarray] = {}
    for path in files:
        for key, value in read_safetensors(path, kind.error).items():
            name = key
            for prefix in kind.prefixes:
                if key.startswith(prefix):
                    name = key[len(prefix):]
                    break
            if name in tensors:
                raise kind.error(f"{directory} holds tensor {name!r} twice (with and without a prefix)")
            tensors[name] = value
    return tensors


def variable_at(model: nnx.Module, path: str) -> nnx.Variable:
    """The variable at a dotted attribute path of `model` ("layers.0.mlp.up_proj.weight")."""
    obj: Any = model
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def load_parameters(model: nnx.Module, tensors: Mapping[str, np.ndarray], layout: Layout, kind: CheckpointKind,
                    where: Any, dtype, ignorable: Callable[[str], bool] = lambda key: False) -> nnx.Module:
    """Set every parameter of `model` (typically an nnx.eval_shape model) from `tensors`.

    Raises kind.error for a tensor of the layout that is missing or has another shape than the
    config implies, or for a tensor that is neither in the layout nor `ignorable(key)`. `where`
    names the weights for messages. Parameters are cast to `dtype`.
    """
    for key, (_, shape) in layout.items():
        if key not in tensors:
            raise kind.error(f"{where} has no tensor {key!r} (expected shape {shape})")
        if tuple(tensors[key].shape) != tuple(shape):
            raise kind.error(f"tensor {key!r} in {where} has shape {tuple(tensors[key].shape)}, "
                             f"expected {tuple(shape)} from {CONFIG_FILE}")
    extra = sorted(k for k in tensors if k not in layout and not ignorable(k))
    if extra:
        raise kind.error(f"{where} has tensors this {kind.name} does not use: {', '.join(extra[:5])}")
    for key, (path, _) in layout.items():
        value = np.asarray(tensors[key])
        if value.dtype != np.float32:
            value = value.astype(np.float32)
        variable_at(model, path).set_value(jnp.asarray(value, dtype=dtype))
    unset = [p for p, leaf in nnx.to_flat_state(nnx.state(model)) if not isinstance(leaf.get_value(), jax.Array)]
    if unset:  # a parameter the layout does not cover (a bug in the model's layout, not in the file)
        raise kind.error(f"parameters left unset after loading: {unset[:5]}")
    return model


def write_directory(directory: str | os.PathLike, tensors: Mapping[str, np.ndarray | jax.Array],
                    config: Mapping[str, Any]) -> Path:
    """Write a Hugging Face checkpoint directory: model.safetensors (float32; transformers reads it)
    first, then config.json atomically, so a complete config marks a complete checkpoint."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {key: np.ascontiguousarray(np.asarray(value, np.float32)) for key, value in tensors.items()}
    save_file(arrays, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    temporary = directory / (CONFIG_FILE + ".tmp")
    temporary.write_text(json.dumps(dict(config), indent=2))
    os.replace(temporary, directory / CONFIG_FILE)
    return directory


def tensors_of(model: nnx.Module, layout: Layout, prefix: str = "") -> dict[str, np.ndarray]:
    """The model's parameters by checkpoint key (prefix + key), as float32 numpy arrays."""
    return {prefix + key: np.asarray(variable_at(model, path).get_value(), np.float32)
            for key, (path, _) in layout.items()}

