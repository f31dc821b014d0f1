"""Supervised training of the evaluated classifiers on one-hot images (optax, jitted steps).

Tasks: "binary" trains a scalar logit with sigmoid cross-entropy (label 1 is the positive
class, as in MNIST-0/1); "multiclass" trains a logit vector with softmax cross-entropy.
Each epoch draws a fresh permutation and runs N // batch_size full batches of one jitted
step (the few examples left over differ from epoch to epoch). With a checkpoint directory,
training saves its state after every epoch and a restarted run continues where it stopped.
"""

from __future__ import annotations

import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from omnijax.training.resume import digest, learning_rate_fingerprint, model_fingerprint, resume, resume_note

_SAY_EVERY = 5.0  # seconds between progress lines inside a long epoch

TASKS = ("binary", "multiclass")


@functools.partial(jax.jit, static_argnames="num_categories")
def corrupt_images(key: jax.Array, images: jax.Array, num_categories: int, max_severity: float) -> jax.Array:
    """The `--training=aug` noise: per image draw s ~ Uniform(0, max_severity), then move
    each pixel with probability s to a uniformly chosen *other* category.

    The paper only says "uniform noise with varying levels of severity"; this is our reading
    for discrete pixels. For binary images it flips each pixel with probability s, so the
    expected fraction of flipped pixels is max_severity / 2.
    """
    severity_key, flip_key, shift_key = jax.random.split(key, 3)
    per_image = (images.shape[0],) + (1,) * (images.ndim - 1)
    severity = jax.random.uniform(severity_key, per_image, maxval=max_severity)
    flip = jax.random.uniform(flip_key, images.shape) < severity
    shift = jax.random.randint(shift_key, images.shape, 1, num_categories)
    return jnp.where(flip, (images + shift) % num_categories, images)


