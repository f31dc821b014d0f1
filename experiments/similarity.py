"""OmniInput on a sentence-embedding model: how much of ALL L-token texts does a BERT sentence
encoder find similar to a reference sentence?

    python -m experiments.similarity                                  # all-MiniLM-L6-v2, L = 4, under an hour on a CPU
    python -m experiments.similarity --preset=smoke                   # a few minutes, for tests
    python -m experiments.similarity --reference="The stock market fell sharply." --length=6

z = cosine similarity between the sentence embedding (mean-pooled last hidden state, attention mask
all ones, L2-normalised) of [CLS] x_1..x_L [SEP] and that of [CLS] --reference [SEP]; the space is
every x in V^L (V = 30,522 WordPiece tokens for MiniLM), [CLS] and [SEP] frozen. The model is a JAX
token target (weights passed to every compiled call) sampled by replica exchange with token-space
Gibbs-with-gradients (--proposal=token_gwg) or discrete Langevin (token_dlp).

Output range: unless --z_min/--z_max are given, a short probe chooses it (see
experiments.workflows.similarity.output_range): from the median of z over uniformly random
sequences (the bulk of the space) up to where a few token-GWG chains at a high beta settle, both
rounded down to multiples of --bin_width (Δz).

Writes to --workdir (default runs/similarity-L<length>): rho.csv, rho.png (unconverged bins marked),
samples.npz, representatives.csv / .md / .png (decoded texts per bin, frozen [CLS]/[SEP] stripped),
texts.json (what the annotation page shows), metrics.json (with the convergence verdict), probe.json,
and the sampling checkpoint sampling-<digest>/ (a rerun with the same flags resumes from it).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

from absl import app, flags, logging

from experiments.workflows import compile_cache_flag
from experiments.workflows.similarity import PRESETS
from omnijax.util.heartbeat import Heartbeat

DEFAULT_REFERENCE = "A man is playing a guitar."

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Hugging Face BERT directory or hub id (default: the shipped all-MiniLM-L6-v2, "
                    "omnijax.models.bert.minilm_directory()).")
flags.DEFINE_string("tokenizer", None, "Tokenizer directory, tokenizer.json or hub id (default: --model's).")
flags.DEFINE_string("reference", DEFAULT_REFERENCE, "The sentence whose similarity is sampled.")
flags.DEFINE_enum("preset", "default", list(PRESETS), "smoke (tests, minutes), default (a 2-core CPU, < 1 hour).")
flags.DEFINE_integer("length", None, "Free tokens between [CLS] and [SEP] (default: the preset's).")
flags.DEFINE_float("bin_width", None, "Δz, the width of an output bin (default: the preset's).")
flags.DEFINE_float("z_min", None, "Lowest bin edge (default: from the probe).")
flags.DEFINE_float("z_max", None, "Highest bin edge (default: from the probe).")
flags.DEFINE_integer("num_steps", None, "Sweeps per walker (default: the preset's).")
flags.DEFINE_integer("num_groups", None, "Independent walker groups (default: the preset's).")
flags.DEFINE_integer("pilot_steps", None, "Sweeps of the ladder pilot (default: the preset's).")
flags.DEFINE_integer("probe_steps", None, "Sweeps of the output-range probe (default: the preset's).")
flags.DEFINE_integer("reservoir_size", None, "Representatives kept per bin (default: the preset's).")
flags.DEFINE_integer("num_replicas", None, "Ladder rungs (default: placed from the pilot and the burn-in).")
flags.DEFINE_integer("per_bin", 8, "Representatives per bin in representatives.csv/.md/.png.")
flags.DEFINE_enum("proposal", "token_gwg", ["token_gwg", "token_dlp"],
                  "Token-space MH proposal: token_gwg (Gibbs with gradients, one token per step; mixes better "
                  "here, see the notes) or token_dlp (discrete Langevin, every position at once).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/similarity-L<length>).")
flags.DEFINE_integer("seed", 0, "Seed of the probe and the sampling.")


def _check_flags(preset) -> None:
    for flag in ("num_steps", "num_groups", "pilot_steps", "probe_steps", "reservoir_size", "per_bin"):
        value = getattr(FLAGS, flag)
        if value is not None and value < 1:
            raise app.UsageError(f"--{flag} must be >= 1, got {value}")
    if FLAGS.num_replicas is not None and FLAGS.num_replicas < 2:
        raise app.UsageError(f"--num_replicas must be >= 2, got {FLAGS.num_replicas}")
    if FLAGS.bin_width is not None and not FLAGS.bin_width > 0:
        raise app.UsageError(f"--bin_width must be > 0, got {FLAGS.bin_width}")
    for flag in ("z_min", "z_max"):
        value = getattr(FLAGS, flag)
        if value is not None and not -1.0 <= value <= 1.0:
            raise app.UsageError(f"--{flag} must lie in [-1, 1] (z is a cosine similarity), got {value}")
    if FLAGS.z_min is not None and FLAGS.z_max is not None and not FLAGS.z_min < FLAGS.z_max:
        raise app.UsageError(f"--z_min must be < --z_max, got {FLAGS.z_min} and {FLAGS.z_max}")
    length = FLAGS.length if FLAGS.length is not None else preset.length
    if length < 1:
        raise app.UsageError(f"--length must be >= 1, got {length}")


def main(argv):
    del argv
    preset = PRESETS[FLAGS.preset]
    _check_flags(preset)
    compile_cache_flag.enable_from_flags()
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    from experiments.workflows import similarity as flow

    beat = Heartbeat()
    try:
        _run(flow, preset, beat)
    finally:
        beat.close()


def _run(flow, preset, beat):
    import dataclasses

    import jax
    import numpy as np

    import omnijax as oj
    from experiments.workflows.results import convergence_summary, print_verdict, write_run_outputs
    from omnijax.models.bert import BertLoadError, minilm_directory
    from omnijax.text import write_text_representatives

    log = lambda text: print(text, file=sys.stderr, flush=True)
    started = time.perf_counter()
    overrides = {name: getattr(FLAGS, name) for name in ("length", "bin_width", "num_steps", "num_groups",
                                                         "pilot_steps", "probe_steps", "reservoir_size", "num_replicas")
                 if getattr(FLAGS, name) is not None}
    preset = dataclasses.replace(preset, **overrides)
    beat.phase("loading the model")
    if FLAGS.model is None:
        try:
            model_source = str(minilm_directory())
        except BertLoadError as err:
            raise app.UsageError(f"--model (default all-MiniLM-L6-v2): {err}")
    else:
        model_source = FLAGS.model
    try:
        setup = flow.load(model_source, FLAGS.tokenizer, FLAGS.reference, preset.length)
    except ValueError as err:  # FlagError, BertLoadError, TokenizerError: each names its flag
        raise app.UsageError(str(err))
    config = setup.model.config
    log(f"model: {model_source} (BERT, {config.num_hidden_layers} layers, width {config.hidden_size}, "
        f"vocabulary {config.vocab_size}); reference {FLAGS.reference!r} = {len(setup.reference_ids) - 2} tokens; "
        f"space: [CLS] + {preset.length} tokens + [SEP], {config.vocab_size}^{preset.length} sequences")
    workdir = FLAGS.workdir or os.path.join("runs", f"similarity-L{preset.length}")
    os.makedirs(workdir, exist_ok=True)

    key = jax.random.key(FLAGS.seed)
    probe_key, sample_key = jax.random.split(key)
    beat.phase("probe")
    probe = None
    if FLAGS.z_min is None or FLAGS.z_max is None:
        probe = flow.output_range(setup, preset, preset.bin_width, probe_key, os.path.join(workdir, "probe.json"),
                                  log=log)
        log(f"probe: random sequences z = {probe['random_mean']:.3f} ± {probe['random_std']:.3f}; the probe "
            f"chains reached {probe['probe_high']:.3f} ({probe['probe_best_text']!r})")
    z_min = probe["z_min"] if FLAGS.z_min is None else FLAGS.z_min
    z_max = probe["z_max"] if FLAGS.z_max is None else FLAGS.z_max
    if not z_min < z_max:
        raise app.UsageError(f"the output range [{z_min}, {z_max}] from --z_min/--z_max and the probe is empty")
    edges = flow.bin_edges(z_min, z_max, preset.bin_width)
    log(f"bins: {len(edges) - 1} of width {preset.bin_width:g} over [{edges[0]:.4g}, {edges[-1]:.4g}]")

    sampling = {"proposal": FLAGS.proposal, "num_steps": preset.num_steps, "num_groups": preset.num_groups,
                "pilot_steps": preset.pilot_steps, "reservoir_size": preset.reservoir_size,
                "num_replicas": preset.num_replicas, "steps_per_block": preset.steps_per_block, "seed": FLAGS.seed}
    sampling_dir = os.path.abspath(os.path.join(workdir, f"sampling-{flow.settings_digest(setup, edges, sampling)}"))
    resumed = os.path.isdir(sampling_dir)
    log(f"sampling: {'resuming from' if resumed else 'checkpoints in'} {sampling_dir}")
    beat.phase("sampling (pilot, ladder, replica exchange)")
    sample_start = time.perf_counter()
    try:
        est = oj.estimate_output_distribution(
            setup.target, setup.space, edges, key=sample_key, num_steps=preset.num_steps,
            num_groups=preset.num_groups, steps_per_block=min(preset.steps_per_block, preset.num_steps),
            pilot_steps=preset.pilot_steps, num_replicas=preset.num_replicas, reservoir_size=preset.reservoir_size,
            proposal=FLAGS.proposal, checkpoint_dir=sampling_dir)
    except ValueError as err:
        if sampling_dir in str(err) or "checkpoint" in str(err):  # a directory of another run, refused
            raise app.UsageError(f"--workdir={workdir}: {err}")
        raise
    sampling_seconds = time.perf_counter() - sample_start

    beat.phase("writing the outputs")
    name = "all-MiniLM-L6-v2" if FLAGS.model is None else os.path.basename(os.path.normpath(model_source))
    reference = FLAGS.reference if len(FLAGS.reference) <= 40 else FLAGS.reference[:39] + "…"
    title = f"{name}: cos to {reference!r} over all {config.vocab_size}^{preset.length} texts"
    paths = write_run_outputs(workdir, est, title=title)
    paths.update(write_text_representatives(workdir, est, setup.tokenizer, per_bin=FLAGS.per_bin, title=title))
    print_verdict(est)
    filled = np.isfinite(est.log_rho)
    metrics = {
        "experiment": "similarity", "model": model_source, "tokenizer": setup.tokenizer.source,
        "reference": FLAGS.reference, "reference_ids": setup.reference_ids, "length": preset.length,
        "preset": FLAGS.preset, "log_space_size": float(setup.space.log_size),
        "output": "cosine similarity of L2-normalised mean-pooled last hidden states (attention mask all ones)",
        "bin_edges": [float(e) for e in est.bin_edges], "bin_width": preset.bin_width,
        "output_range": {(True, True): "probe", (False, False): "flags"}.get(
            (FLAGS.z_min is None, FLAGS.z_max is None), "probe and flags"),
        "probe": probe, **sampling, "resumed": resumed,
        "betas": est.betas.tolist(), "swap_acceptance": est.diagnostics["swap_acceptance"].tolist(),
        "round_trips": int(est.diagnostics["round_trips"].sum()), "bins_sampled": int(filled.sum()),
        "sampling_seconds": round(sampling_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
        "convergence": convergence_summary(est),
    }
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    paths["metrics.json"] = os.path.join(workdir, "metrics.json")
    print(f"done in {metrics['seconds']:.0f} s; wrote " + ", ".join(sorted(paths.values())))
    print(f"next: score the texts (representatives.md lists them per bin), then precision and recall:\n"
          f"  python -m omnijax.annotation serve --run={workdir} --port=8000 "
          f"--question={shlex.quote('Does the text mean the same as: ' + FLAGS.reference)}\n"
          f"  python -m experiments.pr --runs={workdir}")


if __name__ == "__main__":
    app.run(main)
