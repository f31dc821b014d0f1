"""Label Studio round trip: a run's tasks and config out, an export as Label Studio writes it back in.

The exports are built here from the written tasks in the structure of Label Studio's documented JSON
export (HumanSignal/label-studio docs/source/includes/task_format.md, "Label Studio JSON format of
annotated tasks", as of commit 321ee1d9: task id/data/annotations/predictions, each annotation with
id, result, was_cancelled, ground_truth, created_at, updated_at, lead_time, task, completed_by), with
completed_by both as the documented user id and as the {id, email, first_name, last_name} object of
the export serializer (label_studio/data_export/serializers.py).
"""

import base64
import io
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from omnijax.annotation import Store
from omnijax.annotation.label_studio import (CONFIG_FILE, TASKS_FILE, import_label_studio_export,
                                             read_label_studio_export, write_label_studio_import)
from tests.test_annotation_store import ON, make_run

ALICE = {"id": 1, "email": "alice@example.org", "first_name": "Alice", "last_name": ""}
BOB = 7   # the documented form: a bare user id


def ls_annotation(ann_id, task_id, user, result, updated="2026-11-30T10:00:00.000000Z", cancelled=False):
    return {"id": ann_id, "result": result, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": "2026-11-30T09:59:00.000000Z", "updated_at": updated, "lead_time": 2.5,
            "result_count": 0, "task": task_id, "completed_by": user, "prediction": {}, "parent_prediction": None,
            "parent_annotation": None, "last_action": None, "project": 3, "updated_by": None}


def choice(value):
    return [{"id": "Ab3_x", "from_name": "score", "to_name": "input", "type": "choices", "origin": "manual",
             "value": {"choices": [value]}}]


def rating(stars):
    return [{"id": "Rt9_q", "from_name": "score", "to_name": "input", "type": "rating", "origin": "manual",
             "value": {"rating": stars}}]


def ls_export(tasks, annotations, path):
    """Writes Label Studio's JSON export of the imported `tasks` (ids 1.. in import order) with
    annotations[i] = list of (annotation id, user, result, updated_at, cancelled) of task i."""
    out = []
    for i, task in enumerate(tasks):
        anns = [ls_annotation(a, i + 1, user, result, updated, cancelled)
                for a, user, result, updated, cancelled in annotations.get(i, [])]
        out.append({"id": i + 1, "annotations": anns, "drafts": [], "predictions": [], "data": task["data"],
                    "meta": {}, "created_at": "2026-11-30T09:00:00.000000Z",
                    "updated_at": "2026-11-30T10:00:00.000000Z", "inner_id": i + 1, "total_annotations": len(anns),
                    "cancelled_annotations": sum(a["was_cancelled"] for a in anns), "total_predictions": 0,
                    "comment_count": 0, "unresolved_comment_count": 0, "last_comment_updated_at": None,
                    "project": 3, "updated_by": 1, "file_upload": "label_studio_tasks.json", "comment_authors": []})
    with open(path, "w") as f:
        json.dump(out, f)
    return str(path)


def current(store, run):
    index = {s.id: s.index for s in store.samples(run.id)}
    return {(s.annotator, index[s.sample]): s.score for s in store.current_scores(run.id)}


def history(store, run, tmp_path):
    return store.export_csv(str(tmp_path / "history.csv"), run.id)


