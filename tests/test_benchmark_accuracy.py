"""benchmarks.accuracy: its exact answers, its error measure, its search and its runners.

The exact ln rho of the harness (convolutions, transfer matrix) is checked against brute-force
enumeration of the model's own JAX outputs; one real search step on a 12-bit space has its
reported error recomputed here from that enumeration; the subprocess runner gives the same
numbers as an in-process call, and runs an exported commit's omnijax, not the working tree's.
"""

import itertools
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import accuracy
from benchmarks import accuracy_spaces as spaces

# Wang-Landau with a small budget: the cheapest real estimate (a few CPU seconds).
TINY_REQUEST = {"space": "bits12", "space_seed": 0, "method": "wang_landau", "seed": 3,
                "options": {"num_steps": 2_000}}


def enumerated_log_rho(problem, edges):
    """ln rho per bin from the model's JAX outputs on every input of the space."""
    k, n = problem.num_categories, problem.shape[0]
    inputs = np.array(list(itertools.product(range(k), repeat=n)))
    onehot = jax.nn.one_hot(jnp.asarray(inputs), k)
    z = np.asarray(jax.vmap(spaces.output_fn(problem))(onehot), np.float64)
    counts, _ = np.histogram(z, bins=edges)
    with np.errstate(divide="ignore"):
        return np.log(counts / len(inputs))


def minimax_error(log_rho, exact, floor=1e-12):
    counted = exact >= math.log(floor)
    delta = np.asarray(log_rho)[counted] - exact[counted]
    return float(np.ptp(delta) / 2)


@pytest.mark.parametrize("name", ["bits12", "potts7", "blocks2x6", "trap3x4"])
def test_exact_log_rho_matches_enumeration(name):
    problem = spaces.build(name)
    edges = spaces.bin_edges(problem)
    exact = spaces.exact_log_rho(problem, edges)
    enumerated = enumerated_log_rho(problem, edges)
    assert np.isfinite(exact).sum() >= 10
    np.testing.assert_allclose(exact, enumerated, rtol=0, atol=1e-9)
    z = spaces.BIAS + spaces.SCALE * spaces.sums(problem)
    assert np.min(np.abs(z[:, None] - edges[None, :])) >= 0.49 * spaces.SCALE, "an edge sits on an output"


def test_error_measure():
    exact = np.log(np.array([1e-20, 1e-6, 1e-3, 0.5, 0.499]))
    estimate = exact + np.array([5.0, 0.3, -0.1, 0.1, 0.2])  # bin 0 is below the floor: not counted
    errors = accuracy.log_rho_errors(estimate, exact, 1e-12)
    assert errors["counted_bins"] == 4
    assert errors["error_minimax"] == pytest.approx(0.2)       # (0.3 - (-0.1)) / 2
    assert errors["error_mean"] == pytest.approx(0.125 + 0.1)  # mean error 0.125, worst bin -0.1
    assert errors["error_none"] == pytest.approx(0.3)
    shifted = accuracy.log_rho_errors(estimate + 7.0, exact, 1e-12)
    assert shifted["error_minimax"] == pytest.approx(0.2) and shifted["error_none"] == pytest.approx(7.3)
    estimate[2] = -np.inf  # a counted bin left empty
    assert accuracy.log_rho_errors(estimate, exact, 1e-12)["error_minimax"] == math.inf


def test_budgets_double_and_stop_at_the_cap():
    assert accuracy.budgets(250, 2.0, 4_000) == [250, 500, 1_000, 2_000, 4_000]
    assert accuracy.budgets(250, 2.0, 3_999) == [250, 500, 1_000, 2_000]


@pytest.fixture(scope="module")
def searched():
    """One real search step (in process) on bits12, and the enumerated truth."""
    problem = spaces.build("bits12")
    edges = spaces.bin_edges(problem)
    search = accuracy.Search("bits12", "wang_landau", "new", 0, [2_000, 4_000])
    ran = accuracy.advance(search, lambda request, timeout_s: accuracy.run_in_process(request),
                           spaces.exact_log_rho(problem, edges), seed=TINY_REQUEST["seed"], cap_s=600,
                           rho_floor=1e-12, shift="minimax", max_error=0.1)
    return ran, search, enumerated_log_rho(problem, edges)


