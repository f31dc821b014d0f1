"""Annotation store: one SQLite file holding a run's samples, its annotators and every score given.

Each score is its own committed transaction in a write-ahead log, so a closed browser or a killed
server loses nothing that was acknowledged.

Text runs: a run directory whose inputs are token sequences may hold texts.json beside samples.npz
(written by `omnijax.text.write_text_representatives`: kind "text", the tokenizer's location and
the decoded text of each input). Its texts are stored with the samples (and added to a run imported
before they existed), and the annotation page shows them instead of token ids. Scores are never overwritten: a new score for the same
(sample, annotator) is appended and the latest one counts, so corrections keep their history.

Invite tokens (omnijax.annotation.access) are stored as their SHA-256 only, each bound to one run and
one person, with the time it was revoked, if it was.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import numbers
import os
import sqlite3
import threading
import time

import numpy as np

from omnijax.evaluation.precision_recall import BinPrecision as BinPrecisionArrays
from omnijax.evaluation.precision_recall import bin_precision

KINDS = ("person", "oracle", "judge")
CSV_FIELDS = ["run", "run_name", "index", "bin", "z", "annotator", "kind", "score", "time", "superseded"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,                  -- the run directory's name
    digest TEXT NOT NULL UNIQUE,         -- sha256 of samples.npz's arrays: the run's identity
    shape TEXT NOT NULL,                 -- JSON list, the shape of one input
    num_categories INTEGER NOT NULL,
    bin_edges TEXT NOT NULL,             -- JSON list
    vocab TEXT,                          -- JSON list of token strings, or NULL
    imported REAL NOT NULL,
    meta TEXT                            -- JSON object of texts.json's header (kind "text", tokenizer), or NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    idx INTEGER NOT NULL,                -- position in samples.npz
    bin INTEGER NOT NULL,
    z REAL NOT NULL,
    input BLOB NOT NULL,                 -- little-endian int32, C order
    shape TEXT NOT NULL,                 -- JSON list
    text TEXT,                           -- the input as decoded text (text runs), or NULL
    UNIQUE (run, idx)
);
CREATE INDEX IF NOT EXISTS samples_by_bin ON samples (run, bin);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('person', 'oracle', 'judge'))
);
CREATE TABLE IF NOT EXISTS scores (
    id INTEGER PRIMARY KEY,
    sample INTEGER NOT NULL REFERENCES samples(id),
    annotator INTEGER NOT NULL REFERENCES annotators(id),
    score REAL NOT NULL CHECK (score >= 0 AND score <= 1),
    time REAL NOT NULL,                  -- unix seconds
    UNIQUE (sample, annotator, time)
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),            -- the one run (its digest) the token opens
    annotator INTEGER NOT NULL REFERENCES annotators(id),
    hash TEXT NOT NULL UNIQUE,           -- sha256 of the token, hex; the token itself is never stored
    created REAL NOT NULL,
    revoked REAL                         -- unix seconds; NULL while the token works
);
CREATE VIEW IF NOT EXISTS current_scores AS
    SELECT * FROM scores s WHERE NOT EXISTS (
        SELECT 1 FROM scores t WHERE t.sample = s.sample AND t.annotator = s.annotator
        AND (t.time > s.time OR (t.time = s.time AND t.id > s.id)));
"""


@dataclasses.dataclass(frozen=True)
class Run:
    id: int
    name: str
    digest: str
    shape: tuple[int, ...]
    num_categories: int
    bin_edges: tuple[float, ...]
    vocab: list[str] | None
    meta: dict | None = None   # texts.json's header for a text run: kind "text", tokenizer, frozen_text

    @property
    def num_bins(self) -> int:
        return len(self.bin_edges) - 1

    @property
    def kind(self) -> str:
        """"text" (samples carry decoded text), "tokens" (a vocabulary or 1-D inputs) or "image"."""
        if self.meta and self.meta.get("kind") == "text":
            return "text"
        return "tokens" if self.vocab is not None or len(self.shape) == 1 else "image"


