"""Time to an accurate answer: wall and CPU time until ln rho is right to 0.1 everywhere.

    python -m benchmarks.accuracy                                  # baseline bececa4 vs working tree
    python -m benchmarks.accuracy --versions=baseline --cap_s=240  # today's numbers only
    python -m benchmarks.accuracy --spaces=bits64 --methods=pt,wang_landau --trials=3

On exactly solvable spaces (`benchmarks/accuracy_spaces.py`: bits<N>, a sum of
integer-weighted bits; potts<L>, a 3-state chain solved by a transfer matrix) each version
of omnijax runs `oj.estimate_output_distribution` with its DEFAULT settings except for a
growing budget: num_steps = start_steps * growth^k (and, with --pilot_fraction, the pt
pilot's pilot_steps with it), until

    max over bins with exact rho >= --rho_floor of |ln rho_est - ln rho_exact - c| <= --max_error.

The constant c (--shift): "minimax" (default) is the one that minimises that maximum, the
midpoint of the errors' range, so the criterion asks for half the spread of the errors;
"mean" is the mean error over the counted bins (as the project's tests remove it); "none"
asks for absolute ln rho. All three are written for every run. A counted bin left empty
(-inf) is an infinite error. The reported time of a search is that of its FIRST run meeting
the criterion (wall and process CPU of the estimate call alone, compilation included); the
search's total is the sum over all its runs. A search stops "not reached within cap" when
its summed wall time would pass --cap_s (a run is not started when less of the cap is left
than the previous, smaller, run took) or num_steps would pass --max_steps.

Every run is a fresh subprocess (`benchmarks/accuracy_worker.py`) with PYTHONPATH set to the
code of its version and JAX's persistent compilation cache off (--compile_cache=warm: on, one
cache per version, each timed call after an untimed one with another seed): the baseline from
`git archive --baseline`, the new code from the working tree (or `git archive --new`).
Versions alternate within every budget level, and the order flips per level, space and trial,
so the two share the machine's load. With --default_call each version also runs once with
no budget at all (the call as shipped). Results: runs.csv (every run), searches.csv (one row
per search), accuracy.json (everything, with the flags) and accuracy.md under --out.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from absl import app, flags

from benchmarks import accuracy_spaces as spaces
from experiments.workflows.compile_cache import MIN_COMPILE_SECONDS

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("accuracy_worker.py")
METHODS = ("pt", "wang_landau")
SHIFTS = ("minimax", "mean", "none")
VERSIONS = ("baseline", "new")
HEARTBEAT_S = 10.0
CACHE_MODES = ("off", "warm")
WARMUP_SEED_OFFSET = 10_000  # the warm-up call's seed: seed + this (another trajectory, the same shapes)

FLAGS = flags.FLAGS
flags.DEFINE_list("spaces", ["bits64", "bits100", "potts40", "blocks8x12"],
                  "Spaces (benchmarks/accuracy_spaces.py): bits<N>, potts<L>, blocks<B>x<n>.")
flags.DEFINE_list("methods", ["pt"], "Methods: pt, wang_landau.")
flags.DEFINE_list("versions", list(VERSIONS), "Which versions to run: baseline, new.")
flags.DEFINE_string("baseline", "bececa4", "Commit whose defaults are the baseline (exported with git archive).")
flags.DEFINE_string("new", "", "Commit of the new code; empty: the working tree this file lives in.")
flags.DEFINE_integer("trials", 1, "Independent searches per space, method and version (seed + trial).")
flags.DEFINE_integer("seed", 0, "Seed of the first trial's key.")
flags.DEFINE_integer("space_seed", 0, "Seed of the spaces' random weights.")
flags.DEFINE_integer("start_steps", 250, "num_steps of a search's first run.")
flags.DEFINE_float("growth", 2.0, "Factor between a search's successive num_steps (> 1).")
flags.DEFINE_integer("max_steps", 256_000, "Largest num_steps a search tries.")
flags.DEFINE_float("cap_s", 300.0, "Wall seconds a search (or the default call) may spend in all.")
flags.DEFINE_float("max_error", 0.1, "Accuracy criterion: max |delta ln rho| over the counted bins.")
flags.DEFINE_float("rho_floor", 1e-12, "Bins whose exact rho is below this are not counted.")
flags.DEFINE_enum("shift", "minimax", list(SHIFTS), "Overall constant removed before the criterion.")
flags.DEFINE_float("pilot_fraction", 0.0, "pt only: pilot_steps = this * num_steps (0: the pilot's default).")
flags.DEFINE_bool("default_call", False, "Also run each version once with no budget (its defaults as shipped).")
flags.DEFINE_string("out", "runs/accuracy", "Output directory.")
flags.DEFINE_enum("compile_cache", "off", list(CACHE_MODES),
                  "off: every timed call compiles from scratch (a first call). warm: each version has its own JAX "
                  "persistent compilation cache (--out/compile_cache/<version>, emptied first), and every timed call "
                  "follows an untimed call of the same request with another seed, as for a user of the experiment "
                  "scripts (which turn the cache on) who has run those shapes before.")


# ---------------------------------------------------------------- the accuracy criterion

def log_rho_errors(log_rho, exact, rho_floor: float = 1e-12) -> dict:
    """Max |error| of ln rho over the bins with exact rho >= rho_floor, per way of removing
    the overall constant (minimax, mean, none); inf when a counted bin is empty or NaN."""
    log_rho, exact = np.asarray(log_rho, np.float64), np.asarray(exact, np.float64)
    counted = exact >= math.log(rho_floor)
    delta = log_rho[counted] - exact[counted]
    spurious = int(np.sum(np.isfinite(log_rho) & ~np.isfinite(exact)))
    result = {"counted_bins": int(counted.sum()), "missing_bins": int(np.sum(~np.isfinite(delta))),
              "spurious_bins": spurious}
    if not np.all(np.isfinite(delta)) or delta.size == 0:
        return {**result, "error_minimax": math.inf, "error_mean": math.inf, "error_none": math.inf}
    return {**result, "error_minimax": float((delta.max() - delta.min()) / 2),
            "error_mean": float(np.abs(delta - delta.mean()).max()),
            "error_none": float(np.abs(delta).max())}


def budgets(start_steps: int, growth: float, max_steps: int) -> list[int]:
    """num_steps of a search: start * growth^k, rounded to a multiple of 10, up to max_steps."""
    steps, out = float(start_steps), []
    while round(steps / 10) * 10 <= max_steps:
        value = max(10, int(round(steps / 10)) * 10)
        if not out or value > out[-1]:
            out.append(value)
        steps *= growth
    return out


# ---------------------------------------------------------------- running one estimate

def export_commit(commit: str, dest: Path, flag: str) -> Path:
    """git archive `commit` of this repository into dest; ValueError naming `flag` if unknown."""
    resolved = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
                              capture_output=True, text=True)
    if resolved.returncode != 0 or not commit:
        raise ValueError(f"--{flag}={commit!r} is not a commit of {REPO}")
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", resolved.stdout.strip()], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")
    return dest


def worker_env(code_root: Path, cache_dir: Path | None = None) -> dict:
    """The environment of a worker: PYTHONPATH = code_root only; JAX's persistent compilation
    cache off, or in `cache_dir` with the experiment scripts' threshold."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "PYTHONPATH") and not k.startswith("JAX_PERSISTENT_CACHE_")}
    env["PYTHONPATH"] = str(code_root)
    if cache_dir is None:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    else:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "true"
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
        # As the experiment scripts: programs that compile faster than this are recompiled.
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(MIN_COMPILE_SECONDS)
    return env