def test_search_step_reports_the_error_of_its_estimate(searched):
    ran, search, truth = searched
    assert ran and len(search.runs) == 1
    run = search.runs[0]
    assert run["error"] is None and run["num_steps"] == 2_000
    assert run["error_minimax"] == pytest.approx(minimax_error(run["log_rho"], truth), abs=1e-9)
    assert run["met"] == (run["error_minimax"] <= 0.1)
    assert search.status == ("reached" if run["met"] else "running")
    assert run["error_minimax"] < 1.0, "a 2,000-step estimate on 4,096 inputs is off by a factor e"
    assert run["wall_s"] > 0 and run["cpu_s"] > 0
    summary = accuracy.search_summary(search, "minimax")
    assert summary["max_error"] == run["error_minimax"] and summary["runs"] == 1


def test_subprocess_runner_matches_in_process_call(searched, tmp_path):
    here = searched[1].runs[0]
    assert accuracy.make_request("bits12", "wang_landau", TINY_REQUEST["seed"], 2_000) == TINY_REQUEST
    there = accuracy.run_in_subprocess(accuracy.REPO, TINY_REQUEST, timeout_s=300, label="test",
                                       log_path=tmp_path / "worker.log")
    assert "error" not in there, (there, (tmp_path / "worker.log").read_text())
    assert there["omnijax_file"] == here["omnijax_file"]
    np.testing.assert_array_equal(there["log_rho"], here["log_rho"])
    assert there["process_wall_s"] >= there["wall_s"] and there["process_cpu_s"] > 0


def test_exported_commit_is_the_code_a_worker_imports(tmp_path):
    root = accuracy.export_commit("HEAD", tmp_path / "export", "baseline")
    env = accuracy.worker_env(root)
    out = subprocess.run([sys.executable, "-c", "import omnijax; print(omnijax.__file__)"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(root / "omnijax" / "__init__.py")
    with pytest.raises(ValueError, match="--baseline"):
        accuracy.export_commit("no-such-commit-xyz", tmp_path / "bad", "baseline")


def test_bad_flag_is_named():
    out = subprocess.run([sys.executable, "-m", "benchmarks.accuracy", "--methods=pt,annealing"],
                         cwd=accuracy.REPO, capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1]  # absl prints the usage (which names every flag) first
    assert out.returncode != 0 and "--methods" in last and "annealing" in last, out.stderr


def test_warm_cache_gives_the_cold_answer(searched, tmp_path):
    # --compile_cache=warm: the warm-up call (another seed) fills the version's cache, and the
    # timed call then loads programs from it; a loaded program must give the same numbers.
    cold = searched[1].runs[0]
    cache = accuracy.fresh_cache_dir(tmp_path, "new")
    warmup = accuracy.warmup_request(TINY_REQUEST)
    assert warmup["seed"] != TINY_REQUEST["seed"] and {**warmup, "seed": TINY_REQUEST["seed"]} == TINY_REQUEST
    log = tmp_path / "worker.log"
    first = accuracy.run_in_subprocess(accuracy.REPO, warmup, timeout_s=300, label="warm-up", log_path=log,
                                       cache_dir=cache)
    assert "error" not in first, log.read_text()
    assert any(cache.iterdir()), "the warm-up call stored no compiled program"
    warm = accuracy.run_in_subprocess(accuracy.REPO, TINY_REQUEST, timeout_s=300, label="warm", log_path=log,
                                      cache_dir=cache)
    assert "error" not in warm, log.read_text()
    np.testing.assert_array_equal(warm["log_rho"], cold["log_rho"])
    env = accuracy.worker_env(accuracy.REPO, cache)
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(cache) and env["JAX_ENABLE_COMPILATION_CACHE"] == "true"
    assert accuracy.worker_env(accuracy.REPO)["JAX_ENABLE_COMPILATION_CACHE"] == "false"
