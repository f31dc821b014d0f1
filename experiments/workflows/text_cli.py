"""The command line that experiments.lm and experiments.sst2 share: the output-range and sampling
flags (worded for each script), their checks, main()'s first steps and its last (sample the range,
write the outputs, finish metrics.json), so the two scripts differ only in their model.

The flags are defined when a script calls `define_flags` (not on import, so both scripts import in
one process) and belong to that script for absl (its --help lists them as before). Each script
defines --length, --bf16 and --seed itself; the checks and the run read them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from absl import app, flags, logging

from experiments.workflows import compile_cache_flag
from experiments.workflows import text_sampling as ts

FLAGS = flags.FLAGS
# integer flags that must be >= 1 in both scripts, checked in this order
COUNTS = ("length", "num_steps", "num_groups", "range_steps", "min_distinct", "annotation_budget", "annotate_per_bin")


def define_flags(experiment: str, *, confident: str, items: str, unit: str) -> None:
    """Define the range and sampling flags of `experiment` ("lm": runs/lm-...), worded for its
    confident end ("low" or "high" z), what it samples ("sequences") and the unit of z."""
    flags.disclaim_key_flags()  # the flags below are the calling script's
    low = confident == "low"
    pilot = "from the range pilot"
    z_min_default = pilot if low else "upper bound minus the annotation budget's bins"
    z_max_default = "lower bound + the bins the annotation budget scores" if low else pilot
    flags.DEFINE_enum("preset", "default", list(ts.PRESETS), "smoke (tests), default (one accelerator), paper.")
    flags.DEFINE_string("workdir", None, f"Output directory (default runs/{experiment}-<model>-L<length>[-bf16]).")
    flags.DEFINE_float("bin_width", 0.1, f"Bin width (Δz, {unit}).")
    flags.DEFINE_float("z_min", None, f"Lower bound of the output range (default: {z_min_default}).")
    flags.DEFINE_float("z_max", None, f"Upper bound (default: {z_max_default}).")
    flags.DEFINE_integer("min_distinct", 30, f"Range rule: the {'lowest' if low else 'highest'} bin must still hold "
                         f"this many distinct pilot {items}.")
    flags.DEFINE_integer("annotation_budget", 160, f"{items.capitalize()} people will score: sets the "
                         f"{'upper' if low else 'lower'} bound when --{'z_max' if low else 'z_min'} is not given.")
    flags.DEFINE_integer("annotate_per_bin", 8,
                         f"{items.capitalize()} scored per bin (and shown per bin in representatives.md).")
    flags.DEFINE_integer("num_steps", None, "MH sweeps per walker of the main run (default: the preset's).")
    flags.DEFINE_integer("num_groups", None, "Independent walker groups (default: the preset's).")
    flags.DEFINE_integer("range_steps", None, "MH sweeps of the range pilot (default: the preset's).")
    flags.DEFINE_enum("proposal", "token_gwg", ["token_gwg", "token_dlp"], "Token-space proposal.")


def check_flags(counts: tuple[str, ...] = (), above_zero: tuple[str, ...] = ()) -> None:
    """app.UsageError unless COUNTS and `counts` are >= 1 (or unset), --bin_width and `above_zero`
    are > 0, and --z_min < --z_max when both are given."""
    for flag in COUNTS + counts:
        value = getattr(FLAGS, flag)
        if value is not None and value < 1:
            raise app.UsageError(f"--{flag} must be >= 1, got {value}")
    for flag in ("bin_width",) + above_zero:
        if not getattr(FLAGS, flag) > 0:
            raise app.UsageError(f"--{flag} must be > 0, got {getattr(FLAGS, flag)}")
    if FLAGS.z_min is not None and FLAGS.z_max is not None and not FLAGS.z_min < FLAGS.z_max:
        raise app.UsageError(f"--z_min must be < --z_max, got {FLAGS.z_min} and {FLAGS.z_max}")


def start(argv, check: Callable[[], None]) -> ts.TextPreset:
    """main()'s first steps: refuse stray arguments, run the script's flag `check`, quiet Orbax
    (it logs every checkpoint step at INFO); the preset, with --range_steps when given."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    check()
    compile_cache_flag.enable_from_flags()
    logging.set_verbosity(logging.WARNING)
    preset = ts.PRESETS[FLAGS.preset]
    if FLAGS.range_steps is not None:
        preset = dataclasses.replace(preset, range_steps=FLAGS.range_steps)
    return preset


def sample_and_finish(workdir: str, key_record: dict, target, space, *, confident: str, pilot_far: float | None,
                      pilot_span: float, preset: ts.TextPreset, tokenizer, title: str, metrics: dict,
                      started: float) -> None:
    """main()'s last steps: the output range from the flags (and a range pilot), the main run and
    its files in `workdir`, then metrics.json; a ValueError of the run becomes app.UsageError."""
    request = ts.RangeRequest(confident=confident, bin_width=FLAGS.bin_width, min_distinct=FLAGS.min_distinct,
                              annotation_budget=FLAGS.annotation_budget, annotate_per_bin=FLAGS.annotate_per_bin,
                              z_min=FLAGS.z_min, z_max=FLAGS.z_max, pilot_far=pilot_far, pilot_span=pilot_span)
    try:
        run = ts.range_sample_write(workdir, key_record, request, target, space, seed=FLAGS.seed, preset=preset,
                                    num_steps=FLAGS.num_steps, num_groups=FLAGS.num_groups, proposal=FLAGS.proposal,
                                    tokenizer=tokenizer, title=title, per_bin=FLAGS.annotate_per_bin)
    except ValueError as err:
        raise app.UsageError(str(err))
    ts.finish(workdir, run, metrics, started=started, min_distinct=FLAGS.min_distinct, preset=FLAGS.preset,
              proposal=FLAGS.proposal, seed=FLAGS.seed, bf16=FLAGS.bf16)