def run_in_subprocess(code_root: Path, request: dict, timeout_s: float, label: str = "",
                      log_path: Path | None = None, clock: Callable[[], float] = time.perf_counter,
                      cache_dir: Path | None = None) -> dict:
    """Run one request in a fresh worker process on code_root (with JAX's persistent compilation
    cache in `cache_dir`, else none); print a line every HEARTBEAT_S.

    Adds process_wall_s / process_cpu_s (the whole child: start, imports, call) to the
    worker's result; on a timeout or crash returns {"error": ...} with the same two."""
    with tempfile.TemporaryDirectory(prefix="omnijax-accuracy-") as tmp:
        request_path, result_path = Path(tmp, "request.json"), Path(tmp, "result.json")
        request_path.write_text(json.dumps(request))
        log = open(log_path, "a") if log_path else subprocess.DEVNULL
        before = _children_cpu()
        start = clock()
        proc = subprocess.Popen([sys.executable, str(WORKER), str(request_path), str(result_path)],
                                env=worker_env(code_root, cache_dir), cwd=tmp, stdout=log, stderr=log)
        timed_out = _wait(proc, start, timeout_s, label, clock)
        wall, cpu = clock() - start, _children_cpu() - before
        if log_path:
            log.close()
        if timed_out:
            return {"error": f"timed out after {timeout_s:.0f} s", "timed_out": True,
                    "process_wall_s": wall, "process_cpu_s": cpu}
        if not result_path.exists():
            return {"error": f"worker exited {proc.returncode} without a result (see {log_path})",
                    "process_wall_s": wall, "process_cpu_s": cpu}
        result = json.loads(result_path.read_text())
    return {**result, "process_wall_s": wall, "process_cpu_s": cpu}


