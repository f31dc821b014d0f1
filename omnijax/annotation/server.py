"""The annotation web page and its JSON API, on 127.0.0.1 (stdlib http.server, no external assets).

Annotation is blind: the page and the API never carry z, bin edges or bin indices. Each annotator
sees the bins as "groups" in an order of their own, and the inputs of a group in an order of their
own, both shuffled by a seed made of the run digest and the annotator's name, so a reload or a
server restart shows the same order. Every score is POSTed as it is given and committed before
the reply; the page keeps scores it could not send in the browser and resends them.

What an input looks like on the page follows the run (`Run.kind`): "image" runs are drawn as
pictures, "tokens" runs as a row of tokens (vocab.json's strings, else the ids), and "text" runs
(a texts.json beside samples.npz, see `omnijax.text`) as their decoded text, with the frozen
positions every input shares (e.g. "[CLS] … [SEP]") named once above the grid.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from omnijax.annotation.store import Run, Store, check_name

DEFAULT_QUESTION = "Does the input show what the model claims (its target class)?"


class AnnotationApp:
    """What the API answers, independent of HTTP."""

    def __init__(self, store: Store, run: Run, question: str = DEFAULT_QUESTION):
        self.store, self.run, self.question = store, run, question
        by_bin: dict[int, list[int]] = {}
        for s in store.samples(run.id):
            by_bin.setdefault(s.bin, []).append(s.id)
        self._by_bin = by_bin
        self._ids = {i for ids in by_bin.values() for i in ids}
        self._num_samples = len(self._ids)

    def _groups(self, name: str) -> list[list[int]]:
        """This annotator's bins, each a list of sample ids, in this annotator's own stable random order."""
        rng = random.Random(hashlib.sha256(f"{self.run.digest}\n{name}".encode()).digest())
        bins = sorted(self._by_bin)
        rng.shuffle(bins)
        groups = []
        for b in bins:
            ids = list(self._by_bin[b])
            rng.shuffle(ids)
            groups.append(ids)
        return groups

    def _check_name(self, name) -> str:
        kind = self.store.annotators().get(check_name(name), "person")
        if kind != "person":
            raise ValueError(f"{name!r} is the name of an annotator of kind {kind!r}, not of a person; "
                             "choose another name")
        return name

    def meta(self) -> dict:
        meta = self.run.meta or {}
        return {"run": self.run.name, "digest": self.run.digest, "shape": list(self.run.shape),
                "num_categories": self.run.num_categories, "vocab": self.run.vocab, "num_groups": len(self._by_bin),
                "num_samples": self._num_samples, "question": self.question, "kind": self.run.kind,
                "frozen_text": meta.get("frozen_text", "")}

    def progress(self, name: str) -> dict:
        """Scored/total per group of this annotator, and scored/total per annotator."""
        name = self._check_name(name)
        mine = {s.sample for s in self.store.current_scores(self.run.id, annotator=name)}
        counts: dict[str, int] = {}
        for s in self.store.current_scores(self.run.id):
            counts[s.annotator] = counts.get(s.annotator, 0) + 1
        kinds = self.store.annotators()
        return {"groups": [{"total": len(ids), "scored": len(mine.intersection(ids))} for ids in self._groups(name)],
                "annotators": [{"name": n, "kind": kinds[n], "scored": c, "total": self._num_samples}
                               for n, c in sorted(counts.items())]}

    def group(self, name: str, g) -> dict:
        """The inputs of this annotator's group g, with this annotator's current scores."""
        groups = self._groups(self._check_name(name))
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < len(groups):
            raise ValueError(f"group must be an integer in [0, {len(groups)}), got {g!r}")
        mine = {s.sample: s.score for s in self.store.current_scores(self.run.id, annotator=name)}
        samples = []
        for sample_id in groups[g]:
            s = self.store.sample(sample_id)
            sample = {"id": s.id, "shape": list(s.input.shape), "input": s.input.ravel().tolist(),
                      "score": mine.get(s.id)}
            if s.text is not None:
                sample["text"] = s.text
            samples.append(sample)
        return {"group": g, "samples": samples}

    def score(self, name: str, sample_id, score) -> dict:
        name = self._check_name(name)
        if isinstance(sample_id, bool) or not isinstance(sample_id, int) or sample_id not in self._ids:
            raise ValueError(f"unknown sample id {sample_id!r}: not a sample of run {self.run.name}")
        self.store.add_annotator(name, "person")
        self.store.add_score(sample_id, name, score)
        return self.progress(name)


def make_server(app: AnnotationApp, port: int) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:port (0 picks a free port) serving the page and the API of `app`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # keep the console for errors
            pass

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, call) -> None:
            try:
                self._reply(HTTPStatus.OK, json.dumps(call()).encode(), "application/json")
            except ValueError as err:
                self._reply(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(err)}).encode(), "application/json")

        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path == "/":
                self._reply(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif url.path == "/api/meta":
                self._json(app.meta)
            elif url.path == "/api/progress":
                self._json(lambda: app.progress(query.get("annotator")))
            elif url.path == "/api/group":
                self._json(lambda: app.group(query.get("annotator"), _int(query.get("group"))))
            else:
                self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}', "application/json")

        def do_POST(self):
            if urlparse(self.path).path != "/api/score":
                return self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}', "application/json")

            def call():
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= 65536:
                    raise ValueError("a score is a JSON object {annotator, sample, score} of at most 64 KiB")
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError as err:
                    raise ValueError(f"the body is not JSON: {err}") from None
                if not isinstance(body, dict):
                    raise ValueError("a score is a JSON object {annotator, sample, score}")
                return app.score(body.get("annotator"), body.get("sample"), body.get("score"))

            self._json(call)

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def _int(text):
    """A query parameter as an int when it is one, else unchanged (and rejected by the app)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return text


