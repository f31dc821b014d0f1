"""Test accuracy and the dataset-based table of the MNIST models at a preset's training budget,
without the (long, for CNN/ResNet on a CPU) sampling step of experiments.mnist.

    python -m benchmarks.mnist_accuracy                                   # default preset, all models
    python -m benchmarks.mnist_accuracy --runs=cnn-bce,resnet-aug --preset=smoke

Prints one JSON object per line: model, training, preset, data source, test accuracy (None for
"gen"), training seconds, and AUPR/AUROC/FPR95 against each negative set.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from absl import app, flags

from experiments.workflows.mnist import PRESETS

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", ["mlp-bce", "cnn-bce", "mlp-aug", "cnn-aug", "resnet-aug", "mlp-gen", "resnet-gen"],
                  "<model>-<training> pairs (binary task).")
flags.DEFINE_enum("preset", "default", list(PRESETS), "Training budget.")
flags.DEFINE_float("aug_severity", 0.5, "Maximum flip probability of the aug training.")
flags.DEFINE_integer("seed", 0, "Seed.")


def main(argv):
    del argv
    import jax

    from experiments.workflows import mnist as flow

    preset = PRESETS[FLAGS.preset]
    for run in FLAGS.runs:
        model_name, _, training = run.partition("-")
        flow.check_task("binary", training, 1)
        data = flow.load_task_data("binary", training, 1, model_name, levels=2, data_dir=None,
                                   fashion_data_dir=None, ood_sets=["fashion_mnist"], preset=preset,
                                   seed=FLAGS.seed)
        spec = flow.model_spec(model_name, "binary", training, 2, {"preset": FLAGS.preset})
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as directory:
            model, _ = flow.train_or_load(directory, spec, data, preset=preset, key=jax.random.key(FLAGS.seed),
                                          aug_severity=FLAGS.aug_severity, retrain=False, progress=False)
        seconds = time.perf_counter() - start
        metrics = flow.held_out_metrics(model, data, 2, "binary", training)
        rows = flow.traditional_rows(lambda images: flow.scores(model, images, 2, "binary", 1), data, run)
        print(json.dumps({"run": run, "preset": FLAGS.preset, "data_source": data.source,
                          "train_images": int(len(data.train_images)), "test_accuracy": metrics["test_accuracy"],
                          "train_seconds": round(seconds, 1), "table": rows}), flush=True)
        print(flow.format_table(rows), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
