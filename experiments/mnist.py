"""OmniInput on MNIST (paper §4): train (or load) a model, sample its output distribution over ALL
28x28 images, and compare with the dataset-based evaluation.

    python -m experiments.mnist --model=mlp                       # MLP-MNIST-0/1, laptop scale
    python -m experiments.mnist --model=resnet --training=aug     # RES-AUG-MNIST-0/1
    python -m experiments.mnist --model=mlp --training=gen        # MLP-GEN-MNIST-1 (energy-based)
    python -m experiments.mnist --model=mlp --task=multiclass --target_class=3
    python -m experiments.mnist --model=mlp --preset=smoke        # under a minute, for tests

Writes to --workdir (default runs/mnist-<model>-<training>): metrics.json, rho.csv, rho.png,
representatives.png, samples.npz (representative inputs for annotation), traditional.csv (the
dataset-based table, also printed; gather several runs' with `python -m experiments.tables`), the
model checkpoint (model/) and the sampling checkpoints (sampling-<parameter digest>/). A rerun
reuses the model unless --retrain, and an interrupted sampling run resumes.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags, logging

from experiments.workflows import compile_cache_flag
from omnijax.data.ood import OOD_SETS
from experiments.workflows.mnist import PRESETS, TASKS, TRAININGS

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "mlp", ["mlp", "cnn", "resnet"], "Architecture (paper Appendix E).")
flags.DEFINE_enum("training", "bce", list(TRAININGS),
                  "bce: cross-entropy classifier; aug: with uniform-noise augmentation; gen: energy-based model of MNIST-1.")
flags.DEFINE_enum("task", "binary", list(TASKS), "binary: MNIST-0/1 (or MNIST-1 for gen); multiclass: ten digits.")
flags.DEFINE_integer("target_class", 1, "Multiclass task: the class whose log-softmax is sampled.")
flags.DEFINE_enum("preset", "default", list(PRESETS), "smoke (tests), default (laptop), paper (accelerators).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/mnist-<model>-<training>[-multiclass-c<k>]).")
flags.DEFINE_string("data_dir", None, "Directory of MNIST IDX files (else the hub when reachable, else the offline digits).")
flags.DEFINE_string("fashion_data_dir", None, "Directory of Fashion-MNIST test IDX files (else the Debian package, "
                    "else the test split shipped with omnijax, else the hub).")
flags.DEFINE_string("ood_data_dir", None, "Directory with one subdirectory per OOD set (kmnist/, emnist_byclass/, "
                    "qmnist/, fashion_mnist/) holding that release's test IDX files; a set without one comes "
                    "from its other sources (the hub; Fashion-MNIST also from the copy shipped with omnijax).")
flags.DEFINE_list("ood_sets", list(OOD_SETS), "OOD sets for the dataset-based table.")
flags.DEFINE_integer("grey_levels", 2, "Pixel categories K: 2 = binary (threshold 0.5), more = grey levels.")
flags.DEFINE_float("aug_severity", 0.5, "--training=aug: each image flips pixels with probability ~ U(0, this).")
flags.DEFINE_boolean("retrain", False, "Train anew even if --workdir holds a model (replaces it).")
flags.DEFINE_integer("num_bins", None, "Number of output bins (default: the preset's).")
flags.DEFINE_integer("num_steps", None, "MH steps per walker (default: the preset's for the model).")
flags.DEFINE_integer("max_steps", None, "Most MH steps per walker when the run goes on for round trips "
                     "(default: 4x --num_steps; = --num_steps never extends).")
flags.DEFINE_float("z_min", None, "Lowest bin edge (default: from the model's outputs on noise and data).")
flags.DEFINE_float("z_max", None, "Highest bin edge (default: from the model's outputs on noise and data).")
flags.DEFINE_integer("seed", 0, "Seed of training and sampling.")
flags.DEFINE_enum("proposal", "dlp", ["dlp", "gwg", "uniform"],
                  "MH proposal: dlp (discrete Langevin, moves many pixels per step; on the MNIST MLP its "
                  "output decorrelates in ~15 steps against ~500 for gwg, see BUILD_NOTES), gwg (paper), uniform.")


def _default_workdir() -> str:
    suffix = f"-multiclass-c{FLAGS.target_class}" if FLAGS.task == "multiclass" else ""
    return os.path.join("runs", f"mnist-{FLAGS.model}-{FLAGS.training}{suffix}")


def _check_flags() -> None:
    from experiments.workflows.mnist import check_task

    try:
        check_task(FLAGS.task, FLAGS.training, FLAGS.target_class)
    except ValueError as err:
        raise app.UsageError(str(err))
    if FLAGS.grey_levels < 2:
        raise app.UsageError(f"--grey_levels must be >= 2, got {FLAGS.grey_levels}")
    if not 0 <= FLAGS.aug_severity <= 1:
        raise app.UsageError(f"--aug_severity must lie in [0, 1], got {FLAGS.aug_severity}")
    unknown = sorted(set(FLAGS.ood_sets) - set(OOD_SETS))
    if unknown:
        raise app.UsageError(f"--ood_sets has unknown names {unknown}; known: {', '.join(OOD_SETS)}")
    for flag in ("data_dir", "fashion_data_dir", "ood_data_dir"):
        if getattr(FLAGS, flag) is not None and not os.path.isdir(getattr(FLAGS, flag)):
            raise app.UsageError(f"--{flag}={getattr(FLAGS, flag)} is not a directory")
    for flag in ("num_bins", "num_steps", "max_steps"):
        if getattr(FLAGS, flag) is not None and getattr(FLAGS, flag) < 1:
            raise app.UsageError(f"--{flag} must be >= 1, got {getattr(FLAGS, flag)}")
    num_steps = FLAGS.num_steps or PRESETS[FLAGS.preset].num_steps[FLAGS.model]
    if FLAGS.max_steps is not None and FLAGS.max_steps < num_steps:
        raise app.UsageError(f"--max_steps must be >= the run's {num_steps} steps (--num_steps or the preset's), "
                             f"got {FLAGS.max_steps}")
    if FLAGS.z_min is not None and FLAGS.z_max is not None and not FLAGS.z_min < FLAGS.z_max:
        raise app.UsageError(f"--z_min must be < --z_max, got {FLAGS.z_min} and {FLAGS.z_max}")


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv):
    del argv
    _check_flags()
    compile_cache_flag.enable_from_flags()
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    import jax
    import numpy as np

    import omnijax as oj
    from experiments.workflows import mnist as flow
    from omnijax.models.functional import as_log_softmax_fn, as_output_fn
    from omnijax.sampling.output_range import bin_edges_from_outputs
    from experiments.workflows.results import (convergence_summary, print_verdict, write_run_outputs,
                                               write_traditional_csv)
    from omnijax.training.resume import parameter_digest

    started = time.perf_counter()
    preset = PRESETS[FLAGS.preset]
    workdir = FLAGS.workdir or _default_workdir()
    label = f"{FLAGS.model}-{FLAGS.training}" + (f"-c{FLAGS.target_class}" if FLAGS.task == "multiclass" else "")
    levels = FLAGS.grey_levels
    try:
        data = flow.load_task_data(FLAGS.task, FLAGS.training, FLAGS.target_class, FLAGS.model, levels=levels,
                                   data_dir=FLAGS.data_dir, fashion_data_dir=FLAGS.fashion_data_dir,
                                   ood_sets=FLAGS.ood_sets, preset=preset, seed=FLAGS.seed,
                                   ood_data_dir=FLAGS.ood_data_dir, log=_log)
    except FileNotFoundError as err:
        raise app.UsageError(f"--data_dir: {err}")
    print(f"data: {data.source}; {len(data.train_images)} training images", file=sys.stderr)

    key = jax.random.key(FLAGS.seed)
    train_key, probe_key, sample_key = jax.random.split(key, 3)
    hyper = {"preset": FLAGS.preset, "seed": FLAGS.seed, "data_source": data.source}
    if FLAGS.training == "aug":
        hyper["aug_severity"] = FLAGS.aug_severity
    spec = flow.model_spec(FLAGS.model, FLAGS.task, FLAGS.training, levels, hyper)
    model_dir = os.path.abspath(os.path.join(workdir, "model"))
    try:
        model, trained_now = flow.train_or_load(model_dir, spec, data, preset=preset, key=train_key,
                                                aug_severity=FLAGS.aug_severity, retrain=FLAGS.retrain)
    except ValueError as err:  # a checkpoint of another architecture or training
        raise app.UsageError(f"{err} (num_categories is --grey_levels; num_outputs follows --task); use another "
                             f"--workdir, --retrain to replace a finished model, or delete "
                             f"{flow.training_checkpoint_dir(model_dir)} to discard an unfinished training")
    print(f"model: {'trained and saved' if trained_now else 'loaded'} in {model_dir}", file=sys.stderr)
    metrics = {"model": FLAGS.model, "training": FLAGS.training, "task": FLAGS.task, "preset": FLAGS.preset,
               "data_source": data.source, "grey_levels": levels,
               **flow.held_out_metrics(model, data, levels, FLAGS.task, FLAGS.training)}
    if FLAGS.task == "multiclass":
        metrics["target_class"] = FLAGS.target_class
    if metrics.get("test_accuracy") is not None:
        print(f"test accuracy: {metrics['test_accuracy']:.4f} on {metrics['test_images']} images", file=sys.stderr)

    # Dataset-based evaluation (paper §4.1): the same output z, on test sets.
    score = lambda images: flow.scores(model, images, levels, FLAGS.task, FLAGS.target_class)
    rows = flow.traditional_rows(score, data, label, log=_log)
    os.makedirs(workdir, exist_ok=True)
    write_traditional_csv(os.path.join(workdir, "traditional.csv"), rows)

    # Output distribution over all inputs.
    space = oj.InputSpace(shape=(28, 28), num_categories=levels)
    output_fn = as_log_softmax_fn(model, FLAGS.target_class) if FLAGS.task == "multiclass" else as_output_fn(model)
    noise = np.asarray(space.random_inputs(probe_key, 512))
    edges = bin_edges_from_outputs({"uniform noise": score(noise), "training data": score(data.train_images[:2000])},
                                   FLAGS.num_bins or preset.num_bins)
    low = edges[0] if FLAGS.z_min is None else FLAGS.z_min
    high = edges[-1] if FLAGS.z_max is None else FLAGS.z_max
    if FLAGS.task == "multiclass" and FLAGS.z_max is None:
        high = min(high, 0.0)  # a log-softmax never exceeds 0
    if not low < high:
        raise app.UsageError(f"the bin range [{low}, {high}] from --z_min/--z_max and the model is empty")
    edges = np.linspace(low, high, len(edges))
    num_steps = FLAGS.num_steps or preset.num_steps[FLAGS.model]
    sampling_dir = os.path.abspath(os.path.join(workdir, f"sampling-{parameter_digest(model)}"))
    sample_start = time.perf_counter()
    est = oj.estimate_output_distribution(
        output_fn, space, edges, key=sample_key, num_steps=num_steps, num_groups=preset.num_groups,
        steps_per_block=min(1_000, num_steps), pilot_steps=preset.pilot_steps,
        num_replicas=preset.num_replicas, reservoir_size=preset.reservoir_size, proposal=FLAGS.proposal,
        max_steps=FLAGS.max_steps, checkpoint_dir=sampling_dir)
    sampling_seconds = time.perf_counter() - sample_start
    what = {"bce": "classifier", "aug": "classifier, noise-augmented", "gen": "energy-based, log-likelihood"}
    title = f"{label} ({what[FLAGS.training]}) over all {levels}^784 images"
    paths = write_run_outputs(workdir, est, title=title, image_shape=space.shape)
    print_verdict(est)
    filled = np.isfinite(est.log_rho)
    metrics.update({
        "bin_edges": [float(e) for e in est.bin_edges], "num_steps": num_steps,
        "num_steps_run": int(est.diagnostics["num_steps"]), "extensions": est.diagnostics["extensions"],
        "num_groups": preset.num_groups,
        "proposal": FLAGS.proposal,
        "betas": est.betas.tolist(), "swap_acceptance": est.diagnostics["swap_acceptance"].tolist(),
        "round_trips": int(est.diagnostics["round_trips"].sum()), "bins_sampled": int(filled.sum()),
        "sampling_seconds": round(sampling_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
        "traditional": rows, "convergence": convergence_summary(est),
    })
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print("dataset-based evaluation (paper Tables 1-3, percent):\n" + flow.format_table(rows))
    print(f"done in {metrics['seconds']:.0f} s; wrote " + ", ".join(sorted(paths.values()))
          + f", {workdir}/traditional.csv, {workdir}/metrics.json")
    print(f"next: score the representative inputs (one row of representatives.png per bin), then get "
          f"precision and recall over all inputs:\n"
          f"  python -m omnijax.annotation serve --run={workdir} --port=8000\n"
          f"  python -m experiments.pr --runs={workdir}")


if __name__ == "__main__":
    app.run(main)
