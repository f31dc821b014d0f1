"""The MNIST experiment's steps (paper §4, Appendices E–H), so that experiments/mnist.py stays flags only.

Tasks: "binary" classifies MNIST-0/1 (1 positive) with the models' scalar logit, or, with
training "gen", models MNIST-1 as an energy-based model whose output is an unnormalised
log-likelihood; "multiclass" classifies all ten digits and samples log softmax of one class.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx

from omnijax.data.mnist import load_mnist, quantize, select_digits
from omnijax.data.ood import DatasetUnavailable, load_ood
from omnijax.evaluation.dataset_metrics import ood_table_row
from omnijax.training.checkpoint import ModelSpec, load_model, read_spec, save_model
from omnijax.training.classifier import evaluate_accuracy, predict_outputs, train_classifier
from omnijax.training.ebm import train_ebm_pcd

TASKS = ("binary", "multiclass")
TRAININGS = ("bce", "aug", "gen")
OOD_SET_NAMES = ("fashion_mnist", "kmnist", "emnist_byclass", "qmnist")


@dataclasses.dataclass(frozen=True)
class Preset:
    """How much to train and sample. Per-model entries reflect their cost (per input on a CPU:
    MLP ≈ 0.01 ms, ResNet ≈ 1 ms, CNN ≈ 4 ms per value_and_grad)."""

    train_epochs: dict[str, int]
    gen_updates: dict[str, int]
    num_steps: dict[str, int]
    num_bins: int
    num_groups: int
    pilot_steps: int | None  # None: the estimator's default, which scales with num_steps
    reservoir_size: int
    num_replicas: int | None = None  # ladder size (None: chosen from the pilot run)
    train_limit: dict[str, int] | None = None  # at most this many training images per model (None: all)
    eval_limit: int | None = None    # at most this many images per evaluation set


PRESETS = {
    # Minutes of CPU at most, for tests: every step runs, little is learned or sampled.
    "smoke": Preset(train_epochs={"mlp": 3, "cnn": 1, "resnet": 1}, gen_updates={"mlp": 100, "cnn": 5, "resnet": 10},
                    num_steps={"mlp": 400, "cnn": 10, "resnet": 10}, num_bins=10, num_groups=2,
                    pilot_steps=None, reservoir_size=8,
                    train_limit={"mlp": 2000, "cnn": 128, "resnet": 128}, eval_limit=300),
    # Laptop scale: the MLP end to end in minutes; CNN and ResNet take longer on a CPU.
    "default": Preset(train_epochs={"mlp": 10, "cnn": 3, "resnet": 15}, gen_updates={"mlp": 2000, "cnn": 300, "resnet": 300},
                      num_steps={"mlp": 10_000, "cnn": 1_000, "resnet": 2_000}, num_bins=30, num_groups=16,
                      pilot_steps=None, reservoir_size=32),
    # Paper scale (many bins, long chains, many representatives): meant for accelerators.
    "paper": Preset(train_epochs={"mlp": 20, "cnn": 10, "resnet": 10}, gen_updates={"mlp": 10_000, "cnn": 5_000, "resnet": 5_000},
                    num_steps={"mlp": 100_000, "cnn": 50_000, "resnet": 50_000}, num_bins=100, num_groups=64,
                    pilot_steps=None, reservoir_size=64),
}


@dataclasses.dataclass
class TaskData:
    """Integer-pixel images of one task, and the test sets of the dataset-based comparison."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    positives: np.ndarray                 # test images of the positive class
    negatives: dict[str, np.ndarray]      # name -> test images of a negative set
    unavailable: dict[str, str]           # negative set name -> why it could not be had
    source: str
    negative_sources: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> where its images came from


def check_task(task: str, training: str, target_class: int) -> None:
    """ValueError naming the flags of an impossible combination."""
    if task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got {task!r}")
    if training not in TRAININGS:
        raise ValueError(f"--training must be one of {TRAININGS}, got {training!r}")
    if task == "multiclass" and training == "gen":
        raise ValueError("--training=gen trains an energy-based model of MNIST-1; it needs --task=binary")
    if not 0 <= target_class <= 9:
        raise ValueError(f"--target_class must be a digit 0..9, got {target_class}")


def limit_examples(images: np.ndarray, labels: np.ndarray, limit: int | None, seed: int):
    """At most `limit` (image, label) pairs, a seeded random subset kept in dataset order (None: all)."""
    if limit is None or len(images) <= limit:
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
    return images[keep], labels[keep]