@dataclasses.dataclass(frozen=True)
class Sample:
    id: int
    run: int
    index: int
    bin: int
    z: float
    input: np.ndarray
    text: str | None = None   # the decoded text of a text run's input


@dataclasses.dataclass(frozen=True)
class Score:
    sample: int
    annotator: str
    kind: str
    score: float
    time: float


@dataclasses.dataclass(frozen=True)
class BinPrecision:
    """r(z) of one bin, by `omnijax.evaluation.bin_precision` (the one definition): the weighted mean
    over its scored samples of each sample's mean score across annotators."""
    bin: int
    lo: float
    hi: float
    r: float
    stderr: float          # standard error over samples; NaN with fewer than two
    n_scored: int          # samples with at least one score
    n_samples: int         # samples of the bin in the run
    n_scores: int          # current scores counted (one per sample and annotator)
    n_judge_scores: int    # of those, scores from a model used as judge
    ci_low: float = math.nan   # bootstrap interval (bin_precision_table(num_bootstrap=...)); NaN if not asked for
    ci_high: float = math.nan


@dataclasses.dataclass(frozen=True)
class BinScores:
    """A run's current scores as one (samples, annotators) matrix per bin: the input of
    `omnijax.evaluation.bin_precision`. Rows are ALL the bin's samples in file order (NaN rows for
    unscored ones), columns the chosen annotators who scored anything in the run."""
    annotators: list[str]            # column order
    kinds: dict[str, str]            # annotator -> kind
    scores: list[np.ndarray]         # per bin (samples, annotators), NaN = not scored
    weights: list[np.ndarray]        # per bin, the samples' within-bin weights
    indices: list[np.ndarray]        # per bin, the samples' positions in samples.npz


@dataclasses.dataclass(frozen=True)
class PrecisionTable:
    """Precision per bin. Bins nobody scored are listed apart: their r(z) is unknown, not 0."""
    rows: list[BinPrecision]
    unannotated: list[int]   # bins with samples but no score
    empty: list[int]         # bins without samples
    num_bins: int
    estimate: BinPrecisionArrays | None = None  # the per-bin arrays that bin_precision returned
    scores: BinScores | None = None             # what it was computed from

    def r(self) -> np.ndarray:
        """r(z) per bin, NaN where unknown."""
        out = np.full(self.num_bins, np.nan)
        for row in self.rows:
            out[row.bin] = row.r
        return out

    @property
    def n_judge_scores(self) -> int:
        return sum(row.n_judge_scores for row in self.rows)


def check_score(score) -> float:
    """The score as a float, or a ValueError unless it is a real number in [0, 1]."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise ValueError(f"score must be a number in [0, 1], got {score!r}")
    if not 0.0 <= float(score) <= 1.0:
        raise ValueError(f"score must lie in [0, 1], got {score!r}")
    return float(score)


def check_name(name) -> str:
    """The annotator name, or a ValueError unless it is 1 to 64 characters without surrounding spaces."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64 or name != name.strip():
        raise ValueError(f"annotator name must be 1 to 64 characters without surrounding spaces, got {name!r}")
    return name