def train_classifier(model: nnx.Module, images, labels, *, num_categories: int, task: str = "binary",
                     epochs: int = 10, batch_size: int = 128, learning_rate: float = 1e-3,
                     key: jax.Array, augment_severity: float | None = None,
                     progress: bool = True, checkpoint_dir: str | None = None) -> nnx.Module:
    """Train `model` in place with Adam on integer images (N, *input_shape); returns it.

    augment_severity: if set, every batch is corrupted by `corrupt_images` with that maximum
    severity (the paper's AUG models). With progress=True, one line per epoch goes to stderr.
    checkpoint_dir: if set, (parameters, optimiser state) are saved there after every epoch,
    and a checkpoint of the same run found there is resumed from the next epoch. Epoch
    randomness is derived from (key, epoch), so the result is bit-identical to an
    uninterrupted run. A checkpoint of another run (other settings, data, initial model or
    key) raises ValueError naming checkpoint_dir.
    """
    if augment_severity is not None and not 0 <= augment_severity <= 1:
        raise ValueError(f"augment_severity must lie in [0, 1], got {augment_severity}")
    images, labels = jnp.asarray(images, jnp.int32), jnp.asarray(labels, jnp.int32)
    _check_task(model, images, labels, num_categories, task)
    batch_size = min(batch_size, images.shape[0])
    steps = images.shape[0] // batch_size
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(learning_rate)

    def loss_fn(params, batch_images, batch_labels):
        outputs = _apply(graphdef, params, rest, jax.nn.one_hot(batch_images, num_categories))
        if task == "binary":
            return optax.sigmoid_binary_cross_entropy(outputs, batch_labels.astype(outputs.dtype)).mean()
        return optax.softmax_cross_entropy_with_integer_labels(outputs, batch_labels).mean()

    @jax.jit
    def train_step(params, opt_state, images, labels, indices, step_key):
        batch_images = images[indices]
        if augment_severity is not None:
            batch_images = corrupt_images(step_key, batch_images, num_categories, augment_severity)
        loss, grads = jax.value_and_grad(loss_fn)(params, batch_images, labels[indices])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def run_epoch(epoch, params, opt_state):
        """One epoch: a permutation and the augmentation noise drawn from the epoch's own key."""
        start = time.perf_counter()
        order_key, noise_key = jax.random.split(epoch_keys[epoch - 1])
        order = np.asarray(jax.random.permutation(order_key, images.shape[0]))[:steps * batch_size]
        # A Python loop of jitted steps: XLA:CPU runs convolutions inside lax.scan ~20x slower.
        losses, said = [], start
        for i, (indices, step_key) in enumerate(zip(order.reshape(steps, batch_size),
                                                    jax.random.split(noise_key, steps))):
            params, opt_state, loss = train_step(params, opt_state, images, labels, indices, step_key)
            losses.append(loss)
            if progress and time.perf_counter() - said > _SAY_EVERY and i + 1 < steps:
                loss.block_until_ready()  # the steps run ahead of Python: count only finished ones
                said = time.perf_counter()
                print(f"train {task} epoch {epoch}/{epochs}: step {i + 1}/{steps} ({said - start:.0f} s)",
                      file=sys.stderr, flush=True)
        if progress:
            print(f"train {task} epoch {epoch}/{epochs}: loss {float(jnp.mean(jnp.stack(losses))):.4f} "
                  f"({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
        return params, opt_state

    epoch_keys = jax.random.split(key, epochs)
    state = {"params": params, "opt_state": optimizer.init(params)}
    checkpointer, done = None, 0
    if checkpoint_dir is not None:
        fingerprint = {"task": task, "num_categories": num_categories, "epochs": epochs, "batch_size": batch_size,
                       "learning_rate": learning_rate_fingerprint(learning_rate, epochs * steps),
                       "augment_severity": augment_severity, "data_shape": images.shape,
                       "data": digest(images, labels), "model": model_fingerprint(model), "key": digest(key)}
        checkpointer, done, state = resume(checkpoint_dir, fingerprint, state)
        if progress and done:
            print(f"train {task}: {resume_note('epoch', done, epochs)} from {checkpoint_dir}",
                  file=sys.stderr, flush=True)
    params, opt_state = state["params"], state["opt_state"]
    try:
        for epoch in range(done + 1, epochs + 1):
            params, opt_state = run_epoch(epoch, params, opt_state)
            if checkpointer is not None:
                checkpointer.save(epoch, {"params": params, "opt_state": opt_state})
    finally:
        if checkpointer is not None:
            checkpointer.close()
    nnx.update(model, params)
    return model


def predict_outputs(model: nnx.Module, images, num_categories: int, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs on integer images (N, *input_shape): (N,) scalars or (N, num_outputs) logits."""
    images = np.asarray(images, np.int32)
    count = images.shape[0]
    batch_size = max(1, min(batch_size, count))
    padded = np.concatenate([images, np.zeros((-count % batch_size,) + images.shape[1:], np.int32)])
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    outputs = [np.asarray(_predict_batch(graphdef, params, rest, padded[i:i + batch_size], num_categories))
               for i in range(0, len(padded), batch_size)]
    return np.concatenate(outputs)[:count]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _predict_batch(graphdef, params, rest, batch, num_categories: int):
    """Outputs on one batch; parameters are arguments, so one compilation serves every call
    with the same architecture and batch shape."""
    return _apply(graphdef, params, rest, jax.nn.one_hot(batch, num_categories))


def evaluate_accuracy(model: nnx.Module, images, labels, num_categories: int, task: str = "binary") -> float:
    """Fraction of images classified correctly (binary: logit > 0 means label 1; multiclass: argmax)."""
    outputs = predict_outputs(model, images, num_categories)
    predicted = outputs > 0 if task == "binary" else outputs.argmax(axis=-1)
    return float(np.mean(predicted == np.asarray(labels)))


def _apply(graphdef, params, rest, onehot_batch):
    """A batch of one-hot inputs through the model rebuilt from its split state."""
    return jax.vmap(lambda onehot: nnx.merge(graphdef, params, rest)(onehot))(onehot_batch)


def _check_task(model, images, labels, num_categories: int, task: str) -> None:
    """Refuse a task the model's output cannot serve, or labels outside the task's classes."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not one of {', '.join(TASKS)}")
    output = jax.eval_shape(model, jax.ShapeDtypeStruct(images.shape[1:] + (num_categories,), jnp.float32))
    if task == "binary":
        if output.shape != ():
            raise ValueError("task='binary' needs a model with num_outputs=1 (a scalar logit); "
                             f"this one outputs shape {output.shape}")
        num_classes = 2
    else:
        if output.ndim != 1:
            raise ValueError("task='multiclass' needs a model with num_outputs > 1; this one outputs a scalar")
        num_classes = output.shape[0]
    if labels.shape != images.shape[:1] or int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must be {images.shape[0]} integers in [0, {num_classes}) for task={task!r}")
