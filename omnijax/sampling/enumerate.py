"""Exact output distribution of a space small enough to enumerate (up to ~1e8 inputs).

This is the oracle the samplers are tested against: every input is evaluated once and its
output binned. Input number i is i written in base K over the free positions in row-major
order (the last free position is the least significant digit, as in itertools.product);
frozen positions keep their values.

Inputs are evaluated in chunks of exactly K^m: the low m digits come from the offset inside
the chunk (int32 on the device) and the high digits from the chunk number (int64 on the
host), so no 64-bit integer is needed on the device. Each jit call scans several chunks per
device over a 1-D mesh of all devices; the host adds each call's histogram into int64 totals.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from omnijax.sampling.histogram import bin_index, validate_bin_edges
from omnijax.util.progress import Progress
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import check_output_fn, scalar_result, make_value

MAX_SIZE = 2**40  # beyond this enumeration would take days even on a GPU.
_MAX_CHUNK = 2**24  # per-chunk float32 sums of 0/1 statistics stay exact below 2**24.
_MAX_CALL = 2**30  # inputs per call, all devices: int32 counts and offsets cannot overflow.
_DEFAULT_CHUNK_CPU = 2**14  # default inputs per chunk, roughly: larger chunks thrash CPU caches,
_DEFAULT_CHUNK_ACCELERATOR = 2**17  # smaller ones leave a GPU idle between scan steps.
_ONEHOT_BUDGET = 2**26  # floats in one default chunk's one-hot batch, at most.
_CALL_INPUTS = 2**22  # inputs per jit call (all devices together) aimed for.
_CHECKPOINT_EVERY = 4  # calls between checkpoint saves.
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


@dataclasses.dataclass
class _Totals:
    """Running host totals; what a checkpoint holds."""

    next_chunk: int
    counts: np.ndarray  # int64 (num_bins + 2,): below, bins..., above.
    statistic_sum: np.ndarray | None  # float64 (num_bins,)
    min_output: float = math.inf
    max_output: float = -math.inf


def enumerate_output_distribution(output_fn, space: InputSpace, bin_edges, *, statistic_fn=None,
                                  chunk_size: int | None = None, progress: bool = True,
                                  checkpoint_path: str | os.PathLike | None = None
                                  ) -> ExactOutputDistribution:
    """Evaluate `output_fn` on every input of `space` and histogram the outputs exactly.

    Args:
      output_fn: one one-hot input of shape space.shape + (K,) -> real scalar.
      space: the InputSpace; at most MAX_SIZE (2**40) inputs.
      bin_edges: strictly increasing finite edges; bin i is [edges[i], edges[i+1]), the last
        bin includes its top edge.
      statistic_fn: optional, one integer input of space.shape -> real scalar; its per-bin
        sum is accumulated (e.g. 1.0 where a sequence satisfies a constraint).
      chunk_size: inputs evaluated per vmap, rounded down to a power of K (at least K).
        Default: the power of K nearest 2**14 on CPU and 2**17 on accelerators, smaller
        when its one-hot batch is large.
      progress: print fraction done, inputs/s and ETA to stderr when there are several calls.
      checkpoint_path: optional .npz file; running totals are saved there every few calls
        and a later run with the same space size, bin edges and chunk size resumes from it.

    Raises:
      ValueError: on a bad argument, or when output_fn returns NaN or inf for some input.
    """
    _check_space(space)
    check_output_fn(output_fn, space)
    edges = validate_bin_edges(bin_edges)
    if statistic_fn is not None:
        _check_statistic_fn(statistic_fn, space)
    mesh = Mesh(np.array(jax.devices()), (_AXIS,))
    plan = _make_plan(space, chunk_size, mesh.size, mesh.devices.flat[0].platform)
    totals = _start_totals(checkpoint_path, space, edges, plan, statistic_fn is not None)
    call = _make_call(output_fn, statistic_fn, space, edges, plan.chunk_digits, mesh)
    sharding = NamedSharding(mesh, PartitionSpec(_AXIS))
    bar = Progress("enumerate", space.size, "inputs",
                   enabled=progress and plan.num_chunks - totals.next_chunk > plan.chunks_per_call)
    bar.update(totals.next_chunk * plan.chunk_size)
    calls_done = 0
    while totals.next_chunk < plan.num_chunks:
        first = totals.next_chunk
        bases, valid = _chunk_bases(space, plan, first)
        out = jax.device_get(call(jax.device_put(bases, sharding), jax.device_put(valid, sharding)))
        _raise_if_not_finite(output_fn, space, plan, first, out["first_bad"])
        _add_call(totals, out, plan, first)
        calls_done += 1
        bar.update(totals.next_chunk * plan.chunk_size)
        if checkpoint_path is not None and (
                calls_done % _CHECKPOINT_EVERY == 0 or totals.next_chunk == plan.num_chunks):
            _save_checkpoint(checkpoint_path, _checkpoint_meta(space, edges, plan), totals)
    return _result(totals, edges, space.size)


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


def _make_call(output_fn, statistic_fn, space: InputSpace, edges: np.ndarray, m: int, mesh: Mesh):
    """Jitted (bases, valid) -> dict of one call's results, computed over the mesh.

    "counts" (below, bins..., above; int32), "min" and "max" are reduced over devices;
    "first_bad" (offset of the first non-finite output in each chunk, or K^m) and
    "stat_sums" (float32 per bin, only with a statistic_fn) come per chunk.
    """
    value = jax.vmap(make_value(output_fn, space))
    stat = None if statistic_fn is None else jax.vmap(
        lambda x: jnp.asarray(statistic_fn(x), jnp.float32))
    k = space.num_categories
    chunk = k**m
    low = space.free_positions[space.num_free - m:]
    strides = (k ** np.arange(m - 1, -1, -1, dtype=np.int64)).astype(np.int32)
    num_slots = len(edges) + 1

    def per_device(bases, valid):
        digits = (jnp.arange(chunk, dtype=jnp.int32)[:, None] // strides) % k

        def step(carry, chunk_in):
            counts, zmin, zmax = carry
            base, ok = chunk_in
            x = jnp.broadcast_to(base, (chunk, base.shape[0])).at[:, low].set(digits)
            z = value(x)
            slot = bin_index(z, edges) + 1
            counts = counts + jnp.zeros(num_slots, jnp.int32).at[slot].add(ok.astype(jnp.int32))
            zmin = jnp.where(ok, jnp.minimum(zmin, z.min()), zmin)
            zmax = jnp.where(ok, jnp.maximum(zmax, z.max()), zmax)
            bad = ~jnp.isfinite(z)
            per_chunk = {"first_bad": jnp.where(ok & bad.any(), jnp.argmax(bad), chunk)}
            if stat is not None:
                s = stat(x.reshape((chunk,) + space.shape))
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
    return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec), out_specs=out_specs))


def _add_call(totals: _Totals, out, plan: _Plan, first: int) -> None:
    """Add one call's device results into the host totals, in chunk order."""
    totals.counts += out["counts"].astype(np.int64)
    if totals.statistic_sum is not None:
        # Sequential in chunk order, so the sum does not depend on how chunks were grouped.
        rows = np.vstack([totals.statistic_sum[None], out["stat_sums"].astype(np.float64)])
        totals.statistic_sum = np.add.accumulate(rows, axis=0)[-1]
    totals.min_output = min(totals.min_output, float(out["min"]))
    totals.max_output = max(totals.max_output, float(out["max"]))
    totals.next_chunk = min(first + plan.chunks_per_call, plan.num_chunks)


