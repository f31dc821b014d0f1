"""Tiny trainings used by the training-resume test:

    python -m tests.training_resume_job classifier|ebm OUT.npz CKPT_DIR|none [CKPT_DIR|none ...]

Both train an MLP on synthetic 8x8 binary images, so a run takes seconds and checkpoints
often. One training per CKPT_DIR ("none": without checkpoints), one after the other in this
process; OUT.npz gets their final arrays, "run{i}_{j}" for array j of training i, and
progress goes to stderr.
"""

import sys

import jax
import numpy as np
import optax
from flax import nnx

from omnijax.models.mlp import MLP
from omnijax.spaces import InputSpace
from omnijax.training.classifier import train_classifier
from omnijax.training.ebm import train_ebm_pcd

SPACE = InputSpace((8, 8), 2)
CLASSIFIER = dict(num_categories=2, epochs=6, batch_size=16, learning_rate=3e-3, augment_severity=0.2)
EBM = dict(steps=120, batch_size=16, buffer_size=64, mcmc_steps_per_update=3, checkpoint_every=20,
           learning_rate=optax.cosine_decay_schedule(1e-2, 120))


def task():
    """Binary 8x8 images labelled 1 when the left half holds more ink."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 512)
    left = np.arange(8) < 4
    density = np.where(left[None, None, :] == (labels[:, None, None] == 1), 0.6, 0.15)
    return (rng.random((512, 8, 8)) < density).astype(np.int32), labels


def run_classifier(checkpoint_dir, progress=False, **overrides):
    """Final parameters of the classifier training, as numpy arrays in leaf order."""
    images, labels = task()
    model = MLP(SPACE.shape, 2, hidden=16, rngs=nnx.Rngs(0))
    train_classifier(model, images, labels, key=jax.random.key(1), progress=progress,
                     checkpoint_dir=checkpoint_dir, **{**CLASSIFIER, **overrides})
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def run_ebm(checkpoint_dir, progress=False, **overrides):
    """Final parameters, then the persistent buffer and the per-update metrics of the EBM training."""
    images, _ = task()
    model = MLP(SPACE.shape, 2, hidden=16, rngs=nnx.Rngs(0))
    model, stats = train_ebm_pcd(model, images, SPACE, key=jax.random.key(2), log_every=20, progress=progress,
                                 checkpoint_dir=checkpoint_dir, **{**EBM, **overrides})
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))] + [
        stats[name] for name in sorted(stats)]


RUNS = {"classifier": run_classifier, "ebm": run_ebm}

if __name__ == "__main__":
    kind, out, *checkpoint_dirs = sys.argv[1:]
    np.savez(out, **{f"run{i}_{j}": array for i, checkpoint_dir in enumerate(checkpoint_dirs)
                     for j, array in enumerate(RUNS[kind](None if checkpoint_dir == "none" else checkpoint_dir,
                                                          progress=True))})
