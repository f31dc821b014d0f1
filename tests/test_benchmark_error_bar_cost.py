"""benchmarks.error_bar_cost on tiny synthetic records: one well-formed JSON line with positive
timings and the sizes asked for."""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*flags):
    return subprocess.run([sys.executable, "-m", "benchmarks.error_bar_cost", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_tiny_run_prints_one_json_line():
    done = run("--records_per_group=8", "--groups=3", "--rungs=5", "--num_bootstrap=3")
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [json.loads(text) for text in done.stdout.splitlines() if text.strip()]
    assert (line["records"], line["groups"], line["rungs"], line["num_bootstrap"]) == (8, 3, 5, 3)
    assert line["samples"] == 8 * 3 * 5
    for key in ("wall_s", "cpu_s", "bootstrap_s", "mean_iterations_per_resample_solve"):
        assert math.isfinite(line[key]) and line[key] > 0, (key, line[key])
    assert line["bootstrap_s"] <= line["wall_s"]
    assert 0 < line["bins_filled"] <= 40
    assert "bootstrap" in done.stderr  # progress shown

