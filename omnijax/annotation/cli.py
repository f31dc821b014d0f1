"""Score the representative inputs of a sampling run and get the precision per bin, r(z) (paper §2.2).

    python -m omnijax.annotation serve --run=runs/mnist-mlp-bce --port=8000    # the page, on this machine
    python -m omnijax.annotation invite --run=runs/mnist-mlp-bce --annotator=alice --url_base=http://HOST:8000
    python -m omnijax.annotation serve --run=runs/mnist-mlp-bce --host=0.0.0.0 --url_base=http://HOST:8000
    python -m omnijax.annotation invites --run=runs/mnist-mlp-bce      # who holds a link, who was revoked
    python -m omnijax.annotation revoke --run=runs/mnist-mlp-bce --annotator=alice
    python -m omnijax.annotation precision --run=runs/mnist-mlp-bce            # r(z) per bin, as CSV
    python -m omnijax.annotation agreement --run=runs/mnist-mlp-bce --annotators=alice,bob
    python -m omnijax.annotation export --run=runs/mnist-mlp-bce --csv=scores.csv
    python -m omnijax.annotation import --run=runs/mnist-mlp-bce --csv=scores.csv
    python -m omnijax.annotation label-studio-export --run=runs/mnist-mlp-bce --out=ls/ [--scale=rating]
    python -m omnijax.annotation label-studio-import --run=runs/mnist-mlp-bce --json=project-1-export.json

--run is a directory with samples.npz (written by experiments.mnist, experiments.cifar, experiments.similarity).
A text run (texts.json beside it, written by omnijax.text) is shown as decoded text, not token ids. Scores live
in --db (default <run>/annotations.sqlite), each committed as it is given. The page shows no output value:
annotation is blind.

A team: `invite` makes a person annotator with a secret token and prints the link that carries it (to
--url_base, default http://--host:--port); send each link privately: whoever holds it scores as that
annotator, and only as that one. `revoke` ends a link at once, also for a running server; the scores
given stay. Once anyone is invited, every call of the page needs a token. `serve` listens on 127.0.0.1
by default; another --host (e.g. 0.0.0.0 for the local network) is refused unless annotators hold
tokens, and then every call must carry one. Without invites, on 127.0.0.1, the page asks for a name:
for one person at their own machine. Oracles and judges (reference models) score from Python:
omnijax.annotation.annotate; a judge's scores are flagged in every table and export.

Label Studio: `label-studio-export` writes label_studio_tasks.json (one task per input, shuffled, blind:
no z, bin or index) and label_studio_config.xml (a yes/no choice, or --scale=rating stars) to --out;
create a project with that config and import the tasks. `label-studio-import` reads the project's JSON
export back (omnijax.annotation.label_studio): each Label Studio user is an annotator, all or nothing,
and importing the same export again adds nothing.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time

from absl import app, flags

from omnijax.annotation import Store, agreement
from omnijax.annotation.access import check_url_base, format_origin, invite, is_loopback, is_wildcard, revoke
from omnijax.annotation.label_studio import SCALES, read_label_studio_export, write_label_studio_import
from omnijax.annotation.server import DEFAULT_QUESTION, serve
from omnijax.annotation.store import Run, load_samples

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
    flags.DEFINE_string("host", "127.0.0.1", "serve: the address to listen on; beyond loopback (e.g. 0.0.0.0) only "
                        "when annotators were invited, and then every call needs a token. invite: the host of the link.")
    flags.DEFINE_integer("port", 8000, "serve: the port (0 picks a free one); invite: the port of the link.")
    flags.DEFINE_string("url_base", None, "The address annotators open, http(s)://HOST[:PORT] (e.g. the machine's "
                        "name on the network, or a proxy's): invite puts it in the link, serve answers for it too. "
                        "Default http://--host:--port.")
    flags.DEFINE_string("annotator", None, "invite/revoke: the annotator's name.")
    flags.DEFINE_string("question", DEFAULT_QUESTION, "serve, label-studio-export: what annotators are asked "
                        "about each input.")
    flags.DEFINE_string("csv", None, "export/import: the CSV file.")
    flags.DEFINE_string("out", None, "label-studio-export: the directory for the tasks JSON and the labelling config.")
    flags.DEFINE_enum("scale", "binary", list(SCALES), "label-studio-export: a yes/no choice (scores 1/0) or a "
                      "rating of 1..--max_rating stars (scores 0..1).")
    flags.DEFINE_integer("max_rating", 5, "label-studio-export with --scale=rating: the most stars.")
    flags.DEFINE_string("json", None, "label-studio-import: Label Studio's JSON export of the project.")
    flags.DEFINE_list("annotators", None, "precision: only these annotators' scores (default: all but the judges); "
                      "agreement: exactly two names.")


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
    counted = store.counted_annotators(run.id) if FLAGS.annotators is None else FLAGS.annotators
    table = store.bin_precision_table(run.id, counted, load_samples(FLAGS.run)["weight"])
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
    left_out = sorted({s.annotator for s in store.current_scores(run.id)} - set(counted or ()))
    if counted is not None and left_out and FLAGS.annotators is None:
        print(f"note: the judges {left_out} are not counted (name them in --annotators to count them)",
              file=sys.stderr)
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


def _serve(store: Store, run: Run) -> None:
    if not is_loopback(FLAGS.host) and not store.invited(run.id):
        raise app.UsageError(
            f"--host={FLAGS.host} is not a loopback address: the page would be reachable from other machines, so "
            f"every call must carry an invite token, and nobody holds one for run {run.name}. Invite the annotators "
            f"first (python -m omnijax.annotation invite --run={FLAGS.run} --annotator=NAME --url_base="
            f"http://ADDRESS:{FLAGS.port}), or serve on --host=127.0.0.1")
    try:
        serve(store, run, FLAGS.port, FLAGS.question, FLAGS.host, FLAGS.url_base)
    except OSError as err:
        raise app.UsageError(f"--host={FLAGS.host} --port={FLAGS.port}: cannot serve there: {err}")


def _invite(store: Store, run: Run) -> None:
    if FLAGS.url_base:
        base = format_origin(check_url_base(FLAGS.url_base))
    elif is_wildcard(FLAGS.host):
        raise app.UsageError(f"--host={FLAGS.host} stands for every address of this machine; give the one "
                             "annotators open with --url_base=http://ADDRESS:PORT")
    else:
        base = format_origin(("http", FLAGS.host.lower(), FLAGS.port))
    try:
        token = invite(store, run, FLAGS.annotator)
    except ValueError as err:
        raise app.UsageError(f"--annotator={FLAGS.annotator}: {err}")
    print(f"{base}/#token={token}")
    print(f"invited {FLAGS.annotator} to run {run.name}: send them this link privately (whoever holds it scores "
          f"as {FLAGS.annotator}); an earlier link of theirs for this run no longer works. End it with: "
          f"python -m omnijax.annotation revoke --run={FLAGS.run} --annotator={FLAGS.annotator}", file=sys.stderr)


def _revoke(store: Store, run: Run) -> None:
    try:
        revoke(store, run, FLAGS.annotator)
    except ValueError as err:
        raise app.UsageError(f"--annotator={FLAGS.annotator}: {err}")
    print(f"revoked the invite of {FLAGS.annotator} to run {run.name}; their scores stay", file=sys.stderr)


def _export(store: Store, run: Run) -> None:
    print(f"wrote {store.export_csv(FLAGS.csv, run.id)} scores to {FLAGS.csv}", file=sys.stderr)


def _import(store: Store, run: Run) -> None:
    try:
        added = store.import_csv(FLAGS.csv)
    except ValueError as err:
        raise app.UsageError(f"--csv: {err}")
    print(f"added {added} scores from {FLAGS.csv}", file=sys.stderr)


def _label_studio_export(store: Store, run: Run) -> None:
    try:
        files = write_label_studio_import(store, run, FLAGS.out, question=FLAGS.question, scale=FLAGS.scale,
                                          max_rating=FLAGS.max_rating)
    except ValueError as err:
        raise app.UsageError(f"label-studio-export (--question, --max_rating): {err}")
    print(f"wrote {files.num_tasks} tasks to {files.tasks} and the labelling config to {files.config}: in Label "
          "Studio, create a project, paste the config (Settings > Labeling Interface > Code) and import the tasks",
          file=sys.stderr)


def _label_studio_import(store: Store, run: Run) -> None:
    try:
        found = read_label_studio_export(store, FLAGS.json)
        added = store.import_records(found.records, where=found.where)
    except ValueError as err:
        raise app.UsageError(f"--json: {err}")
    print(f"added {added} scores from {FLAGS.json} ({len(found.records)} annotations read, {found.cancelled} "
          "cancelled ones skipped)", file=sys.stderr)


def _checked_precision(store: Store, run: Run) -> None:
    try:
        _precision(store, run)
    except ValueError as err:
        raise app.UsageError(f"--annotators: {err}")


# Each command is run(store, run) on the run of --run; flags a command needs are checked in _check_flags.
def _invites(store: Store, run: Run) -> None:
    rows = store.invitations(run.id)
    if not rows:
        print(f"nobody is invited to run {run.name}: python -m omnijax.annotation invite --run=DIR "
              "--annotator=NAME", file=sys.stderr)
    for name, created, revoked in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        state = "working" if revoked is None else "revoked " + time.strftime("%Y-%m-%d %H:%M:%S",
                                                                           time.localtime(revoked))
        print(f"{name}\tinvited {when}\t{state}")


COMMANDS = {"serve": _serve, "invite": _invite, "invites": _invites, "revoke": _revoke, "precision": _checked_precision,
            "agreement": _agreement, "export": _export, "import": _import,
            "label-studio-export": _label_studio_export, "label-studio-import": _label_studio_import}


def _check_flags(command: str) -> None:
    """The flags `command` needs, checked before the store is opened (so a mistake creates no file)."""
    if command in ("export", "import") and not FLAGS.csv:
        raise app.UsageError(f"{command} needs --csv=FILE")
    if command == "import" and not os.path.isfile(FLAGS.csv):
        raise app.UsageError(f"--csv={FLAGS.csv} is not a file")
    if command == "label-studio-export" and not (FLAGS.out and os.path.isdir(FLAGS.out)):
        raise app.UsageError(f"label-studio-export needs --out=DIR, an existing directory; got {FLAGS.out!r}")
    if command == "label-studio-import" and not (FLAGS.json and os.path.isfile(FLAGS.json)):
        raise app.UsageError(f"label-studio-import needs --json=FILE, Label Studio's JSON export; got {FLAGS.json!r}")
    if command in ("invite", "revoke") and not FLAGS.annotator:
        raise app.UsageError(f"{command} needs --annotator=NAME")
    if command in ("serve", "invite") and FLAGS.url_base:
        try:
            check_url_base(FLAGS.url_base)
        except ValueError as err:
            raise app.UsageError(f"--url_base={FLAGS.url_base}: {err}")


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"give one command of {', '.join(COMMANDS)}; got {argv[1:]}")
    _check_flags(argv[1])
    store, run = _open()
    try:
        COMMANDS[argv[1]](store, run)
    finally:
        store.close()


if __name__ == "__main__":
    run()