def load_samples(workdir: str) -> dict:
    """samples.npz of a run directory, checked, with num_categories (metrics.json) and vocab (vocab.json)."""
    path = os.path.join(workdir, "samples.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir} has no samples.npz (a sampling run writes it, "
                                f"e.g. python -m experiments.mnist --workdir={workdir})")
    with np.load(path) as npz:
        missing = sorted({"bin", "z", "inputs", "bin_edges"} - set(npz.files))
        if missing:
            raise ValueError(f"{path} lacks the arrays {missing}")
        arrays = {k: npz[k] for k in ("bin", "z", "inputs", "bin_edges")}
        weight = npz["weight"] if "weight" in npz.files else None
    n = len(arrays["inputs"])
    if n == 0:
        raise ValueError(f"{path} holds no samples: there is nothing to annotate")
    if len(arrays["bin"]) != n or len(arrays["z"]) != n:
        raise ValueError(f"{path}: bin, z and inputs must have the same length, got "
                         f"{len(arrays['bin'])}, {len(arrays['z'])}, {n}")
    if not np.issubdtype(arrays["inputs"].dtype, np.integer):
        raise ValueError(f"{path}: inputs must be integer categories, got {arrays['inputs'].dtype}")
    num_bins = len(arrays["bin_edges"]) - 1
    if arrays["bin"].min() < 0 or arrays["bin"].max() >= num_bins:
        raise ValueError(f"{path}: bin indices must lie in [0, {num_bins}), got {arrays['bin'].min()}.."
                         f"{arrays['bin'].max()}")
    arrays["weight"] = _sample_weights(path, weight, arrays["bin"])
    arrays["num_categories"] = int(max(2, arrays["inputs"].max() + 1))
    metrics_path = os.path.join(workdir, "metrics.json")
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            metrics = json.load(f)
        arrays["num_categories"] = int(metrics.get("grey_levels", metrics.get("levels", arrays["num_categories"])))
    vocab_path = os.path.join(workdir, "vocab.json")
    arrays["vocab"] = None
    if os.path.isfile(vocab_path):
        with open(vocab_path) as f:
            arrays["vocab"] = [str(token) for token in json.load(f)]
    arrays["texts"], arrays["meta"] = _load_texts(workdir, arrays["inputs"])
    if arrays["meta"] and isinstance(arrays["meta"].get("vocab_size"), int):
        arrays["num_categories"] = arrays["meta"]["vocab_size"]  # the tokenizer's, not the largest id seen
    return arrays


TEXTS_FILE = "texts.json"


def _load_texts(workdir: str, inputs: np.ndarray) -> tuple[list[str] | None, dict | None]:
    """(text per sample, header) from the run's texts.json, or (None, None) without one. A sample
    texts.json lacks is decoded with the tokenizer it names when that loads; else ValueError."""
    path = os.path.join(workdir, TEXTS_FILE)
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path) as f:
            payload = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON: {err}") from None
    if not isinstance(payload, dict) or payload.get("kind") != "text" or not isinstance(payload.get("texts"), list):
        raise ValueError(f"{path} must be a JSON object with kind \"text\" and a list \"texts\" of "
                         "{token_ids, text} (omnijax.text.write_text_representatives writes it)")
    by_ids = {}
    for entry in payload["texts"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or \
                not isinstance(entry.get("token_ids"), list):
            raise ValueError(f"{path}: each entry of texts must be {{token_ids: [ints], text: str}}, got {entry!r:.200}")
        by_ids[tuple(int(i) for i in entry["token_ids"])] = entry["text"]
    flat = inputs.reshape(len(inputs), -1)
    texts = [by_ids.get(tuple(int(i) for i in x)) for x in flat]
    missing = [i for i, t in enumerate(texts) if t is None]
    if missing:
        texts = _decode_missing(path, payload, flat, texts, missing)
    meta = {k: payload[k] for k in ("kind", "tokenizer", "vocab_size", "frozen_positions", "frozen_text")
            if k in payload}
    return texts, meta


def _decode_missing(path, payload, flat, texts, missing):
    try:
        from omnijax.text import load_tokenizer, strip_frozen

        tokenizer = load_tokenizer(payload.get("tokenizer"), name=f"{path}'s tokenizer", hub_timeout=2.0)
        frozen = set(int(i) for i in payload.get("frozen_positions", []))
        mask = [p in frozen for p in range(flat.shape[1])]
        for i in missing:
            texts[i] = tokenizer.decode(strip_frozen(flat[i], mask))
    except (ValueError, ImportError) as err:
        raise ValueError(f"{path} lacks the text of {len(missing)} of the {len(texts)} samples (first: sample "
                         f"{missing[0]}) and its tokenizer cannot decode them ({err}); rewrite it with "
                         "omnijax.text.write_text_representatives") from None
    return texts


def _sample_weights(path: str, weight, bins: np.ndarray) -> np.ndarray:
    """The samples' within-bin weights; equal weights when the file has none (written before they existed)."""
    if weight is None:
        return 1.0 / np.bincount(bins)[bins]
    weight = np.asarray(weight, np.float64)
    if weight.shape != bins.shape or not np.all(np.isfinite(weight) & (weight >= 0)):
        raise ValueError(f"{path}: weight must hold one finite nonnegative number per sample")
    return weight


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(list(arrays["inputs"].shape)).encode())
    for key, dtype in (("bin", "<i4"), ("z", "<f4"), ("inputs", "<i4"), ("bin_edges", "<f8")):
        h.update(np.ascontiguousarray(arrays[key], dtype).tobytes())
    return h.hexdigest()