def _wait(proc, start: float, timeout_s: float, label: str, clock) -> bool:
    """Wait for proc, printing progress; kill it (its id only) past timeout_s. True if killed."""
    while True:
        try:
            proc.wait(timeout=HEARTBEAT_S)
            return False
        except subprocess.TimeoutExpired:
            elapsed = clock() - start
            if elapsed >= timeout_s:
                proc.kill()
                proc.wait()
                print(f"  {label}: killed at {elapsed:.0f} s (cap)", flush=True)
                return True
            print(f"  {label}: running, {elapsed:.0f} s", flush=True)


def _children_cpu() -> float:
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warmup_request(request: dict) -> dict:
    """The untimed call before a timed one under --compile_cache=warm: the same request with
    another seed (the same shapes, another trajectory, so another ladder and other sample counts)."""
    return {**request, "seed": request["seed"] + WARMUP_SEED_OFFSET}


def fresh_cache_dir(out: Path, version: str) -> Path:
    """An empty compilation-cache directory for `version` under out/compile_cache/."""
    path = out / "compile_cache" / version
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run_in_process(request: dict) -> dict:
    """The same request in this process (the omnijax this process imports); for tests."""
    from benchmarks import accuracy_worker
    return accuracy_worker.run_request(request)


# ---------------------------------------------------------------- searches

@dataclasses.dataclass
class Search:
    """One search for the smallest budget that meets the criterion."""

    space: str
    method: str
    version: str
    trial: int
    steps: list[int]
    status: str = "running"       # running | reached | not reached within cap | failed
    runs: list[dict] = dataclasses.field(default_factory=list)
    spent_wall_s: float = 0.0

    @property
    def first_met(self) -> dict | None:
        return next((r for r in self.runs if r.get("met")), None)


def make_request(space: str, method: str, seed: int, num_steps: int | None, space_seed: int = 0,
                 pilot_fraction: float = 0.0) -> dict:
    """A worker request; num_steps None leaves every setting at the method's default."""
    options = {}
    if num_steps is not None:
        options["num_steps"] = int(num_steps)
        if method == "pt" and pilot_fraction > 0:
            options["pilot_steps"] = max(10, int(round(pilot_fraction * num_steps / 10)) * 10)
    return {"space": space, "space_seed": space_seed, "method": method, "seed": seed, "options": options}


def score_run(result: dict, exact: np.ndarray, rho_floor: float, shift: str, max_error: float) -> dict:
    """The result with its errors and whether it meets the criterion (False on any error)."""
    if "error" in result:
        return {**result, "met": False}
    errors = log_rho_errors(result["log_rho"], exact, rho_floor)
    return {**result, **errors, "error": None, "met": bool(errors[f"error_{shift}"] <= max_error)}


def advance(search: Search, runner: Callable[[dict, float], dict], exact: np.ndarray, *, seed: int,
            cap_s: float, rho_floor: float, shift: str, max_error: float, space_seed: int = 0,
            pilot_fraction: float = 0.0) -> bool:
    """Run the search's next budget (if it is still running) and update its status; True if it ran."""
    if search.status != "running":
        return False
    level = len(search.runs)
    left = cap_s - search.spent_wall_s
    # A bigger budget takes at least as long as the last run: one that cannot finish is not started.
    last = float(search.runs[-1].get("process_wall_s") or 0.0) if search.runs else 0.0
    if level >= len(search.steps) or left <= max(last, 0.0) or left <= 0:
        search.status = "not reached within cap"
        return False
    request = make_request(search.space, search.method, seed, search.steps[level], space_seed, pilot_fraction)
    result = score_run(runner(request, left), exact, rho_floor, shift, max_error)
    result["num_steps"] = search.steps[level]
    search.runs.append(result)
    search.spent_wall_s += float(result.get("process_wall_s", result.get("wall_s", 0.0)))
    if result["met"]:
        search.status = "reached"
    elif result.get("timed_out"):
        search.status = "not reached within cap"
    elif result["error"]:
        search.status = "failed"
    return True


