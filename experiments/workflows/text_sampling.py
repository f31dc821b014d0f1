"""What the language-model and SST-2 experiments (paper §3.2, Appendices D, I) share: presets, the
choice of the output range from a pilot's samples, the sampling run, and the files it writes.

The output range (paper §3.2: "We select the lower bound of the NLL value when it is associated
with at least 30 non-duplicate input sequences; the upper bound is constrained by our available
human annotation resources"), exactly as `choose_range` does it:

  1. A range pilot: replica exchange over bins of width Δz (--bin_width) on the grid of multiples
     of Δz, from the pilot's far end (LM: --pilot_z_min, default 0, an NLL's least value; SST-2:
     the random-sequence median + --pilot_span) to the median output of 512 uniformly random
     sequences (the bulk of the space), recording every sweep and keeping up to
     max(--min_distinct, 32) distinct sequences per bin. It is checkpointed (range-pilot-*/), its
     counts are saved in range-pilot.json (reused by a rerun whatever its budget and bound flags),
     and the range it gives in range.json (reused by a rerun with the same model, length and flags).
  2. The confident end (LM: the lower bound, low NLL; SST-2: the upper bound, high logit) is the
     edge of the MOST confident pilot bin whose reservoir holds >= --min_distinct (default 30)
     distinct sequences. --z_min (LM) / --z_max (SST-2) sets it instead, and then no pilot runs.
  3. The other end is the flag (--z_max for LM, --z_min for SST-2) when given, else the confident
     end moved ceil(--annotation_budget / --annotate_per_bin) bins towards the bulk: as many bins
     as the annotation budget can score --annotate_per_bin sequences each (defaults 160 / 8: 20
     bins, the paper's 2.0 NLL wide GPT-2 range).

The main run then samples those bins; every bin of it that keeps fewer than --min_distinct
distinct sequences is listed in metrics.json (`bins_below_min_distinct`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.workflows.results import write_json

RANGE_FILE = "range.json"
PILOT_FILE = "range-pilot.json"


@dataclasses.dataclass(frozen=True)
class TextPreset:
    """How much to sample. smoke: tests on tiny models; default: one accelerator, minutes;
    paper: paper scale."""

    num_steps: int
    num_groups: int
    range_steps: int
    range_groups: int
    reservoir_size: int
    pilot_steps: int | None = None  # the estimator's ladder pilot (None: its default)
    num_replicas: int | None = None  # ladder rungs (None: placed from the swap acceptance)


PRESETS = {
    "smoke": TextPreset(num_steps=300, num_groups=2, range_steps=200, range_groups=2, reservoir_size=32,
                        pilot_steps=60, num_replicas=6),
    "default": TextPreset(num_steps=5_000, num_groups=8, range_steps=1_000, range_groups=4, reservoir_size=64),
    "paper": TextPreset(num_steps=40_000, num_groups=32, range_steps=5_000, range_groups=8, reservoir_size=128),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def grid_edges(lo: float, hi: float, width: float) -> np.ndarray:
    """Edges at multiples of `width` from lo to hi (both snapped to the grid, hi > lo)."""
    a, b = int(math.floor(lo / width + 1e-9)), int(math.ceil(hi / width - 1e-9))
    b = max(b, a + 1)
    return np.round(np.arange(a, b + 1) * width, 10)


def random_outputs(target, space, key: jax.Array, count: int = 512, batch: int = 64) -> np.ndarray:
    """z of `count` uniformly random inputs of `space` (frozen positions kept), float64."""
    from omnijax.sampling.targets import make_value

    value = jax.jit(jax.vmap(make_value(target, space), in_axes=(None, 0)))
    x = space.random_inputs(key, count).reshape(count, -1)
    return np.concatenate([np.asarray(value(target.params, x[i:i + batch]), np.float64)
                           for i in range(0, count, batch)])


def outputs_of(target, space, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    """z of the given inputs (N, D), float64."""
    from omnijax.sampling.targets import make_value

    value = jax.jit(jax.vmap(make_value(target, space), in_axes=(None, 0)))
    x = jnp.asarray(np.asarray(inputs).reshape(len(inputs), -1))
    return np.concatenate([np.asarray(value(target.params, x[i:i + batch]), np.float64)
                           for i in range(0, len(x), batch)]) if len(x) else np.zeros(0)


@dataclasses.dataclass(frozen=True)
class RangeRequest:
    """Flags that determine the output range (see the module docstring)."""

    confident: str               # "low" (an NLL) or "high" (a classifier's logit)
    bin_width: float
    min_distinct: int
    annotation_budget: int
    annotate_per_bin: int
    z_min: float | None
    z_max: float | None
    pilot_far: float | None      # the pilot's far (confident-side) end; None: bulk -/+ pilot_span
    pilot_span: float

    @property
    def num_bins_from_budget(self) -> int:
        return max(1, -(-self.annotation_budget // self.annotate_per_bin))


def choose_range(request: RangeRequest, *, pilot_edges=None, distinct=None) -> dict:
    """The output range [lo, hi] and how it was chosen, as a dict for range.json / metrics.json.

    distinct: per pilot bin (edges `pilot_edges`), the number of distinct sequences kept; not
    needed when the flag gives the confident end. ValueError (naming the flags) when no pilot bin
    holds enough distinct sequences."""
    w, r = request.bin_width, request
    low_confident = r.confident == "low"
    given = r.z_min if low_confident else r.z_max
    record = {"rule": ("confident end: the most confident bin holding >= min_distinct distinct pilot sequences "
                       "(or the flag); other end: the flag, else the confident end moved "
                       "ceil(annotation_budget / annotate_per_bin) bins of bin_width towards the bulk"),
              "confident": r.confident, "bin_width": w, "min_distinct": r.min_distinct,
              "annotation_budget": r.annotation_budget, "annotate_per_bin": r.annotate_per_bin}
    if given is not None:
        end, record["confident_end_from"] = float(given), ("--z_min" if low_confident else "--z_max")
    else:
        edges, counts = np.asarray(pilot_edges), np.asarray(distinct)
        enough = np.flatnonzero(counts >= r.min_distinct)
        if not enough.size:
            flag = "--z_min" if low_confident else "--z_max"
            raise ValueError(f"no bin of the range pilot holds >= --min_distinct={r.min_distinct} distinct "
                             f"sequences (most: {int(counts.max()) if counts.size else 0}); sample the pilot "
                             f"longer (--range_steps) or give {flag}")
        end = float(edges[enough[0]] if low_confident else edges[enough[-1] + 1])
        record.update({"confident_end_from": "range pilot",
                       "pilot_bin_edges": [float(e) for e in edges], "pilot_distinct": [int(c) for c in counts]})
    other = r.z_max if low_confident else r.z_min
    if other is not None:
        record["other_end_from"] = "--z_max" if low_confident else "--z_min"
        other = float(other)
    else:
        span = r.num_bins_from_budget * w
        other = end + span if low_confident else end - span
        record["other_end_from"] = (f"annotation budget: ceil({r.annotation_budget} / {r.annotate_per_bin}) = "
                                    f"{r.num_bins_from_budget} bins")
    lo, hi = (end, other) if low_confident else (other, end)
    if not lo < hi:
        raise ValueError(f"the output range [{lo:g}, {hi:g}] is empty: --z_min must be below --z_max")
    edges = np.linspace(lo, hi, max(1, int(round((hi - lo) / w))) + 1)
    record.update({"z_min": float(edges[0]), "z_max": float(edges[-1]), "num_bins": len(edges) - 1})
    return record


def pilot_range_edges(request: RangeRequest, bulk: float) -> np.ndarray:
    """Bins of the range pilot: from the far confident-side end to the bulk (the random median)."""
    w = request.bin_width
    if request.confident == "low":
        far = request.pilot_far if request.pilot_far is not None else bulk - request.pilot_span
        if not far < bulk:
            raise ValueError(f"--pilot_z_min={far:g} must lie below the median output of random sequences "
                             f"({bulk:.4g})")
        return grid_edges(far, bulk, w)
    far = request.pilot_far if request.pilot_far is not None else bulk + request.pilot_span
    if not far > bulk:
        raise ValueError(f"the pilot's upper end {far:g} must lie above the median output of random sequences "
                         f"({bulk:.4g})")
    return grid_edges(bulk, far, w)


def distinct_per_bin(est) -> np.ndarray:
    return np.array([len(est.representatives(b)) for b in range(est.num_bins)], np.int64)


def output_range(workdir: str, key_record: dict, request: RangeRequest, target, space, *, key: jax.Array,
                 preset: TextPreset, proposal: str, proposal_options: dict | None = None) -> dict:
    """The output range for this run: range.json when it was chosen for the same `key_record` (model
    digest, length, flags), else chosen now (a checkpointed range pilot unless the flag gives the
    confident end) and saved."""
    path = os.path.join(workdir, RANGE_FILE)
    saved = _saved_for(path, key_record)
    if saved is not None:
        log(f"output range: [{saved['z_min']:g}, {saved['z_max']:g}] from {path}")
        return saved
    given = request.z_min if request.confident == "low" else request.z_max
    if given is not None:
        record = choose_range(request)
    else:
        pilot = range_pilot(workdir, key_record, request, target, space, key=key, preset=preset, proposal=proposal,
                            proposal_options=proposal_options)
        record = choose_range(request, pilot_edges=pilot["bin_edges"], distinct=pilot["distinct"])
        record["pilot_seconds"], record["random_median"] = pilot["seconds"], pilot["random_median"]
    record["for"] = key_record
    write_json(path, record)
    log(f"output range: [{record['z_min']:g}, {record['z_max']:g}], {record['num_bins']} bins "
        f"(confident end from {record['confident_end_from']}; other end from {record['other_end_from']})")
    return record


# What the range pilot does not depend on: a rerun with other values of these reuses its counts.
_NOT_PILOT = ("z_min", "z_max", "annotation_budget", "annotate_per_bin", "min_distinct")


def range_pilot(workdir: str, key_record: dict, request: RangeRequest, target, space, *, key: jax.Array,
                preset: TextPreset, proposal: str, proposal_options: dict | None = None) -> dict:
    """The range pilot's bins and distinct sequences per bin: from range-pilot.json when it was run
    for the same model and pilot settings, else run now (checkpointed in range-pilot-<digest>/) and saved."""
    record = {k: v for k, v in key_record.items() if k not in _NOT_PILOT}
    record["pilot_reservoir"] = max(request.min_distinct, 32)
    path = os.path.join(workdir, PILOT_FILE)
    saved = _saved_for(path, record)
    if saved is not None:
        log(f"range pilot: the distinct sequences per bin from {path}")
        return saved
    import omnijax as oj

    probe_key, pilot_key = jax.random.split(key)
    bulk = float(np.median(random_outputs(target, space, probe_key)))
    edges = pilot_range_edges(request, bulk)
    log(f"range pilot: {len(edges) - 1} bins of {request.bin_width:g} over [{edges[0]:g}, {edges[-1]:g}] "
        f"(random sequences' median z {bulk:.4g}), {preset.range_steps} steps x {preset.range_groups} groups")
    started = time.perf_counter()
    est = oj.estimate_output_distribution(
        target, space, edges, key=pilot_key, num_steps=preset.range_steps, num_groups=preset.range_groups,
        steps_per_block=min(1_000, preset.range_steps), pilot_steps=preset.pilot_steps,
        num_replicas=preset.num_replicas, record_every=1, reservoir_size=record["pilot_reservoir"],
        num_bootstrap=0,  # the range is chosen from ln rho and the distinct sequences: no error bars
        proposal=proposal, proposal_options=proposal_options,
        checkpoint_dir=os.path.abspath(os.path.join(workdir, f"range-pilot-{_short(record)}")))
    result = {"for": record, "bin_edges": [float(e) for e in est.bin_edges],
              "distinct": distinct_per_bin(est).tolist(), "log_rho": [float(v) for v in est.log_rho],
              "random_median": bulk, "seconds": round(time.perf_counter() - started, 1)}
    write_json(path, result)
    return result


def _short(record: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


def range_edges(record: dict) -> np.ndarray:
    return np.linspace(record["z_min"], record["z_max"], record["num_bins"] + 1)


def sample(workdir: str, key_record: dict, target, space, edges, *, key: jax.Array, preset: TextPreset,
           num_steps: int, num_groups: int, proposal: str, proposal_options: dict | None = None):
    """The main run over `edges`, checkpointed in workdir/sampling-<digest of the run>."""
    import omnijax as oj

    run = {**key_record, "edges": [float(e) for e in edges], "num_steps": num_steps, "num_groups": num_groups}
    checkpoint_dir = os.path.abspath(os.path.join(workdir, f"sampling-{_short(run)}"))
    log(f"sampling: {len(edges) - 1} bins over [{edges[0]:g}, {edges[-1]:g}], {num_steps} steps x {num_groups} "
        f"groups, proposal {proposal}; checkpoints in {checkpoint_dir}")
    return oj.estimate_output_distribution(
        target, space, edges, key=key, num_steps=num_steps, num_groups=num_groups,
        steps_per_block=min(1_000, num_steps), pilot_steps=preset.pilot_steps,
        num_replicas=preset.num_replicas, reservoir_size=preset.reservoir_size, proposal=proposal,
        proposal_options=proposal_options,
        checkpoint_dir=checkpoint_dir), checkpoint_dir


def write_vocab(workdir: str, tokenizer, vocab_size: int) -> str:
    """vocab.json (the annotation page shows token i as entry i): each id decoded on its own."""
    strings = []
    for i in range(vocab_size):
        try:
            strings.append(str(tokenizer.decode([i])))
        except Exception:  # an id past the tokenizer's vocabulary (a padded embedding)
            strings.append(f"<{i}>")
    path = os.path.join(workdir, "vocab.json")
    with open(path, "w") as f:
        json.dump(strings, f)
    return path


def write_outputs(workdir: str, est, tokenizer, *, title: str, per_bin: int) -> dict[str, str]:
    """rho.csv, rho.png (unconverged bins in red), samples.npz, vocab.json, and the representatives
    as text (omnijax.text.representatives: representatives.csv/.md/.png)."""
    from experiments.workflows.results import write_run_outputs
    from omnijax.text.representatives import write_text_representatives

    paths = write_run_outputs(workdir, est, title=title)
    written = write_text_representatives(workdir, est, tokenizer, per_bin=per_bin)
    if isinstance(written, dict):
        paths.update({os.path.basename(str(p)): str(p) for p in written.values()})
    elif written:
        paths.update({os.path.basename(str(p)): str(p) for p in written})
    paths["vocab.json"] = write_vocab(workdir, tokenizer, est.space.num_categories)
    return paths


def run_metrics(est, record: dict, min_distinct: int, sampling_seconds: float) -> dict:
    """The sampling part of metrics.json: range, ladder, swaps, distinct sequences, the verdict."""
    from experiments.workflows.results import convergence_summary

    distinct = distinct_per_bin(est)
    filled = np.isfinite(est.log_rho)
    return {
        "output_range": {k: v for k, v in record.items() if k != "for"},
        "bin_edges": [float(e) for e in est.bin_edges], "betas": est.betas.tolist(),
        "swap_acceptance": np.asarray(est.diagnostics["swap_acceptance"]).tolist(),
        "round_trips": int(np.asarray(est.diagnostics["round_trips"]).sum()),
        "bins_sampled": int(filled.sum()), "distinct_per_bin": distinct.tolist(),
        "bins_below_min_distinct": [int(b) for b in np.flatnonzero(distinct < min_distinct)],
        "sampling_seconds": round(sampling_seconds, 1), "convergence": convergence_summary(est),
    }


def write_metrics(workdir: str, metrics: dict) -> str:
    path = os.path.join(workdir, "metrics.json")
    write_json(path, metrics)
    return path


@dataclasses.dataclass(frozen=True)
class TextRun:
    """What `range_sample_write` did: the estimate, its range record and checkpoint, the files."""
    est: object
    record: dict
    checkpoint_dir: str
    sampling_seconds: float
    paths: dict
    num_steps: int
    num_groups: int


def range_sample_write(workdir: str, key_record: dict, request: RangeRequest, target, space, *, seed: int,
                       preset: TextPreset, num_steps: int | None, num_groups: int | None, proposal: str,
                       tokenizer, title: str, per_bin: int) -> TextRun:
    """The steps every text experiment takes once its model, target and space are set: the output
    range (ValueError naming the flag when it cannot be had), the main run (num_steps / num_groups
    default to the preset's), the outputs, and the printed verdict."""
    from experiments.workflows.results import print_verdict

    range_key, sample_key = jax.random.split(jax.random.key(seed))
    range_record = {**key_record, **dataclasses.asdict(request), "range_steps": preset.range_steps,
                    "range_groups": preset.range_groups}
    record = output_range(workdir, range_record, request, target, space, key=range_key, preset=preset,
                          proposal=proposal)
    num_steps, num_groups = num_steps or preset.num_steps, num_groups or preset.num_groups
    start = time.perf_counter()
    est, checkpoint_dir = sample(workdir, key_record, target, space, range_edges(record), key=sample_key,
                                 preset=preset, num_steps=num_steps, num_groups=num_groups, proposal=proposal)
    seconds = time.perf_counter() - start
    paths = write_outputs(workdir, est, tokenizer, title=title, per_bin=per_bin)
    print_verdict(est)
    return TextRun(est, record, checkpoint_dir, seconds, paths, num_steps, num_groups)


def finish(workdir: str, run: TextRun, metrics: dict, *, started: float, min_distinct: int, preset: str,
           proposal: str, seed: int, bf16: bool) -> None:
    """metrics.json: the experiment's own `metrics`, then what every text run records; then the
    closing line naming the files."""
    metrics = {
        **metrics, "dtype": "bfloat16" if bf16 else "float32", "preset": preset, "num_steps": run.num_steps,
        "num_groups": run.num_groups, "proposal": proposal, "seed": seed, "checkpoint_dir": run.checkpoint_dir,
        "backend": jax.default_backend(), **run_metrics(run.est, run.record, min_distinct, run.sampling_seconds),
        "seconds": round(time.perf_counter() - started, 1),
    }
    paths = dict(run.paths, **{"metrics.json": write_metrics(workdir, metrics)})
    print(f"done in {metrics['seconds']:.0f} s (sampling {run.sampling_seconds:.0f} s); wrote "
          + ", ".join(sorted(paths.values())))


def _saved_for(path: str, record: dict) -> dict | None:
    """The JSON object saved at `path` if it was made for `record` (its "for" entry), else None."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        saved = json.load(f)
    return saved if saved.get("for") == record else None