class Store:
    """One SQLite database of runs, samples, annotators and scores; safe to share between threads."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._db:
            self._db.executescript(SCHEMA)
            # Stores made before text runs existed lack these columns.
            for table, column in (("runs", "meta"), ("samples", "text")):
                if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _query(self, sql: str, args=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # Runs and samples.

    def import_run(self, workdir: str) -> Run:
        """Adds the samples of a run directory; importing the same samples again changes nothing."""
        arrays = load_samples(workdir)
        digest = _digest(arrays)
        shape = json.dumps([int(d) for d in arrays["inputs"].shape[1:]])
        texts, meta = arrays["texts"], None if arrays["meta"] is None else json.dumps(arrays["meta"])
        with self._lock, self._db:
            found = self._db.execute("SELECT id, meta FROM runs WHERE digest = ?", (digest,)).fetchone()
            if found:
                if texts is not None and found[1] is None:  # imported before its texts.json was written
                    self._db.execute("UPDATE runs SET meta = ?, num_categories = ? WHERE id = ?",
                                     (meta, arrays["num_categories"], found[0]))
                    self._db.executemany("UPDATE samples SET text = ? WHERE run = ? AND idx = ?",
                                         ((t, found[0], i) for i, t in enumerate(texts)))
                return self.run(found[0])
            cur = self._db.execute(
                "INSERT INTO runs (name, digest, shape, num_categories, bin_edges, vocab, imported, meta) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (os.path.basename(os.path.abspath(workdir)), digest, shape, arrays["num_categories"],
                 json.dumps([float(e) for e in arrays["bin_edges"]]),
                 None if arrays["vocab"] is None else json.dumps(arrays["vocab"]), time.time(), meta))
            run_id = cur.lastrowid
            self._db.executemany(
                "INSERT INTO samples (run, idx, bin, z, input, shape, text) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((run_id, i, int(b), float(z), np.ascontiguousarray(x, "<i4").tobytes(), shape,
                  None if texts is None else texts[i])
                 for i, (b, z, x) in enumerate(zip(arrays["bin"], arrays["z"], arrays["inputs"]))))
        return self.run(run_id)

    def find_run(self, workdir: str) -> Run | None:
        """The imported run holding exactly this directory's samples.npz, or None; imports nothing."""
        found = self._query("SELECT id FROM runs WHERE digest = ?", (_digest(load_samples(workdir)),))
        return self.run(found[0][0]) if found else None

    def run(self, run_id: int) -> Run:
        rows = self._query("SELECT id, name, digest, shape, num_categories, bin_edges, vocab, meta FROM runs "
                           "WHERE id = ?", (run_id,))
        if not rows:
            raise ValueError(f"unknown run id {run_id!r} in {self.path}")
        i, name, digest, shape, k, edges, vocab, meta = rows[0]
        return Run(i, name, digest, tuple(json.loads(shape)), k, tuple(json.loads(edges)),
                   None if vocab is None else json.loads(vocab), None if meta is None else json.loads(meta))

    def runs(self) -> list[Run]:
        return [self.run(i) for (i,) in self._query("SELECT id FROM runs ORDER BY id")]

    def samples(self, run_id: int, bin: int | None = None) -> list[Sample]:
        """Samples of a run (of one bin), in file order."""
        sql = "SELECT id, run, idx, bin, z, input, shape, text FROM samples WHERE run = ?"
        args = (run_id,) if bin is None else (run_id, bin)
        rows = self._query(sql + ("" if bin is None else " AND bin = ?") + " ORDER BY idx", args)
        return [_sample(row) for row in rows]

    def sample(self, sample_id: int) -> Sample:
        rows = self._query("SELECT id, run, idx, bin, z, input, shape, text FROM samples WHERE id = ?", (sample_id,))
        if not rows:
            raise ValueError(f"unknown sample id {sample_id!r}: no such sample in {self.path}")
        return _sample(rows[0])

    # Annotators and scores.

    def add_annotator(self, name: str, kind: str = "person") -> None:
        """Registers an annotator; a name keeps its kind for good, so a judge can never pass as a person."""
        if kind not in KINDS:
            raise ValueError(f"annotator kind must be one of {KINDS}, got {kind!r}")
        check_name(name)
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO annotators (name, kind) VALUES (?, ?)", (name, kind))
            (stored,) = self._db.execute("SELECT kind FROM annotators WHERE name = ?", (name,)).fetchone()
        if stored != kind:
            raise ValueError(f"annotator {name!r} is of kind {stored!r}, not {kind!r}; choose another name")

    def annotators(self) -> dict[str, str]:
        """Name -> kind of every annotator."""
        return dict(self._query("SELECT name, kind FROM annotators ORDER BY id"))

    # Invite tokens (omnijax.annotation.access makes and checks them; only their hashes are stored).

    def add_token(self, run_id: int, annotator: str, token_hash: str) -> int:
        """Binds a token (its hash) to a person of one run, revoking that person's earlier tokens for the
        run in the same transaction; returns how many it revoked."""
        self.run(run_id)
        with self._lock, self._db:
            found = self._db.execute("SELECT id, kind FROM annotators WHERE name = ?", (annotator,)).fetchone()
            if found is None or found[1] != "person":
                raise ValueError(f"only a person can be invited; {annotator!r} is "
                                 f"{'unknown' if found is None else 'of kind ' + repr(found[1])}")
            now = time.time()
            revoked = self._db.execute("UPDATE tokens SET revoked = ? WHERE run = ? AND annotator = ? AND "
                                       "revoked IS NULL", (now, run_id, found[0])).rowcount
            self._db.execute("INSERT INTO tokens (run, annotator, hash, created) VALUES (?, ?, ?, ?)",
                             (run_id, found[0], token_hash, now))
        return revoked

    def revoke_tokens(self, run_id: int, annotator: str) -> int:
        """Revokes every working token of this annotator for this run; returns how many. Scores stay."""
        with self._lock, self._db:
            return self._db.execute(
                "UPDATE tokens SET revoked = ? WHERE run = ? AND revoked IS NULL AND annotator = "
                "(SELECT id FROM annotators WHERE name = ?)", (time.time(), run_id, annotator)).rowcount

    def token(self, token_hash: str) -> tuple[int, str, bool] | None:
        """(run id, annotator, revoked) of the token with this hash, or None."""
        rows = self._query("SELECT t.run, a.name, t.revoked IS NOT NULL FROM tokens t JOIN annotators a "
                           "ON t.annotator = a.id WHERE t.hash = ?", (token_hash,))
        return (rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def invited(self, run_id: int | None = None) -> list[str]:
        """Annotators holding a working token (for one run, default any), in order of invitation."""
        sql = ("SELECT a.name FROM tokens t JOIN annotators a ON t.annotator = a.id WHERE t.revoked IS NULL"
               + ("" if run_id is None else " AND t.run = ?") + " GROUP BY a.id ORDER BY MIN(t.id)")
        return [name for (name,) in self._query(sql, () if run_id is None else (run_id,))]

    def counted_annotators(self, run_id: int) -> list[str] | None:
        """Whose scores count in r(z) when nobody is named: every annotator of the run but the judges (a
        judge is held against the people instead); None, meaning everyone, when only judges scored."""
        kinds = self.annotators()
        scored = {s.annotator for s in self.current_scores(run_id)}
        return sorted(n for n in scored if kinds[n] != "judge") or None

    def invitations(self, run_id: int) -> list[tuple[str, float, float | None]]:
        """(annotator, created, revoked or None) of every token of this run, oldest first (never the hash)."""
        return [(name, created, revoked) for name, created, revoked in self._query(
            "SELECT a.name, t.created, t.revoked FROM tokens t JOIN annotators a ON t.annotator = a.id "
            "WHERE t.run = ? ORDER BY t.id", (run_id,))]

    def has_tokens(self) -> bool:
        """Whether anyone was ever invited to any run of this store (revoked tokens count)."""
        return bool(self._query("SELECT 1 FROM tokens LIMIT 1"))

    def add_score(self, sample_id: int, annotator: str, score) -> float:
        """Stores one score, committed before returning."""
        return self.add_scores(annotator, [(sample_id, score)])[0]

    def add_scores(self, annotator: str, scores) -> list[float]:
        """Stores (sample id, score) pairs in one transaction: all of them or, on a bad one, none."""
        rows = [(sample_id, check_score(score)) for sample_id, score in scores]
        with self._lock, self._db:
            found = self._db.execute("SELECT id FROM annotators WHERE name = ?", (annotator,)).fetchone()
            if found is None:
                raise ValueError(f"unknown annotator {annotator!r}; add it with add_annotator first")
            for sample_id, score in rows:
                if isinstance(sample_id, bool) or not isinstance(sample_id, numbers.Integral) or self._db.execute(
                        "SELECT 1 FROM samples WHERE id = ?", (int(sample_id),)).fetchone() is None:
                    raise ValueError(f"unknown sample id {sample_id!r}: no such sample in {self.path}")
                self._db.execute("INSERT INTO scores (sample, annotator, score, time) VALUES (?, ?, ?, ?)",
                                 (int(sample_id), found[0], score, _unique_time(self._db, sample_id, found[0])))
        return [score for _, score in rows]

    def current_scores(self, run_id: int, annotator: str | None = None, bin: int | None = None) -> list[Score]:
        """The score that counts for each (sample, annotator): the latest one given."""
        sql = ("SELECT c.sample, a.name, a.kind, c.score, c.time FROM current_scores c "
               "JOIN samples s ON c.sample = s.id JOIN annotators a ON c.annotator = a.id WHERE s.run = ?")
        args = [run_id]
        if annotator is not None:
            sql += " AND a.name = ?"
            args.append(annotator)
        if bin is not None:
            sql += " AND s.bin = ?"
            args.append(bin)
        return [Score(*row) for row in self._query(sql + " ORDER BY s.idx, a.id", args)]

    def scores_for_bin(self, run_id: int, bin: int) -> list[Score]:
        return self.current_scores(run_id, bin=bin)

    def bin_scores(self, run_id: int, annotators: list[str] | None = None, sample_weights=None) -> BinScores:
        """The current scores (of `annotators`, default all) as per-bin (samples, annotators) matrices,
        with the samples' weights (`sample_weights` indexed by position in samples.npz, i.e.
        `load_samples(...)["weight"]`; equal weights when None)."""
        run = self.run(run_id)
        known = self.annotators()
        unknown = sorted(set(annotators or ()) - set(known))
        if unknown:
            raise ValueError(f"unknown annotators {unknown}; known: {sorted(known)}")
        scores = [s for s in self.current_scores(run_id) if annotators is None or s.annotator in annotators]
        scorers = {s.annotator for s in scores}
        names = [name for name in known if name in scorers]  # registration order
        column = {name: j for j, name in enumerate(names)}
        samples = self._query("SELECT id, idx, bin FROM samples WHERE run = ? ORDER BY idx", (run_id,))
        if sample_weights is not None:
            sample_weights = np.asarray(sample_weights, np.float64)
            if sample_weights.shape != (len(samples),):
                raise ValueError(f"sample_weights must hold one weight per sample of run {run.name} "
                                 f"({len(samples)}), got shape {sample_weights.shape}")
        row_of, indices = {}, [[] for _ in range(run.num_bins)]
        for sample_id, idx, b in samples:
            row_of[sample_id] = (b, len(indices[b]))
            indices[b].append(idx)
        matrices = [np.full((len(i), len(names)), np.nan) for i in indices]
        for s in scores:
            b, i = row_of[s.sample]
            matrices[b][i, column[s.annotator]] = s.score
        idx = [np.asarray(i, np.int64) for i in indices]
        weights = [np.ones(len(i)) if sample_weights is None else sample_weights[i] for i in idx]
        return BinScores(names, {n: known[n] for n in names}, matrices, weights, idx)

    def bin_precision_table(self, run_id: int, annotators: list[str] | None = None,
                            sample_weights=None, *, num_bootstrap: int | None = None,
                            seed=0) -> PrecisionTable:
        """r(z) per bin from the current scores (of `annotators`, default all), computed by
        `omnijax.evaluation.bin_precision` (the one definition of r: each scored sample counts once,
        its score the mean of its annotators', weighted by `sample_weights`, which are indexed by the
        sample's position in samples.npz: pass `load_samples(...)["weight"]`; equal when None).
        num_bootstrap: replicates of its interval over samples and annotators (ci_low, ci_high); None: none."""
        run = self.run(run_id)
        given = self.bin_scores(run_id, annotators, sample_weights)
        estimate = bin_precision(given.scores, weights_per_bin=given.weights, num_bootstrap=num_bootstrap,
                                 seed=seed)
        judge = np.array([given.kinds[n] == "judge" for n in given.annotators], bool)
        rows = []
        for b in range(run.num_bins):
            if estimate.n_scored[b] == 0:
                continue
            rows.append(BinPrecision(
                bin=b, lo=run.bin_edges[b], hi=run.bin_edges[b + 1], r=float(estimate.r[b]),
                stderr=float(estimate.stderr[b]), n_scored=int(estimate.n_scored[b]),
                n_samples=int(estimate.n_samples[b]), n_scores=int(estimate.n_scores[b]),
                n_judge_scores=int(np.sum(~np.isnan(given.scores[b][:, judge]))),
                ci_low=float(estimate.ci_low[b]), ci_high=float(estimate.ci_high[b])))
        sizes = estimate.n_samples
        return PrecisionTable(rows=rows, unannotated=[b for b in range(run.num_bins) if sizes[b] and
                                                      not estimate.n_scored[b]],
                              empty=[b for b in range(run.num_bins) if not sizes[b]], num_bins=run.num_bins,
                              estimate=estimate, scores=given)

    # CSV.

    def export_csv(self, path: str, run_id: int | None = None) -> int:
        """Writes every score ever given (of one run, default all) with its sample's run digest and index,
        annotator kind ("judge" marks a model's score) and whether a later score superseded it."""
        sql = ("SELECT r.digest, r.name, s.idx, s.bin, s.z, a.name, a.kind, c.score, c.time, "
               "c.id NOT IN (SELECT id FROM current_scores) "
               "FROM scores c JOIN samples s ON c.sample = s.id JOIN runs r ON s.run = r.id "
               "JOIN annotators a ON c.annotator = a.id")
        args = ()
        if run_id is not None:
            self.run(run_id)
            sql, args = sql + " WHERE r.id = ?", (run_id,)
        rows = self._query(sql + " ORDER BY c.time, c.id", args)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_FIELDS)
            for digest, name, idx, b, z, annotator, kind, score, t, superseded in rows:
                writer.writerow([digest, name, idx, b, repr(z), annotator, kind, repr(score), repr(t), int(superseded)])
        return len(rows)

    def import_csv(self, path: str) -> int:
        """Reads scores written by export_csv into this store (whose runs must be imported already); rows
        already present are skipped. One transaction: a bad row names its line and nothing is imported."""
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = sorted(set(CSV_FIELDS) - set(reader.fieldnames or ()))
            if missing:
                raise ValueError(f"{path}: missing columns {missing}; expected {CSV_FIELDS}")
            records = list(reader)
        return self.import_records(records, where=lambda i: f"{path} line {i + 2}")

    def import_records(self, records: list[dict], where=lambda i: f"record {i}") -> int:
        """Adds score records (the fields of CSV_FIELDS; `bin`, `z` and `superseded` are not read) in one
        transaction; records already present are skipped, so a repeated import adds nothing. A bad record
        is named by `where(position)` and nothing is imported. Every importer (CSV, Label Studio) ends here."""
        added = 0
        with self._lock, self._db:
            for i, rec in enumerate(records):
                try:
                    added += _import_row(self._db, rec)
                except KeyError as err:
                    raise ValueError(f"{where(i)}: missing field {err}; nothing was imported") from None
                except (ValueError, TypeError) as err:
                    raise ValueError(f"{where(i)}: {err}; nothing was imported") from None
        return added


