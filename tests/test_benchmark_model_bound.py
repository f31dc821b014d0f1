"""benchmarks.model_bound on a tiny run: one well-formed JSON line per variant (the cached GWG step,
then the model's value_and_grad alone) with positive timings and FLOPs and an MFU in (0, 1.5), and
a bad flag refused by name."""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = {"variant", "us_wall_per_chain_step", "us_cpu_per_chain_step", "mfu", "model_flops_per_step",
          "peak_flops_per_s", "chains", "steps"}


def run(*flags):
    return subprocess.run([sys.executable, "-m", "benchmarks.model_bound", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_tiny_run_prints_one_json_line_per_variant():
    done = run("--chains=2", "--steps=2", "--repeats=1")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [r["variant"] for r in lines] == ["cached", "vg_only"]
    for r in lines:
        assert set(r) == FIELDS, set(r) ^ FIELDS
        assert (r["chains"], r["steps"]) == (2, 2)
        for key in ("us_wall_per_chain_step", "us_cpu_per_chain_step", "model_flops_per_step", "peak_flops_per_s"):
            assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])
        assert 0 < r["mfu"] < 1.5, r["mfu"]
    # both variants time the same model against the same peak
    assert lines[0]["model_flops_per_step"] == lines[1]["model_flops_per_step"]
    assert lines[0]["peak_flops_per_s"] == lines[1]["peak_flops_per_s"]


def test_bad_flag_is_named():
    done = run("--chains=0")
    assert done.returncode != 0 and "--chains must be >= 1, got 0" in done.stderr.splitlines()[-1]
