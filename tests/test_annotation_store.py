"""Annotation store: round trips, durability under SIGKILL, CSV, bad input, oracle, judge, agreement."""

import contextlib
import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from omnijax.annotation import Judge, Oracle, Store, agreement, annotate
from omnijax.annotation.server import AnnotationApp
from omnijax.annotation.store import load_samples

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = [0, 0, 1, 1, 1, 3]            # bin 2 has no samples
ON = [0, 500, 100, 600, 700, 50]     # pixels set in each 28x28 image


def make_run(directory, on=ON, bins=BINS, grey_levels=2):
    """A run directory like a sampling run leaves: samples.npz and metrics.json."""
    os.makedirs(directory, exist_ok=True)
    inputs = np.zeros((len(on), 28 * 28), np.int32)
    for i, k in enumerate(on):
        inputs[i, :k] = 1
    np.savez_compressed(os.path.join(directory, "samples.npz"), bin=np.asarray(bins, np.int32),
                        z=np.linspace(-1, 1, len(on)).astype(np.float32), inputs=inputs.reshape(-1, 28, 28),
                        bin_edges=np.linspace(-1.5, 1.5, 5))
    with open(os.path.join(directory, "metrics.json"), "w") as f:
        f.write(f'{{"grey_levels": {grey_levels}}}')
    return str(directory)


@pytest.fixture
def opened(tmp_path):
    workdir = make_run(tmp_path / "run")
    store = Store(str(tmp_path / "a.sqlite"))
    yield store, store.import_run(workdir)
    store.close()


def ids(store, run):
    return [s.id for s in store.samples(run.id)]


def test_import_round_trip_and_idempotent(tmp_path, opened):
    store, run = opened
    assert (run.name, run.shape, run.num_categories, run.num_bins, run.vocab) == ("run", (28, 28), 2, 4, None)
    samples = store.samples(run.id)
    assert [s.bin for s in samples] == BINS and [int(s.input.sum()) for s in samples] == ON
    assert samples[1].input.dtype == np.int32 and samples[1].input.shape == (28, 28)
    assert [s.index for s in store.samples(run.id, bin=1)] == [2, 3, 4]
    assert store.import_run(str(tmp_path / "run")) == run          # same samples: nothing added
    assert len(store.samples(run.id)) == 6 and len(store.runs()) == 1
    other = store.import_run(make_run(tmp_path / "run2", on=[1, 2], bins=[0, 1], grey_levels=3))
    assert other.id != run.id and other.num_categories == 3 and len(store.runs()) == 2
    with Store(store.path) as again:
        assert [s.input.sum() for s in again.samples(run.id)] == ON


def test_latest_score_counts_and_history_is_kept(tmp_path, opened):
    store, run = opened
    store.add_annotator("alice")
    first = ids(store, run)[0]
    store.add_score(first, "alice", 1)
    store.add_score(first, "alice", 0.25)
    assert [(s.sample, s.score) for s in store.scores_for_bin(run.id, 0)] == [(first, 0.25)]
    path = str(tmp_path / "all.csv")
    assert store.export_csv(path) == 2
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [(r["score"], r["superseded"]) for r in rows] == [("1.0", "1"), ("0.25", "0")]


CHILD = """
import sys
from omnijax.annotation.store import Store
store = Store(sys.argv[1])
run = store.import_run(sys.argv[2])
store.add_annotator("alice")
sample_ids = [s.id for s in store.samples(run.id)]
i = 0
while True:
    store.add_score(sample_ids[i % len(sample_ids)], "alice", (i % 5) / 4)
    print(i, flush=True)
    i += 1
"""


