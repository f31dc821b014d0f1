"""The paper's Tables 1-3 (AUPR, AUROC, FPR95 of the dataset-based evaluation, in percent) gathered from
several runs of experiments.mnist.

    python -m experiments.tables --runs=runs/mnist-mlp-bce,runs/mnist-cnn-bce,runs/mnist-resnet-aug,runs/mnist-resnet-gen

Reads each run's traditional.csv; one table per metric, a row per model (named as in the paper,
e.g. MLP-MNIST-0/1, RES-GEN-MNIST-1), a column per test set (the negatives: MNIST label 0, then
the OOD sets); "n/a" where a run could not have the set (traditional.csv says why). Prints the
tables as Markdown and writes tables.md and tables.csv to --out.
"""

from __future__ import annotations

import os

from absl import app, flags

from experiments.workflows.tables import gather, markdown, write_csv

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "Run directories of experiments.mnist, comma-separated (each holds traditional.csv).")
flags.DEFINE_string("out", None,
                    "Output directory for tables.md and tables.csv (default: tables/ beside the first run).")

def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; give the runs as --runs=A,B")
    if not FLAGS.runs:
        raise app.UsageError("--runs is required: one or more run directories of experiments.mnist, comma-separated")
    try:
        models, test_sets, cells = gather(FLAGS.runs)
    except ValueError as err:
        raise app.UsageError(str(err))
    out = FLAGS.out or os.path.join(os.path.dirname(os.path.normpath(FLAGS.runs[0])), "tables")
    os.makedirs(out, exist_ok=True)
    text = markdown(models, test_sets, cells)
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write(text)
    write_csv(os.path.join(out, "tables.csv"), models, test_sets, cells)
    print(text + f"\nwrote {out}/tables.md and {out}/tables.csv")


if __name__ == "__main__":
    app.run(main)
