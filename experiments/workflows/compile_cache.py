"""JAX's persistent compilation cache for the experiment scripts (their flag --compile_cache_dir is
defined in `compile_cache_flag`, so importing this module defines no flag).

A sampling call compiles a handful of XLA programs (the pilot's block, the ladder stages' and
the recorded run's blocks, the bootstrap's solves); on a 2-core CPU that is most of a short run's
time. Those programs depend on the shapes and the settings, not on the weights (which are jit
arguments) nor on the key, so a rerun, another seed, a resumed run or a retrained model of the
same architecture can load them from disk instead. A cache hit loads the executable the same
compiler produced, so results are unchanged (bit-identical resume included).

The scripts turn it on in their `main`, never at import, and the library never does: a program
that imports omnijax keeps JAX's own settings. The directory is, in order: --compile_cache_dir,
$JAX_COMPILATION_CACHE_DIR, $XDG_CACHE_HOME/omnijax/jax-compile, ~/.cache/omnijax/jax-compile.
--compile_cache_dir='' turns the cache off. It is kept below MAX_BYTES (least recently used
programs go first) when the `filelock` package is present (transformers brings it).
"""

from __future__ import annotations

import importlib.util
import os

MAX_BYTES = 4 * 2**30
MIN_COMPILE_SECONDS = 0.5  # programs that compile faster than this are not worth a file


def default_dir() -> str:
    """The cache directory used when --compile_cache_dir is not given."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "omnijax", "jax-compile")


def enable(path: str | None) -> str | None:
    """Point JAX's persistent compilation cache at `path` (None: `default_dir()`; '': off).

    Call before the first compile. Returns the directory used, or None when the cache is off.
    Raises ValueError naming --compile_cache_dir when the directory cannot be created or written.
    """
    import jax

    if path == "":
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    chosen = default_dir() if path is None else os.path.abspath(os.path.expanduser(path))
    try:
        os.makedirs(chosen, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--compile_cache_dir={chosen!r} cannot be created ({err}); pass a writable "
                         f"directory, or --compile_cache_dir='' to turn the cache off") from err
    if not os.access(chosen, os.W_OK):
        raise ValueError(f"--compile_cache_dir={chosen!r} is not writable; pass a writable directory, "
                         f"or --compile_cache_dir='' to turn the cache off")
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", chosen)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ and importlib.util.find_spec("filelock"):
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return chosen

