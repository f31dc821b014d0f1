"""Models on one-hot inputs, classifier training with noise augmentation, and model checkpoints."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnijax.models import MODELS, as_output_fn, build_model
from omnijax.models.mlp import MLP, as_output_fn as mlp_as_output_fn
from omnijax.training.checkpoint import ModelSpec, load_model, read_spec, save_model
from omnijax.training.classifier import (corrupt_images, evaluate_accuracy, predict_outputs,
                                         train_classifier)

SIDE = 12


def random_onehot(seed, shape, num_categories):
    return jax.nn.one_hot(jax.random.randint(jax.random.key(seed), shape, 0, num_categories), num_categories)


def left_heavy_task(seed, count):
    """Binary images whose label is 1 when the left half holds more ink (densities 0.6 vs 0.15)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    left = np.arange(SIDE) < SIDE // 2
    density = np.where(left[None, None, :] == (labels[:, None, None] == 1), 0.6, 0.15)
    return (rng.random((count, SIDE, SIDE)) < density).astype(np.int32), labels


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("num_categories", [2, 3])
def test_models_map_one_onehot_image_to_a_scalar_or_logit_vector(name, num_categories):
    onehot = random_onehot(0, (28, 28), num_categories)
    scalar_fn = as_output_fn(build_model(name, (28, 28), num_categories))
    assert jax.eval_shape(scalar_fn, onehot).shape == ()
    logits_fn = as_output_fn(build_model(name, (28, 28), num_categories, num_outputs=10))
    assert jax.eval_shape(logits_fn, onehot).shape == (10,)
    batch = jax.jit(jax.vmap(scalar_fn))(random_onehot(1, (4, 28, 28), num_categories))
    assert batch.shape == (4,) and np.all(np.isfinite(batch)) and np.ptp(batch) > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradient_with_respect_to_onehot_is_finite_and_informative(name):
    output_fn = as_output_fn(build_model(name, (SIDE, SIDE), 3, seed=1))
    grad = jax.jit(jax.grad(output_fn))(random_onehot(2, (SIDE, SIDE), 3))
    assert grad.shape == (SIDE, SIDE, 3)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_mlp_keeps_its_original_interface():
    model = MLP((4, 4), 2, rngs=nnx.Rngs(0))
    assert model(random_onehot(3, (4, 4), 2)).shape == ()
    assert mlp_as_output_fn is as_output_fn


def test_build_model_names_the_flag_and_the_known_models():
    with pytest.raises(ValueError, match=r"model='vit'.*cnn, mlp, resnet"):
        build_model("vit", (SIDE, SIDE), 2)


def test_build_model_is_deterministic_in_its_seed():
    onehot = random_onehot(4, (SIDE, SIDE), 2)
    same = [build_model("cnn", (SIDE, SIDE), 2, seed=3)(onehot) for _ in range(2)]
    other = build_model("cnn", (SIDE, SIDE), 2, seed=4)(onehot)
    assert same[0] == same[1] and same[0] != other


@pytest.mark.parametrize("name, epochs", [("mlp", 3), ("cnn", 1)])
def test_binary_training_separates_a_synthetic_task(name, epochs):
    train_images, train_labels = left_heavy_task(0, 640)
    test_images, test_labels = left_heavy_task(1, 400)
    model = build_model(name, (SIDE, SIDE), 2)
    train_classifier(model, train_images, train_labels, num_categories=2, task="binary", epochs=epochs,
                     batch_size=32, learning_rate=3e-3, key=jax.random.key(0), progress=False)
    assert evaluate_accuracy(model, test_images, test_labels, 2, "binary") >= 0.95


def test_multiclass_training_learns_which_third_holds_the_ink():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 900)
    columns = np.arange(SIDE) // (SIDE // 3)
    density = np.where(columns[None, None, :] == labels[:, None, None], 0.6, 0.1)
    images = (rng.random((900, SIDE, SIDE)) < density).astype(np.int32)
    model = build_model("mlp", (SIDE, SIDE), 2, num_outputs=3)
    train_classifier(model, images[:600], labels[:600], num_categories=2, task="multiclass", epochs=3,
                     batch_size=32, learning_rate=3e-3, key=jax.random.key(1), progress=False)
    assert predict_outputs(model, images[600:], 2).shape == (300, 3)
    assert evaluate_accuracy(model, images[600:], labels[600:], 2, "multiclass") >= 0.95


def test_augmented_training_still_learns_and_reports_progress(capsys):
    train_images, train_labels = left_heavy_task(2, 640)
    test_images, test_labels = left_heavy_task(3, 400)
    model = build_model("mlp", (SIDE, SIDE), 2)
    train_classifier(model, train_images, train_labels, num_categories=2, epochs=3, batch_size=32,
                     learning_rate=3e-3, key=jax.random.key(2), augment_severity=0.3)
    assert evaluate_accuracy(model, test_images, test_labels, 2) >= 0.95
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if ": step " not in line]  # a slow
    assert len(lines) == 3 and lines[-1].startswith("train binary epoch 3/3: loss ")  # epoch also says its steps