def search_summary(search: Search, shift: str) -> dict:
    """One row: the first run meeting the criterion and the totals up to it; for a search that
    did not reach it, no time, and num_steps / errors of its largest budget that finished."""
    met = search.first_met
    upto = search.runs[: search.runs.index(met) + 1] if met else search.runs
    completed = [r for r in search.runs if not r.get("error")]
    shown = met or (completed[-1] if completed else {})  # unreached: the largest budget that finished
    return {"space": search.space, "method": search.method, "version": search.version, "trial": search.trial,
            "status": search.status, "num_steps": shown.get("num_steps"),
            "wall_s": shown.get("wall_s") if met else None, "cpu_s": shown.get("cpu_s") if met else None,
            "search_wall_s": sum(r.get("wall_s") or 0.0 for r in upto),
            "search_cpu_s": sum(r.get("cpu_s") or 0.0 for r in upto),
            "search_process_wall_s": sum(r.get("process_wall_s") or 0.0 for r in upto),
            "search_process_cpu_s": sum(r.get("process_cpu_s") or 0.0 for r in upto),
            "runs": len(upto), "max_error": shown.get(f"error_{shift}"),
            "error_minimax": shown.get("error_minimax"), "error_mean": shown.get("error_mean"),
            "error_none": shown.get("error_none"), "converged": shown.get("converged"),
            "rungs": shown.get("rungs"), "round_trips": shown.get("round_trips"),
            "weakest_swap": shown.get("weakest_swap"), "last_error": shown.get("error")}


def interleaved(spaces_: list[str], methods: list[str], versions: list[str], runner_for: dict, *,
                trials: int, seed: int, steps: list[int], cap_s: float, rho_floor: float, shift: str,
                max_error: float, space_seed: int = 0, pilot_fraction: float = 0.0,
                default_call: bool = False) -> tuple[list[Search], list[dict]]:
    """Every search, the versions alternating at each budget level (order flipped per level,
    space and trial); with default_call, first one no-budget call per version."""
    searches, defaults = [], []
    for trial in range(trials):
        for s_index, space in enumerate(spaces_):
            problem = spaces.build(space, space_seed)
            exact = spaces.exact_log_rho(problem, spaces.bin_edges(problem))
            for method in methods:
                group = {v: Search(space, method, v, trial, steps) for v in versions}
                searches.extend(group.values())
                flip = (trial + s_index) % 2
                if default_call:
                    for v in _order(versions, flip):
                        print(f"{space} {method} {v} trial {trial}: default call", flush=True)
                        request = make_request(space, method, seed + trial, None, space_seed)
                        row = score_run(runner_for[v](request, cap_s), exact, rho_floor, shift, max_error)
                        defaults.append({**row, "space": space, "method": method, "version": v, "trial": trial})
                        _print_run(defaults[-1], shift)
                level = 0
                while any(g.status == "running" for g in group.values()):
                    for v in _order(versions, (flip + level) % 2):
                        g = group[v]
                        if g.status != "running":
                            continue
                        if len(g.runs) < len(steps):
                            print(f"{space} {method} {v} trial {trial}: num_steps={steps[len(g.runs)]}", flush=True)
                        ran = advance(g, runner_for[v], exact, seed=seed + trial, cap_s=cap_s, rho_floor=rho_floor,
                                shift=shift, max_error=max_error, space_seed=space_seed,
                                pilot_fraction=pilot_fraction)
                        if ran:
                            _print_run(g.runs[-1], shift, g.status)
                        elif g.status != "running":
                            print(f"{space} {method} {v} trial {trial}: {g.status}", flush=True)
                    level += 1
    return searches, defaults


def _order(versions: list[str], flip: int) -> list[str]:
    return list(reversed(versions)) if flip else list(versions)


def _print_run(run: dict, shift: str, status: str = "") -> None:
    if run.get("error"):
        print(f"  -> {run['error']} {status}", flush=True)
        return
    print(f"  -> wall {run['wall_s']:.1f} s, cpu {run['cpu_s']:.1f} s, max |d ln rho| ({shift}) "
          f"{run[f'error_{shift}']:.3f}, converged={run.get('converged')}, rungs={run.get('rungs')}, "
          f"round trips={run.get('round_trips')} {status}", flush=True)


