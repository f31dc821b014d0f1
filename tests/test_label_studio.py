"""Label Studio round trip: a run's tasks and config out, Label Studio's own JSON export back in.

The exports in tests/fixtures/label_studio_export_*.json were written by Label Studio 1.23.2 itself
from the tasks and config that write_label_studio_import writes for the runs below (the tests check
that the tasks are still exactly the ones the fixtures hold); label_studio_fixtures.md there says how.
Their structure is the documented one (HumanSignal/label-studio docs/source/includes/task_format.md):
completed_by is a bare user id in the plain export and {id, email, first_name, last_name} in the
snapshot export that expands it.
"""

import base64
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from omnijax.annotation import Store
from omnijax.annotation.label_studio import (CONFIG_FILE, TASKS_FILE, LabelStudioFiles, import_label_studio_export,
                                             read_label_studio_export, write_label_studio_import)
from tests.test_annotation_store import ON, make_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def fixture(name):
    return os.path.join(FIXTURES, f"label_studio_export_{name}.json")


def current(store, run):
    """(annotator, index in samples.npz) -> the score that counts."""
    index = {s.id: s.index for s in store.samples(run.id)}
    return {(s.annotator, index[s.sample]): s.score for s in store.current_scores(run.id)}


def history(store, run, tmp_path):
    """How many scores were ever given (superseded ones included)."""
    return store.export_csv(str(tmp_path / "history.csv"), run.id)


def written(files):
    with open(files.tasks) as f:
        return json.load(f)


def edited(name, tmp_path, change):
    """A copy of a fixture changed by `change(tasks)`."""
    with open(fixture(name)) as f:
        tasks = json.load(f)
    change(tasks)
    path = tmp_path / f"{name}-changed.json"
    path.write_text(json.dumps(tasks))
    return str(path)


