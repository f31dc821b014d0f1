"""The annotation web page and its JSON API (stdlib http.server, no external assets).

Annotation is blind: the page and the API never carry z, bin edges or bin indices. Each annotator
sees the bins as "groups" in an order of their own, and the inputs of a group in an order of their
own, both shuffled by a seed made of the run digest and the annotator's name, so a reload or a
server restart shows the same order. Every score is POSTed as it is given and committed before
the reply; the page keeps scores it could not send in the browser and resends them.

Who scores: a team's annotators open the invite link `python -m omnijax.annotation invite` printed
for them; the page takes the token from it once and sends it in an `Authorization` header, and the
annotator of every call is the token's (omnijax.annotation.access). Tokens are required on every
call as soon as anyone has been invited to a run of the store, and always when the server listens
beyond loopback (`make_server` refuses a non-loopback host otherwise). A store nobody was invited
to, served on loopback, keeps a name login for one person at their own machine. Each annotator
sees only their own progress.

No other site can drive the page: every request must name a served address in `Host` (DNS
rebinding), a request carrying `Origin` must come from the page's origin, the API takes only
`application/json` bodies, and every reply forbids sniffing, framing and referrers, with a
Content-Security-Policy that lets only this page's own inline script and style run.

What an input looks like on the page follows the run (`Run.kind`): "image" runs are drawn as
pictures, "tokens" runs as a row of tokens (vocab.json's strings, else the ids), and "text" runs
(a texts.json beside samples.npz, see `omnijax.text`) as their decoded text, with the frozen
positions every input shares (e.g. "[CLS] … [SEP]") named once above the grid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from omnijax.annotation.access import (Refused, authenticate, check_fetch_site, check_host, check_origin,
                                       format_origin, is_loopback, served_origins)
from omnijax.annotation.store import Run, Store, check_name

DEFAULT_QUESTION = "Does the input show what the model claims (its target class)?"
MAX_BODY = 65536


class AnnotationApp:
    """What the API answers, independent of HTTP. require_tokens: every call must carry a token even
    before anyone is invited (a server listening beyond loopback)."""

    def __init__(self, store: Store, run: Run, question: str = DEFAULT_QUESTION, require_tokens: bool = False):
        self.store, self.run, self.question, self.require_tokens = store, run, question, require_tokens
        by_bin: dict[int, list[int]] = {}
        for s in store.samples(run.id):
            by_bin.setdefault(s.bin, []).append(s.id)
        self._by_bin = by_bin
        self._ids = {i for ids in by_bin.values() for i in ids}
        self._num_samples = len(self._ids)

    def tokens_required(self) -> bool:
        """Looked up on every call, so an invite given while the server runs ends the name login at once."""
        return self.require_tokens or self.store.has_tokens()

    def caller(self, authorization: str | None, name=None):
        """Who makes a call: the annotator of the token in `authorization` (Refused without a valid one)
        when tokens are required, else the `name` the page's login gave."""
        if self.tokens_required():
            return authenticate(self.store, self.run, authorization)
        if authorization:
            raise Refused(HTTPStatus.UNAUTHORIZED, "nobody has been invited to this store, so it takes no "
                          "token: reload the page without one and give your name")
        return name

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

    def meta(self, name: str | None = None) -> dict:
        """What the page needs to draw a run; `name`: the caller, given back to a token's holder."""
        meta = self.run.meta or {}
        out = {"run": self.run.name, "digest": self.run.digest, "shape": list(self.run.shape),
               "num_categories": self.run.num_categories, "vocab": self.run.vocab, "num_groups": len(self._by_bin),
               "num_samples": self._num_samples, "question": self.question, "kind": self.run.kind,
               "frozen_text": meta.get("frozen_text", ""), "auth": "token" if self.tokens_required() else "name"}
        if name is not None and out["auth"] == "token":
            out["annotator"] = name
        return out

    def progress(self, name: str) -> dict:
        """This annotator's scored/total per group and in all; nothing about other annotators."""
        name = self._check_name(name)
        mine = {s.sample for s in self.store.current_scores(self.run.id, annotator=name)}
        return {"annotator": name, "scored": len(mine & self._ids), "total": self._num_samples,
                "groups": [{"total": len(ids), "scored": len(mine.intersection(ids))} for ids in self._groups(name)]}

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


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def security_headers() -> dict[str, str]:
    """Sent with every reply: only the page's own inline script and style may run, it may talk only to
    its own origin, no site may frame it, nothing is sniffed, and no URL leaves it as a referrer."""
    csp = (f"default-src 'none'; script-src {_csp_hash(SCRIPT)}; style-src {_csp_hash(STYLE)}; "
           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store"}


def make_server(app: AnnotationApp, port: int, host: str = "127.0.0.1",
                url_base: str | None = None) -> ThreadingHTTPServer:
    """An HTTP server on host:port (0 picks a free port) serving the page and the API of `app`, answering
    only requests for its own addresses (`access.served_origins`, with `url_base` when annotators reach
    it under another name). A host beyond loopback needs an app whose every call requires a token."""
    if not is_loopback(host) and not app.require_tokens:
        raise ValueError(f"host={host!r} is not a loopback address: serving beyond this machine needs "
                         "AnnotationApp(require_tokens=True), so that every API call carries an invite token")
    headers = security_headers()

    class Handler(BaseHTTPRequestHandler):
        server_version, sys_version = "omnijax-annotation", ""

        def log_message(self, format, *args):  # keep the console for errors
            pass

        def end_headers(self):  # every reply, errors of http.server included
            for key, value in headers.items():
                self.send_header(key, value)
            super().end_headers()

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, route) -> None:
            """Checks Host and Origin, then answers route(path, query) as JSON (or the page)."""
            try:
                check_host(self.server.origins, self.headers.get("Host"))
                check_origin(self.server.origins, self.headers.get("Origin"))
                url = urlparse(self.path)
                if url.path.startswith("/api/"):
                    check_fetch_site(self.headers.get("Sec-Fetch-Site"))
                result = route(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
                if result is None:
                    raise Refused(HTTPStatus.NOT_FOUND, f"not found: {url.path}")
                if isinstance(result, bytes):
                    return self._reply(HTTPStatus.OK, result, "text/html; charset=utf-8")
                self._reply(HTTPStatus.OK, json.dumps(result).encode(), "application/json")
            except Refused as err:
                self._reply(err.status, json.dumps({"error": str(err)}).encode(), "application/json")
            except ValueError as err:
                self._reply(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(err)}).encode(), "application/json")

        def do_GET(self):
            def route(path, query):
                auth = self.headers.get("Authorization")
                if path == "/":
                    return PAGE.encode()
                if path == "/api/meta":
                    return app.meta(app.caller(auth))
                if path == "/api/progress":
                    return app.progress(app.caller(auth, query.get("annotator")))
                if path == "/api/group":
                    return app.group(app.caller(auth, query.get("annotator")), _int(query.get("group")))
                return None

            self._handle(route)

        def do_POST(self):
            def route(path, query):
                if path != "/api/score":
                    return None
                if self.headers.get_content_type() != "application/json":
                    raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "a score is sent as Content-Type: "
                                  f"application/json, got {self.headers.get('Content-Type')!r}")
                who = app.caller(self.headers.get("Authorization"))  # None: a name login, named in the body
                body = self._body()
                return app.score(body.get("annotator") if who is None else who, body.get("sample"), body.get("score"))

            self._handle(route)

        def _body(self) -> dict:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"a score is a JSON object {{sample, score}} of at most {MAX_BODY // 1024} KiB")
            try:
                body = json.loads(self.rfile.read(length))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"the body is not JSON: {err}") from None
            if not isinstance(body, dict):
                raise ValueError("a score is a JSON object {sample, score}")
            return body

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, port), Handler)
    server.origins = served_origins(host, server.server_address[1], url_base)
    return server