def test_every_acknowledged_score_survives_sigkill(tmp_path):
    db, workdir = str(tmp_path / "a.sqlite"), make_run(tmp_path / "run")
    child = subprocess.Popen([sys.executable, "-c", CHILD, db, workdir], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    acknowledged = [int(child.stdout.readline()) for _ in range(20)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert acknowledged == list(range(20))
    with Store(db) as store:
        (run,) = store.runs()
        with sqlite3.connect(db) as raw:
            given = [score for (score,) in raw.execute("SELECT score FROM scores ORDER BY id")]
        assert len(given) >= 20 and given[:20] == [(i % 5) / 4 for i in range(20)]
        assert len(store.current_scores(run.id)) == 6


def test_csv_round_trip_into_a_fresh_store(tmp_path, opened):
    store, run = opened
    store.add_annotator("alice")
    annotate(store, run.id, Judge("ref-model", lambda x: x.mean(axis=(1, 2))))
    for sample_id, score in zip(ids(store, run), [1, 0, 0.5, 1]):
        store.add_score(sample_id, "alice", score)
    store.add_score(ids(store, run)[0], "alice", 0)
    first, second = str(tmp_path / "1.csv"), str(tmp_path / "2.csv")
    assert store.export_csv(first, run.id) == 11
    with Store(str(tmp_path / "b.sqlite")) as fresh:
        copy = fresh.import_run(str(tmp_path / "run"))
        assert fresh.import_csv(first) == 11
        assert fresh.import_csv(first) == 0                          # idempotent
        fresh.export_csv(second)
        assert fresh.annotators() == {"ref-model": "judge", "alice": "person"}
        np.testing.assert_array_equal(fresh.bin_precision_table(copy.id).r(), store.bin_precision_table(run.id).r())
    with open(first) as a, open(second) as b:
        text = a.read()
        assert text == b.read()
    assert text.count(",ref-model,judge,") == 6


@pytest.mark.parametrize("score", [1.5, -0.1, math.nan, math.inf, "0.5", None, True])
def test_scores_outside_0_1_are_rejected(opened, score):
    store, run = opened
    store.add_annotator("alice")
    with pytest.raises(ValueError, match=r"score must .*\[0, 1\]"):
        store.add_score(ids(store, run)[0], "alice", score)
    assert store.current_scores(run.id) == []


def test_database_itself_refuses_out_of_range_scores(opened):
    store, run = opened
    store.add_annotator("alice")
    with contextlib.closing(sqlite3.connect(store.path)) as raw, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        raw.execute("INSERT INTO scores (sample, annotator, score, time) VALUES (?, 1, 1.01, 0)", (ids(store, run)[0],))


def test_unknown_sample_ids_and_annotators_are_rejected_whole_batch(opened):
    store, run = opened
    store.add_annotator("alice")
    with pytest.raises(ValueError, match="unknown sample id 9999"):
        store.add_scores("alice", [(ids(store, run)[0], 1.0), (9999, 1.0)])
    with pytest.raises(ValueError, match="unknown annotator 'bob'"):
        store.add_score(ids(store, run)[0], "bob", 1.0)
    with pytest.raises(ValueError, match="unknown sample id"):
        store.sample(9999)
    assert store.current_scores(run.id) == []


def test_bad_csv_row_names_its_line_and_imports_nothing(tmp_path, opened):
    store, run = opened
    store.add_annotator("alice")
    store.add_score(ids(store, run)[0], "alice", 1)
    path = str(tmp_path / "s.csv")
    store.export_csv(path)
    with open(path) as f:
        good = f.read().splitlines()
    bad = good[1].replace(",1.0,", ",2.0,").replace(",alice,", ",carol,")
    with open(path, "w") as f:
        f.write("\n".join([good[0], good[1].replace(",alice,", ",bob,"), bad]) + "\n")
    with pytest.raises(ValueError, match=r"line 3: score must lie in \[0, 1\].*nothing was imported"):
        store.import_csv(path)
    assert store.annotators() == {"alice": "person"} and len(store.current_scores(run.id)) == 1
    with open(path, "w") as f:
        f.write("\n".join([good[0], "f" * 64 + good[1][64:]]) + "\n")
    with pytest.raises(ValueError, match="line 2: unknown sample.*import that run's samples.npz first"):
        store.import_csv(path)


def test_run_directory_without_samples(tmp_path):
    with Store(str(tmp_path / "a.sqlite")) as store:
        with pytest.raises(FileNotFoundError, match="has no samples.npz"):
            store.import_run(str(tmp_path))
        np.savez(tmp_path / "samples.npz", bin=np.zeros(0, np.int32), z=np.zeros(0, np.float32),
                 inputs=np.zeros((0, 28, 28), np.int32), bin_edges=np.arange(3.0))
        with pytest.raises(ValueError, match="holds no samples"):
            store.import_run(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    cli = subprocess.run([sys.executable, "-m", "omnijax.annotation", "serve", f"--run={empty}", "--port=0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode != 0 and f"--run={empty}" in cli.stderr and "has no samples.npz" in cli.stderr
    assert not os.listdir(empty)


def test_bins_without_scores_are_reported_not_zero(opened):
    store, run = opened
    for name in ("alice", "bob"):
        store.add_annotator(name)
    s0, s1 = ids(store, run)[:2]                                    # the two samples of bin 0
    store.add_score(s0, "alice", 1)
    store.add_score(s1, "alice", 0)
    store.add_score(s0, "bob", 0)
    table = store.bin_precision_table(run.id)
    (row,) = table.rows
    # per-sample means 0.5 and 0: r = 0.25, standard error std([0.5, 0]) / sqrt(2) = 0.25
    assert (row.bin, row.r, row.stderr, row.n_scored, row.n_samples, row.n_scores) == (0, 0.25, 0.25, 2, 2, 3)
    assert (row.lo, row.hi, row.n_judge_scores) == (-1.5, -0.75, 0)
    assert table.unannotated == [1, 3] and table.empty == [2]
    np.testing.assert_array_equal(table.r(), [0.25, np.nan, np.nan, np.nan])
    assert store.bin_precision_table(run.id, ["bob"]).rows[0].r == 0.0
    with pytest.raises(ValueError, match="unknown annotators"):
        store.bin_precision_table(run.id, ["nobody"])


def test_samples_weights_weight_the_bin_precision(tmp_path):
    workdir = make_run(tmp_path / "run")
    arrays = dict(np.load(os.path.join(workdir, "samples.npz")))
    assert np.array_equal(load_samples(workdir)["weight"], [0.5, 0.5, 1 / 3, 1 / 3, 1 / 3, 1.0])  # none stored
    np.savez(os.path.join(workdir, "samples.npz"), **arrays, weight=np.array([0.9, 0.1, 0.2, 0.2, 0.6, 1.0]))
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        annotate(store, run.id, Oracle("half-on", lambda x: x.sum() > 392))   # scores 0, 1 | 0, 1, 1 | 0
        table = store.bin_precision_table(run.id, sample_weights=load_samples(workdir)["weight"])
        np.testing.assert_allclose(table.r(), [0.1, 0.8, np.nan, 0.0])
        np.testing.assert_allclose(table.rows[0].stderr, math.sqrt(2 * (0.81 * 0.01 + 0.01 * 0.81)))
    np.savez(os.path.join(workdir, "samples.npz"), **arrays, weight=np.array([0.9, 0.1, 0.2, 0.2, np.nan, 1.0]))
    with pytest.raises(ValueError, match="weight must hold one finite nonnegative number per sample"):
        load_samples(workdir)


def test_oracle_scores_exactly_and_resumes(opened):
    store, run = opened
    oracle = Oracle("half-on", lambda x: x.sum() > 392)
    assert annotate(store, run.id, oracle) == 6
    assert annotate(store, run.id, oracle) == 0                     # everything already scored
    assert [s.score for s in store.current_scores(run.id)] == [0, 1, 0, 1, 1, 0]
    assert store.annotators() == {"half-on": "oracle"}
    np.testing.assert_allclose(store.bin_precision_table(run.id).r(), [0.5, 2 / 3, np.nan, 0.0])
    with pytest.raises(ValueError, match="is of kind 'oracle', not 'person'"):
        store.add_annotator("half-on", "person")


def test_judge_is_flagged_everywhere(tmp_path, opened):
    store, run = opened
    with pytest.raises(ValueError, match=r"judge 'bad' on sample \d+: score must lie in \[0, 1\]"):
        annotate(store, run.id, Judge("bad", lambda x: x.sum(axis=(1, 2)).astype(float)))
    assert store.current_scores(run.id) == []
    with pytest.raises(ValueError, match=r"one probability or label per input, shape \(6,\)"):
        annotate(store, run.id, Judge("wrong-shape", lambda x: x.mean(axis=1)))
    annotate(store, run.id, Judge("ref", lambda x: x.mean(axis=(1, 2))))
    annotate(store, run.id, Judge("labels", lambda x: x.sum(axis=(1, 2)) > 392))
    scores = store.current_scores(run.id, annotator="ref")
    assert [s.kind for s in scores] == ["judge"] * 6
    np.testing.assert_allclose([s.score for s in scores], np.array(ON) / 784)
    assert [s.score for s in store.current_scores(run.id, annotator="labels")] == [0, 1, 0, 1, 1, 0]
    table = store.bin_precision_table(run.id)
    assert table.n_judge_scores == 12 and [r.n_judge_scores for r in table.rows] == [4, 6, 2]
    assert store.counted_annotators(run.id) is None       # only judges scored: theirs count, flagged
    path = str(tmp_path / "j.csv")
    store.export_csv(path)
    with open(path) as f:
        assert {r["kind"] for r in csv.DictReader(f)} == {"judge"}
    assert agreement(store, "ref", "labels").involves_judge
    store.add_annotator("pat")
    store.add_score(scores[0].sample, "pat", 1.0)
    assert store.counted_annotators(run.id) == ["pat"]    # once a person scored, judges are held apart


def test_agreement_matches_hand_computation(opened):
    store, run = opened
    a = [1, 1, 0, 0, 1, 0.6]     # labels 1 1 0 0 1 1
    b = [1, 0, 0, 0, 0.5, 0.2]   # labels 1 0 0 0 1 0
    for name, scores in (("a", a), ("b", b)):
        store.add_annotator(name)
        store.add_scores(name, zip(ids(store, run), scores))
    result = agreement(store, "a", "b", run.id)
    # observed 4/6; expected 4/6 * 2/6 + 2/6 * 4/6 = 4/9; kappa (2/3 - 4/9) / (1 - 4/9) = 0.4
    assert (result.n, result.a_kind, result.b_kind, result.involves_judge) == (6, "person", "person", False)
    assert result.fraction_agree == pytest.approx(2 / 3)
    assert result.kappa == pytest.approx(0.4)
    assert result.mean_abs_diff == pytest.approx(1.9 / 6)
    store.add_annotator("c")
    store.add_scores("c", [(ids(store, run)[i], 1) for i in (0, 1, 4)])
    constant = agreement(store, "a", "c")                        # both label all three 1
    assert (constant.n, constant.fraction_agree, math.isnan(constant.kappa)) == (3, 1.0, True)
    store.add_annotator("d")
    with pytest.raises(ValueError, match="no sample in common"):
        agreement(store, "a", "d")
    with pytest.raises(ValueError, match="unknown annotator 'e'"):
        agreement(store, "a", "e")


def test_scores_keep_the_order_they_were_given(opened):
    store, run = opened
    store.add_annotator("alice")
    first = ids(store, run)[0]
    start = time.time()
    for score in (0.0, 1.0, 0.5, 0.75):
        store.add_score(first, "alice", score)
    (current,) = store.current_scores(run.id)
    assert current.score == 0.75 and current.time >= start


def test_page_api_is_blind_and_checks_what_it_stores(opened):
    store, run = opened
    app = AnnotationApp(store, run)
    assert not {"z", "bin", "bin_edges"} & set(app.meta())
    groups = [app.group("alice", g)["samples"] for g in range(3)]
    assert sorted(len(g) for g in groups) == [1, 2, 3] and not {"z", "bin"} & set(groups[0][0])
    assert [[s["id"] for s in g] for g in groups] == [[s["id"] for s in app.group("alice", g)["samples"]]
                                                     for g in range(3)]      # stable across requests
    sample_id = groups[0][0]["id"]
    progress = app.score("alice", sample_id, 0.5)
    assert (progress["annotator"], progress["scored"], progress["total"]) == ("alice", 1, 6)
    assert "annotators" not in progress                     # nobody sees others' names or counts
    with pytest.raises(ValueError, match=r"score must lie in \[0, 1\]"):
        app.score("alice", sample_id, 1.5)
    with pytest.raises(ValueError, match="unknown sample id 9999"):
        app.score("alice", 9999, 1)
    annotate(store, run.id, Judge("ref", lambda x: x.mean(axis=(1, 2))))
    with pytest.raises(ValueError, match="'ref' is the name of an annotator of kind 'judge'"):
        app.score("ref", sample_id, 1)
    with pytest.raises(ValueError, match=r"group must be an integer in \[0, 3\)"):
        app.group("alice", 3)
    assert [s.score for s in store.current_scores(run.id, annotator="alice")] == [0.5]
