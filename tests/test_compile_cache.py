"""The experiment scripts' persistent compilation cache (`experiments.workflows.compile_cache`;
its flag in `compile_cache_flag`): its directory, its refusal of an unusable one, and that a second
process loads what the first compiled (counted by JAX's own cache-hit events, not inferred from
the files)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.workflows import compile_cache

ROOT = Path(__file__).resolve().parents[1]

# One process: turn the cache on at argv[1] and compile one program; print JAX's cache hits.
_COMPILE_ONCE = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    from experiments.workflows import compile_cache
    hits = []
    jax.monitoring.register_event_listener(
        lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)
    print("dir", compile_cache.enable(None if sys.argv[1] == "-" else sys.argv[1]))
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0) * 3.0)
    print("value", float(f(jnp.arange(12.0).reshape(3, 4) / 10).sum()))
    print("hits", len(hits))
""")


def _compile_once(cache_dir, env_dir=None):
    """Run _COMPILE_ONCE with `cache_dir` as enable()'s argument ("-": None) and, when given,
    `env_dir` as $JAX_COMPILATION_CACHE_DIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    if env_dir is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(env_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # this tiny program compiles in milliseconds
    done = subprocess.run([sys.executable, "-c", _COMPILE_ONCE, str(cache_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def test_a_second_process_loads_the_first_ones_programs(tmp_path):
    cache_dir = tmp_path / "cache"
    first = _compile_once(cache_dir)
    assert first["dir"] == str(cache_dir) and first["hits"] == "0"
    assert any(cache_dir.iterdir()), "the first process wrote no cache entry"
    second = _compile_once(cache_dir)
    assert int(second["hits"]) >= 1 and second["value"] == first["value"]


def test_empty_dir_turns_the_cache_off_and_none_follows_the_environment(tmp_path):
    warm = tmp_path / "cache"
    _compile_once(warm)
    off = _compile_once("", env_dir=warm)
    assert off["dir"] == "None" and off["hits"] == "0"
    default = _compile_once("-", env_dir=warm)
    assert default["dir"] == str(warm) and int(default["hits"]) >= 1


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compile_cache.default_dir() == str(tmp_path / "jax")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_dir() == str(tmp_path / "xdg" / "omnijax" / "jax-compile")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.default_dir() == str(tmp_path / "home" / ".cache" / "omnijax" / "jax-compile")


def test_an_unusable_dir_is_refused_naming_the_flag(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"--compile_cache_dir=.*a_file/sub.* cannot be created"):
        compile_cache.enable(str(blocker / "sub"))
    # and a script stops on it before any work, with the flag named
    done = subprocess.run([sys.executable, "-m", "experiments.toy", "--preset=smoke",
                           f"--compile_cache_dir={blocker / 'sub'}", f"--workdir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "--compile_cache_dir=" in done.stderr and "cannot be created" in done.stderr
    assert not (tmp_path / "run").exists()


def test_the_cache_module_defines_no_flag_and_the_flag_module_does():
    """A benchmark imports `compile_cache`'s constants without growing a --compile_cache_dir it
    would ignore; the scripts get the flag from `compile_cache_flag`."""
    probe = ("from absl import flags; from experiments.workflows import compile_cache; "
             "print('compile_cache_dir' in flags.FLAGS); "
             "from experiments.workflows import compile_cache_flag; print('compile_cache_dir' in flags.FLAGS)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True"], done.stdout
