"""A training killed after a checkpoint resumes bit-identically; a checkpoint of another run is refused.

Each training runs in its own process, as after a real crash; the processes share a JAX
compilation cache, so only the first one of each kind compiles.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from experiments.workflows import mnist as flow
from omnijax.training.checkpoint import ModelSpec
from tests import training_resume_job as job
from tests.directory_state import completed_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = {"classifier": ("epoch", job.CLASSIFIER["epochs"]), "ebm": ("update", job.EBM["steps"]),
         "toy": ("round", job.TOY.max_rounds)}


def start_job(kind, out, checkpoint_dirs):
    """The job (one training per checkpoint dir, "none" for none) in a subprocess; stderr is piped.
    It inherits the session's JAX compilation cache (tests/conftest.py) with os.environ."""
    return subprocess.Popen([sys.executable, "-m", "tests.training_resume_job", kind, out, *checkpoint_dirs],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finished(process, out):
    """Each training's final arrays, after checking the job succeeded; and its stderr."""
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    runs = {}
    with np.load(out) as arrays:
        for name in sorted(arrays.files, key=lambda name: tuple(map(int, name[3:].split("_")))):
            runs.setdefault(name.split("_")[0], []).append(arrays[name])
    return list(runs.values()), err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """For each kind: a training SIGKILLed once its first checkpoint is written, then (in one
    more process) that training rerun to the end and an uninterrupted one. The jobs of both
    kinds run side by side, and share the session's compilation cache, to save time."""
    tmp = tmp_path_factory.mktemp("training-resume")
    ckpt = {kind: str(tmp / f"{kind}-ckpt") for kind in UNITS}
    killed = {kind: start_job(kind, str(tmp / "unused.npz"), [ckpt[kind]]) for kind in UNITS}
    killed_log = {}
    deadline = time.time() + 300
    while len(killed_log) < len(killed):
        for kind, process in killed.items():
            if kind not in killed_log and (completed_checkpoints(ckpt[kind]) or time.time() > deadline
                                           or process.poll() is not None):
                process.send_signal(signal.SIGKILL)
                killed_log[kind] = process.communicate()[1]
        time.sleep(0.01)
    saved = {kind: completed_checkpoints(ckpt[kind]) for kind in UNITS}
    out = {kind: str(tmp / f"{kind}.npz") for kind in UNITS}
    reruns = {kind: start_job(kind, out[kind], [ckpt[kind], "none"]) for kind in UNITS}
    results = {kind: finished(process, out[kind]) for kind, process in reruns.items()}
    return {kind: dict(ckpt=ckpt[kind], saved=saved[kind], killed_log=killed_log[kind], resumed=results[kind][0][0],
                       log=results[kind][1], uninterrupted=results[kind][0][1]) for kind in UNITS}


@pytest.mark.parametrize("kind", sorted(UNITS))
def test_killed_training_resumes_bit_identical(runs, kind):
    run, (unit, total) = runs[kind], UNITS[kind]
    assert run["saved"], "the job never wrote a checkpoint:\n" + run["killed_log"][-3000:]
    assert max(run["saved"]) < total, "killed too late: the training had already finished"
    assert f"resuming training at {unit} {max(run['saved']) + 1}/{total}" in run["log"], run["log"]
    assert len(run["resumed"]) == len(run["uninterrupted"])
    for resumed, fresh in zip(run["resumed"], run["uninterrupted"]):
        np.testing.assert_array_equal(resumed, fresh)


@pytest.mark.parametrize("kind", sorted(UNITS))
def test_training_checkpoint_of_another_run_is_refused(runs, kind):
    before = completed_checkpoints(runs[kind]["ckpt"])
    with pytest.raises(ValueError, match=r"checkpoint_dir=.*differs in: learning_rate\)"):
        job.RUNS[kind](runs[kind]["ckpt"], learning_rate=1e-3)
    assert completed_checkpoints(runs[kind]["ckpt"]) == before


def test_train_or_load_keeps_its_training_checkpoint_until_the_model_is_saved(tmp_path, monkeypatch, capfd):
    images, labels = job.task()
    data = flow.TaskData(images, labels, images, labels, images, {}, {}, "synthetic")
    spec = ModelSpec("mlp", job.SPACE.shape, 2, training={"task": "binary", "training": "bce"})
    preset = dataclasses.replace(flow.PRESETS["smoke"], train_epochs={"mlp": 2})
    directory = str(tmp_path / "model")
    options = dict(preset=preset, key=jax.random.key(3), aug_severity=0.0, retrain=False)
    trained = []

    def crash(directory, model, spec, overwrite):
        trained.append([np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))])
        raise RuntimeError("killed before the model was saved")

    monkeypatch.setattr(flow, "save_model", crash)
    with pytest.raises(RuntimeError, match="killed"):
        flow.train_or_load(directory, spec, data, progress=False, **options)
    assert completed_checkpoints(flow.training_checkpoint_dir(directory)) == [1, 2]
    monkeypatch.undo()
    capfd.readouterr()
    model, trained_now = flow.train_or_load(directory, spec, data, progress=True, **options)
    assert trained_now and "training already finished (2/2 epochs restored)" in capfd.readouterr().err
    assert not os.path.exists(flow.training_checkpoint_dir(directory))
    assert sorted(os.listdir(directory)) == ["model.json", "state"]
    for restored, before_crash in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), trained[0]):
        np.testing.assert_array_equal(restored, before_crash)