def test_image_run_round_trip(tmp_path):
    workdir = make_run(tmp_path / "run")
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        files = write_label_studio_import(store, run, str(tmp_path))
        assert (files.tasks, files.config, files.num_tasks) == (str(tmp_path / TASKS_FILE), str(tmp_path / CONFIG_FILE), 6)
        with open(files.tasks) as f:
            tasks = json.load(f)
        view = ET.parse(files.config).getroot()
        assert view.tag == "View" and view.find("Image").get("value") == "$image"
        assert [c.get("value") for c in view.find("Choices")] == ["yes", "no"]
        # Blind: nothing that reveals z, the bin or the (bin-ordered) index; shuffled out of file order.
        assert all(set(t["data"]) == {"image", "omnijax_run", "omnijax_run_name", "omnijax_sample", "omnijax_scale"}
                   for t in tasks)
        samples, order = store.samples(run.id), []
        for t in tasks:  # the PNG decodes to the sample's pixels (grey levels 0, 255); ON names the sample
            url = t["data"]["image"]
            assert url.startswith("data:image/png;base64,")
            with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
                assert im.mode == "L" and im.size == (28, 28)
                pixels = np.asarray(im)
            order.append(ON.index(int((pixels == 255).sum())))
            np.testing.assert_array_equal(pixels, 255 * samples[order[-1]].input)
        assert sorted(order) == list(range(6)) and order != list(range(6))

        # alice: yes, no on tasks 0, 1 and cancels task 2; bob (a bare user id): no on task 0.
        annotations = {0: [(11, ALICE, choice("yes"), "2026-11-30T10:00:00Z", False),
                           (12, BOB, choice("no"), "2026-11-30T10:01:00.5Z", False)],
                       1: [(13, ALICE, choice("no"), "2026-11-30T10:02:00Z", False)],
                       2: [(14, ALICE, [], "2026-11-30T10:03:00Z", True)]}
        first = ls_export(tasks, annotations, tmp_path / "export1.json")
        assert read_label_studio_export(store, first).cancelled == 1
        assert import_label_studio_export(store, first) == 3
        expected = {("alice@example.org", order[0]): 1.0, ("label-studio-user-7", order[0]): 0.0,
                    ("alice@example.org", order[1]): 0.0}
        assert current(store, run) == expected
        assert store.annotators() == {"alice@example.org": "person", "label-studio-user-7": "person"}
        assert import_label_studio_export(store, first) == 0            # idempotent

        # alice changes her mind on task 0 (a later updated_at): the new score counts, the old is kept.
        annotations[0][0] = (11, ALICE, choice("no"), "2026-11-30T11:00:00Z", False)
        second = ls_export(tasks, annotations, tmp_path / "export2.json")
        assert import_label_studio_export(store, second) == 1
        assert current(store, run) == {**expected, ("alice@example.org", order[0]): 0.0}
        assert history(store, run, tmp_path) == 4

        # Bad exports import nothing and name the problem.
        bad_choice = {**annotations, 3: [(15, BOB, choice("yes"), "2026-11-30T12:00:00Z", False)],
                      4: [(16, BOB, choice("maybe"), "2026-11-30T12:00:00Z", False)]}
        with pytest.raises(ValueError, match=r"task 5 annotation 16: the choice must be one of \['yes', 'no'\], "
                                             r"got \['maybe'\]"):
            import_label_studio_export(store, ls_export(tasks, bad_choice, tmp_path / "bad1.json"))
        stranger = [dict(t, data=dict(t["data"])) for t in tasks]
        stranger[5]["data"]["omnijax_sample"] = "0123456789abcdef"
        with pytest.raises(ValueError, match=r"task 6: sample 0123456789abcdef is not a sample of run run"):
            import_label_studio_export(store, ls_export(stranger, {**bad_choice, 4: []}, tmp_path / "bad2.json"))
        stranger[5]["data"]["omnijax_run"] = "f" * 64
        with pytest.raises(ValueError, match=r"task 6: run ffffffffffff\.\.\. \(run\) is not in"):
            import_label_studio_export(store, ls_export(stranger, {}, tmp_path / "bad3.json"))
        with pytest.raises(ValueError, match=r"task 1: .*not JSON_MIN"):
            import_label_studio_export(store, ls_export([{"data": None}], {}, tmp_path / "bad4.json"))
        assert current(store, run) == {**expected, ("alice@example.org", order[0]): 0.0}
        assert history(store, run, tmp_path) == 4


def make_text_run(directory):
    """A text run: samples.npz of token ids and texts.json with each sample's text (no tokenizer needed)."""
    workdir = make_run(directory, on=[0, 0, 0], bins=[0, 1, 1])
    inputs = np.array([[1, 5, 6, 2], [1, 7, 8, 2], [1, 9, 9, 2]], np.int32)
    texts = ["a red car", "the dog ran", "rain & <rain>"]
    with np.load(os.path.join(workdir, "samples.npz")) as npz:
        arrays = dict(npz)
    np.savez_compressed(os.path.join(workdir, "samples.npz"), **{**arrays, "inputs": inputs})
    with open(os.path.join(workdir, "texts.json"), "w") as f:
        json.dump({"kind": "text", "vocab_size": 12, "frozen_text": "[CLS] … [SEP]",
                   "texts": [{"token_ids": x.tolist(), "text": t} for x, t in zip(inputs, texts)]}, f)
    return workdir, texts


