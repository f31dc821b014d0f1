"""Score the representative inputs of a sampling run and get the precision per bin, r(z) (paper §2.2).

    python -m omnijax.annotation serve --run=runs/mnist-mlp-bce --port=8000    # the page for annotators
    python -m omnijax.annotation precision --run=runs/mnist-mlp-bce            # r(z) per bin, as CSV
    python -m omnijax.annotation agreement --run=runs/mnist-mlp-bce --annotators=alice,bob
    python -m omnijax.annotation export --run=runs/mnist-mlp-bce --csv=scores.csv
    python -m omnijax.annotation import --run=runs/mnist-mlp-bce --csv=scores.csv

--run is a directory with samples.npz (written by experiments.mnist, experiments.cifar, experiments.similarity).
A text run (texts.json beside it, written by omnijax.text) is shown as decoded text, not token ids. Scores live
in --db (default <run>/annotations.sqlite), each committed as it is given. The page binds 127.0.0.1
only and shows no output value: annotation is blind. Oracles and judges (reference models) score from
Python: omnijax.annotation.annotate; a judge's scores are flagged in every table and export.
"""

from __future__ import annotations

import csv
import math
import os
import sys

from absl import app, flags

from omnijax.annotation import Store, agreement
from omnijax.annotation.server import DEFAULT_QUESTION, serve
from omnijax.annotation.store import Run, load_samples

COMMANDS = ("serve", "precision", "agreement", "export", "import")
FLAGS = flags.FLAGS
_flags_defined = False


def _define_flags() -> None:
    """The command's absl flags; defined only when the command runs (importing this module defines none)."""
    global _flags_defined
    if _flags_defined:
        return
    _flags_defined = True
    flags.DEFINE_string("run", None, "Run directory holding samples.npz.")
    flags.DEFINE_string("db", None, "SQLite file of the scores (default <run>/annotations.sqlite).")
    flags.DEFINE_integer("port", 8000, "serve: port on 127.0.0.1 (0 picks a free one).")
    flags.DEFINE_string("question", DEFAULT_QUESTION, "serve: what annotators are asked about each input.")
    flags.DEFINE_string("csv", None, "export/import: the CSV file.")
    flags.DEFINE_list("annotators", None, "precision: only these annotators' scores; agreement: exactly two names.")


def run() -> None:
    """`python -m omnijax.annotation COMMAND --flags`: defines the flags, then runs `main`."""
    _define_flags()
    app.run(main)


def _open() -> tuple[Store, Run]:
    if FLAGS.run is None:
        raise app.UsageError("--run is required: a run directory holding samples.npz")
    if not os.path.isdir(FLAGS.run):
        raise app.UsageError(f"--run={FLAGS.run} is not a directory")
    db = FLAGS.db or os.path.join(FLAGS.run, "annotations.sqlite")
    if not os.path.isdir(os.path.dirname(os.path.abspath(db))):
        raise app.UsageError(f"--db={db}: its directory does not exist")
    try:
        load_samples(FLAGS.run)  # checked before the database is created
    except (OSError, ValueError) as err:
        raise app.UsageError(f"--run={FLAGS.run}: {err}")
    store = Store(db)
    return store, store.import_run(FLAGS.run)


def _precision(store: Store, run) -> None:
    table = store.bin_precision_table(run.id, FLAGS.annotators, load_samples(FLAGS.run)["weight"])
    writer = csv.writer(sys.stdout)
    writer.writerow(["bin", "bin_lo", "bin_hi", "r", "r_stderr", "n_scored", "n_samples", "n_scores",
                     "n_judge_scores"])
    for row in table.rows:
        writer.writerow([row.bin, f"{row.lo:.6g}", f"{row.hi:.6g}", "" if math.isnan(row.r) else repr(row.r),
                         "" if math.isnan(row.stderr) else f"{row.stderr:.6g}", row.n_scored, row.n_samples,
                         row.n_scores, row.n_judge_scores])
    if table.unannotated:
        print(f"warning: bins {table.unannotated} have samples but no scores: their r(z) is unknown, not 0",
              file=sys.stderr)
    if table.empty:
        print(f"note: bins {table.empty} hold no samples, so nothing there can be scored", file=sys.stderr)
    if table.n_judge_scores:
        print(f"warning: {table.n_judge_scores} of these scores come from a judge (a reference model, not a "
              "person); the paper warns such scores are unreliable", file=sys.stderr)


def _agreement(store: Store, run) -> None:
    if not FLAGS.annotators or len(FLAGS.annotators) != 2:
        raise app.UsageError(f"agreement needs --annotators=a,b (two names), got {FLAGS.annotators}")
    try:
        result = agreement(store, *FLAGS.annotators, run_id=run.id)
    except ValueError as err:
        raise app.UsageError(f"--annotators: {err}")
    print(f"{result.a} ({result.a_kind}) vs {result.b} ({result.b_kind}) on {result.n} samples: "
          f"agree {result.fraction_agree:.3f} (scores thresholded at 0.5), Cohen's kappa {result.kappa:.3f}, "
          f"mean |difference| {result.mean_abs_diff:.3f}")
    if result.involves_judge:
        print("warning: a judge is a reference model, not a person", file=sys.stderr)


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"give one command of {', '.join(COMMANDS)}; got {argv[1:]}")
    command = argv[1]
    if command in ("export", "import") and not FLAGS.csv:
        raise app.UsageError(f"{command} needs --csv=FILE")
    if command == "import" and not os.path.isfile(FLAGS.csv):
        raise app.UsageError(f"--csv={FLAGS.csv} is not a file")
    store, run = _open()
    try:
        if command == "serve":
            try:
                serve(store, run, FLAGS.port, FLAGS.question)
            except OSError as err:
                raise app.UsageError(f"--port={FLAGS.port}: cannot serve on 127.0.0.1: {err}")
        elif command == "precision":
            try:
                _precision(store, run)
            except ValueError as err:
                raise app.UsageError(f"--annotators: {err}")
        elif command == "agreement":
            _agreement(store, run)
        elif command == "export":
            print(f"wrote {store.export_csv(FLAGS.csv, run.id)} scores to {FLAGS.csv}", file=sys.stderr)
        else:
            try:
                added = store.import_csv(FLAGS.csv)
            except ValueError as err:
                raise app.UsageError(f"--csv: {err}")
            print(f"added {added} scores from {FLAGS.csv}", file=sys.stderr)
    finally:
        store.close()


if __name__ == "__main__":
    run()