def load_task_data(task: str, training: str, target_class: int, model: str, *, levels: int, data_dir: str | None,
                   fashion_data_dir: str | None, ood_sets, preset: Preset, seed: int = 0,
                   ood_data_dir: str | None = None, log: Callable[[str], None] | None = None) -> TaskData:
    """Training and test images of the task, quantised to `levels` grey levels (2: binary pixels).

    Binary task: classifiers train on MNIST-0/1 (label 1 for the digit 1), "gen" on MNIST-1.
    Dataset-based comparison: positives are test images of the positive digit; negatives the
    test images of digit 0 (binary) or of the other digits (multiclass), then each OOD set.
    Each OOD set NAME is read from fashion_data_dir (Fashion-MNIST) or ood_data_dir/NAME/ when
    given (its release's IDX files, see omnijax.data.ood.OOD_SETS), else from its other sources.
    log, when given, gets one line per OOD set: where it came from (or why not) and how long it took.
    """
    train, test = load_mnist("train", data_dir), load_mnist("test", data_dir)
    positive_digit = 1 if task == "binary" else target_class
    if task == "binary":
        digits = [1] if training == "gen" else [0, 1]
        train, test_task = select_digits(train, digits), select_digits(test, [0, 1])
        train_labels = (train.labels == 1).astype(np.int32)
        test_labels = (test_task.labels == 1).astype(np.int32)
        negatives = {"mnist_0": test_task.images[test_task.labels == 0]}
    else:
        test_task = test
        train_labels, test_labels = train.labels.astype(np.int32), test.labels.astype(np.int32)
        negatives = {"mnist_other_digits": test.images[test.labels != target_class]}
    negative_sources = dict.fromkeys(negatives, test.source)
    limit = None if preset.train_limit is None else preset.train_limit[model]
    train_images, train_labels = limit_examples(train.images, train_labels, limit, seed)
    unavailable = {}
    for name in ood_sets:
        start = time.perf_counter()
        try:
            found = load_ood(name, ood_set_dir(name, fashion_data_dir, ood_data_dir))
        except DatasetUnavailable as err:
            unavailable[name] = err.reason
            outcome = f"unavailable ({err.reason})"
        else:
            negatives[name], negative_sources[name] = found.images, found.source
            outcome = f"{len(found):,} images from {found.source}"
        if log is not None:
            log(f"test set {name}: {outcome} [{time.perf_counter() - start:.1f} s]")
    positives = test.images[test.labels == positive_digit]
    limit = preset.eval_limit
    return TaskData(
        train_images=quantize(train_images, levels), train_labels=train_labels,
        test_images=quantize(test_task.images, levels), test_labels=test_labels,
        positives=quantize(positives[:limit], levels),
        negatives={name: quantize(images[:limit], levels) for name, images in negatives.items()},
        unavailable=unavailable, source=train.source, negative_sources=negative_sources)


def ood_set_dir(name: str, fashion_data_dir: str | None, ood_data_dir: str | None) -> str | None:
    """The data_dir of OOD set `name`: --fashion_data_dir for Fashion-MNIST, else --ood_data_dir/NAME."""
    if name == "fashion_mnist" and fashion_data_dir is not None:
        return fashion_data_dir
    return None if ood_data_dir is None else os.path.join(ood_data_dir, name)


def model_spec(model: str, task: str, training: str, levels: int, hyper: dict) -> ModelSpec:
    return ModelSpec(name=model, input_shape=(28, 28), num_categories=levels,
                     num_outputs=10 if task == "multiclass" else 1,
                     training={"task": task, "training": training, **hyper})