# ---------------------------------------------------------------- output

RUN_COLUMNS = ["space", "method", "version", "trial", "num_steps", "wall_s", "cpu_s", "process_wall_s",
               "process_cpu_s", "error_minimax", "error_mean", "error_none", "met", "counted_bins",
               "missing_bins", "spurious_bins", "converged", "num_warnings", "rungs", "round_trips",
               "weakest_swap", "loadavg_1m", "error"]


def run_rows(searches: list[Search], defaults: list[dict]) -> list[dict]:
    """Every run as a flat row (default calls with num_steps 'default')."""
    rows = [{**r, "space": s.space, "method": s.method, "version": s.version, "trial": s.trial}
            for s in searches for r in s.runs]
    rows += [{**d, "num_steps": "default"} for d in defaults]
    return [{c: row.get(c) for c in RUN_COLUMNS} for row in rows]


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows([{k: _cell(v) for k, v in row.items()} for row in rows])


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else value


def markdown(summaries: list[dict], defaults: list[dict], shift: str, max_error: float) -> str:
    """The searches as a markdown table, the default calls, and baseline/new ratios."""
    head = (f"| space | method | version | trial | reached | num_steps | wall s | CPU s | search wall s | "
            f"search CPU s | max abs d ln rho ({shift}) | converged | rungs | round trips |\n"
            + "|" + "---|" * 14 + "\n")
    lines = [head]
    for s in summaries:
        reached = "yes" if s["status"] == "reached" else f"**{s['status']}** (largest finished:)"
        lines.append(f"| {s['space']} | {s['method']} | {s['version']} | {s['trial']} | {reached} | "
                     f"{s['num_steps']} | {_fmt(s['wall_s'])} | {_fmt(s['cpu_s'])} | {_fmt(s['search_wall_s'])} | "
                     f"{_fmt(s['search_cpu_s'])} | {_fmt(s['max_error'], 3)} | {s['converged']} | {s['rungs']} | "
                     f"{s['round_trips']} |\n")
    text = f"Criterion: max abs d ln rho <= {max_error} ({shift} constant removed).\n\n" + "".join(lines)
    if defaults:
        text += ("\nDefault call (no budget given):\n\n| space | method | version | trial | wall s | CPU s | "
                 f"max abs d ln rho ({shift}) | meets | converged | rungs | round trips |\n" + "|" + "---|" * 11 + "\n")
        for d in defaults:
            text += (f"| {d['space']} | {d['method']} | {d['version']} | {d['trial']} | {_fmt(d.get('wall_s'))} | "
                     f"{_fmt(d.get('cpu_s'))} | {_fmt(d.get(f'error_{shift}'), 3)} | {d.get('met')} | "
                     f"{d.get('converged')} | {d.get('rungs')} | {d.get('round_trips')} |\n")
    return text + _ratios(summaries)


def _ratios(summaries: list[dict]) -> str:
    """Median baseline/new time ratio per space and method where both versions reached."""
    keys = sorted({(s["space"], s["method"]) for s in summaries})
    lines = []
    for space, method in keys:
        times = {v: [(s["wall_s"], s["cpu_s"]) for s in summaries if (s["space"], s["method"], s["version"])
                     == (space, method, v) and s["status"] == "reached"] for v in VERSIONS}
        if times["baseline"] and times["new"]:
            b, n = np.median(times["baseline"], axis=0), np.median(times["new"], axis=0)
            lines.append(f"| {space} | {method} | {b[0] / n[0]:.2f} | {b[1] / n[1]:.2f} |\n")
    if not lines:
        return ""
    return ("\nBaseline time / new time (median over trials that reached):\n\n| space | method | wall | CPU |\n"
            "|---|---|---|---|\n" + "".join(lines))


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return "inf" if isinstance(value, float) and math.isinf(value) else f"{value:.{digits}f}"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------- command line

