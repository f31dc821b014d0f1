"""The CIFAR-10/100 experiment's steps (early appendix §I), so that experiments/cifar.py stays flags only.

A multi-class classifier trained with cross-entropy on colour images whose every channel is
quantised to K levels; OmniInput samples z = log softmax(logits)[c] of one class c over all
K^(32·32·3) images. Training and checkpoints, scores and the dataset-based table are
mnist_workflow's, used as they are (task "multiclass", training "bce"), and so are its presets
but for a smaller smoke run.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import nnx

import omnijax as oj
from experiments.workflows import mnist as mnist_workflow
from omnijax.data.cifar import CIFAR, IMAGE_SHAPE, load_cifar
from omnijax.data.mnist import quantize
from experiments.workflows.mnist import Preset, TaskData, limit_examples, scores
from omnijax.models.functional import as_log_softmax_fn
from omnijax.sampling.output_range import bin_edges_from_outputs
from omnijax.training.checkpoint import ModelSpec

TASK, TRAINING = "multiclass", "bce"

# A 32x32x3 input has 3.9x the sites of a 28x28 one; the smoke run (for tests) only has to go
# through every step, so it samples fewer steps on a shorter ladder than MNIST's.
PRESETS = {**mnist_workflow.PRESETS,
           "smoke": dataclasses.replace(mnist_workflow.PRESETS["smoke"], pilot_steps=10, num_replicas=4,
                                        num_steps={"mlp": 100, "cnn": 10, "resnet": 20})}


def check_target_class(dataset: str, target_class: int) -> None:
    """ValueError naming the flags when target_class is not a class of dataset."""
    if dataset not in CIFAR:
        raise ValueError(f"--dataset must be one of {sorted(CIFAR)}, got {dataset!r}")
    num_classes = CIFAR[dataset].num_classes
    if not 0 <= target_class < num_classes:
        raise ValueError(f"--target_class must lie in 0..{num_classes - 1} for --dataset={dataset}, "
                         f"got {target_class}")


def load_task_data(dataset: str, target_class: int, model: str, *, levels: int, data_dir: str | None,
                   preset: Preset, seed: int = 0) -> TaskData:
    """Training and test images with `levels` levels per channel, all classes labelled.

    Dataset-based comparison: positives are the test images of target_class, negatives those
    of every other class. Raises DatasetUnavailable / FileNotFoundError from `load_cifar`, and
    ValueError when the test split holds no image of target_class.
    """
    train, test = load_cifar(dataset, "train", data_dir), load_cifar(dataset, "test", data_dir)
    is_target = test.labels == target_class
    if not is_target.any():
        raise ValueError(f"the {dataset} test split ({test.source}) holds no image of class {target_class}")
    limit = None if preset.train_limit is None else preset.train_limit[model]
    train_images, train_labels = limit_examples(train.images, train.labels, limit, seed)
    negatives = test.images[~is_target][:preset.eval_limit]
    return TaskData(
        train_images=quantize(train_images, levels), train_labels=train_labels.astype(np.int32),
        test_images=quantize(test.images, levels), test_labels=test.labels.astype(np.int32),
        positives=quantize(test.images[is_target][:preset.eval_limit], levels),
        negatives={f"{dataset}_other_classes": quantize(negatives, levels)}, unavailable={}, source=train.source)


def model_spec(model: str, dataset: str, levels: int, hyper: dict) -> ModelSpec:
    """The classifier's spec: one logit per class of dataset, on (32, 32, 3) images with K levels."""
    return ModelSpec(name=model, input_shape=IMAGE_SHAPE, num_categories=levels,
                     num_outputs=CIFAR[dataset].num_classes,
                     training={"task": TASK, "training": TRAINING, "dataset": dataset, **hyper})


def log_softmax_bin_edges(model: nnx.Module, space: oj.InputSpace, train_images: np.ndarray, target_class: int,
                          num_bins: int, key: jax.Array) -> np.ndarray:
    """Bins over the class's log-softmax on uniform noise and training data, widened, top edge capped at 0.

    A log-softmax never exceeds 0, so bins above it could never fill.
    """
    score = lambda images: scores(model, images, space.num_categories, TASK, target_class)
    noise = np.asarray(space.random_inputs(key, 512))
    edges = bin_edges_from_outputs({"uniform noise": score(noise), "training data": score(train_images[:2000])},
                                   num_bins)
    return np.linspace(edges[0], min(edges[-1], 0.0), num_bins + 1)


def estimate_class_log_softmax(model: nnx.Module, target_class: int, space: oj.InputSpace, edges: np.ndarray, *,
                               num_steps: int, preset: Preset, key: jax.Array, checkpoint_dir: str):
    """OmniInput's estimate of rho(z) for z = log softmax(logits)[target_class] over all of `space`."""
    return oj.estimate_output_distribution(
        as_log_softmax_fn(model, target_class), space, edges, key=key, num_steps=num_steps,
        num_groups=preset.num_groups, steps_per_block=min(1_000, num_steps), pilot_steps=preset.pilot_steps,
        num_replicas=preset.num_replicas, reservoir_size=preset.reservoir_size, checkpoint_dir=checkpoint_dir)


def sampling_metrics(est) -> dict:
    """What metrics.json reports about a sampling run: bins, ladder, swaps, round trips, bins filled."""
    return {"bin_edges": [float(e) for e in est.bin_edges], "betas": est.betas.tolist(),
            "swap_acceptance": est.diagnostics["swap_acceptance"].tolist(),
            "round_trips": int(est.diagnostics["round_trips"].sum()),
            "bins_sampled": int(np.isfinite(est.log_rho).sum())}
