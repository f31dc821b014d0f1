"""benchmarks.calibration's null check of the verdict's group-agreement and drift tests."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import calibration
from omnijax.sampling import diagnostics


def _rows(p_values, *, space="s", seed=0, z=0.5, tested=True, n_effective=50.0, n_samples=100):
    return [{"space": space, "seed": seed, "bin": i, "z": z, "tested": tested, "agreement_p": float(p),
             "drift_p": float(p), "agreement_f": 1.0, "n_effective": n_effective, "n_samples": n_samples}
            for i, p in enumerate(p_values)]


def _run(space="s", seed=0, agreement_flagged=False, drift_flagged=False):
    return {"space": space, "seed": seed, "agreement_flagged": agreement_flagged, "drift_flagged": drift_flagged,
            "num_groups": 8, "num_batches": 4}


def test_uniform_p_values_give_the_nominal_fractions():
    n = 10_000
    rows = _rows((np.arange(n) + 0.5) / n)
    check = calibration.null_check(rows, [_run()])
    a = check["all"]["agreement"]
    assert a["bins"] == n and a["nan"] == 0
    assert a["below_0.1"] == pytest.approx(0.1, abs=1e-3)
    assert a["below_0.01"] == pytest.approx(0.01, abs=1e-4)
    assert a["below_0.001"] == pytest.approx(0.001, abs=1e-4)
    assert a["ks_d"] <= 1.0 / n + 1e-12
    assert check["all"]["drift"]["below_0.01"] == pytest.approx(0.01, abs=1e-4)
    assert check["null_mean_f"] == {"G=8,K=4": pytest.approx(24 / 22)}


def test_tiny_p_values_give_fraction_one_and_only_accurate_tested_bins_count():
    rows = (_rows([1e-4] * 50, seed=0)
            + _rows([0.5] * 30, seed=1, z=3.5)          # inaccurate run: left out entirely
            + _rows([0.5] * 20, seed=2, tested=False))  # untested bins: left out
    runs = [_run(seed=0, agreement_flagged=True), _run(seed=1, agreement_flagged=True), _run(seed=2)]
    check = calibration.null_check(rows, runs)
    assert check["accurate_runs"] == 2 and check["runs"] == 3
    a = check["all"]["agreement"]
    assert a["bins"] == 50
    for level in ("0.1", "0.01", "0.001"):
        assert a[f"below_{level}"] == 1.0
    assert a["ks_d"] == pytest.approx(1 - 1e-4)
    assert (a["runs"], a["flagged"], a["flag_rate"]) == (2, 1, 0.5)
    lo, hi = a["flag_rate_ci95"]
    assert 0.05 < lo < 0.5 < hi < 0.95
    assert check["all"]["drift"]["flagged"] == 0


def test_accuracy_uses_every_bin_and_nan_z_is_not_accurate():
    rows = _rows([0.5] * 5, seed=0) + _rows([0.5], seed=0, z=-3.01) + _rows([0.5], seed=1, z=float("nan"))
    assert calibration.accurate_runs(rows) == set()
    assert calibration.accurate_runs(_rows([0.5], z=-3.0)) == {("s", 0)}


def test_wilson_interval():
    lo, hi = calibration.wilson(1, 100)
    assert lo == pytest.approx(0.00177, abs=2e-4) and hi == pytest.approx(0.0545, abs=1e-3)
    assert calibration.wilson(0, 50)[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("d1,d2,p", [(7, 24, 0.01 / 20), (15, 48, 0.01), (3, 12, 0.1)])
def test_f_survival_inverts_the_verdicts_quantile(d1, d2, p):
    assert calibration.f_sf(diagnostics.f_upper(d1, d2, p), d1, d2) == pytest.approx(p, rel=2e-3)
    assert calibration.t_two_sided_p(diagnostics.t_two_sided(d1, p), d1) == pytest.approx(p, rel=2e-3)


@pytest.mark.parametrize("scale", [0.999, 1.001])
def test_agreement_flag_matches_the_verdicts_warning(scale):
    groups, walkers, bins = 8, 4, 12
    betas = np.linspace(0.0, 1.0, 5)
    trips = diagnostics.round_trip_report(np.full((groups, walkers), 3))
    swaps = diagnostics.swap_report(np.full((groups, 4), 50), np.full((groups, 4), 100), betas)
    n_samples = np.array([0] + [100] * (bins - 1))
    n_eff = np.array([0.0, 5.0] + [50.0] * (bins - 2))   # bin 1 filled but not tested
    limit = diagnostics.f_upper(groups - 1, groups * 3, diagnostics.FAMILY_ALPHA / (bins - 2))
    agreement = np.full(bins, 1.0)
    agreement[1] = 100.0                                  # untested: must not flag
    agreement[5] = scale * limit
    stats = {"group_agreement": agreement, "drift_sigma": np.zeros(bins), "n_effective": n_eff,
             "num_groups": groups, "num_batches": 4}
    _, warnings, _, _ = diagnostics.pt_verdict(trips, swaps, stats, betas, np.arange(bins + 1.0), n_samples)
    flags = calibration.verdict_flags(stats, n_samples)
    assert flags["num_tested"] == bins - 2
    assert flags["agreement_limit"] == pytest.approx(limit)
    assert flags["agreement_flagged"] == (scale > 1)
    assert flags["agreement_flagged"] == any("disagree" in w for w in warnings)
    assert not flags["drift_flagged"]


def test_tiny_real_run_writes_the_new_columns(tmp_path):
    out = tmp_path / "cal"
    subprocess.run([sys.executable, "-m", "benchmarks.calibration", "--spaces=bits12", "--seeds=1",
                    "--num_steps=300", "--num_groups=4", f"--out={out}"], check=True, timeout=240,
                   capture_output=True, text=True)
    with open(out / "calibration.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows
    for column in ("agreement_f", "agreement_p", "drift_sigma", "drift_p", "n_effective", "tested"):
        assert column in rows[0]
    tested = [r for r in rows if r["tested"] == "True"]
    assert tested
    for r in rows:
        assert (r["tested"] == "True") == (float(r["n_effective"]) >= diagnostics.MIN_EFFECTIVE
                                           and int(r["n_samples"]) > 0)
    for r in tested:
        for column in ("agreement_f", "drift_sigma", "n_effective"):
            assert math.isfinite(float(r[column])), (column, r)
        assert 0.0 <= float(r["agreement_p"]) <= 1.0 and 0.0 <= float(r["drift_p"]) <= 1.0
    summary = json.loads((out / "calibration.json").read_text())
    (run,) = summary["runs"]
    assert isinstance(run["converged"], bool) and isinstance(run["warnings"], list)
    assert run["converged"] == (not run["warnings"])
    assert run["agreement_flagged"] == any("disagree" in w for w in run["warnings"])
    assert (run["num_groups"], run["num_batches"]) == (4, 4)
    check = summary["null_check"]
    accurate = all(abs(float(r["z"])) <= 3 for r in rows)
    assert check["accurate_runs"] == int(accurate)
    assert check["all"]["agreement"]["bins"] == (len(tested) if accurate else 0)
