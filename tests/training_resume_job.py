"""Tiny trainings used by the training-resume test:

    python -m tests.training_resume_job classifier|ebm|toy OUT.npz CKPT_DIR|none [CKPT_DIR|none ...]

classifier and ebm train an MLP on synthetic 8x8 binary images; toy trains a 2-layer GPT-2 on
3-digit sequences whose digit sum is divisible by 7. A run takes seconds and checkpoints
often. One training per CKPT_DIR ("none": without checkpoints), one after the other in this
process; OUT.npz gets their final arrays, "run{i}_{j}" for array j of training i, and
progress goes to stderr.
"""

import dataclasses
import sys

import jax
import numpy as np
import optax
from flax import nnx

from omnijax.models.gpt2 import GPT2
from omnijax.models.mlp import MLP
from omnijax.sampling.spaces import InputSpace
from omnijax.training.classifier import train_classifier
from omnijax.training.ebm import train_ebm_pcd
from omnijax.training.language_model import LMTraining, train_digit_sum_lm
from experiments.workflows.toy import model_config

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

TOY = LMTraining(batch_size=32, learning_rate=3e-3, warmup_steps=5, max_steps=40, steps_per_round=8, target_rate=1.0,
                 num_generated=64)


def run_toy(checkpoint_dir, progress=False, **overrides):
    """Final parameters, then the per-round history, of the digit-sum language model training."""
    model = GPT2(model_config(3, num_layers=2, num_heads=2, embed_dim=16), rngs=nnx.Rngs(0))
    model, history = train_digit_sum_lm(model, key=jax.random.key(3), length=3, divisor=7, progress=progress,
                                        config=dataclasses.replace(TOY, **overrides), checkpoint_dir=checkpoint_dir)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))] + [
        np.array([[h[k] for k in ("step", "loss", "generation_rate")] for h in history])]


RUNS = {"classifier": run_classifier, "ebm": run_ebm, "toy": run_toy}

if __name__ == "__main__":
    kind, out, *checkpoint_dirs = sys.argv[1:]
    np.savez(out, **{f"run{i}_{j}": array for i, checkpoint_dir in enumerate(checkpoint_dirs)
                     for j, array in enumerate(RUNS[kind](None if checkpoint_dir == "none" else checkpoint_dir,
                                                          progress=True))})