def train_or_load(directory: str, spec: ModelSpec, data: TaskData, *, preset: Preset, key: jax.Array,
                  aug_severity: float, retrain: bool, progress: bool = True) -> tuple[nnx.Module, bool]:
    """The model in `directory` if one is there (checked against `spec`), else a new one trained
    and saved there; returns (model, trained_now). `retrain` trains anew and replaces it.

    Training checkpoints go to the sibling directory `training_checkpoint_dir(directory)`
    (save_model wants an empty model directory), so a killed run resumes its training where
    it stopped; that directory is removed once the final model is saved.
    """
    if os.path.isfile(os.path.join(directory, "model.json")) and not retrain:
        saved = read_spec(directory)
        if saved.training.get("training") not in (None, spec.training["training"]):
            raise ValueError(f"checkpoint in {directory} was trained with --training={saved.training['training']} "
                             f"but --training={spec.training['training']} was requested")
        return load_model(directory, spec), False
    init_key, train_key = jax.random.split(key)
    model = spec.build(seed=int(jax.random.randint(init_key, (), 0, 2**31 - 1)))
    training, task = spec.training["training"], spec.training["task"]
    checkpoint_dir = training_checkpoint_dir(directory)
    if training == "gen":
        from omnijax.sampling.spaces import InputSpace

        space = InputSpace(spec.input_shape, spec.num_categories)
        updates = preset.gen_updates[spec.name]
        # 40 GWG steps per update and a small learning rate, as in Gibbs-with-Gradients' PCD
        # training; the output penalty keeps f from drifting while the negatives catch up.
        model, _ = train_ebm_pcd(model, data.train_images, space, steps=updates, batch_size=64, buffer_size=1_000,
                                 mcmc_steps_per_update=40, learning_rate=1e-4, key=train_key, output_l2=1e-2,
                                 log_every=max(1, updates // 10), progress=progress,
                                 checkpoint_dir=checkpoint_dir, checkpoint_every=max(1, updates // 20))
    else:
        model = train_classifier(model, data.train_images, data.train_labels, num_categories=spec.num_categories,
                                 task=task, epochs=preset.train_epochs[spec.name], key=train_key,
                                 augment_severity=aug_severity if training == "aug" else None, progress=progress,
                                 checkpoint_dir=checkpoint_dir)
    save_model(directory, model, spec, overwrite=retrain)
    shutil.rmtree(checkpoint_dir)
    return model, True


def training_checkpoint_dir(directory: str) -> str:
    """Where `train_or_load` keeps the checkpoints of an unfinished training of the model in `directory`."""
    return os.path.normpath(os.path.abspath(directory)) + "-training"


def scores(model: nnx.Module, images: np.ndarray, num_categories: int, task: str, target_class: int) -> np.ndarray:
    """The sampled output z on a batch of images: the logit, log-likelihood, or class log-softmax."""
    out = predict_outputs(model, images, num_categories)
    if task == "multiclass":
        return np.asarray(jax.nn.log_softmax(out, axis=-1))[:, target_class]
    return np.asarray(out)


def held_out_metrics(model: nnx.Module, data: TaskData, num_categories: int, task: str, training: str) -> dict:
    """Test accuracy of a classifier; a generative model has none (its separation is in the table)."""
    if training == "gen":
        return {"test_accuracy": None, "note": "generative model: see traditional.csv for its separation of 1s"}
    return {"test_accuracy": evaluate_accuracy(model, data.test_images, data.test_labels, num_categories, task),
            "test_images": int(len(data.test_images))}


def traditional_rows(score_fn, data: TaskData, label: str, log: Callable[[str], None] | None = None) -> list[dict]:
    """Dataset-based AUPR/AUROC/FPR95 of `score_fn` (positives high) against every negative set.

    Each row names the negative set's source and the seconds its scoring took; log, when given,
    gets one line per set as it is done (a CNN scores 10,000 images in seconds).
    """
    start = time.perf_counter()
    positive = _score_in_parts(score_fn, data.positives, "positives", log)
    if log is not None:
        log(f"dataset-based evaluation: {len(data.positives):,} positives scored [{time.perf_counter() - start:.1f} s]")
    rows = []
    for name, images in data.negatives.items():
        start = time.perf_counter()
        row = {"model": label, "negatives": name, "status": "ok", "source": data.negative_sources.get(name, ""),
               **ood_table_row(positive, _score_in_parts(score_fn, images, name, log))}
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        if log is not None:
            log(f"dataset-based evaluation: {name} ({len(images):,} negatives) AUROC {row['auroc']:.4f} "
                f"[{row['seconds']:.1f} s]")
    for name, reason in data.unavailable.items():
        rows.append({"model": label, "negatives": name, "status": f"unavailable: {reason}", "source": ""})
    return rows


SCORE_PART = 2_048  # images per call of the score function; a multiple of predict_outputs' batch
PROGRESS_EVERY_S = 5.0


def _score_in_parts(score_fn, images: np.ndarray, name: str, log: Callable[[str], None] | None) -> np.ndarray:
    """score_fn over images, SCORE_PART at a time, logging how far it is whenever PROGRESS_EVERY_S
    have passed since the last line (a CNN on a shared CPU needs ~15 s for 10,000 images)."""
    start = last = time.perf_counter()
    parts = []
    for begin in range(0, len(images), SCORE_PART):
        parts.append(np.asarray(score_fn(images[begin:begin + SCORE_PART])))
        now = time.perf_counter()
        done = min(begin + SCORE_PART, len(images))
        if log is not None and now - last >= PROGRESS_EVERY_S and done < len(images):
            log(f"dataset-based evaluation: {name} {done:,}/{len(images):,} scored [{now - start:.1f} s]")
            last = now
    return np.concatenate(parts)


def format_table(rows: list[dict]) -> str:
    """A text table in the paper's units (Tables 1-3: percent), one row per test set, then each
    set's source or why it is unavailable."""
    lines = [f"{'model':<24} {'negatives':<20} {'AUPR':>7} {'AUROC':>7} {'FPR95':>7}"]
    notes = []
    for row in rows:
        if row["status"] == "ok":
            lines.append(f"{row['model']:<24} {row['negatives']:<20} {100 * row['aupr']:7.2f} "
                         f"{100 * row['auroc']:7.2f} {100 * row['fpr95']:7.2f}")
            if row.get("source"):
                notes.append(f"  {row['negatives']}: {row['source']}")
        else:
            lines.append(f"{row['model']:<24} {row['negatives']:<20} {'unavailable':>23}")
            notes.append(f"  {row['negatives']}: {row['status']}")
    return "\n".join(lines + notes)
