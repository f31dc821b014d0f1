"""README's code examples run as written, and the kernel example samples the right distribution."""

import itertools
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_kernel_example_matches_exact_mean():
    block = next(b for b in _python_blocks() if "oj.mcmc.gwg" in b)
    namespace = {}
    exec(compile(block, "README kernel example", "exec"), namespace)
    w = np.asarray(namespace["w"], np.float64)
    x = np.array(list(itertools.product([0, 1], repeat=len(w))))
    z = x @ w
    p = np.exp(z - z.max())
    p /= p.sum()
    exact_mean, exact_std = (p * z).sum(), np.sqrt((p * (z - (p * z).sum()) ** 2).sum())
    final = np.asarray(namespace["state"].z, np.float64)  # 256 independent chains after 500 steps
    assert abs(final.mean() - exact_mean) < 4 * exact_std / np.sqrt(len(final)), (final.mean(), exact_mean)
    groups = namespace["groups"]
    assert groups.slot.shape == (8, 6) and np.isfinite(np.asarray(groups.chains.z)).all()


def test_estimate_example_runs_and_agrees_with_counting():
    block = next(b for b in _python_blocks() if "oj.estimate_output_distribution(apply" in b)
    namespace = {}
    exec(compile(block, "README estimate example", "exec"), namespace)
    exact, est = namespace["exact"], namespace["est"]
    held = np.isfinite(exact.log_rho) & (exact.counts >= 100)
    assert held.sum() >= 5
    error = np.abs(est.log_rho[held] - exact.log_rho[held])
    assert np.all(error <= 4 * est.log_rho_stderr[held]), error