def serve(store: Store, run: Run, port: int, question: str = DEFAULT_QUESTION) -> None:
    """Serves until interrupted."""
    server = make_server(AnnotationApp(store, run, question), port)
    print(f"annotation page for run {run.name} ({len(store.samples(run.id))} samples): "
          f"http://127.0.0.1:{server.server_address[1]}/  (scores in {store.path})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OmniInput annotation</title>
<style>
body { font: 15px system-ui, sans-serif; margin: 0; color: #222; }
[hidden] { display: none !important; }
header { display: flex; gap: 1em; align-items: center; padding: .6em 1em; background: #eef; }
header h1 { font-size: 1.1em; margin: 0; }
main { display: flex; gap: 1.5em; padding: 1em; align-items: flex-start; }
#side { min-width: 14em; }
#groups button { display: block; width: 100%; text-align: left; margin: 2px 0; }
#groups button.current { font-weight: bold; background: #ccf; }
#groups button.done { color: #070; }
#grid { display: flex; flex-wrap: wrap; gap: 10px; }
.cell { border: 3px solid #ddd; padding: 6px; width: 130px; }
.cell.selected { border-color: #36f; }
.cell.unsaved { background: #fdd; }
.cell canvas { width: 112px; image-rendering: pixelated; display: block; margin: auto; background: #888; }
.cell .tokens span { border: 1px solid #bbb; padding: 0 2px; margin: 1px; display: inline-block; }
.cell.text { width: 22em; }
.cell .sentence { font-size: 1.05em; line-height: 1.35; white-space: pre-wrap; overflow-wrap: anywhere;
                  margin: 0 0 .4em 0; min-height: 2.7em; }
#frozen { color: #555; }
.cell input[type=range] { width: 100%; }
.mark { text-align: center; font-weight: bold; }
#status { margin-left: auto; }
#status.bad { color: #b00; font-weight: bold; }
#login { padding: 2em; }
table { border-collapse: collapse; } td, th { padding: 1px 6px; text-align: left; }
.help { color: #555; }
</style></head>
<body>
<header><h1>OmniInput annotation</h1><span id="who"></span>
<button id="switch" hidden>change annotator</button><span id="status"></span></header>
<form id="login" hidden><p id="question"></p>
<label>Your name: <input id="name" autocomplete="off" maxlength="64"></label> <button>Start</button>
<p class="help">Several people may annotate the same inputs; each scores under their own name.</p></form>
<main id="work" hidden>
<div id="side"><h2 id="title"></h2><div id="groups"></div>
<h3>Annotators</h3><table id="annotators"></table>
<p>Unsent scores: <span id="pending">0</span></p></div>
<div><p id="ask"></p><p id="frozen" hidden></p>
<p class="help">Keys: <b>1</b> correct, <b>0</b> wrong (then the next input), slider for a partial score,
&larr; &rarr; move, <b>]</b> next group, <b>[</b> previous group.</p>
<div id="grid"></div></div>
</main>
<script>
"use strict";
const S = {meta: null, name: localStorage.getItem("omnijax-annotator"), group: 0, want: 0, samples: [], sel: 0,
           progress: null, flushing: false};
const $ = (id) => document.getElementById(id);
// Scores not yet acknowledged by the server, kept per run (a run's digest names it) across reloads.
const pendingKey = () => "omnijax-pending:" + S.meta.digest;
const pendingList = () => JSON.parse(localStorage.getItem(pendingKey()) || "[]");
const savePending = (list) => localStorage.setItem(pendingKey(), JSON.stringify(list));

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} :
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) { const e = new Error(data.error || r.statusText); e.status = r.status; throw e; }
  return data;
}

function status(text, bad) { $("status").textContent = text; $("status").className = bad ? "bad" : ""; }

function draw(sample) {
  if (typeof sample.text === "string") {  // a text run: the decoded text, never the ids
    const div = document.createElement("div"); div.className = "tokens";
    const p = document.createElement("p"); p.className = "sentence";
    p.textContent = sample.text === "" ? "(empty)" : sample.text;
    div.appendChild(p);
    return div;
  }
  const shape = sample.shape, k = Math.max(1, S.meta.num_categories - 1), x = sample.input;
  const image = shape.length === 2 || (shape.length === 3 && (shape[2] === 3 || shape[2] === 1));
  if (!image) {
    const div = document.createElement("div"); div.className = "tokens";
    for (const t of x) {
      const span = document.createElement("span");
      span.textContent = S.meta.vocab ? (S.meta.vocab[t] ?? "<" + t + ">") : String(t);
      div.appendChild(span);
    }
    return div;
  }
  const [h, w] = shape, c = shape.length === 3 ? shape[2] : 1;
  const canvas = document.createElement("canvas"); canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let ch = 0; ch < 3; ch++) img.data[4 * p + ch] = Math.round(255 * x[p * c + (c === 3 ? ch : 0)] / k);
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function currentScore(sample) {
  const mine = pendingList().filter((p) => p.annotator === S.name && p.sample === sample.id);
  return mine.length ? mine[mine.length - 1].score : sample.score;
}

function renderCell(i) {
  const s = S.samples[i], cell = $("grid").children[i], score = currentScore(s);
  cell.classList.toggle("selected", i === S.sel);
  cell.classList.toggle("unsaved", pendingList().some((p) => p.annotator === S.name && p.sample === s.id));
  cell.querySelector(".mark").textContent = score === null ? "not scored" : "score " + score.toFixed(2);
  cell.dataset.score = score === null ? "" : String(score);
  if (score !== null) cell.querySelector("input").value = score;
}

function renderGrid() {
  const grid = $("grid"); grid.innerHTML = "";
  S.samples.forEach((s, i) => {
    const cell = document.createElement("div"); cell.className = "cell"; cell.dataset.sample = s.id;
    const view = draw(s); if (view.className === "tokens") cell.classList.add("text");
    const mark = document.createElement("div"); mark.className = "mark";
    const slider = document.createElement("input");
    Object.assign(slider, {type: "range", min: 0, max: 1, step: 0.05, value: 0.5});
    slider.addEventListener("change", () => give(i, Number(slider.value), false));
    cell.append(view, mark, slider);
    cell.addEventListener("click", (e) => { if (e.target !== slider) select(i); });
    grid.appendChild(cell);
  });
  S.samples.forEach((_, i) => renderCell(i));
}

function renderProgress() {
  const p = S.progress; if (!p) return;
  const groups = $("groups"); groups.innerHTML = "";
  p.groups.forEach((g, i) => {
    const b = document.createElement("button");
    b.textContent = "Group " + (i + 1) + " \u00b7 " + g.scored + "/" + g.total;
    b.dataset.group = i; b.className = (i === S.group ? "current" : "") + (g.scored === g.total ? " done" : "");
    b.addEventListener("click", () => openGroup(i));
    groups.appendChild(b);
  });
  const t = $("annotators"); t.innerHTML = "<tr><th>name</th><th>kind</th><th>scored</th></tr>";
  for (const a of p.annotators) {
    const row = t.insertRow(); row.dataset.annotator = a.name;
    for (const v of [a.name, a.kind, a.scored + "/" + a.total]) row.insertCell().textContent = v;
  }
  $("title").textContent = "Group " + (S.group + 1) + " of " + p.groups.length;
}

function select(i) {
  const old = S.sel; S.sel = Math.max(0, Math.min(S.samples.length - 1, i));
  renderCell(old); renderCell(S.sel);
  $("grid").children[S.sel].scrollIntoView({block: "nearest"});
}

function give(i, score, advance) {
  const list = pendingList();
  list.push({annotator: S.name, sample: S.samples[i].id, score: score});
  savePending(list); renderCell(i);
  if (advance && i + 1 < S.samples.length) select(i + 1);
  flush();
}

async function flush() {
  if (S.flushing) return;
  S.flushing = true;
  let failed = false;
  try {
    for (let list = pendingList(); list.length; list = pendingList()) {
      $("pending").textContent = list.length;
      let progress = null;
      try {
        progress = await api("/api/score", list[0]);
      } catch (e) {
        if (e.status !== 400) {
          status("server unreachable: " + list.length + " score(s) kept in this browser, retrying", true);
          setTimeout(flush, 1500);
          return;
        }
        status("not saved: " + e.message, true); failed = true;
      }
      savePending(pendingList().slice(1));
      if (progress && list[0].annotator === S.name) { S.progress = progress; renderProgress(); }
      const i = S.samples.findIndex((s) => s.id === list[0].sample);
      if (i >= 0 && list[0].annotator === S.name) { if (progress) S.samples[i].score = list[0].score; renderCell(i); }
      if (progress && !failed) status("saved");
    }
    $("pending").textContent = "0";
  } finally { S.flushing = false; }
}

async function openGroup(g) {
  if (!S.progress || g < 0 || g >= S.progress.groups.length) return;
  S.want = g;
  let data;
  try { data = await api("/api/group?annotator=" + encodeURIComponent(S.name) + "&group=" + g); }
  catch (e) { S.want = S.group; status("cannot load group " + (g + 1) + ": " + e.message, true); return; }
  if (S.want !== g) return;  // a later key press asked for another group
  S.group = g; S.samples = data.samples; S.sel = 0;
  localStorage.setItem("omnijax-group:" + S.meta.digest + ":" + S.name, String(g));
  renderGrid(); renderProgress();
}

async function start() {
  $("login").hidden = true; $("work").hidden = false; $("switch").hidden = false;
  $("who").textContent = "annotator: " + S.name;
  document.activeElement.blur();  // keys now go to the grid, not the name field
  try {
    S.progress = await api("/api/progress?annotator=" + encodeURIComponent(S.name));
  } catch (e) { status(e.message, true); return logout(); }
  const saved = Number(localStorage.getItem("omnijax-group:" + S.meta.digest + ":" + S.name) || 0);
  await openGroup(saved < S.progress.groups.length ? saved : 0);
  status("ready"); flush();
}

function logout() {
  S.name = null; localStorage.removeItem("omnijax-annotator");
  // The next annotator must never see, or score with a key, the previous one's grid.
  S.progress = null; S.samples = []; S.sel = 0; S.want = 0; S.group = 0;
  $("grid").innerHTML = ""; $("groups").innerHTML = ""; $("title").textContent = "";
  $("work").hidden = true; $("switch").hidden = true; $("login").hidden = false; $("who").textContent = "";
  $("name").value = ""; $("name").focus();
}

document.addEventListener("keydown", (e) => {
  if (!S.name || !S.samples.length || e.target.id === "name" || e.ctrlKey || e.metaKey || e.altKey) return;
  const onSlider = e.target.type === "range";
  if (e.key === "1" || e.key === "0") { e.preventDefault(); give(S.sel, Number(e.key), true); }
  else if (e.key === "ArrowRight" && !onSlider) select(S.sel + 1);
  else if (e.key === "ArrowLeft" && !onSlider) select(S.sel - 1);
  else if (e.key === "]") openGroup(S.want + 1);
  else if (e.key === "[") openGroup(S.want - 1);
});
$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("name").value.trim(); if (!name) return;
  S.name = name; localStorage.setItem("omnijax-annotator", name); start();
});
$("switch").addEventListener("click", logout);

(async () => {
  try { S.meta = await api("/api/meta"); }
  catch (e) { status("cannot reach the annotation server: " + e.message, true); return; }
  $("question").textContent = S.meta.question; $("ask").textContent = S.meta.question;
  if (S.meta.kind === "text" && S.meta.frozen_text) {
    $("frozen").textContent = "Every text is shown without the tokens all inputs share: " + S.meta.frozen_text;
    $("frozen").hidden = false;
  }
  if (S.name) start(); else logout();
})();
</script></body></html>
"""