def test_a_long_epoch_reports_the_steps_it_has_finished(capsys, monkeypatch):
    from omnijax.training import classifier
    monkeypatch.setattr(classifier, "_SAY_EVERY", -1.0)  # every epoch is "long": a line after each step
    images, labels = left_heavy_task(4, 96)
    train_classifier(build_model("mlp", (SIDE, SIDE), 2), images, labels, num_categories=2, epochs=1,
                     batch_size=32, key=jax.random.key(0))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines[:-1]] == [f"train binary epoch 1/1: step {i}/3" for i in (1, 2)]
    assert lines[-1].startswith("train binary epoch 1/1: loss ")


def test_training_rejects_a_task_the_model_cannot_serve():
    images, labels = left_heavy_task(4, 64)
    with pytest.raises(ValueError, match="num_outputs=1"):
        train_classifier(build_model("mlp", (SIDE, SIDE), 2, num_outputs=10), images, labels,
                         num_categories=2, epochs=1, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="task='ranking'"):
        train_classifier(build_model("mlp", (SIDE, SIDE), 2), images, labels, num_categories=2,
                         task="ranking", epochs=1, key=jax.random.key(0), progress=False)


def test_binary_augmentation_flips_severity_over_two_of_the_pixels():
    count, pixels, severity = 4000, 64, 0.4
    images = jnp.asarray(np.random.default_rng(6).integers(0, 2, (count, 8, 8)), jnp.int32)
    flipped = np.asarray(corrupt_images(jax.random.key(7), images, 2, severity) != images)
    per_image = flipped.reshape(count, pixels).mean(axis=1)
    # Per image the rate is Binomial(64, s) / 64 with s ~ U(0, a): mean a/2, and variance
    # a^2/12 + E[s(1 - s)]/64; a fixed severity a/2 would give a far smaller spread.
    spread = np.sqrt(severity ** 2 / 12 + (severity / 2 - severity ** 2 / 3) / pixels)
    assert abs(per_image.mean() - severity / 2) < 5 * spread / np.sqrt(count)
    assert abs(per_image.std() - spread) < 0.1 * spread


def test_categorical_augmentation_moves_pixels_to_a_uniform_other_category():
    images = jnp.zeros((2000, 8, 8), jnp.int32)
    corrupted = np.asarray(corrupt_images(jax.random.key(8), images, 3, 0.5))
    changed = corrupted[corrupted != 0]
    assert abs(changed.size / corrupted.size - 0.25) < 0.01
    assert abs(np.mean(changed == 1) - 0.5) < 0.02
    assert np.array_equal(np.asarray(corrupt_images(jax.random.key(8), images, 3, 0.0)), images)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, name):
    spec = ModelSpec(name, (SIDE, SIDE), 3, num_outputs=4, training={"epochs": 2, "training": "aug"})
    model = spec.build(seed=9)
    save_model(tmp_path / "ckpt", model, spec)
    restored = load_model(tmp_path / "ckpt", ModelSpec(name, [SIDE, SIDE], 3, num_outputs=4))
    images = np.random.default_rng(9).integers(0, 3, (5, SIDE, SIDE))
    np.testing.assert_array_equal(predict_outputs(restored, images, 3), predict_outputs(model, images, 3))
    assert read_spec(tmp_path / "ckpt").training == {"epochs": 2, "training": "aug"}


def test_loading_another_architecture_names_the_mismatch(tmp_path):
    spec = ModelSpec("cnn", (SIDE, SIDE), 2)
    save_model(tmp_path, spec.build(), spec)
    with pytest.raises(ValueError, match=r"is a cnn model but --model=mlp was requested"):
        load_model(tmp_path, ModelSpec("mlp", (SIDE, SIDE), 2))
    with pytest.raises(ValueError, match=r"has num_outputs=1 but num_outputs=10 was requested"):
        load_model(tmp_path, ModelSpec("cnn", (SIDE, SIDE), 2, num_outputs=10))
    with pytest.raises(ValueError, match=r"has input_shape=\(12, 12\) but input_shape=\(28, 28\)"):
        load_model(tmp_path, ModelSpec("cnn", (28, 28), 2))


def test_loading_a_directory_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model checkpoint in .*model.json"):
        load_model(tmp_path, ModelSpec("mlp", (SIDE, SIDE), 2))


def test_saving_never_overwrites_silently(tmp_path):
    spec = ModelSpec("mlp", (SIDE, SIDE), 2)
    first, second = spec.build(seed=0), spec.build(seed=1)
    save_model(tmp_path, first, spec)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model(tmp_path, second, spec)
    images = np.random.default_rng(10).integers(0, 2, (3, SIDE, SIDE))
    np.testing.assert_array_equal(predict_outputs(load_model(tmp_path, spec), images, 2),
                                  predict_outputs(first, images, 2))
    save_model(tmp_path, second, spec, overwrite=True)
    np.testing.assert_array_equal(predict_outputs(load_model(tmp_path, spec), images, 2),
                                  predict_outputs(second, images, 2))
    assert sorted(os.listdir(tmp_path)) == ["model.json", "state"]