def _sample(row) -> Sample:
    i, run, idx, b, z, blob, shape, text = row
    return Sample(i, run, idx, b, z, np.frombuffer(blob, "<i4").reshape(json.loads(shape)).astype(np.int32), text)


def _unique_time(db, sample_id, annotator_id) -> float:
    """Now, nudged past the latest score of this (sample, annotator) so that the newest always counts."""
    (latest,) = db.execute("SELECT MAX(time) FROM scores WHERE sample = ? AND annotator = ?",
                           (int(sample_id), annotator_id)).fetchone()
    now = time.time()
    return now if latest is None or now > latest else math.nextafter(latest, math.inf)


def _import_row(db, rec: dict) -> int:
    """Adds one CSV record; 1 if added, 0 if the store already had it."""
    try:
        score, t, idx = float(rec["score"]), float(rec["time"]), int(rec["index"])
    except ValueError:
        raise ValueError(f"score, time and index must be numbers, got {rec['score']!r}, {rec['time']!r}, "
                         f"{rec['index']!r}") from None
    score = check_score(score)
    if rec["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {rec['kind']!r}")
    found = db.execute("SELECT s.id FROM samples s JOIN runs r ON s.run = r.id WHERE r.digest = ? AND s.idx = ?",
                       (rec["run"], idx)).fetchone()
    if found is None:
        raise ValueError(f"unknown sample: run {rec['run'][:12]}... ({rec['run_name']}) index {idx} is not in "
                         "this store; import that run's samples.npz first")
    db.execute("INSERT OR IGNORE INTO annotators (name, kind) VALUES (?, ?)", (rec["annotator"], rec["kind"]))
    annotator_id, kind = db.execute("SELECT id, kind FROM annotators WHERE name = ?", (rec["annotator"],)).fetchone()
    if kind != rec["kind"]:
        raise ValueError(f"annotator {rec['annotator']!r} is of kind {kind!r} in this store, not {rec['kind']!r}")
    same = db.execute("SELECT score FROM scores WHERE sample = ? AND annotator = ? AND time = ?",
                      (found[0], annotator_id, t)).fetchone()
    if same is not None:
        if same[0] != score:
            raise ValueError(f"conflicts with the stored score {same[0]} of {rec['annotator']!r} at time {t!r}")
        return 0
    db.execute("INSERT INTO scores (sample, annotator, score, time) VALUES (?, ?, ?, ?)",
               (found[0], annotator_id, score, t))
    return 1
