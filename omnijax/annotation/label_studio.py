"""Label Studio interoperability: a run's representatives as a Label Studio import (tasks JSON and a
labelling config), and Label Studio's JSON export read back as scores through `Store.import_records`.

Formats, as documented in HumanSignal/label-studio (read December 2026):
* Import: docs/source/guide/tasks.md, "Basic Label Studio JSON format": a JSON list of tasks
  {"data": {...}}; `<Image value="$image">` reads a URL, and data URLs (data:image/png;base64,...)
  are accepted (issue #6086); `<Text value="$text">` reads plain text.
* Config tags: docs/source/tags/{view,header,image,text,choices,rating}.md.
* Export ("JSON" format): docs/source/includes/task_format.md: a list of tasks {id, data, annotations:
  [{id, result: [{from_name, to_name, type, value}], was_cancelled, created_at, updated_at,
  completed_by, ...}], predictions, ...}. completed_by is a user id there; the export serializer
  (label_studio/data_export/serializers.py) nests it as {id, email, first_name, last_name}: both are
  read. A Choices result's value is {"choices": [...]}, a Rating's {"rating": n} with n in
  1..maxRating (label-studio-frontend src/tags/control/Rating.js; 0 means unset and gives no result).
Checked against Label Studio 1.23.2 itself (tests/fixtures/label_studio_fixtures.md): it accepts the
config and tasks and shows them, and its plain JSON export (the UI's Export button) gives completed_by
as the bare id; the snapshot export that expands completed_by gives the object with the email.

Blind: the tasks carry no z, no bin and no position in samples.npz (which is ordered by bin, and Label
Studio lists data fields as columns): a sample is named by an opaque key, a hash of the run digest and
its index, and the tasks are shuffled (seeded by the run digest) so no bin is contiguous in Label
Studio's task order.

Scores: "yes" 1, "no" 0; a rating r of maxRating m is (r - 1) / (m - 1), so one star is 0 and m stars
are 1 (with m = 5: 0, 0.25, 0.5, 0.75, 1). Cancelled (skipped) annotations, drafts and predictions
are not scores and are not read. The annotator is Label Studio's user, named "label-studio-user-<id>"
by the user's id, which every export carries (the plain one as a bare id, the expanded snapshot with
the email beside it): naming by email when present would give one person two names, and count their
scores twice, when a project's plain and snapshot exports are both imported.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import numbers
import os
import random
import struct
import zlib
from xml.sax.saxutils import quoteattr

import numpy as np

from omnijax.annotation.server import DEFAULT_QUESTION
from omnijax.annotation.store import Run, Sample, Store

TASKS_FILE = "label_studio_tasks.json"
CONFIG_FILE = "label_studio_config.xml"
SCALES = ("binary", "rating")
CONTROL = "score"    # the config's control tag (from_name of every result read back)
OBJECT = "input"     # the config's object tag (to_name)
CHOICES = {"yes": 1.0, "no": 0.0}
# Task data fields that name the sample (Label Studio copies a task's data into its export).
RUN_FIELD, NAME_FIELD, KEY_FIELD = "omnijax_run", "omnijax_run_name", "omnijax_sample"
SCALE_FIELD, MAX_RATING_FIELD = "omnijax_scale", "omnijax_max_rating"


@dataclasses.dataclass(frozen=True)
class LabelStudioFiles:
    tasks: str       # path of the tasks JSON to import into a Label Studio project
    config: str      # path of the labelling config XML to paste into the project's settings
    num_tasks: int


@dataclasses.dataclass(frozen=True)
class LabelStudioScores:
    """What a Label Studio export holds for this store, before it is imported."""
    records: list[dict]        # score records for Store.import_records
    places: list[str]          # per record: the task and annotation it came from
    cancelled: int             # annotations skipped because they were cancelled (skipped in Label Studio)

    def where(self, i: int) -> str:
        return self.places[i]


def sample_key(digest: str, index: int) -> str:
    """The opaque name of sample `index` of the run with this digest in Label Studio's tasks."""
    return hashlib.sha256(f"omnijax-label-studio\n{digest}\n{int(index)}".encode()).hexdigest()[:16]


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG (8-bit grey for (H, W), RGB for (H, W, 3)) of uint8 pixels, with the stdlib only."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"a PNG needs pixels of shape (H, W) or (H, W, 3), got {pixels.shape}")
    height, width = pixels.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if pixels.ndim == 2 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def image_pixels(sample: Sample, num_categories: int) -> np.ndarray:
    """The sample as uint8 pixels, category c of k shown as round(255 c / (k - 1)), as the annotation page draws it."""
    x = sample.input
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] == 3)):
        raise ValueError(f"an image run's inputs must have shape (H, W), (H, W, 1) or (H, W, 3), "
                         f"got {sample.input.shape}")
    levels = max(1, num_categories - 1)
    return np.rint(255.0 * np.clip(x, 0, levels) / levels).astype(np.uint8)


