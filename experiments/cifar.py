"""OmniInput on CIFAR-10/100 (early appendix §I): train (or load) a multi-class classifier, then
sample the log-softmax of one class over ALL 32x32 colour images with K levels per channel.

    python -m experiments.cifar --dataset=cifar10 --target_class=3 --data_dir=~/data  # ResNet
    python -m experiments.cifar --dataset=cifar100 --model=mlp --levels=4
    python -m experiments.cifar --model=mlp --preset=smoke --data_dir=DIR        # for tests

Data: --data_dir holding the python-version release (cifar-10-batches-py/ or cifar-100-python/),
else the Hugging Face hub copy when reachable; with neither, the run says why and writes nothing.
Writes to --workdir (default runs/<dataset>-<model>-c<target_class>): metrics.json (test accuracy,
the dataset-based table, sampling diagnostics), rho.csv, rho.png, representatives.png,
samples.npz, the model (model/) and the sampling checkpoints (sampling-<parameter digest>/).
A rerun reuses the model unless --retrain, and an interrupted sampling run resumes.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
from absl import app, flags, logging

import omnijax as oj
from experiments.workflows import cifar as flow
from experiments.workflows import compile_cache_flag
from experiments.workflows import mnist as mnist_workflow
from omnijax.data.cifar import CIFAR, IMAGE_SHAPE, DatasetUnavailable
from experiments.workflows.results import convergence_summary, print_verdict, write_run_outputs
from omnijax.training.resume import parameter_digest

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "cifar10", list(CIFAR), "CIFAR-10 (10 classes) or CIFAR-100 (100 fine classes).")
flags.DEFINE_enum("model", "resnet", ["resnet", "cnn", "mlp"], "Architecture (paper Appendix E; ResNet as in §I).")
flags.DEFINE_integer("target_class", 0, "The class whose log-softmax is sampled.")
flags.DEFINE_integer("levels", 2, "Levels K per colour channel: 2 = binary channels (threshold 0.5).")
flags.DEFINE_enum("preset", "default", list(flow.PRESETS), "smoke (tests), default (laptop), paper (accelerators).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/<dataset>-<model>-c<target_class>).")
flags.DEFINE_string("data_dir", None, "Directory of the CIFAR python-version files (else the hub).")
flags.DEFINE_boolean("retrain", False, "Train anew even if --workdir holds a model (replaces it).")
flags.DEFINE_integer("seed", 0, "Seed of training and sampling.")


def _check_flags() -> None:
    try:
        flow.check_target_class(FLAGS.dataset, FLAGS.target_class)
    except ValueError as err:
        raise app.UsageError(str(err))
    if not 2 <= FLAGS.levels <= 256:
        raise app.UsageError(f"--levels must lie in 2..256, got {FLAGS.levels}")


def main(argv):
    del argv
    _check_flags()
    compile_cache_flag.enable_from_flags()
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    started = time.perf_counter()
    preset = flow.PRESETS[FLAGS.preset]
    workdir = FLAGS.workdir or os.path.join("runs", f"{FLAGS.dataset}-{FLAGS.model}-c{FLAGS.target_class}")
    levels, target = FLAGS.levels, FLAGS.target_class
    try:
        data = flow.load_task_data(FLAGS.dataset, target, FLAGS.model, levels=levels, data_dir=FLAGS.data_dir,
                                   preset=preset, seed=FLAGS.seed)
    except (DatasetUnavailable, FileNotFoundError, ValueError) as err:
        print(f"error: cannot run without {CIFAR[FLAGS.dataset].title} data; nothing was written. {err}",
              file=sys.stderr)
        sys.exit(1)
    print(f"data: {data.source}; {len(data.train_images)} training images", file=sys.stderr)

    train_key, probe_key, sample_key = jax.random.split(jax.random.key(FLAGS.seed), 3)
    hyper = {"preset": FLAGS.preset, "seed": FLAGS.seed, "data_source": data.source}
    spec = flow.model_spec(FLAGS.model, FLAGS.dataset, levels, hyper)
    model_dir = os.path.abspath(os.path.join(workdir, "model"))
    try:
        model, trained_now = mnist_workflow.train_or_load(model_dir, spec, data, preset=preset, key=train_key,
                                                          aug_severity=0.0,  # unused: no noise augmentation
                                                          retrain=FLAGS.retrain)
    except ValueError as err:  # a checkpoint of another architecture, dataset or --levels
        raise app.UsageError(f"{err}; use another --workdir, or --retrain to replace it")
    print(f"model: {'trained and saved' if trained_now else 'loaded'} in {model_dir}", file=sys.stderr)
    label = f"{FLAGS.dataset}-{FLAGS.model}-c{target}"
    metrics = {"dataset": FLAGS.dataset, "model": FLAGS.model, "task": flow.TASK, "target_class": target,
               "preset": FLAGS.preset, "data_source": data.source, "levels": levels,
               **mnist_workflow.held_out_metrics(model, data, levels, flow.TASK, flow.TRAINING)}
    print(f"test accuracy: {metrics['test_accuracy']:.4f} on {metrics['test_images']} images", file=sys.stderr)

    # Dataset-based evaluation: the same z on the test images of class c against the other classes.
    rows = mnist_workflow.traditional_rows(
        lambda images: mnist_workflow.scores(model, images, levels, flow.TASK, target), data, label)
    print(mnist_workflow.format_table(rows))

    # Output distribution over all inputs.
    space = oj.InputSpace(shape=IMAGE_SHAPE, num_categories=levels)
    edges = flow.log_softmax_bin_edges(model, space, data.train_images, target, preset.num_bins, probe_key)
    num_steps = preset.num_steps[FLAGS.model]
    sampling_dir = os.path.abspath(os.path.join(workdir, f"sampling-{parameter_digest(model)}"))
    sample_start = time.perf_counter()
    est = flow.estimate_class_log_softmax(model, target, space, edges, num_steps=num_steps, preset=preset,
                                          key=sample_key, checkpoint_dir=sampling_dir)
    sampling_seconds = time.perf_counter() - sample_start
    title = f"{label}: log softmax of class {target} over all {levels}^{32 * 32 * 3} images"
    paths = write_run_outputs(workdir, est, title=title, image_shape=space.shape)
    print_verdict(est)
    metrics.update({**flow.sampling_metrics(est), "convergence": convergence_summary(est),
                    "num_steps": num_steps, "num_groups": preset.num_groups,
                    "sampling_seconds": round(sampling_seconds, 1),
                    "seconds": round(time.perf_counter() - started, 1), "traditional": rows})
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"done in {metrics['seconds']:.0f} s; wrote " + ", ".join(sorted(paths.values()))
          + f", {workdir}/metrics.json")


if __name__ == "__main__":
    app.run(main)
