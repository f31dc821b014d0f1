"""A model judge beside people, per output bin (paper §4, Appendix G, Table 5): FID of each bin's
representative inputs against the MNIST test 1s, and r(z) from a reference CNN and from people.

    python -m experiments.judge --run=runs/mnist-mlp-bce
    python -m experiments.judge --run=runs/mnist-cnn-bce --weighted     # FID with samples.npz's weights

The judge is a small CNN trained on the ten MNIST digits by omnijax itself (no download; cached in
--judge_dir/k<grey levels>/ with training.json: data source, steps, seed, test accuracy, time). Its
penultimate layer gives the FID features; P(digit = 1) from its softmax scores every sample of the
run through the run's annotation store (--db, default <run>/annotations.sqlite) as an annotator of
kind "judge" (experiments.pr holds it against the people and counts it in r(z) only when --annotators names it).

Writes into --run: judge_fid.csv (bin,bin_lo,bin_hi,n_representatives,fid), judge_table.csv (the
Table 5 columns: humans' r, judge's r, FID per bin; humans' r empty where no person scored),
judge_fid.png (FID and both r(z) per bin) and judge.json (settings, sources, Spearman ρ), and
prints the table and, once people have scored, Spearman ρ between −FID and their r(z).
"""

from __future__ import annotations

import math
import os
import time

from absl import app, flags, logging

from experiments.workflows import compile_cache_flag

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Run directory of python -m experiments.mnist (samples.npz, metrics.json).")
flags.DEFINE_string("judge_dir", os.path.join("runs", "judge-mnist-cnn"),
                    "Where the judge CNN is trained once and cached (one subdirectory per grey-level count).")
flags.DEFINE_string("db", None, "Annotation store of the run (default <run>/annotations.sqlite).")
flags.DEFINE_string("data_dir", None, "Directory of MNIST IDX files (else the hub when reachable, else the "
                    "offline digits shipped with omnijax).")
flags.DEFINE_integer("judge_epochs", 3, "Training epochs of the judge CNN.")
flags.DEFINE_integer("judge_train_limit", None, "At most this many training digits (default: all); with "
                     "--judge_batch_size it sets the judge's training steps (tests train for a few).")
flags.DEFINE_integer("judge_batch_size", 128, "Judge training batch size.")
flags.DEFINE_integer("judge_seed", 0, "Seed of the judge's initialisation and training order.")
flags.DEFINE_boolean("retrain_judge", False, "Delete the cached judge for this grey-level count and train anew.")
flags.DEFINE_boolean("weighted", False, "Fit each bin's Gaussian with the samples' within-bin weights (as r(z) "
                     "weighs them). Default: every representative once, so every bin's FID rests on the same "
                     "count (FID's small-sample bias depends on it).")