def _int(text):
    """A query parameter as an int when it is one, else unchanged (and rejected by the app)."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return text


def serve(store: Store, run: Run, port: int, question: str = DEFAULT_QUESTION, host: str = "127.0.0.1",
          url_base: str | None = None) -> None:
    """Serves until interrupted; tokens are required when `host` is not loopback."""
    app = AnnotationApp(store, run, question, require_tokens=not is_loopback(host))
    server = make_server(app, port, host, url_base)
    where = ", ".join(sorted(format_origin(o) for o in server.origins))
    if app.tokens_required():
        invited = store.invited(run.id)
        who = (f"{len(invited)} invited ({', '.join(invited)}); each opens the link `invite` printed for them"
               if invited else "nobody invited yet: python -m omnijax.annotation invite --run=DIR --annotator=NAME")
    else:
        who = "name login for one person on this machine (invite annotators to require tokens)"
    print(f"annotation page for run {run.name} ({len(store.samples(run.id))} samples) on {host}:"
          f"{server.server_address[1]}, answering for {where}; {who}; scores in {store.path}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


STYLE = r"""
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
#login, #locked { padding: 2em; }
.help { color: #555; }
"""

BODY = r"""
<header><h1>OmniInput annotation</h1><span id="who"></span>
<button id="switch" hidden>change annotator</button><span id="status"></span></header>
<form id="login" hidden><p id="question"></p>
<label>Your name: <input id="name" autocomplete="off" maxlength="64"></label> <button>Start</button>
<p class="help">Several people may annotate the same inputs; each scores under their own name.</p></form>
<div id="locked" hidden><p id="why"></p>
<p class="help">Each annotator has a link of their own, made with
<code>python -m omnijax.annotation invite --run=DIR --annotator=NAME</code>; open yours to continue.</p></div>
<main id="work" hidden>
<div id="side"><h2 id="title"></h2><div id="groups"></div>
<p>You have scored <span id="mine"></span>.</p>
<p>Unsent scores: <span id="pending">0</span></p></div>
<div><p id="ask"></p><p id="frozen" hidden></p>
<p class="help">Keys: <b>1</b> correct, <b>0</b> wrong (then the next input), slider for a partial score,
&larr; &rarr; move, <b>]</b> next group, <b>[</b> previous group.</p>
<div id="grid"></div></div>
</main>
"""

SCRIPT = r"""
"use strict";
const $ = (id) => document.getElementById(id);
// An invite link carries its annotator's token (#token=... or ?token=...): it is kept in this tab's
// sessionStorage, dropped from the address bar, and sent in a header with every call, never in a URL.
function takeToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ||
                new URLSearchParams(location.search).get("token");
  if (token) {
    sessionStorage.setItem("omnijax-token", token);
    history.replaceState(null, "", location.pathname);
  }
  return token;
}
takeToken();
window.addEventListener("hashchange", () => { if (takeToken()) location.reload(); });  // another link, same tab

