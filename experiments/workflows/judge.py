"""A model judge held against people (paper §4 "Human Annotation vs. Model Annotation", Appendix G,
Table 5): the library behind `python -m experiments.judge`.

The judge is a small CNN trained here on the ten MNIST digits (no download: `load_mnist` falls back
to the digits shipped with omnijax), its inputs quantised exactly as the MNIST runs quantise theirs
(`omnijax.data.mnist.quantize` with the run's grey levels; 2 = binary). Its penultimate layer gives
the features of the per-bin FID against the MNIST test 1s; its softmax gives a per-sample score
P(digit = 1), stored in the run's annotation store under the kind "judge". Its training is cached
in --judge_dir/k<levels>/ (the classifier's resumable checkpoint, so a second call only restores
it) with training.json beside it: data source, steps, seed, test accuracy and time.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.workflows.mnist import limit_examples
from experiments.workflows.results import write_json
from omnijax.annotation import Judge, Store, annotate, load_samples
from omnijax.data.mnist import IMAGE_SHAPE, load_mnist, quantize
from omnijax.evaluation.fid import BinFID
from omnijax.models.cnn import ConvBlock
from omnijax.training.classifier import predict_outputs, train_classifier
from omnijax.training.resume import parameter_digest

FID_COLUMNS = ["bin", "bin_lo", "bin_hi", "n_representatives", "fid"]  # experiments.pr reads these
TABLE_COLUMNS = ["bin", "bin_lo", "bin_hi", "n_representatives", "humans_r", "humans_scored", "judge_r", "fid",
                 "n_effective", "note"]
TRAINING_FILE = "training.json"
REFERENCE_DIGIT = 1
PREDICT_BATCH = 256


class JudgeError(ValueError):
    """Bad input, phrased for the command line (it names the flag)."""


class FeatureCNN(nnx.Module):
    """Two conv blocks of omnijax.models.cnn (3x3 SAME, ReLU, 2x2 max-pool; 16 and 32 channels), a
    128-unit ReLU layer (the FID features) and ten digit logits. Smaller than the paper's CNN so
    that it trains in about a minute on a CPU; the 128-d bottleneck keeps the FID's
    eigendecompositions small (the paper's CNN would give 6,272 features)."""

    def __init__(self, num_categories: int, channels=(16, 32), hidden: int = 128, *, rngs: nnx.Rngs):
        blocks, size, width = [], num_categories, IMAGE_SHAPE[0]
        for out in channels:
            blocks.append(ConvBlock(size, out, rngs=rngs))
            size, width = out, width // 2
        self.blocks = nnx.List(blocks)
        self.hidden = nnx.Linear(width * width * size, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def features(self, onehot):
        """ONE image's one-hot (28, 28, K) -> its 128 penultimate-layer features."""
        h = onehot
        for block in self.blocks:
            h = block(h)
        return nnx.relu(self.hidden(h.reshape(-1)))

    def __call__(self, onehot):
        return self.out(self.features(onehot))


def new_feature_cnn(levels: int, seed: int) -> FeatureCNN:
    """A freshly initialised FeatureCNN: LeCun-normal kernels (variance 1/fan-in, flax's default
    scale) and zero biases, drawn with numpy from `seed`. Flax's own initialisers compile one XLA
    program per parameter shape, 8 s for this network on a loaded 2-core CPU; this takes 0.4 s."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: FeatureCNN(levels, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(seed)

    def draw(leaf):
        if len(leaf.shape) == 1:
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.normal(size=leaf.shape) / math.sqrt(math.prod(leaf.shape[:-1])), leaf.dtype)

    return nnx.merge(graphdef, jax.tree.map(draw, state))


class _Features(nnx.Module):
    """The judge seen through its features, so that `predict_outputs` batches and jits them."""

    def __init__(self, net: FeatureCNN):
        self.net = net

    def __call__(self, onehot):
        return self.net.features(onehot)


@dataclasses.dataclass
class TrainedJudge:
    model: FeatureCNN
    levels: int
    record: dict          # training.json
    directory: str

    @property
    def name(self) -> str:
        """Annotator name in the store: tied to the exact parameters, so a retrained judge never
        inherits an older one's scores."""
        return f"mnist-cnn-judge-{self.record['parameter_digest']}"

    def features(self, images) -> np.ndarray:
        return predict_outputs(_Features(self.model), images, self.levels, batch_size=PREDICT_BATCH)

    def probability_one(self, images) -> np.ndarray:
        """P(digit = 1) per image, from the softmax of the ten logits."""
        logits = _logits(self.model, images, self.levels)
        return np.asarray(jax.nn.softmax(logits, axis=-1))[:, REFERENCE_DIGIT].astype(np.float64)


def train_or_load_judge(judge_dir: str, levels: int, *, epochs: int, train_limit: int | None, batch_size: int,
                        seed: int, data_dir: str | None, retrain: bool = False, log=print) -> TrainedJudge:
    """The judge for `levels` grey levels from judge_dir/k<levels>, trained there first if needed.

    A directory trained with other settings or data is refused (JudgeError naming --judge_dir)
    unless retrain, which deletes it and trains anew."""
    directory = os.path.abspath(os.path.join(judge_dir, f"k{levels}"))
    checkpoint_dir = os.path.join(directory, "training")
    if retrain and os.path.isdir(directory):
        shutil.rmtree(directory)
    train, test = load_mnist("train", data_dir), load_mnist("test", data_dir)
    log(f"judge data: {train.source}")
    images, labels = limit_examples(quantize(train.images, levels), train.labels, train_limit, seed)
    batch_size = min(batch_size, len(images))
    settings = {"architecture": "FeatureCNN(channels=(16, 32), hidden=128, outputs=10)", "levels": levels,
                "epochs": epochs, "batch_size": batch_size, "train_images": int(len(images)), "seed": seed,
                "steps": epochs * (len(images) // batch_size), "data_source": train.source}
    model = new_feature_cnn(levels, seed)
    record_path = os.path.join(directory, TRAINING_FILE)
    record = _read_json(record_path)
    log(f"judge: {'restoring' if os.path.isdir(checkpoint_dir) else 'training'} the feature CNN in {directory} "
        f"({settings['steps']} steps of {batch_size} images)")
    started = time.perf_counter()
    try:
        train_classifier(model, images, labels.astype(np.int32), num_categories=levels, task="multiclass",
                         epochs=epochs, batch_size=batch_size, key=jax.random.key(seed), checkpoint_dir=checkpoint_dir)
    except ValueError as err:
        raise JudgeError(f"--judge_dir={judge_dir}: {err}; pass --retrain_judge to replace it, or another --judge_dir")
    seconds = time.perf_counter() - started
    digest = parameter_digest(model)
    if record is None or record.get("parameter_digest") != digest:
        test_images = quantize(test.images, levels)
        record = {**settings, "parameter_digest": digest, "training_seconds": round(seconds, 1),
                  "test_source": test.source, "test_images": int(len(test_images)),
                  "test_accuracy": float(np.mean(_logits(model, test_images, levels).argmax(-1) == test.labels)),
                  "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(record_path, record)
    log(f"judge: test accuracy {record['test_accuracy']:.4f} on {record['test_images']} MNIST test digits "
        f"(training took {record['training_seconds']} s); record in {record_path}")
    return TrainedJudge(model, levels, record, directory)


def _logits(model: FeatureCNN, images, levels: int) -> np.ndarray:
    """The ten digit logits per image; one batch size throughout, so one compilation serves them all."""
    return predict_outputs(model, images, levels, batch_size=PREDICT_BATCH)


def reference_ones(levels: int, data_dir: str | None) -> tuple[np.ndarray, str]:
    """The MNIST test 1s, quantised like the runs' inputs, and where they came from."""
    test = load_mnist("test", data_dir)
    return quantize(test.images[test.labels == REFERENCE_DIGIT], levels), test.source


def load_run(run_dir: str) -> dict:
    """The run's samples (omnijax.annotation.load_samples), refused unless they are 28x28 MNIST-like images."""
    try:
        samples = load_samples(run_dir)
    except (FileNotFoundError, ValueError) as err:
        raise JudgeError(f"--run={run_dir}: {err}")
    if samples["inputs"].shape[1:] != IMAGE_SHAPE or samples["texts"] is not None:
        raise JudgeError(f"--run={run_dir}: its inputs have shape {samples['inputs'].shape[1:]}; the MNIST judge "
                         f"needs 28x28 images (a run of python -m experiments.mnist)")
    return samples


def score_with_judge(store: Store, run_dir: str, judge: TrainedJudge) -> tuple[int, int]:
    """(run id, samples newly scored): every sample of the run scored by the judge through the store."""
    run = store.import_run(run_dir)
    added = annotate(store, run.id, Judge(judge.name, judge.probability_one))
    return run.id, added


def precision_per_bin(store: Store, run_id: int, annotators: list[str], weights):
    """(r(z) per bin, scored samples per bin) from these annotators' current scores (the store's
    table, weighted as in experiments.pr), or (None, None) when no annotator is given."""
    if not annotators:
        return None, None
    table = store.bin_precision_table(run_id, annotators=annotators, sample_weights=weights)
    scored = np.zeros(table.num_bins, np.int64)
    for row in table.rows:
        scored[row.bin] = row.n_scored
    return table.r(), scored


def people(store: Store, run_id: int) -> list[str]:
    """The person annotators with at least one score in the run."""
    scored = {s.annotator for s in store.current_scores(run_id)}
    return [name for name, kind in store.annotators().items() if kind == "person" and name in scored]


def table_rows(fids: list[BinFID], humans, humans_scored, judge_r) -> list[dict]:
    """One row per bin: the Appendix G / Table 5 columns (empty where unknown)."""
    rows = []
    for row in fids:
        b = row.bin
        rows.append({"bin": b, "bin_lo": row.lo, "bin_hi": row.hi, "n_representatives": row.n_representatives,
                     "humans_r": _cell(None if humans is None else humans[b]),
                     "humans_scored": "" if humans_scored is None else int(humans_scored[b]),
                     "judge_r": _cell(judge_r[b]), "fid": _cell(row.fid), "n_effective": _cell(row.n_effective),
                     "note": row.reason})
    return rows


def _cell(value):
    return "" if value is None or not np.isfinite(value) else float(value)


def write_fid_csv(path: str, fids: list[BinFID]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FID_COLUMNS)
        for row in fids:
            writer.writerow([row.bin, repr(row.lo), repr(row.hi), row.n_representatives,
                             "" if math.isnan(row.fid) else repr(row.fid)])


def write_table_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def format_table(rows: list[dict]) -> str:
    """The table as the paper prints it (Table 5: logit, humans, FID), highest bin first, with the judge."""
    lines = [f"{'logit bin':>19} {'n':>4} {'humans r':>9} {'judge r':>8} {'FID':>9}"]
    for row in reversed(rows):
        def fmt(value, spec):
            return "-" if value == "" else format(value, spec)
        lines.append(f"[{row['bin_lo']:7.2f}, {row['bin_hi']:7.2f}) {row['n_representatives']:>4} "
                     f"{fmt(row['humans_r'], '.3f'):>9} {fmt(row['judge_r'], '.3f'):>8} {fmt(row['fid'], '.2f'):>9}"
                     + (f"  {row['note']}" if row["note"] else ""))
    return "\n".join(lines)


def plot(path: str, rows: list[dict], title: str) -> None:
    """FID per logit bin (left axis) and r(z) from people and from the judge (right axis)."""
    from matplotlib.figure import Figure

    centres = np.array([(r["bin_lo"] + r["bin_hi"]) / 2 for r in rows])
    column = lambda key: np.array([np.nan if r[key] == "" else r[key] for r in rows], np.float64)
    fid, humans, judge = column("fid"), column("humans_r"), column("judge_r")
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(centres, fid, "s-", color="tab:purple", ms=4, label="FID vs MNIST test 1s (lower: closer)")
    ax.set_xlabel("output z (logit bin centre)")
    ax.set_ylabel("FID", color="tab:purple")
    right = ax.twinx()
    right.plot(centres, judge, "o--", color="tab:orange", ms=4, label="r(z), judge CNN")
    if np.isfinite(humans).any():
        right.plot(centres, humans, "o-", color="tab:blue", ms=4, label="r(z), people")
    else:
        right.plot([], [], " ", label="r(z), people: no person has scored this run")
    right.set_ylim(-0.05, 1.05)
    right.set_ylabel("precision r(z)")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    right.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
