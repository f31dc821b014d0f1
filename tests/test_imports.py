"""Importing omnijax has no side effects: in a fresh interpreter, importing every module under omnijax/
defines no absl flag, neither chooses a matplotlib backend nor loads pyplot, and pulls in nothing from the
repository's `experiments` or `benchmarks` packages (the library must not depend on its users)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import importlib, json, os, sys

from absl import app, flags, logging  # absl's own flags, defined before the snapshot
import matplotlib

calls = []
real_use = matplotlib.use
matplotlib.use = lambda *args, **kwargs: (calls.append(repr((args, kwargs))), real_use(*args, **kwargs))[1]
backend = dict.__getitem__(matplotlib.rcParams, "backend")  # raw: reading it must not resolve the backend
before = set(flags.FLAGS)

root = sys.argv[1]
modules = []
for directory, _, files in os.walk(os.path.join(root, "omnijax")):
    for name in sorted(files):
        if name.endswith(".py"):
            parts = os.path.relpath(os.path.join(directory, name[:-3]), root).split(os.sep)
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
failed = {}
for module in sorted(modules):
    try:
        importlib.import_module(module)
    except Exception as err:
        failed[module] = f"{type(err).__name__}: {err}"

print(json.dumps({
    "modules": sorted(modules),
    "failed": failed,
    # Flags defined since the snapshot, by the module that defined them (third-party libraries that
    # omnijax imports, e.g. orbax, define some of their own: not omnijax's to change).
    "new_flags": {m: sorted(f.name for f in fs if f.name not in before)
                  for m, fs in flags.FLAGS.flags_by_module_dict().items() if any(f.name not in before for f in fs)},
    "use_calls": calls,
    "backend_changed": dict.__getitem__(matplotlib.rcParams, "backend") != backend,
    "pyplot": "matplotlib.pyplot" in sys.modules,
    "users": sorted(m for m in sys.modules if m.split(".")[0] in ("experiments", "benchmarks")),
    "files": sorted({os.path.relpath(m.__file__, root) for m in list(sys.modules.values())
                     if getattr(m, "__name__", "").startswith("omnijax") and getattr(m, "__file__", None)}),
}))
"""


def test_importing_every_omnijax_module_has_no_side_effects():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", SCRIPT, ROOT], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(found["modules"]) > 40 and "omnijax.annotation.cli" in found["modules"]
    # The modules imported are this checkout's, not another copy's.
    assert all(not f.startswith("..") for f in found["files"]), found["files"]
    assert found["failed"] == {}
    ours = {m: f for m, f in found["new_flags"].items() if m.split(".")[0] in ("omnijax", "__main__")}
    assert ours == {}, (f"importing omnijax defined absl flags {ours}: define them in a function the command "
                        "line calls (as omnijax.annotation.cli.run does)")
    assert found["use_calls"] == [] and not found["backend_changed"], (
        f"importing omnijax called matplotlib.use{found['use_calls']}: draw on matplotlib.figure.Figure instead")
    assert not found["pyplot"], "importing omnijax loaded matplotlib.pyplot (global figure state)"
    assert found["users"] == [], f"omnijax imports {found['users']}: the library must not depend on them"


def test_the_annotation_command_defines_its_flags_when_run():
    """`python -m omnijax.annotation` still has its flags: they are defined by cli.run()."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "omnijax.annotation", "--helpfull"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]   # absl exits 1 after --helpfull
    for flag in ("--run", "--db", "--port", "--question", "--csv", "--annotators"):
        assert flag in result.stdout, flag