const S = {meta: null, token: sessionStorage.getItem("omnijax-token"), name: null, group: 0, want: 0, samples: [],
           sel: 0, progress: null, flushing: false};
const byName = () => S.meta && S.meta.auth === "name";   // a name login (nobody invited, loopback only)
// Scores not yet acknowledged by the server, kept per run (a run's digest names it) across reloads, each
// with the annotator who gave it: only that annotator's page sends it.
const pendingKey = () => "omnijax-pending:" + S.meta.digest;
const pendingList = () => JSON.parse(localStorage.getItem(pendingKey()) || "[]");
const savePending = (list) => localStorage.setItem(pendingKey(), JSON.stringify(list));
const whoGave = (p) => p.who ?? p.annotator;
const pendingOf = (name) => pendingList().filter((p) => whoGave(p) === name);
const asker = () => byName() ? "annotator=" + encodeURIComponent(S.name) + "&" : "";

async function api(path, body) {
  const headers = {};
  if (S.token) headers.Authorization = "Bearer " + S.token;
  const init = {headers: headers, cache: "no-store"};
  if (body !== undefined) {
    Object.assign(init, {method: "POST", body: JSON.stringify(body)});
    headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON: keep the status */ }
  if (!r.ok) { const e = new Error(data.error || r.statusText); e.status = r.status; throw e; }
  return data;
}

const refused = (e) => e.status === 401 || e.status === 403;

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
  const mine = pendingOf(S.name).filter((p) => p.sample === sample.id);
  return mine.length ? mine[mine.length - 1].score : sample.score;
}

function renderCell(i) {
  const s = S.samples[i], cell = $("grid").children[i], score = currentScore(s);
  cell.classList.toggle("selected", i === S.sel);
  cell.classList.toggle("unsaved", pendingOf(S.name).some((p) => p.sample === s.id));
  cell.querySelector(".mark").textContent = score === null ? "not scored" : "score " + score.toFixed(2);
  cell.dataset.score = score === null ? "" : String(score);
  if (score !== null) cell.querySelector("input").value = score;
}

function renderGrid() {
  const grid = $("grid"); grid.textContent = "";
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
  const groups = $("groups"); groups.textContent = "";
  p.groups.forEach((g, i) => {
    const b = document.createElement("button");
    b.textContent = "Group " + (i + 1) + " \u00b7 " + g.scored + "/" + g.total;
    b.dataset.group = i; b.className = (i === S.group ? "current" : "") + (g.scored === g.total ? " done" : "");
    b.addEventListener("click", () => openGroup(i));
    groups.appendChild(b);
  });
  $("mine").textContent = p.scored + "/" + p.total;
  $("title").textContent = "Group " + (S.group + 1) + " of " + p.groups.length;
}

function select(i) {
  const old = S.sel; S.sel = Math.max(0, Math.min(S.samples.length - 1, i));
  renderCell(old); renderCell(S.sel);
  $("grid").children[S.sel].scrollIntoView({block: "nearest"});
}

