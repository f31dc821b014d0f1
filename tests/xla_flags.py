"""XLA flags of the test session, shared by tests/conftest.py and the tests that start subprocesses.

The suite compiles far more than it runs (most tests sample a few hundred sweeps), so it asks
XLA's CPU backend for LLVM optimisation level 1 instead of the default 2: compiles take ~25%
less time while the sampler's throughput is unchanged (its matmuls are library calls; measured in
BUILD_NOTES.md, "The tests compile at LLVM optimisation level 1"). Results agree with the default
level to float rounding, not bit for bit, so every process of the session, subprocesses included,
uses the same level: a comparison between two processes then compares like with like. Users'
runs keep XLA's defaults.
"""

import os

TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"


def with_test_flags(flags: str = "") -> str:
    """`flags` plus the session's flags (unless `flags` already sets the optimisation level)."""
    if "--xla_backend_optimization_level" in flags:
        return flags
    return f"{flags} {TEST_XLA_FLAGS}".strip()


def host_devices_env(num_devices: int, **extra) -> dict:
    """os.environ for a subprocess on `num_devices` forced CPU devices, with the session's flags."""
    return dict(os.environ, XLA_FLAGS=with_test_flags(f"--xla_force_host_platform_device_count={num_devices}"),
                JAX_PLATFORMS="cpu", **extra)