def check_flags() -> None:
    """ValueError naming the flag for any value the harness cannot use."""
    for name in FLAGS.spaces:
        try:
            spaces.parse_name(name)
        except ValueError as error:
            raise ValueError(f"--spaces: {error}") from None
    for flag, values, allowed in (("methods", FLAGS.methods, METHODS), ("versions", FLAGS.versions, VERSIONS)):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise ValueError(f"--{flag}: {bad or 'empty'} not in {list(allowed)}")
    positive = {"trials": FLAGS.trials, "start_steps": FLAGS.start_steps, "max_steps": FLAGS.max_steps,
                "cap_s": FLAGS.cap_s, "max_error": FLAGS.max_error, "rho_floor": FLAGS.rho_floor}
    for flag, value in positive.items():
        if not value > 0:
            raise ValueError(f"--{flag} must be > 0, got {value}")
    if not FLAGS.growth > 1:
        raise ValueError(f"--growth must be > 1, got {FLAGS.growth}")
    if FLAGS.max_steps < FLAGS.start_steps:
        raise ValueError(f"--max_steps ({FLAGS.max_steps}) must be >= --start_steps ({FLAGS.start_steps})")
    if FLAGS.pilot_fraction < 0:
        raise ValueError(f"--pilot_fraction must be >= 0, got {FLAGS.pilot_fraction}")


def code_roots(out: Path) -> dict[str, Path]:
    """Where each version's code lives: exports under out/code/, or this working tree."""
    roots = {}
    if "baseline" in FLAGS.versions:
        roots["baseline"] = export_commit(FLAGS.baseline, out / "code" / "baseline", "baseline")
    if "new" in FLAGS.versions:
        roots["new"] = export_commit(FLAGS.new, out / "code" / "new", "new") if FLAGS.new else REPO
    return roots


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        check_flags()
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        roots = code_roots(out)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    steps = budgets(FLAGS.start_steps, FLAGS.growth, FLAGS.max_steps)
    for version, root in roots.items():
        print(f"{version}: {root}", flush=True)

    caches = {v: fresh_cache_dir(out, v) if FLAGS.compile_cache == "warm" else None for v in roots}

    def runner(version):
        def run(request, timeout_s):
            label = f"{request['space']} {request['method']} {version}"
            log = out / f"worker_{version}.log"
            warmup = {}
            if caches[version] is not None:
                warm = run_in_subprocess(roots[version], warmup_request(request), timeout_s, label + " (warm-up)",
                                         log, cache_dir=caches[version])
                warmup = {"warmup_process_wall_s": warm.get("process_wall_s"), "warmup_error": warm.get("error")}
            load = os.getloadavg()[0]
            return {**run_in_subprocess(roots[version], request, timeout_s, label, log, cache_dir=caches[version]),
                    "loadavg_1m": load, **warmup}
        return run

    started = time.perf_counter()
    searches, defaults = interleaved(
        FLAGS.spaces, FLAGS.methods, FLAGS.versions, {v: runner(v) for v in roots}, trials=FLAGS.trials,
        seed=FLAGS.seed, steps=steps, cap_s=FLAGS.cap_s, rho_floor=FLAGS.rho_floor, shift=FLAGS.shift,
        max_error=FLAGS.max_error, space_seed=FLAGS.space_seed, pilot_fraction=FLAGS.pilot_fraction,
        default_call=FLAGS.default_call)
    summaries = [search_summary(s, FLAGS.shift) for s in searches]
    write_csv(out / "runs.csv", run_rows(searches, defaults))
    write_csv(out / "searches.csv", summaries)
    table = (f"Compile cache: {FLAGS.compile_cache}.\n"
             + markdown(summaries, defaults, FLAGS.shift, FLAGS.max_error))
    (out / "accuracy.md").write_text(table)
    config = {name: FLAGS[name].value for name in ("spaces", "methods", "versions", "baseline", "new", "trials",
                                                   "seed", "space_seed", "start_steps", "growth", "max_steps",
                                                   "cap_s", "max_error", "rho_floor", "shift", "pilot_fraction",
                                                   "default_call", "compile_cache")}
    record = {"config": config, "code_roots": {k: str(v) for k, v in roots.items()}, "budgets": steps,
              "total_wall_s": time.perf_counter() - started, "cpu_count": os.cpu_count(),
              "searches": summaries, "default_calls": defaults,
              "runs": [{**r, "space": s.space, "method": s.method, "version": s.version, "trial": s.trial}
                       for s in searches for r in s.runs]}
    (out / "accuracy.json").write_text(json.dumps(_json_safe(record), indent=1))
    print("\n" + table, flush=True)
    print(f"written: {out}/runs.csv, searches.csv, accuracy.json, accuracy.md", flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