function give(i, score, advance) {
  const list = pendingList();
  list.push({who: S.name, sample: S.samples[i].id, score: score});
  savePending(list); renderCell(i);
  if (advance && i + 1 < S.samples.length) select(i + 1);
  flush();
}

function dropFirstOf(name) {
  const list = pendingList(), i = list.findIndex((p) => whoGave(p) === name);
  if (i >= 0) { list.splice(i, 1); savePending(list); }
}

async function flush() {
  if (S.flushing || !S.name) return;
  S.flushing = true;
  const name = S.name;
  let failed = false;
  try {
    for (let mine = pendingOf(name); mine.length && S.name === name; mine = pendingOf(name)) {
      const p = mine[0];
      $("pending").textContent = mine.length;
      let progress = null;
      try {
        progress = await api("/api/score", byName() ? {annotator: name, sample: p.sample, score: p.score}
                                                    : {sample: p.sample, score: p.score});
      } catch (e) {
        if (refused(e)) { lock(e.message); return; }  // kept until this annotator is back with a valid link
        if (e.status !== 400) {
          status("server unreachable: " + mine.length + " score(s) kept in this browser, retrying", true);
          setTimeout(flush, 1500);
          return;
        }
        status("not saved: " + e.message, true); failed = true;
      }
      dropFirstOf(name);
      if (S.name !== name) return;
      if (progress) { S.progress = progress; renderProgress(); }
      const i = S.samples.findIndex((s) => s.id === p.sample);
      if (i >= 0) { if (progress) S.samples[i].score = p.score; renderCell(i); }
      if (progress && !failed) status("saved");
    }
    $("pending").textContent = "0";
  } finally { S.flushing = false; }
}

async function openGroup(g) {
  if (!S.progress || g < 0 || g >= S.progress.groups.length) return;
  S.want = g;
  let data;
  try { data = await api("/api/group?" + asker() + "group=" + g); }
  catch (e) {
    if (refused(e)) return lock(e.message);
    S.want = S.group; status("cannot load group " + (g + 1) + ": " + e.message, true); return;
  }
  if (S.want !== g) return;  // a later key press asked for another group
  S.group = g; S.samples = data.samples; S.sel = 0;
  localStorage.setItem("omnijax-group:" + S.meta.digest + ":" + S.name, String(g));
  renderGrid(); renderProgress();
}

async function start() {
  $("login").hidden = true; $("locked").hidden = true; $("work").hidden = false; $("switch").hidden = false;
  $("switch").textContent = byName() ? "change annotator" : "sign out";
  $("who").textContent = "annotator: " + S.name;
  document.activeElement.blur();  // keys now go to the grid, not the name field
  try {
    S.progress = await api("/api/progress?" + asker());
  } catch (e) { status(e.message, true); return byName() && !refused(e) ? logout() : lock(e.message); }
  const saved = Number(localStorage.getItem("omnijax-group:" + S.meta.digest + ":" + S.name) || 0);
  await openGroup(saved < S.progress.groups.length ? saved : 0);
  status("ready"); flush();
}

function clear() {
  // The next annotator must never see, or score with a key, the previous one's grid.
  S.name = null; S.progress = null; S.samples = []; S.sel = 0; S.want = 0; S.group = 0;
  $("grid").textContent = ""; $("groups").textContent = ""; $("title").textContent = ""; $("mine").textContent = "";
  $("work").hidden = true; $("switch").hidden = true; $("who").textContent = "";
}

function logout() {
  clear(); localStorage.removeItem("omnijax-annotator");
  $("login").hidden = false; $("name").value = ""; $("name").focus();
}

function lock(why) {  // no valid token: nothing to show until the annotator opens their own link
  clear(); sessionStorage.removeItem("omnijax-token"); S.token = null;
  $("why").textContent = why; $("locked").hidden = false;
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
$("switch").addEventListener("click", () => byName() ? logout() : lock("Signed out."));

(async () => {
  try { S.meta = await api("/api/meta"); }
  catch (e) {
    if (refused(e)) return lock(e.message);
    status("cannot reach the annotation server: " + e.message, true); return;
  }
  $("question").textContent = S.meta.question; $("ask").textContent = S.meta.question;
  if (S.meta.kind === "text" && S.meta.frozen_text) {
    $("frozen").textContent = "Every text is shown without the tokens all inputs share: " + S.meta.frozen_text;
    $("frozen").hidden = false;
  }
  if (!byName()) { S.name = S.meta.annotator; return start(); }
  S.name = localStorage.getItem("omnijax-annotator");
  if (S.name) start(); else logout();
})();
"""

PAGE = ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>OmniInput annotation</title>\n'
        f"<style>{STYLE}</style></head>\n<body>{BODY}<script>{SCRIPT}</script></body></html>\n")
