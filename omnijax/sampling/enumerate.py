"""Exact output distribution of a space small enough to enumerate (up to ~1e8 inputs).

This is the oracle the samplers are tested against: every input is evaluated once and its
output binned. Input number i is i written in base K over the free positions in row-major
order (the last free position is the least significant digit, as in itertools.product);
frozen positions keep their values.

Inputs are evaluated in chunks of exactly K^m: the low m digits come from the offset inside
the chunk (int32 on the device) and the high digits from the chunk number (int64 on the
host), so no 64-bit integer is needed on the device. Each jit call scans several chunks per
device over a 1-D mesh of all devices, the model's parameters being one of its arguments.
The calls are the blocks of `driver.run_blocks` (progress, NaN check, Orbax checkpoints,
resume); the host adds each call's results into int64/float64 totals in chunk order, so a
resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from omnijax.sampling.driver import NonFiniteOutputError, run_blocks
from omnijax.sampling.fingerprint import run_fingerprint
from omnijax.sampling.histogram import bin_index, validate_bin_edges
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, check_output_fn, make_value, scalar_result

MAX_SIZE = 2**40  # beyond this enumeration would take days even on a GPU.
_MAX_CHUNK = 2**24  # per-chunk float32 sums of 0/1 statistics stay exact below 2**24.
_MAX_CALL = 2**30  # inputs per call, all devices: int32 counts and offsets cannot overflow.
_DEFAULT_CHUNK_CPU = 2**14  # default inputs per chunk, roughly: larger chunks thrash CPU caches,
_DEFAULT_CHUNK_ACCELERATOR = 2**17  # smaller ones leave a GPU idle between scan steps.
_ONEHOT_BUDGET = 2**26  # floats in one default chunk's one-hot batch, at most.
_CALL_INPUTS = 2**22  # inputs per jit call (all devices together) aimed for.
_CHECKPOINT_EVERY = 4  # calls between checkpoint saves.
_CACHE_SIZE = 8  # compiled enumeration programs kept for later calls with the same model code.
_AXIS = "inputs"


@dataclasses.dataclass(frozen=True, eq=False)
class ExactOutputDistribution:
    """How many inputs of the space fall in each output bin, counted exactly.

    Attributes:
      bin_edges: float64 (num_bins + 1,), as validated.
      counts: int64 (num_bins,), inputs per bin.
      num_below, num_above: inputs with output below the first edge / above the last edge.
      total: the number of inputs, space.size.
      log_rho: float64 (num_bins,), ln(counts / total); -inf where a bin is empty.
      statistic_sum: float64 (num_bins,), per-bin sum of statistic_fn, or None.
      min_output, max_output: smallest and largest output over the whole space.
    """

    bin_edges: np.ndarray
    counts: np.ndarray
    num_below: int
    num_above: int
    total: int
    log_rho: np.ndarray
    statistic_sum: np.ndarray | None
    min_output: float
    max_output: float

    def statistic_mean(self) -> np.ndarray:
        """Per-bin mean of statistic_fn over the bin's inputs; NaN where a bin is empty."""
        if self.statistic_sum is None:
            raise ValueError("statistic_mean needs a statistic_fn; none was given")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.statistic_sum / self.counts, np.nan)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How the enumeration is cut: chunks of K^m inputs, `per_device` chunks per device per call."""

    chunk_digits: int
    chunk_size: int
    num_chunks: int
    per_device: int
    num_devices: int

    @property
    def chunks_per_call(self) -> int:
        return self.per_device * self.num_devices


def enumerate_output_distribution(output_fn, space: InputSpace, bin_edges, *, params=None,
                                  statistic_fn=None, chunk_size: int | None = None,
                                  progress: bool = True,
                                  checkpoint_dir: str | os.PathLike | None = None,
                                  checkpoint_path: str | os.PathLike | None = None
                                  ) -> ExactOutputDistribution:
    """Evaluate `output_fn` on every input of `space` and histogram the outputs exactly.

    Args:
      output_fn: the model, one input's one-hot array (space.shape + (K,)) -> real scalar: a
        Flax NNX module, apply(params, onehot) with `params`, or a plain function (see
        `omnijax.sampling.targets`). The parameters are an argument of the compiled program.
      space: the InputSpace; at most MAX_SIZE (2**40) inputs.
      bin_edges: strictly increasing finite edges; bin i is [edges[i], edges[i+1]), the last
        bin includes its top edge.
      params: the parameter pytree when output_fn is apply(params, onehot).
      statistic_fn: optional, one integer input of space.shape -> real scalar; its per-bin
        sum is accumulated (e.g. 1.0 where a sequence satisfies a constraint).
      chunk_size: inputs evaluated per vmap, rounded down to a power of K (at least K).
        Default: the power of K nearest 2**14 on CPU and 2**17 on accelerators, smaller
        when its one-hot batch is large.
      progress: print fraction done, inputs/s and ETA to stderr when there are several calls, and
        what the call does and how long it took when there is one.
      checkpoint_dir: optional directory; the running totals are saved there (Orbax) every
        few calls and after the last one. A later run with the same model parameters, space
        (frozen mask and values included), bin edges, chunking and has-a-statistic resumes
        from it; a directory of another run is refused (ValueError naming what differs) and
        left untouched.
      checkpoint_path: deprecated alias of checkpoint_dir.

    Raises:
      ValueError: on a bad argument or a checkpoint of another run; NonFiniteOutputError (a
        ValueError) naming the first input whose output is NaN or inf.
    """
    _check_space(space)
    target = check_output_fn(output_fn, space, params=params)
    edges = validate_bin_edges(bin_edges)
    if statistic_fn is not None:
        _check_statistic_fn(statistic_fn, space)
    checkpoint_dir = _checkpoint_dir(checkpoint_dir, checkpoint_path)
    mesh = Mesh(np.array(jax.devices()), (_AXIS,))
    plan = _make_plan(space, chunk_size, mesh.size, mesh.devices.flat[0].platform)
    num_calls = -(-plan.num_chunks // plan.chunks_per_call)
    call = _compiled_call(target.apply, statistic_fn, space, edges, plan.chunk_digits, mesh)
    sharding = NamedSharding(mesh, PartitionSpec(_AXIS))
    weights = jax.device_put(target.params, NamedSharding(mesh, PartitionSpec()))

    def run_block(b, carry):
        first = int(carry["next_chunk"])
        bases, valid = _chunk_bases(space, plan, first)
        out = call(weights, jax.device_put(bases, sharding), jax.device_put(valid, sharding))
        return _add_call(carry, jax.device_get(out), plan, first)

    fingerprint = None
    if checkpoint_dir is not None:
        fingerprint = run_fingerprint("enumerate", space, target, None, {
            "bin_edges": edges, "chunk_size": plan.chunk_size,
            "chunks_per_call": plan.chunks_per_call, "has_statistic": statistic_fn is not None})
    single = progress and num_calls == 1 and jax.process_index() == 0
    if single:  # run_blocks shows a bar only between calls: say what the one call does and how long it took
        start = time.perf_counter()
        print(f"enumerate: {space.size:,} inputs in one call ...", file=sys.stderr, flush=True)
    totals = run_blocks(
        run_block, _fresh_totals(len(edges) - 1), num_calls, label="enumerate", unit="inputs",
        units_after=lambda b: min((b + 1) * plan.chunks_per_call, plan.num_chunks) * plan.chunk_size,
        total_units=space.size, check=lambda totals: _raise_if_not_finite(target, space, totals),
        checkpoint_dir=checkpoint_dir, fingerprint=fingerprint,
        checkpoint_every=_CHECKPOINT_EVERY, progress=progress and num_calls > 1)
    if single:
        print(f"enumerate: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return _result(totals, edges, space.size, statistic_fn is not None)


def _checkpoint_dir(checkpoint_dir, checkpoint_path):
    """The checkpoint directory, from checkpoint_dir or its deprecated alias checkpoint_path."""
    name = "checkpoint_dir"
    if checkpoint_path is not None:
        if checkpoint_dir is not None:
            raise ValueError("pass checkpoint_dir only: checkpoint_path is its deprecated alias")
        warnings.warn("checkpoint_path is deprecated: pass checkpoint_dir, a directory of Orbax "
                      "checkpoints", DeprecationWarning, stacklevel=3)
        checkpoint_dir, name = checkpoint_path, "checkpoint_path"
    if checkpoint_dir is not None and os.path.isfile(checkpoint_dir):
        raise ValueError(f"{name} {os.fspath(checkpoint_dir)!r} is a file (an old .npz checkpoint?); "
                         f"checkpoints are directories now: pass checkpoint_dir naming a new one")
    return checkpoint_dir


def _check_space(space) -> None:
    """Raise ValueError unless `space` is an InputSpace small enough to enumerate."""
    if not isinstance(space, InputSpace):
        raise ValueError(f"space must be an InputSpace, got {type(space).__name__}")
    if space.size > MAX_SIZE:
        raise ValueError(
            f"space is too large to enumerate: {space.num_categories}^{space.num_free} = "
            f"{float(space.size):.3g} inputs, more than 2**40; use a sampler instead")


def _check_statistic_fn(statistic_fn, space: InputSpace) -> None:
    """Raise ValueError unless `statistic_fn` maps one integer input of `space` to a real scalar."""
    what = f"one int32 input of shape {space.shape}"
    out = scalar_result(statistic_fn, jax.ShapeDtypeStruct(space.shape, jnp.int32), "statistic_fn", what)
    if not (jnp.issubdtype(out.dtype, jnp.floating) or jnp.issubdtype(out.dtype, jnp.integer)
            or out.dtype == jnp.bool_):
        raise ValueError(f"statistic_fn must return a real scalar for {what}, got dtype {out.dtype}")


def _chunk_digits(space: InputSpace, chunk_size, num_devices: int, platform: str) -> int:
    """m such that chunks hold K^m inputs (m >= 1), capped by the space and the int32 limits.

    A given chunk_size is rounded down to a power of K. The default is the power of K nearest
    the platform's default in log scale, so a large K does not leave the device a tiny
    batch, made smaller while one chunk's one-hot batch exceeds _ONEHOT_BUDGET floats.
    """
    k = space.num_categories
    limit = _floor_log(k, min(_MAX_CHUNK, _MAX_CALL // num_devices))
    if chunk_size is None:
        onehot = space.num_positions * k
        target = _DEFAULT_CHUNK_CPU if platform == "cpu" else _DEFAULT_CHUNK_ACCELERATOR
        m = min(max(1, round(math.log(target, k))), _floor_log(k, _ONEHOT_BUDGET // onehot))
    elif (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool)
          or chunk_size <= 0):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    else:
        m = _floor_log(k, int(chunk_size))
    return min(m, limit, space.num_free)


def _floor_log(k: int, n: int) -> int:
    """The largest m >= 1 with k^m <= n (1 when n < k^2)."""
    m = 1
    while k ** (m + 1) <= n:
        m += 1
    return m


def _make_plan(space: InputSpace, chunk_size, num_devices: int, platform: str = "cpu") -> _Plan:
    """Chunk size and chunks per call: about _CALL_INPUTS per call, no call entirely padding."""
    m = _chunk_digits(space, chunk_size, num_devices, platform)
    chunk = space.num_categories ** m
    num_chunks = space.num_categories ** (space.num_free - m)
    per_device = max(1, _CALL_INPUTS // (num_devices * chunk))
    per_device = min(per_device, -(-num_chunks // num_devices))
    return _Plan(m, chunk, num_chunks, per_device, num_devices)


def _chunk_bases(space: InputSpace, plan: _Plan, first: int) -> tuple[np.ndarray, np.ndarray]:
    """One call's chunks: flat inputs (chunks_per_call, num_positions) with the high digits set.

    Chunks past the end of the space are padding (valid False); they repeat chunk 0.
    """
    k = space.num_categories
    chunks = np.arange(first, first + plan.chunks_per_call, dtype=np.int64)
    valid = chunks < plan.num_chunks
    chunks = np.where(valid, chunks, 0)
    high = space.free_positions[:space.num_free - plan.chunk_digits]
    powers = k ** np.arange(len(high) - 1, -1, -1, dtype=np.int64)
    bases = np.tile(space.frozen_values.reshape(-1), (len(chunks), 1))
    bases[:, high] = (chunks[:, None] // powers) % k
    return bases.astype(np.int32), valid



_programs: collections.OrderedDict = collections.OrderedDict()


def _compiled_call(apply, statistic_fn, space: InputSpace, edges: np.ndarray, m: int, mesh: Mesh):
    """`_make_call`'s program, reused by later calls with the same model code, statistic_fn,
    layout, edges and mesh (the last _CACHE_SIZE are kept): new parameters need no new trace."""
    key = (apply, statistic_fn, space.shape, space.num_categories,
           space.free_positions.tobytes(), edges.tobytes(), m, mesh)
    try:
        hash(key)
    except TypeError:  # an unhashable apply or statistic_fn: compile for this call only.
        return _make_call(apply, statistic_fn, space, edges, m, mesh)
    if key in _programs:
        _programs.move_to_end(key)
    else:
        _programs[key] = _make_call(apply, statistic_fn, space, edges, m, mesh)
        while len(_programs) > _CACHE_SIZE:
            _programs.popitem(last=False)
    return _programs[key]


def _make_call(apply, statistic_fn, space: InputSpace, edges: np.ndarray, m: int, mesh: Mesh):
    """Jitted (params, bases, valid) -> dict of one call's results, computed over the mesh.

    params (the Target's parameters) are replicated, bases and valid split over the devices.
    "counts" (below, bins..., above; int32), "min" and "max" are reduced over devices;
    "first_bad" (offset of the first non-finite output in each chunk, or K^m) and
    "stat_sums" (float32 per bin, only with a statistic_fn) come per chunk.
    """
    value = jax.vmap(make_value(Target(apply), space), in_axes=(None, 0))
    stat = None if statistic_fn is None else jax.vmap(
        lambda x: jnp.asarray(statistic_fn(x), jnp.float32))
    k = space.num_categories
    chunk = k**m
    shape = space.shape
    low = space.free_positions[space.num_free - m:]
    strides = (k ** np.arange(m - 1, -1, -1, dtype=np.int64)).astype(np.int32)
    num_slots = len(edges) + 1

    def per_device(params, bases, valid):
        digits = (jnp.arange(chunk, dtype=jnp.int32)[:, None] // strides) % k

        def step(carry, chunk_in):
            counts, zmin, zmax = carry
            base, ok = chunk_in
            x = jnp.broadcast_to(base, (chunk, base.shape[0])).at[:, low].set(digits)
            z = value(params, x)
            slot = bin_index(z, edges) + 1
            counts = counts + jnp.zeros(num_slots, jnp.int32).at[slot].add(ok.astype(jnp.int32))
            zmin = jnp.where(ok, jnp.minimum(zmin, z.min()), zmin)
            zmax = jnp.where(ok, jnp.maximum(zmax, z.max()), zmax)
            bad = ~jnp.isfinite(z)
            per_chunk = {"first_bad": jnp.where(ok & bad.any(), jnp.argmax(bad), chunk)}
            if stat is not None:
                s = stat(x.reshape((chunk,) + shape))
                sums = jnp.zeros(num_slots, jnp.float32).at[slot].add(s)[1:-1]
                per_chunk["stat_sums"] = jnp.where(ok, sums, 0.0)
            return (counts, zmin, zmax), per_chunk

        init = (jnp.zeros(num_slots, jnp.int32), jnp.float32(jnp.inf), jnp.float32(-jnp.inf))
        init = jax.lax.pcast(init, (_AXIS,), to="varying")  # the carry differs per device.
        (counts, zmin, zmax), per_chunk = jax.lax.scan(step, init, (bases, valid))
        return {"counts": jax.lax.psum(counts, _AXIS), "min": jax.lax.pmin(zmin, _AXIS),
                "max": jax.lax.pmax(zmax, _AXIS), **per_chunk}

    spec, replicated = PartitionSpec(_AXIS), PartitionSpec()
    out_specs = {"counts": replicated, "min": replicated, "max": replicated, "first_bad": spec}
    if stat is not None:
        out_specs["stat_sums"] = spec
    return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(replicated, spec, spec),
                                 out_specs=out_specs))


def _fresh_totals(num_bins: int) -> dict:
    """The running host totals (the carry of `run_blocks`, what a checkpoint holds), empty.

    next_chunk: chunks done; counts: int64 (below, bins..., above); statistic_sum: float64 per
    bin (zeros without a statistic_fn); min/max_output: float64; first_nonfinite: the index
    of the first input whose output is NaN or inf, -1 if none (0-d arrays for Orbax).
    """
    return {"next_chunk": np.array(0, np.int64), "counts": np.zeros(num_bins + 2, np.int64),
            "statistic_sum": np.zeros(num_bins, np.float64),
            "min_output": np.array(np.inf), "max_output": np.array(-np.inf),
            "first_nonfinite": np.array(-1, np.int64)}


def _add_call(totals: dict, out, plan: _Plan, first: int) -> dict:
    """The totals with one call's device results (chunks first...) added, in chunk order."""
    # Sequential in chunk order, so the sum does not depend on how chunks were grouped.
    stat = totals["statistic_sum"]
    if "stat_sums" in out:
        stat = np.add.accumulate(np.vstack([stat[None], out["stat_sums"].astype(np.float64)]))[-1]
    first_nonfinite = totals["first_nonfinite"]
    hits = np.flatnonzero(out["first_bad"] < plan.chunk_size)
    if first_nonfinite < 0 and hits.size:
        j = int(hits[0])
        first_nonfinite = np.array((first + j) * plan.chunk_size + int(out["first_bad"][j]), np.int64)
    return {"next_chunk": np.array(min(first + plan.chunks_per_call, plan.num_chunks), np.int64),
            "counts": totals["counts"] + out["counts"].astype(np.int64),
            "statistic_sum": stat,
            "min_output": np.minimum(totals["min_output"], np.float64(out["min"])),
            "max_output": np.maximum(totals["max_output"], np.float64(out["max"])),
            "first_nonfinite": first_nonfinite}


def input_at(space: InputSpace, index: int) -> np.ndarray:
    """Input number `index` of the enumeration order: base-K digits over the free positions."""
    x = space.frozen_values.reshape(-1).copy()
    for pos in space.free_positions[::-1]:
        index, x[pos] = divmod(index, space.num_categories)
    return x.reshape(space.shape)


def _raise_if_not_finite(target: Target, space: InputSpace, totals: dict) -> None:
    """Raise NonFiniteOutputError naming the first input whose output is NaN or inf, if any."""
    index = int(totals["first_nonfinite"])
    if index < 0:
        return
    x = input_at(space, index)
    z = float(jax.jit(make_value(target, space))(target.params, x.reshape(-1)))
    raise NonFiniteOutputError(
        f"output_fn returned {z} (not finite) for input index {index} with values "
        f"{x.tolist()}; the exact distribution needs a finite output for every input")


def _result(totals: dict, edges: np.ndarray, total: int, has_statistic: bool) -> ExactOutputDistribution:
    """Freeze the totals into an ExactOutputDistribution."""
    all_counts = np.asarray(totals["counts"], np.int64)
    counts = all_counts[1:-1].copy()
    with np.errstate(divide="ignore"):
        log_rho = np.log(counts / total)  # -inf where a bin is empty.
    stat = np.array(totals["statistic_sum"], np.float64) if has_statistic else None
    return ExactOutputDistribution(
        bin_edges=_read_only(edges.copy()), counts=_read_only(counts),
        num_below=int(all_counts[0]), num_above=int(all_counts[-1]), total=total,
        log_rho=_read_only(log_rho), statistic_sum=None if stat is None else _read_only(stat),
        min_output=float(totals["min_output"]), max_output=float(totals["max_output"]))


def _read_only(a: np.ndarray) -> np.ndarray:
    """`a`, marked read-only so the frozen result cannot be edited in place."""
    a.setflags(write=False)
    return a