def test_image_run_round_trip(tmp_path):
    workdir = make_run(tmp_path / "image-run")
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(workdir)
        files = write_label_studio_import(store, run, str(tmp_path))
        assert files == LabelStudioFiles(str(tmp_path / TASKS_FILE), str(tmp_path / CONFIG_FILE), 6)
        tasks = written(files)
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
        with open(fixture("image_snapshot")) as f:  # Label Studio's tasks 1..6 are these, in this order
            assert [t["data"] for t in json.load(f)] == [t["data"] for t in tasks]

        # Label Studio user 1 said yes to task 1, no to task 2 and skipped task 3; user 2 said no to task 1.
        assert read_label_studio_export(store, fixture("image")).cancelled == 1
        assert import_label_studio_export(store, fixture("image")) == 3
        expected = {("label-studio-user-1", order[0]): 1.0, ("label-studio-user-2", order[0]): 0.0,
                    ("label-studio-user-1", order[1]): 0.0}
        assert current(store, run) == expected
        assert store.annotators() == {"label-studio-user-1": "person", "label-studio-user-2": "person"}
        assert import_label_studio_export(store, fixture("image")) == 0            # idempotent
        # Then user 1 changed task 1 to no (a later updated_at): the new score counts, the old one is kept.
        assert import_label_studio_export(store, fixture("image_edited")) == 1
        expected[("label-studio-user-1", order[0])] = 0.0
        assert current(store, run) == expected and history(store, run, tmp_path) == 4

        # Bad exports import nothing and name the problem.
        def maybe(tasks):
            tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["maybe"]
        with pytest.raises(ValueError, match=r"task 2 annotation 3: the choice must be one of \['yes', 'no'\], "
                                             r"got \['maybe'\]"):
            import_label_studio_export(store, edited("image", tmp_path, maybe))

        def stranger(tasks):
            tasks[1]["data"]["omnijax_sample"] = "0123456789abcdef"
        with pytest.raises(ValueError, match=r"task 2: sample 0123456789abcdef is not a sample of run image-run"):
            import_label_studio_export(store, edited("image_edited", tmp_path, stranger))

        def other_run(tasks):
            tasks[2]["data"]["omnijax_run"] = "f" * 64
        with pytest.raises(ValueError, match=r"task 3: run ffffffffffff\.\.\. \(image-run\) is not in"):
            import_label_studio_export(store, edited("image", tmp_path, other_run))
        with pytest.raises(ValueError, match=r"task 1: .*not JSON_MIN"):
            import_label_studio_export(store, edited("image", tmp_path, lambda tasks: tasks[0].pop("annotations")))
        assert current(store, run) == expected and history(store, run, tmp_path) == 4

    # The snapshot export (completed_by expanded to {id, email, ...}, taken after user 1 changed their
    # first score) names the same users: on top of the plain export it adds only that change.
    with Store(str(tmp_path / "b.sqlite")) as store:
        run = store.import_run(workdir)
        assert import_label_studio_export(store, fixture("image")) == 3
        assert import_label_studio_export(store, fixture("image_snapshot")) == 1
        assert current(store, run) == {("label-studio-user-1", order[0]): 0.0,
                                       ("label-studio-user-2", order[0]): 0.0,
                                       ("label-studio-user-1", order[1]): 0.0}


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
        tasks = written(files)
        view = ET.parse(files.config).getroot()
        assert view.find("Text").get("value") == "$text"
        assert view.find("Rating").get("maxRating") == "5"
        assert "[CLS] … [SEP]" in view.findall("Header")[1].get("value")
        assert sorted(t["data"]["text"] for t in tasks) == sorted(texts)
        assert all(t["data"]["omnijax_max_rating"] == 5 and "z" not in t["data"] for t in tasks)
        with open(fixture("text")) as f:  # Label Studio's tasks 7, 8 (of 7..9) are the first two of these
            assert [t["data"] for t in json.load(f)] == [t["data"] for t in tasks[:2]]
        # Stars 1..5 -> 0, 0.25, ..., 1: user 1 gave 5 and 2 stars, user 2 gave 1 star and skipped one.
        assert import_label_studio_export(store, fixture("text")) == 3
        t0, t1 = (texts.index(t["data"]["text"]) for t in tasks[:2])
        assert current(store, run) == {("label-studio-user-1", t0): 1.0, ("label-studio-user-2", t0): 0.0,
                                       ("label-studio-user-1", t1): 0.25}
        assert import_label_studio_export(store, fixture("text")) == 0

        def six_stars(tasks):
            tasks[1]["annotations"][0]["result"][0]["value"]["rating"] = 6
        with pytest.raises(ValueError, match=r"task 8 annotation 7: the rating must be an integer in \[1, 5\], got 6"):
            import_label_studio_export(store, edited("text", tmp_path, six_stars))

        def a_choice(tasks):
            tasks[1]["annotations"][0]["result"][0].update(type="choices", value={"choices": ["yes"]})
        with pytest.raises(ValueError, match=r"annotation 7: a 'choices' result cannot score a task written for "
                                             r"scale 'rating'"):
            import_label_studio_export(store, edited("text", tmp_path, a_choice))

        def drop_result(tasks):
            tasks[0]["annotations"][1]["result"] = []
        with pytest.raises(ValueError, match=r"task 7 annotation 6: expected one result from <score>, found 0"):
            import_label_studio_export(store, edited("text", tmp_path, drop_result))
        assert len(current(store, run)) == 3 and history(store, run, tmp_path) == 3


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
        assert sorted(t["data"]["text"] for t in written(files)) == ["down <3>", "up left"]
        assert ET.parse(files.config).getroot().find("Header").get("value") == "Is it a path?"
        with pytest.raises(ValueError, match=r"question must not contain '\$'"):
            write_label_studio_import(store, run, str(tmp_path), question="Worth $5?")


def test_cli_writes_tasks_and_imports_an_export(tmp_path):
    workdir, out = make_run(tmp_path / "image-run"), tmp_path / "ls"
    out.mkdir()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "omnijax.annotation", *args, f"--run={workdir}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    done = cli("label-studio-export", f"--out={out}", "--scale=rating", "--max_rating=4")
    assert done.returncode == 0, done.stderr
    assert f"wrote 6 tasks to {out / TASKS_FILE}" in done.stderr
    assert ET.parse(out / CONFIG_FILE).getroot().find("Rating").get("maxRating") == "4"
    done = cli("label-studio-import", f"--json={fixture('image')}")
    assert done.returncode == 0, done.stderr
    assert "added 3 scores" in done.stderr and "1 cancelled" in done.stderr
    with Store(os.path.join(workdir, "annotations.sqlite")) as store:
        assert len(store.current_scores(store.runs()[0].id)) == 3