def input_at(space: InputSpace, index: int) -> np.ndarray:
    """Input number `index` of the enumeration order: base-K digits over the free positions."""
    x = space.frozen_values.reshape(-1).copy()
    for pos in space.free_positions[::-1]:
        index, x[pos] = divmod(index, space.num_categories)
    return x.reshape(space.shape)


def _raise_if_not_finite(output_fn, space: InputSpace, plan: _Plan, first: int,
                         first_bad: np.ndarray) -> None:
    """Raise ValueError naming the first input of this call whose output is NaN or inf."""
    hits = np.flatnonzero(first_bad < plan.chunk_size)
    if hits.size == 0:
        return
    j = int(hits[0])
    index = (first + j) * plan.chunk_size + int(first_bad[j])
    x = input_at(space, index)
    z = float(jax.jit(make_value(output_fn, space))(x.reshape(-1)))
    raise ValueError(
        f"output_fn returned {z} (not finite) for input index {index} with values "
        f"{x.tolist()}; the exact distribution needs a finite output for every input")


def _start_totals(checkpoint_path, space: InputSpace, edges: np.ndarray, plan: _Plan,
                  has_statistic: bool) -> _Totals:
    """Fresh totals, or those of `checkpoint_path` when it exists and matches this run."""
    num_bins = len(edges) - 1
    fresh = _Totals(0, np.zeros(num_bins + 2, np.int64),
                    np.zeros(num_bins) if has_statistic else None)
    if checkpoint_path is None or not os.path.exists(checkpoint_path):
        return fresh
    return _load_checkpoint(checkpoint_path, _checkpoint_meta(space, edges, plan), has_statistic)