def _check_flags() -> None:
    if not FLAGS.run:
        raise app.UsageError("--run is required: a run directory of python -m experiments.mnist")
    if not os.path.isdir(FLAGS.run):
        raise app.UsageError(f"--run={FLAGS.run} is not a directory")
    if FLAGS.data_dir is not None and not os.path.isdir(FLAGS.data_dir):
        raise app.UsageError(f"--data_dir={FLAGS.data_dir} is not a directory")
    for flag in ("judge_epochs", "judge_batch_size"):
        if getattr(FLAGS, flag) < 1:
            raise app.UsageError(f"--{flag} must be >= 1, got {getattr(FLAGS, flag)}")
    if FLAGS.judge_train_limit is not None and FLAGS.judge_train_limit < 10:
        raise app.UsageError(f"--judge_train_limit must be >= 10 (some digits of each class), got "
                             f"{FLAGS.judge_train_limit}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    _check_flags()
    compile_cache_flag.enable_from_flags()
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    from omnijax.util.heartbeat import Heartbeat

    beat = Heartbeat()
    try:
        _run(beat)
    finally:
        beat.close()


def _run(beat) -> None:
    import numpy as np

    from experiments.workflows import judge as flow
    from experiments.workflows.results import write_json
    from omnijax.annotation import Store
    from omnijax.evaluation import spearman
    from omnijax.evaluation.fid import fid_per_bin, fit_gaussian

    started = time.perf_counter()
    log = flow.stderr_log
    run_dir = FLAGS.run
    try:
        samples = flow.load_run(run_dir)
        levels = samples["num_categories"]
        beat.phase("judge: loading or training the feature CNN")
        judge = flow.train_or_load_judge(FLAGS.judge_dir, levels, epochs=FLAGS.judge_epochs,
                                         train_limit=FLAGS.judge_train_limit, batch_size=FLAGS.judge_batch_size,
                                         seed=FLAGS.judge_seed, data_dir=FLAGS.data_dir,
                                         retrain=FLAGS.retrain_judge, log=log)
    except FileNotFoundError as err:
        raise app.UsageError(f"--data_dir: {err}")
    except flow.JudgeError as err:
        raise app.UsageError(str(err))

    beat.phase("judge: features and FID per bin")
    reference, reference_source = flow.reference_ones(levels, FLAGS.data_dir)
    log(f"reference: {len(reference)} MNIST test 1s ({reference_source}); {len(samples['inputs'])} "
        f"representatives in {len(samples['bin_edges']) - 1} bins")
    reference_gaussian = fit_gaussian(judge.features(reference), name="MNIST test 1s")
    fids = fid_per_bin(judge.features(samples["inputs"]), samples["bin"], samples["bin_edges"], reference_gaussian,
                       weights=samples["weight"] if FLAGS.weighted else None)

    beat.phase("judge: scoring the samples through the annotation store")
    db = FLAGS.db or os.path.join(run_dir, "annotations.sqlite")
    with Store(db) as store:
        run_id, added = flow.score_with_judge(store, run_dir, judge)
        log(f"judge {judge.name}: scored {added} new samples in {db} (kind \"judge\")")
        judge_r, _ = flow.precision_per_bin(store, run_id, [judge.name], samples["weight"])
        persons = flow.people(store, run_id)
        humans, humans_scored = flow.precision_per_bin(store, run_id, persons, samples["weight"])

    rows = flow.table_rows(fids, humans, humans_scored, judge_r)
    paths = {name: os.path.join(run_dir, name) for name in ("judge_fid.csv", "judge_table.csv", "judge_fid.png",
                                                              "judge.json")}
    flow.write_fid_csv(paths["judge_fid.csv"], fids)
    flow.write_table_csv(paths["judge_table.csv"], rows)
    title = (f"{os.path.basename(os.path.abspath(run_dir))}: FID of each bin's representatives vs MNIST test 1s "
             f"({'weighted' if FLAGS.weighted else 'unweighted'}), and r(z)")
    flow.plot(paths["judge_fid.png"], rows, title)

    # -FID ranks bins as r(z) does (lower FID: closer to the 1s). r rounded to 12 decimals so that bins
    # whose r is one fraction reached two ways tie, as in experiments.pr's judge comparison.
    minus_fid = np.array([-row.fid for row in fids])
    rho_humans, n_humans = spearman(minus_fid, np.round(humans, 12)) if humans is not None else (None, 0)
    rho_judge, n_judge = spearman(minus_fid, np.round(judge_r, 12))
    summary = {
        "run": os.path.abspath(run_dir), "judge": judge.name, "judge_dir": judge.directory,
        "judge_training": judge.record,
        "reference": {"digit": flow.REFERENCE_DIGIT, "count": len(reference), "source": reference_source},
        "weighted_fid": FLAGS.weighted, "feature_dim": int(reference_gaussian.mean.shape[0]), "people": persons,
        "spearman_minus_fid_vs_humans_r": {"rho": _number(rho_humans), "bins": n_humans},
        "spearman_minus_fid_vs_judge_r": {"rho": _number(rho_judge), "bins": n_judge},
        "seconds": round(time.perf_counter() - started, 1)}
    write_json(paths["judge.json"], summary)

    print(flow.format_table(rows))
    if humans is None:
        print("humans: no person has scored this run (score it with python -m omnijax.annotation serve "
              f"--run={run_dir}); the humans column is empty")
    else:
        print(f"Spearman rho(-FID, humans' r) over the {n_humans} bins both have: {rho_humans:.3f} "
              f"(people: {', '.join(persons)})")
    print(f"Spearman rho(-FID, judge's r) over {n_judge} bins: {rho_judge:.3f}")
    print("note: experiments.pr holds the judge against the people; it counts the judge's scores in r(z) only "
          "when --annotators names it")
    print(f"done in {summary['seconds']:.0f} s; wrote " + ", ".join(paths.values()))


def _number(value):
    """A float for JSON, None where unknown (NaN is not JSON)."""
    return None if value is None or math.isnan(value) else float(value)


if __name__ == "__main__":
    app.run(main)