def test_text_run_round_trip_with_ratings(tmp_path):
    workdir, texts = make_text_run(tmp_path / "text-run")
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        assert run.kind == "text"
        with pytest.raises(ValueError, match=r"max_rating must be an integer in \[2, 100\], got 1"):
            write_label_studio_import(store, run, str(tmp_path), scale="rating", max_rating=1)
        with pytest.raises(ValueError, match=r"scale must be one of"):
            write_label_studio_import(store, run, str(tmp_path), scale="stars")
        files = write_label_studio_import(store, run, str(tmp_path), scale="rating", max_rating=5)
        with open(files.tasks) as f:
            tasks = json.load(f)
        view = ET.parse(files.config).getroot()
        assert view.find("Text").get("value") == "$text"
        assert view.find("Rating").get("maxRating") == "5"
        assert "[CLS] … [SEP]" in view.findall("Header")[1].get("value")
        index = {t["data"]["text"]: texts.index(t["data"]["text"]) for t in tasks}
        assert sorted(index) == sorted(texts)
        assert all("omnijax_max_rating" in t["data"] and "z" not in t["data"] for t in tasks)
        # 1..5 stars -> 0, 0.25, ..., 1; the rating export carries only the stars.
        annotations = {0: [(21, ALICE, rating(5), "2026-11-30T10:00:00Z", False),
                           (22, BOB, rating(1), "2026-11-30T10:00:00Z", False)],
                       1: [(23, ALICE, rating(2), "2026-11-30T10:00:00Z", False),
                           (24, BOB, [], "2026-11-30T10:00:00Z", True)]}
        export = ls_export(tasks, annotations, tmp_path / "export.json")
        assert import_label_studio_export(store, export) == 3
        t0, t1 = index[tasks[0]["data"]["text"]], index[tasks[1]["data"]["text"]]
        assert current(store, run) == {("alice@example.org", t0): 1.0, ("label-studio-user-7", t0): 0.0,
                                       ("alice@example.org", t1): 0.25}
        assert import_label_studio_export(store, export) == 0
        bad = {2: [(25, BOB, rating(6), "2026-11-30T10:00:00Z", False)]}
        with pytest.raises(ValueError, match=r"task 3 annotation 25: the rating must be an integer in \[1, 5\], got 6"):
            import_label_studio_export(store, ls_export(tasks, {**annotations, **bad}, tmp_path / "bad.json"))
        wrong_kind = {2: [(26, BOB, choice("yes"), "2026-11-30T10:00:00Z", False)]}
        with pytest.raises(ValueError, match=r"annotation 26: a 'choices' result cannot score a task written for "
                                             r"scale 'rating'"):
            import_label_studio_export(store, ls_export(tasks, wrong_kind, tmp_path / "bad2.json"))
        assert len(current(store, run)) == 3


def test_token_run_shows_vocabulary_strings(tmp_path):
    workdir = make_run(tmp_path / "tokens", on=[0, 0], bins=[0, 1])
    with np.load(os.path.join(workdir, "samples.npz")) as npz:
        arrays = dict(npz)
    np.savez_compressed(os.path.join(workdir, "samples.npz"), **{**arrays, "inputs": np.array([[0, 2], [1, 3]])})
    with open(os.path.join(workdir, "vocab.json"), "w") as f:
        json.dump(["up", "down", "left"], f)
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        files = write_label_studio_import(store, run, str(tmp_path), question="Is it a path?")
        with open(files.tasks) as f:
            assert sorted(t["data"]["text"] for t in json.load(f)) == ["down <3>", "up left"]
        assert ET.parse(files.config).getroot().find("Header").get("value") == "Is it a path?"
        with pytest.raises(ValueError, match=r"question must not contain '\$'"):
            write_label_studio_import(store, run, str(tmp_path), question="Worth $5?")