def _shown(run: Run, sample: Sample) -> dict:
    """The task data field that shows the sample: a PNG data URL, or the text."""
    if run.kind == "image":
        url = "data:image/png;base64," + base64.b64encode(png_bytes(image_pixels(sample, run.num_categories))).decode()
        return {"image": url}
    if run.kind == "text":
        return {"text": sample.text if sample.text else "(empty)"}
    tokens = sample.input.ravel()
    if run.vocab is None:
        return {"text": " ".join(str(int(t)) for t in tokens)}
    return {"text": " ".join(run.vocab[t] if 0 <= t < len(run.vocab) else f"<{int(t)}>" for t in tokens)}


def _literal(text: str, what: str) -> str:
    """An XML attribute for a literal Label Studio value; '$' would be read as a task-data variable."""
    if "$" in text:
        raise ValueError(f"{what} must not contain '$' (Label Studio reads $name as a task field), got {text!r}")
    return quoteattr(text)


def label_studio_config(run: Run, question: str = DEFAULT_QUESTION, scale: str = "binary", max_rating: int = 5) -> str:
    """The labelling config XML: the question, the input (an image or a text) and a yes/no choice or a rating."""
    lines = ["<View>", f"  <Header value={_literal(question, 'question')}/>"]
    frozen = (run.meta or {}).get("frozen_text", "")
    if run.kind == "text" and frozen:
        note = _literal(f"Every input is {frozen}; shown: its free positions.", "frozen text")
        lines.append(f"  <Header size=\"6\" value={note}/>")
    if run.kind == "image":
        width = run.shape[1] * max(1, 280 // run.shape[1])
        lines.append(f"  <Image name=\"{OBJECT}\" value=\"$image\" width=\"{width}px\" smoothing=\"false\"/>")
    else:
        lines.append(f"  <Text name=\"{OBJECT}\" value=\"$text\"/>")
    if scale == "binary":
        lines += [f"  <Choices name=\"{CONTROL}\" toName=\"{OBJECT}\" choice=\"single-radio\" required=\"true\" "
                  "showInline=\"true\">"] + [f"    <Choice value=\"{c}\"/>" for c in CHOICES] + ["  </Choices>"]
    else:
        lines.append(f"  <Rating name=\"{CONTROL}\" toName=\"{OBJECT}\" maxRating=\"{max_rating}\" required=\"true\"/>")
    return "\n".join(lines + ["</View>", ""])


def _check_scale(scale, max_rating) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "rating" and (isinstance(max_rating, bool) or not isinstance(max_rating, numbers.Integral)
                              or not 2 <= max_rating <= 100):
        raise ValueError(f"max_rating must be an integer in [2, 100], got {max_rating!r}")


def write_label_studio_import(store: Store, run: Run, directory: str, *, question: str = DEFAULT_QUESTION,
                              scale: str = "binary", max_rating: int = 5, seed=None) -> LabelStudioFiles:
    """Writes TASKS_FILE (one task per sample, shuffled by `seed`, default the run digest) and CONFIG_FILE
    into `directory`. scale "binary": a yes/no choice (scores 1/0); "rating": 1..max_rating stars."""
    _check_scale(scale, max_rating)
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist")
    config = label_studio_config(run, question, scale, max_rating)
    samples = store.samples(run.id)
    random.Random(run.digest if seed is None else seed).shuffle(samples)
    tasks = []
    for s in samples:
        data = _shown(run, s)
        data.update({RUN_FIELD: run.digest, NAME_FIELD: run.name, KEY_FIELD: sample_key(run.digest, s.index),
                     SCALE_FIELD: scale})
        if scale == "rating":
            data[MAX_RATING_FIELD] = int(max_rating)
        tasks.append({"data": data})
    paths = LabelStudioFiles(os.path.join(directory, TASKS_FILE), os.path.join(directory, CONFIG_FILE), len(tasks))
    with open(paths.tasks, "w", encoding="utf-8") as f:
        json.dump(tasks, f, ensure_ascii=False, indent=1)
    with open(paths.config, "w", encoding="utf-8") as f:
        f.write(config)
    return paths


def _annotator(completed_by, place: str) -> str:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or not isinstance(completed_by, int):
        raise ValueError(f"{place}: completed_by must be a user id or {{id, email}}, got {completed_by!r}")
    return f"label-studio-user-{completed_by}"


def _time(annotation: dict, place: str) -> float:
    """Unix seconds of the annotation's last change (updated_at, else created_at); naive times are UTC."""
    stamp = annotation.get("updated_at") or annotation.get("created_at")
    try:
        when = datetime.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        raise ValueError(f"{place}: updated_at/created_at must be an ISO 8601 time, got {stamp!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _score(result: dict, data: dict, place: str) -> float:
    scale, kind, value = data.get(SCALE_FIELD), result.get("type"), result.get("value") or {}
    if scale not in SCALES:
        raise ValueError(f"{place}: the task's {SCALE_FIELD} must be one of {SCALES}, got {scale!r}")
    if scale == "binary" and kind == "choices":
        choices = value.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or choices[0] not in CHOICES:
            raise ValueError(f"{place}: the choice must be one of {list(CHOICES)}, got {choices!r}")
        return CHOICES[choices[0]]
    if scale == "rating" and kind == "rating":
        top, rating = data.get(MAX_RATING_FIELD), value.get("rating")
        if isinstance(top, bool) or not isinstance(top, int) or top < 2:
            raise ValueError(f"{place}: the task's {MAX_RATING_FIELD} must be an integer >= 2, got {top!r}")
        if isinstance(rating, bool) or not isinstance(rating, numbers.Real) or rating != int(rating) \
                or not 1 <= rating <= top:
            raise ValueError(f"{place}: the rating must be an integer in [1, {top}], got {rating!r}")
        return (int(rating) - 1) / (top - 1)
    raise ValueError(f"{place}: a {kind!r} result cannot score a task written for scale {scale!r} "
                     f"(expected {'choices' if scale == 'binary' else 'rating'})")


def read_label_studio_export(store: Store, path: str) -> LabelStudioScores:
    """The score records of a Label Studio JSON export of tasks written by write_label_studio_import.
    A task or annotation that cannot be read raises a ValueError naming it (the export's task id and
    annotation id); nothing is imported here."""
    try:
        with open(path, encoding="utf-8") as f:
            tasks = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON: {err}") from None
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: Label Studio's JSON export is a list of tasks, got {type(tasks).__name__}")
    runs = {run.digest: run for run in store.runs()}
    keys: dict[str, dict[str, int]] = {}
    records, places, cancelled = [], [], 0
    for position, task in enumerate(tasks):
        place = f"{path}: task {task.get('id', f'#{position}') if isinstance(task, dict) else f'#{position}'}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict) or \
                not isinstance(task.get("annotations"), list):
            raise ValueError(f"{place}: not a task of Label Studio's JSON export (an object with data and "
                             "annotations); export the project as JSON, not JSON_MIN or CSV")
        data = task["data"]
        digest, key = data.get(RUN_FIELD), data.get(KEY_FIELD)
        if not isinstance(digest, str) or not isinstance(key, str):
            raise ValueError(f"{place}: its data lacks {RUN_FIELD} and {KEY_FIELD}: not a task written by "
                             "omnijax (write_label_studio_import)")
        if digest not in runs:
            raise ValueError(f"{place}: run {digest[:12]}... ({data.get(NAME_FIELD)}) is not in {store.path}; "
                             "import that run directory first")
        run = runs[digest]
        if digest not in keys:
            keys[digest] = {sample_key(digest, s.index): s.index for s in store.samples(run.id)}
        if key not in keys[digest]:
            raise ValueError(f"{place}: sample {key} is not a sample of run {run.name} in {store.path}")
        for annotation in task["annotations"]:
            where = f"{place} annotation {annotation.get('id') if isinstance(annotation, dict) else '?'}"
            if not isinstance(annotation, dict) or not isinstance(annotation.get("result"), list):
                raise ValueError(f"{where}: an annotation must be an object with a result list")
            if annotation.get("was_cancelled"):
                cancelled += 1
                continue
            mine = [r for r in annotation["result"] if isinstance(r, dict) and r.get("from_name") == CONTROL]
            if len(mine) != 1:
                raise ValueError(f"{where}: expected one result from <{CONTROL}>, found {len(mine)}")
            records.append({"run": digest, "run_name": run.name, "index": keys[digest][key],
                            "annotator": _annotator(annotation.get("completed_by"), where), "kind": "person",
                            "score": _score(mine[0], data, where), "time": _time(annotation, where)})
            places.append(where)
    return LabelStudioScores(records, places, cancelled)


def import_label_studio_export(store: Store, path: str) -> int:
    """Adds the scores of a Label Studio JSON export, all or nothing (Store.import_records): a repeated
    import adds 0, a changed annotation (a new updated_at) adds its new score and keeps the old one."""
    found = read_label_studio_export(store, path)
    return store.import_records(found.records, where=found.where)
