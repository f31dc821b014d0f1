"""One timed `oj.estimate_output_distribution` call for `python -m benchmarks.accuracy`.

    python benchmarks/accuracy_worker.py REQUEST.json RESULT.json

Run as a script with PYTHONPATH set to the code under test (an export of a commit, or the
working tree): the script's own directory supplies `accuracy_spaces`, PYTHONPATH supplies
`omnijax`, so the same worker times either version. Uses only the public API
(oj.InputSpace, oj.estimate_output_distribution, est.log_rho, est.diagnostics, est.betas).

A request is {"space": name, "space_seed": int, "method": "pt"|"wang_landau", "seed": int,
"options": {keyword: value}}; the result holds ln rho per bin, the wall and process CPU time
of the call alone (compilation included, imports not) and a few diagnostics.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

if __package__ in (None, ""):
    import accuracy_spaces as spaces  # run as a script: this file's directory is sys.path[0]
else:
    from benchmarks import accuracy_spaces as spaces


def run_request(request: dict) -> dict:
    """Build the request's problem, time one estimate on it, return the result dict."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    import jax

    import omnijax as oj

    problem = spaces.build(request["space"], request.get("space_seed", 0))
    edges = spaces.bin_edges(problem)
    space = oj.InputSpace(shape=problem.shape, num_categories=problem.num_categories)
    fn = spaces.output_fn(problem)
    import_wall, import_cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    wall, cpu = time.perf_counter(), time.process_time()
    est = oj.estimate_output_distribution(fn, space, edges, key=jax.random.key(request["seed"]),
                                          method=request["method"], progress=False,
                                          **request.get("options", {}))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"log_rho": [float(v) for v in est.log_rho], "wall_s": wall, "cpu_s": cpu,
            "setup_wall_s": import_wall, "setup_cpu_s": import_cpu,
            "omnijax_file": os.path.abspath(oj.__file__), **summarize_diagnostics(est)}


def summarize_diagnostics(est) -> dict:
    """converged, warnings, rungs, round trips and weakest swap, where the estimate has them."""
    diag = est.diagnostics or {}
    betas = getattr(est, "betas", None)
    trips = diag.get("round_trips_total")
    if trips is None and diag.get("round_trips") is not None:
        trips = int(sum(int(t) for t in _flat(diag["round_trips"])))
    weakest = diag.get("weakest_swap_acceptance")
    return {"converged": None if "converged" not in diag else bool(diag["converged"]),
            "num_warnings": len(diag.get("warnings", []) or []),
            "warnings": [str(w) for w in (diag.get("warnings", []) or [])][:5],
            "rungs": None if betas is None else int(len(betas)),
            "round_trips": None if trips is None else int(trips),
            "weakest_swap": None if weakest is None or not math.isfinite(float(weakest)) else float(weakest),
            "num_steps_run": _int_or_none(diag.get("num_steps"))}


def _flat(values):
    try:
        import numpy as np
        return np.asarray(values).reshape(-1).tolist()
    except Exception:  # noqa: BLE001 - a diagnostic of unexpected shape is simply not reported
        return []


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: accuracy_worker.py REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        request = json.load(f)
    try:
        result = run_request(request)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which records the failure
        result = {"error": f"{type(error).__name__}: {error}"}
    with open(argv[2], "w") as f:
        json.dump(result, f)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
