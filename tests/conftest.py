"""One persistent JAX compilation cache for the whole test session.

Many tests build the same XLA program from a fresh closure (each sampling run, each killed and
resumed subprocess); the in-memory jit cache misses those, the persistent cache (keyed by the
compiled program) does not. The directory is set through the environment before JAX is imported,
so pytest-xdist workers and the subprocesses that tests start share it. Results are unchanged:
a cache hit loads the executable the same compiler produced. The session's XLA flags
(`tests/xla_flags.py`: a cheaper LLVM optimisation level) are set the same way.
"""

import atexit
import os
import shutil
import tempfile

from tests.xla_flags import with_test_flags

os.environ["XLA_FLAGS"] = with_test_flags(os.environ.get("XLA_FLAGS", ""))  # before JAX is imported

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="omnijax-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    # Every program, however quick to compile: the suite compiles the same small programs (key
    # splits, slices, the random starts) in test after test, and loading one costs milliseconds
    # (4 of the heaviest files: 2-8% less time than with a 0.2 s threshold; BUILD_NOTES.md).
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)


# Files that take longest (serial seconds on the 2-core CI machine, `--durations=0`, 2026-12-01),
# run first: the two workers take whole files (`--dist loadfile`, in collection order with
# `--no-loadscope-reorder`), so starting the long ones early keeps one worker from finishing a
# long file alone at the end. Only the order changes; refresh the list when durations move.
LONGEST_FIRST = (
    "test_estimate.py", "test_token_proposals.py", "test_mnist_models.py", "test_lm_experiment.py",
    "test_toy.py", "test_similarity_experiment.py", "test_kernels.py", "test_checkpoint_refusal.py",
    "test_convergence.py", "test_mcmc_api.py", "test_multihost.py", "test_round_trip_rule.py",
    "test_run_extension.py",
    "test_ladder_adaptation.py",
    "test_mnist_experiment.py", "test_sst2_experiment.py", "test_mnist_exact.py", "test_resume.py",
    "test_readme_examples.py", "test_training_resume.py", "test_cifar.py", "test_models_training.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
