"""The paper's Tables 1-3 gathered from runs of experiments.mnist (their traditional.csv): one table
per metric (AUPR, AUROC, FPR95, in percent), a row per model under the paper's name, a column per
test set, "n/a" with the reason where a run could not have the set. `python -m experiments.tables`
(experiments/tables.py) is the command."""

from __future__ import annotations

import csv
import os

METRICS = (("aupr", "Table 1: AUPR (higher is better)"), ("auroc", "Table 2: AUROC (higher is better)"),
           ("fpr95", "Table 3: FPR95 (lower is better)"))
_ARCHITECTURES = {"mlp": "MLP", "cnn": "CNN", "resnet": "RES"}
_TRAININGS = {"bce": "-MNIST-0/1", "aug": "-AUG-MNIST-0/1", "gen": "-GEN-MNIST-1"}
_IN_DISTRIBUTION = {"mnist_0": "MNIST label 0 (in-dist)", "mnist_other_digits": "MNIST other digits (in-dist)"}


def test_set_title(name: str) -> str:
    """A column's heading: "MNIST label 0 (in-dist)", or the OOD set's title, e.g. "Fashion-MNIST (OOD)"."""
    from omnijax.data.ood import OOD_SETS

    if name in OOD_SETS:
        return f"{OOD_SETS[name].title} (OOD)"
    return _IN_DISTRIBUTION.get(name, name)


def paper_name(label: str) -> str:
    """The paper's name of a run's model label: "mlp-bce" -> "MLP-MNIST-0/1", "resnet-gen" ->
    "RES-GEN-MNIST-1"; other labels (e.g. multiclass "mlp-bce-c3") are kept as they are."""
    architecture, _, training = label.partition("-")
    if architecture in _ARCHITECTURES and training in _TRAININGS:
        return _ARCHITECTURES[architecture] + _TRAININGS[training]
    return label


def gather(run_dirs: list[str]) -> tuple[list[str], list[str], dict]:
    """(models, test sets, cells): cells[(model, test set)] is that traditional.csv row. Models keep the
    order of the runs; a model that two runs share is told apart by its run directory's name."""
    from experiments.workflows.results import read_traditional_csv

    models, test_sets, cells = [], [], {}
    for run_dir in run_dirs:
        path = os.path.join(run_dir, "traditional.csv")
        if not os.path.isfile(path):
            raise ValueError(f"--runs: {run_dir} has no traditional.csv (written by python -m experiments.mnist)")
        for row in read_traditional_csv(path):
            model = paper_name(row["model"])
            if (model, row["negatives"]) in cells:
                model = f"{model} [{os.path.basename(os.path.normpath(run_dir))}]"
            if model not in models:
                models.append(model)
            if row["negatives"] not in test_sets:
                test_sets.append(row["negatives"])
            cells[(model, row["negatives"])] = row
    return models, test_sets, cells


def cell(cells: dict, model: str, test_set: str, metric: str) -> str:
    """A metric in percent with two decimals, or "n/a" (set unavailable or not run)."""
    row = cells.get((model, test_set))
    return f"{100 * row[metric]:.2f}" if row and row["status"] == "ok" else "n/a"


def markdown(models: list[str], test_sets: list[str], cells: dict) -> str:
    blocks = []
    for metric, title in METRICS:
        lines = [f"{title}, percent", "", "| Model | " + " | ".join(map(test_set_title, test_sets)) + " |",
                 "|---|" + "---:|" * len(test_sets)]
        lines += [f"| {model} | " + " | ".join(cell(cells, model, t, metric) for t in test_sets) + " |"
                  for model in models]
        blocks.append("\n".join(lines))
    missing: dict[str, list[str]] = {}
    for (model, test_set), row in cells.items():
        if row["status"] != "ok":
            missing.setdefault(row["status"].removeprefix("unavailable: "), []).append(f"{model} {test_set}")
    if any("-GEN-" in model for model in models):
        blocks.append("MNIST label 0 is out of distribution for the GEN models (they model MNIST-1 only).")
    if missing:
        blocks.append("n/a:\n" + "\n".join(f"- {', '.join(where)}: {why}" for why, where in missing.items()))
    return "\n\n".join(blocks) + "\n"


def write_csv(path: str, models: list[str], test_sets: list[str], cells: dict) -> None:
    """One row per metric and model, a column per test set; percent, empty where n/a."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "model", *test_sets])
        for metric, _ in METRICS:
            for model in models:
                values = [cell(cells, model, t, metric) for t in test_sets]
                writer.writerow([metric, model, *("" if v == "n/a" else v for v in values)])
