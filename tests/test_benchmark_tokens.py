"""benchmarks.tokens on a tiny GPT-2: one JSON object per (model, proposal, path) with the fields
the issue asks for, and a bad flag refused by name."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = {"model", "proposal", "path", "chain_steps_per_s", "cpu_chain_steps_per_s", "flops_per_step",
          "lower_bound_flops_per_step", "state_bytes_per_chain"}


def run(*flags):
    return subprocess.run([sys.executable, "-m", "benchmarks.tokens", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_tiny_config_prints_one_line_per_path():
    done = run("--models=gpt2-1x16-v101-L6", "--proposals=gwg", "--chains=2", "--steps=2", "--repeats=2")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [(r["model"], r["proposal"], r["path"]) for r in lines] == [
        ("gpt2-1x16-v101-L6", "gwg", "onehot"), ("gpt2-1x16-v101-L6", "gwg", "embedding")]
    for r in lines:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["chain_steps_per_s"] > 0 and r["cpu_chain_steps_per_s"] > 0
    onehot, embedding = lines
    assert onehot["lower_bound_flops_per_step"] == embedding["lower_bound_flops_per_step"] > 0
    # One MH step evaluates at least what the bound counts (the cost analysis sees the table product).
    assert 1.0 <= embedding["flops_vs_lower_bound"] < onehot["flops_vs_lower_bound"]
    # The chain keeps dz/de (L, d) and block masses instead of an (L, V) gain table.
    assert embedding["state_bytes_per_chain"] < onehot["state_bytes_per_chain"]
    assert embedding["speedup"] == embedding["chain_steps_per_s"] / onehot["chain_steps_per_s"]
    assert "speedup_cpu_time" in embedding


def test_bad_flags_are_named():
    done = run("--models=gpt2-1x16-v101-L6", "--proposals=nope")
    assert done.returncode != 0
    assert "--proposals" in done.stderr.splitlines()[-1] or "nope" in done.stderr.splitlines()[-1]
    done = run("--models=gpt3-big")
    assert done.returncode != 0 and "gpt3-big" in done.stderr
