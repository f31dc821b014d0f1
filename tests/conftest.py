"""One persistent JAX compilation cache for the whole test session.

Many tests build the same XLA program from a fresh closure (each sampling run, each killed and
resumed subprocess); the in-memory jit cache misses those, the persistent cache (keyed by the
compiled program) does not. The directory is set through the environment before JAX is imported,
so pytest-xdist workers and the subprocesses that tests start share it. Results are unchanged:
a cache hit loads the executable the same compiler produced.
"""

import atexit
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="omnijax-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
