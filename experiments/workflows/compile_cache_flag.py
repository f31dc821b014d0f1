"""The experiment scripts' flag --compile_cache_dir and the call that acts on it (`compile_cache`
holds the cache itself, flag-free, so a benchmark can import its constants without the flag)."""

from __future__ import annotations

from absl import flags

from experiments.workflows import compile_cache

flags.DEFINE_string("compile_cache_dir", None,
                    "Directory of JAX's persistent compilation cache, shared by reruns of the same shapes "
                    "(default: $JAX_COMPILATION_CACHE_DIR, else ~/.cache/omnijax/jax-compile); '' turns it off.")


def enable_from_flags() -> str | None:
    """`enable(--compile_cache_dir)`, called by every experiment script's main before any JAX work;
    a directory that cannot be used is a usage error naming the flag."""
    from absl import app

    try:
        return compile_cache.enable(flags.FLAGS.compile_cache_dir)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