def _checkpoint_meta(space: InputSpace, edges: np.ndarray, plan: _Plan) -> dict:
    """What a checkpoint must agree on to be resumed."""
    return {"space_size": np.int64(space.size), "num_categories": np.int64(space.num_categories),
            "bin_edges": edges, "chunk_size": np.int64(plan.chunk_size)}


def _save_checkpoint(path, meta: dict, totals: _Totals) -> None:
    """Write the totals to `path` atomically: a temp file, then os.replace."""
    tmp = f"{os.fspath(path)}.tmp"
    stat = totals.statistic_sum
    with open(tmp, "wb") as f:
        np.savez(f, **meta, next_chunk=np.int64(totals.next_chunk), counts=totals.counts,
                 has_statistic=stat is not None,
                 statistic_sum=np.zeros(0) if stat is None else stat,
                 min_output=totals.min_output, max_output=totals.max_output)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_checkpoint(path, meta: dict, has_statistic: bool) -> _Totals:
    """Totals saved at `path`; ValueError naming checkpoint_path unless they match `meta`."""
    try:
        with np.load(path) as f:
            saved = {name: f[name] for name in f.files}
    except Exception as err:
        raise ValueError(f"checkpoint_path {os.fspath(path)!r} is not a readable checkpoint: "
                         f"{type(err).__name__}: {err}") from err
    wanted = dict(meta, has_statistic=np.bool_(has_statistic))
    for name, value in wanted.items():
        if name not in saved or np.shape(saved[name]) != np.shape(value) or np.any(
                saved[name] != value):
            raise ValueError(
                f"checkpoint_path {os.fspath(path)!r} was saved by a different run: its {name} is "
                f"{saved.get(name)}, this run's is {value}; delete it or pass another path")
    return _Totals(int(saved["next_chunk"]), saved["counts"].astype(np.int64),
                   saved["statistic_sum"].astype(np.float64) if has_statistic else None,
                   float(saved["min_output"]), float(saved["max_output"]))


def _result(totals: _Totals, edges: np.ndarray, total: int) -> ExactOutputDistribution:
    """Freeze the totals into an ExactOutputDistribution."""
    counts = totals.counts[1:-1].copy()
    with np.errstate(divide="ignore"):
        log_rho = np.log(counts / total)  # -inf where a bin is empty.
    stat = None if totals.statistic_sum is None else _read_only(totals.statistic_sum.copy())
    return ExactOutputDistribution(
        bin_edges=_read_only(edges.copy()), counts=_read_only(counts),
        num_below=int(totals.counts[0]), num_above=int(totals.counts[-1]), total=total,
        log_rho=_read_only(log_rho), statistic_sum=stat,
        min_output=totals.min_output, max_output=totals.max_output)


def _read_only(a: np.ndarray) -> np.ndarray:
    """`a`, marked read-only so the frozen result cannot be edited in place."""
    a.setflags(write=False)
    return a
