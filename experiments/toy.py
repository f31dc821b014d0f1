"""The paper's validation (§3.1, Fig. 2): a toy GPT-2 over digit sequences, whose output
distribution over ALL 10^L sequences is both counted exactly and sampled.

    python -m experiments.toy --length=6                  # 2-core CPU, well under 30 minutes
    python -m experiments.toy --length=8 --preset=paper   # the paper's 10^8 sequences, for an accelerator
    python -m experiments.toy --model_dir=DIR --length=6  # evaluate a trained toy GPT-2 (HF directory)

The model (6 layers, 4 heads; vocabulary 0-9 + BOS) is trained on sequences whose digit sum
is divisible by --divisor until that many of its generated sequences satisfy it. Its output
z is the mean NLL per token. Writes to --workdir (default runs/toy-L<length>): comparison.csv
and comparison.png (exact against sampled ln rho(z) and r(z)), representatives.csv/.png,
rho.csv/rho.png, samples.npz, metrics.json, and the model as a Hugging Face GPT-2 directory
(model/). Training, enumeration and sampling checkpoint as they go; a rerun resumes them.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time

from absl import app, flags, logging

from experiments.workflows import compile_cache_flag
from experiments.workflows.toy import PRESETS

FLAGS = flags.FLAGS
flags.DEFINE_integer("length", 8, "Sequence length L: the space holds 10^L digit sequences.")
flags.DEFINE_integer("divisor", 30, "The constraint: the digit sum is divisible by this.")
flags.DEFINE_integer("num_layers", 6, "GPT-2 layers.")
flags.DEFINE_integer("num_heads", 4, "Attention heads.")
flags.DEFINE_integer("embed_dim", 64, "Embedding width (a multiple of --num_heads).")
flags.DEFINE_enum("preset", "default", list(PRESETS), "smoke (tests), default (CPU, L <= 6), paper (accelerators).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/toy-L<length>).")
flags.DEFINE_string("model_dir", None, "Evaluate this trained toy GPT-2 (a Hugging Face directory) instead of training.")
flags.DEFINE_boolean("retrain", False, "Train anew even if --workdir holds a model.")
flags.DEFINE_integer("train_steps", None, "Most training updates (default: the preset's).")
flags.DEFINE_float("target_rate", None, "Stop training once this fraction of generated sequences satisfies the "
                   "constraint (default: the preset's).")
flags.DEFINE_integer("num_bins", None, "Number of output bins (default: the preset's).")
flags.DEFINE_integer("num_steps", None, "MH steps per walker (default: the preset's).")
flags.DEFINE_integer("num_generated", 10_000, "Generated sequences for the reported generation rate.")
flags.DEFINE_integer("seed", 0, "Seed of training and sampling.")

MAX_CPU_LENGTH = 7  # 10^7 sequences is about the most a CPU enumerates in minutes


def _check_flags() -> None:
    from omnijax.data import digit_sum

    try:
        digit_sum.check_task(FLAGS.length, FLAGS.divisor)
    except ValueError as err:
        raise app.UsageError(f"--{str(err)}")
    if FLAGS.length > 10:
        raise app.UsageError(f"--length={FLAGS.length}: 10^{FLAGS.length} sequences is too many to enumerate; "
                             "use --length <= 10")
    for flag in ("num_layers", "num_heads", "embed_dim", "train_steps", "num_bins", "num_steps", "num_generated"):
        value = getattr(FLAGS, flag)
        if value is not None and value < 1:
            raise app.UsageError(f"--{flag} must be >= 1, got {value}")
    if FLAGS.embed_dim % FLAGS.num_heads:
        raise app.UsageError(f"--embed_dim={FLAGS.embed_dim} must be a multiple of --num_heads={FLAGS.num_heads}")
    if FLAGS.target_rate is not None and not 0 < FLAGS.target_rate <= 1:
        raise app.UsageError(f"--target_rate must lie in (0, 1], got {FLAGS.target_rate}")
    if FLAGS.model_dir is not None and not os.path.isdir(FLAGS.model_dir):
        raise app.UsageError(f"--model_dir={FLAGS.model_dir} does not exist (expected a directory with "
                             "config.json and model.safetensors)")


def main(argv):
    del argv
    _check_flags()
    compile_cache_flag.enable_from_flags()
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    import dataclasses

    import jax
    import numpy as np

    import omnijax as oj
    from omnijax.data import digit_sum
    from experiments.workflows import exact_comparison
    from experiments.workflows import toy as flow
    from omnijax.sampling.output_range import bin_edges_from_outputs
    from omnijax.evaluation.plots import plot_representative_sequences
    from experiments.workflows.results import convergence_summary, print_verdict, write_run_outputs
    from omnijax.training.language_model import generate
    from omnijax.training.resume import parameter_digest

    started = time.perf_counter()
    length, divisor = FLAGS.length, FLAGS.divisor
    preset = PRESETS[FLAGS.preset]
    workdir = FLAGS.workdir or os.path.join("runs", f"toy-L{length}")
    if jax.default_backend() == "cpu" and length > MAX_CPU_LENGTH:
        print(f"warning: --length={length} on a CPU enumerates 10^{length} sequences; expect hours "
              "(the enumeration checkpoints and resumes)", file=sys.stderr)
    key = jax.random.key(FLAGS.seed)
    train_key, probe_key, generate_key, sample_key = jax.random.split(key, 4)

    training = dataclasses.replace(
        preset.training, **{k: v for k, v in (("max_steps", FLAGS.train_steps), ("target_rate", FLAGS.target_rate))
                            if v is not None})
    try:
        if FLAGS.model_dir is not None:
            model_dir = os.path.abspath(FLAGS.model_dir)
            model, history = flow.load_toy_model(model_dir, length, divisor)
            trained_now = False
        else:
            model_dir = os.path.abspath(os.path.join(workdir, "model"))
            config = flow.model_config(length, FLAGS.num_layers, FLAGS.num_heads, FLAGS.embed_dim)
            model, history, trained_now = flow.train_or_load(model_dir, config, length=length, divisor=divisor,
                                                             training=training, key=train_key, retrain=FLAGS.retrain)
    except ValueError as err:
        hint = "" if FLAGS.model_dir else " (use another --workdir, or --retrain to replace it)"
        raise app.UsageError(f"{err}{hint}")
    print(f"model: {'trained and saved' if trained_now else 'loaded'} in {model_dir}", file=sys.stderr)

    generated = generate(model, generate_key, FLAGS.num_generated, length)
    rate = float(digit_sum.satisfies(generated, divisor).mean())
    print(f"generated sequences satisfying the constraint: {rate:.4f} of {FLAGS.num_generated}", file=sys.stderr)

    # Bins over what the model gives random sequences (the bulk) and its own sequences (the tail).
    space = oj.InputSpace(shape=(length,), num_categories=digit_sum.NUM_DIGITS)
    random_sequences = np.asarray(space.random_inputs(probe_key, 2_000))
    edges = bin_edges_from_outputs({"uniform random sequences": flow.sequence_nll(model, random_sequences),
                                    "generated sequences": flow.sequence_nll(model, generated[:2_000])},
                                   FLAGS.num_bins or preset.num_bins)
    output_fn = flow.digit_output_fn(model)
    run_id = f"{parameter_digest(model)}-{len(edges) - 1}bins"
    os.makedirs(workdir, exist_ok=True)

    enumerate_start = time.perf_counter()
    exact = oj.enumerate_output_distribution(
        output_fn, space, edges, statistic_fn=digit_sum.constraint_statistic(divisor),
        checkpoint_dir=os.path.join(workdir, f"enumeration-{run_id}"))
    enumerate_seconds = time.perf_counter() - enumerate_start

    num_steps = FLAGS.num_steps or preset.num_steps
    sample_start = time.perf_counter()
    est = oj.estimate_output_distribution(
        output_fn, space, edges, key=sample_key, num_steps=num_steps, num_groups=preset.num_groups,
        steps_per_block=min(1_000, num_steps), pilot_steps=preset.pilot_steps, num_replicas=preset.num_replicas,
        reservoir_size=preset.reservoir_size,
        checkpoint_dir=os.path.abspath(os.path.join(workdir, f"sampling-{run_id}-{num_steps}steps")))
    sample_seconds = time.perf_counter() - sample_start

    oracle = flow.constraint_oracle(divisor)
    annotations = flow.annotate_representatives(est, oracle)
    table = exact_comparison.comparison_table(exact, est, annotations)
    checks = exact_comparison.agreement(table, space.size)
    title = f"toy GPT-2, all 10^{length} digit sequences (sum divisible by {divisor})"
    exact_comparison.write_comparison_csv(os.path.join(workdir, "comparison.csv"), table)
    exact_comparison.plot_comparison(os.path.join(workdir, "comparison.png"), table, title)
    write_run_outputs(workdir, est, title=title)
    print_verdict(est)
    _write_representatives(workdir, est, annotations, plot_representative_sequences)

    metrics = {
        "length": length, "divisor": divisor, "preset": FLAGS.preset, "model_dir": model_dir,
        "model": {"n_layer": model.config.n_layer, "n_head": model.config.n_head, "n_embd": model.config.n_embd},
        "trained_now": trained_now, "training_history": history,
        "generation_rate": rate, "num_generated": FLAGS.num_generated,
        "num_satisfying_exact": digit_sum.num_satisfying(length, divisor), "space_size": space.size,
        "bin_edges": [float(e) for e in edges], "exact_min_output": exact.min_output,
        "exact_max_output": exact.max_output, "inputs_outside_bins": exact.num_below + exact.num_above,
        "num_steps": num_steps, "num_groups": preset.num_groups, "betas": est.betas.tolist(),
        "swap_acceptance": est.diagnostics["swap_acceptance"].tolist(),
        "round_trips": int(est.diagnostics["round_trips"].sum()), **checks,
        "enumerate_seconds": round(enumerate_seconds, 1), "sampling_seconds": round(sample_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1), "convergence": convergence_summary(est),
    }
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"max |ln rho sampled - exact| over {checks['bins_compared_log_rho']} bins with >= 100 sequences: "
          f"{checks['max_abs_log_rho_error']:.3f}; max |r sampled - exact| over {checks['bins_compared_r']} bins with "
          f">= 30 annotated samples: {checks['max_abs_r_error']:.3f}")
    print(f"done in {metrics['seconds']:.0f} s (enumeration {enumerate_seconds:.0f} s, sampling {sample_seconds:.0f} s); "
          f"wrote {workdir}/comparison.csv, comparison.png, metrics.json")


def _write_representatives(workdir, est, annotations, plot) -> None:
    """representatives.csv (bin, z, sequence, oracle score) and a picture of a few per bin."""
    rows, labels, marks = [], [], []
    with open(os.path.join(workdir, "representatives.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin", "bin_lo", "bin_hi", "z", "sequence", "oracle_score"])
        for b in range(est.num_bins):
            reps, outputs = est.representatives(b), est.representative_outputs(b)
            strings = ["".join(map(str, r)) for r in reps]
            for s, z, score in zip(strings, outputs, annotations[b]):
                writer.writerow([b, f"{est.bin_edges[b]:.6g}", f"{est.bin_edges[b + 1]:.6g}", f"{z:.6g}", s, score])
            if strings:
                rows.append(strings)
                labels.append(f"z≈{(est.bin_edges[b] + est.bin_edges[b + 1]) / 2:.2f}")
                marks.append([bool(v) for v in annotations[b]])
    plot(os.path.join(workdir, "representatives.png"), rows, labels, marks,
         title="representatives per bin (green: digit sum divisible, red: not)")


if __name__ == "__main__":
    app.run(main)
