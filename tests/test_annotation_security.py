"""The annotation API for a team: invite tokens (the annotator of a score is the token's), and a page no
other site can drive. Every refused request is checked to have stored nothing."""

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading

import pytest

from omnijax.annotation import Store
from omnijax.annotation.access import Refused, authenticate, invite, revoke, token_hash
from omnijax.annotation.server import AnnotationApp, make_server
from tests.test_annotation_store import ROOT, make_run

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


@contextlib.contextmanager
def serving(store, run, **kwargs):
    server = make_server(AnnotationApp(store, run, **kwargs), 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def call(port, method, path, body=None, token=None, headers=None):
    """(status, headers, JSON or text) of one request; a dict body is sent as JSON."""
    sent = {"Host": f"127.0.0.1:{port}"}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if isinstance(body, dict):
        body = json.dumps(body)
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in sent.items():
            if value is not None:
                conn.putheader(key, value)
        data = None if body is None else body.encode()
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        reply = conn.getresponse()
        text = reply.read().decode()
        missing = [h for h in SECURITY_HEADERS if not reply.getheader(h)]
        assert not missing, f"{method} {path} -> {reply.status} lacks {missing}"
        assert reply.getheader("X-Content-Type-Options") == "nosniff"
        assert reply.getheader("Referrer-Policy") == "no-referrer"
        is_json = (reply.getheader("Content-Type") or "").startswith("application/json")
        return reply.status, reply, json.loads(text) if is_json else text
    finally:
        conn.close()


def num_scores(store) -> int:
    with contextlib.closing(sqlite3.connect(store.path)) as raw:
        return raw.execute("SELECT COUNT(*) FROM scores").fetchone()[0]


@pytest.fixture
def team(tmp_path):
    """A store with run `a` (alice and dave invited, carol invited then revoked) and run `b` (bob invited)."""
    store = Store(str(tmp_path / "a.sqlite"))
    run = store.import_run(make_run(tmp_path / "a"))
    other = store.import_run(make_run(tmp_path / "b", on=[1, 2], bins=[0, 1]))
    tokens = {name: invite(store, run, name) for name in ("alice", "dave", "carol")}
    revoke(store, run, "carol")
    tokens["bob"] = invite(store, other, "bob")
    yield store, run, tokens
    store.close()


def test_requests_another_site_could_make_are_refused_and_store_nothing(team):
    store, run, tokens = team
    sample = store.samples(run.id)[0].id
    score = {"sample": sample, "score": 1}
    alice = tokens["alice"]
    with serving(store, run) as port:
        cases = {  # name: (status, method, path, body, token, headers)
            "cross-origin text/plain POST (a form)": (
                403, "POST", "/api/score", json.dumps(score), alice,
                {"Content-Type": "text/plain", "Origin": "http://evil.example"}),
            "text/plain POST, same origin": (
                415, "POST", "/api/score", json.dumps(score), alice, {"Content-Type": "text/plain"}),
            "form-encoded POST": (
                415, "POST", "/api/score", "sample=1&score=1", alice,
                {"Content-Type": "application/x-www-form-urlencoded"}),
            "POST without a Content-Type": (415, "POST", "/api/score", json.dumps(score), alice, {}),
            "wrong Host (DNS rebinding)": (421, "POST", "/api/score", score, alice,
                                           {"Host": f"evil.example:{port}"}),
            "wrong port in Host": (421, "POST", "/api/score", score, alice, {"Host": f"127.0.0.1:{port + 1}"}),
            "no Host": (421, "POST", "/api/score", score, alice, {"Host": None}),
            "foreign Origin": (403, "POST", "/api/score", score, alice, {"Origin": "http://evil.example"}),
            "foreign Origin on the served host's other port": (
                403, "POST", "/api/score", score, alice, {"Origin": f"http://127.0.0.1:{port + 1}"}),
            "Origin null": (403, "POST", "/api/score", score, alice, {"Origin": "null"}),
            "Sec-Fetch-Site cross-site": (403, "POST", "/api/score", score, alice, {"Sec-Fetch-Site": "cross-site"}),
            "missing token": (401, "POST", "/api/score", score, None, {}),
            "missing token, a name in the body": (401, "POST", "/api/score", {**score, "annotator": "alice"},
                                                  None, {}),
            "not a bearer token": (401, "POST", "/api/score", score, None, {"Authorization": f"Basic {alice}"}),
            "unknown token": (401, "POST", "/api/score", score, alice[:-2] + "xy", {}),
            "revoked token": (401, "POST", "/api/score", score, tokens["carol"], {}),
            "token of another run": (403, "POST", "/api/score", score, tokens["bob"], {}),
            "reading progress without a token": (401, "GET", "/api/progress?annotator=alice", None, None, {}),
            "reading inputs without a token": (401, "GET", "/api/group?annotator=alice&group=0", None, None, {}),
            "reading inputs with another run's token": (403, "GET", "/api/group?group=0", None, tokens["bob"], {}),
            "reading meta with a revoked token": (401, "GET", "/api/meta", None, tokens["carol"], {}),
            "the page under a rebound name": (421, "GET", "/", None, None, {"Host": "evil.example"}),
        }
        for name, (status, method, path, body, token, headers) in cases.items():
            got, _, reply = call(port, method, path, body, token, headers)
            assert got == status, (name, got, reply)
            assert "error" in reply, name
        assert num_scores(store) == 0
        # The same score, sent as the page sends it, is stored: what was refused was the request, not the score.
        got, _, reply = call(port, "POST", "/api/score", score, alice, {"Origin": f"http://127.0.0.1:{port}",
                                                                         "Sec-Fetch-Site": "same-origin"})
        assert (got, reply["annotator"], reply["scored"]) == (200, "alice", 1)
    assert num_scores(store) == 1


def test_the_token_decides_the_annotator_and_each_sees_only_their_own_progress(team, tmp_path):
    store, run, tokens = team
    samples = [s.id for s in store.samples(run.id)]
    with serving(store, run) as port:
        got, _, meta = call(port, "GET", "/api/meta", token=tokens["dave"])
        assert (got, meta["auth"], meta["annotator"]) == (200, "token", "dave")
        for sample in samples[:3]:
            assert call(port, "POST", "/api/score", {"sample": sample, "score": 0.5}, tokens["dave"])[0] == 200
        # A name in the body is ignored: the score is alice's, whose token it is.
        got, _, progress = call(port, "POST", "/api/score", {"annotator": "dave", "sample": samples[0], "score": 1},
                                tokens["alice"])
        assert got == 200 and progress["annotator"] == "alice"
        assert (progress["scored"], progress["total"], sum(g["scored"] for g in progress["groups"])) == (1, 6, 1)
        answers = [call(port, "GET", path, token=tokens["alice"])[2]
                   for path in ("/api/meta", "/api/progress", "/api/group?group=0", "/api/group?group=2")]
        assert "dave" not in json.dumps(answers) and answers[1]["scored"] == 1
        orders = {name: [s["id"] for g in range(3) for s in
                         call(port, "GET", f"/api/group?group={g}", token=tokens[name])[2]["samples"]]
                  for name in ("alice", "dave")}
        assert sorted(orders["alice"]) == sorted(samples) and orders["alice"] != orders["dave"]

        # Revoked from another connection (as `revoke` from another process does): refused at the next call.
        with Store(store.path) as elsewhere:
            revoke(elsewhere, elsewhere.run(run.id), "alice")
        before = num_scores(store)
        assert call(port, "POST", "/api/score", {"sample": samples[1], "score": 1}, tokens["alice"])[0] == 401
        assert call(port, "GET", "/api/progress", token=tokens["alice"])[0] == 401
        assert num_scores(store) == before == 4
        assert call(port, "GET", "/api/progress", token=tokens["dave"])[2]["scored"] == 3

        # Every reply carries the security headers (checked in `call`), http.server's own errors too.
        got, reply, page = call(port, "GET", "/")
        assert got == 200 and call(port, "GET", "/nothing")[0] == 404 and call(port, "OPTIONS", "/api/score")[0] == 501
    given = {(s.annotator, s.sample): s.score for s in store.current_scores(run.id)}
    assert given == {("dave", samples[0]): 0.5, ("dave", samples[1]): 0.5, ("dave", samples[2]): 0.5,
                     ("alice", samples[0]): 1.0}                       # revoking kept alice's score

    # The Content-Security-Policy lets exactly the page's inline script and style run, nothing else.
    csp = dict(d.strip().split(" ", 1) for d in reply.getheader("Content-Security-Policy").split(";"))
    for tag in ("script", "style"):
        (inline,) = re.findall(f"<{tag}>(.*?)</{tag}>", page, re.S)
        assert csp[f"{tag}-src"] == f"'sha256-{base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()}'"
    assert (csp["default-src"], csp["connect-src"], csp["frame-ancestors"]) == ("'none'", "'self'", "'none'")


def test_a_name_login_ends_once_anyone_is_invited(tmp_path):
    """Loopback, nobody invited: one person at their machine logs in by name. An invite given while the
    server runs ends that at once; a server beyond loopback is never started without tokens."""
    with Store(str(tmp_path / "a.sqlite")) as store:
        run = store.import_run(make_run(tmp_path / "run"))
        sample = store.samples(run.id)[0].id
        with pytest.raises(ValueError, match="host='0.0.0.0' is not a loopback address"):
            make_server(AnnotationApp(store, run), 0, host="0.0.0.0")
        with serving(store, run) as port:
            assert call(port, "GET", "/api/meta")[2]["auth"] == "name"
            assert call(port, "POST", "/api/score", {"annotator": "erin", "sample": sample, "score": 1})[0] == 200
            token = invite(store, run, "frank")
            got, _, reply = call(port, "POST", "/api/score", {"annotator": "erin", "sample": sample, "score": 0})
            assert got == 401 and "invite token" in reply["error"]
            assert call(port, "GET", "/api/progress?annotator=erin")[0] == 401
            assert call(port, "POST", "/api/score", {"sample": sample, "score": 0}, token)[2]["annotator"] == "frank"
        assert [(s.annotator, s.score) for s in store.current_scores(run.id)] == [("erin", 1.0), ("frank", 0.0)]
    with Store(str(tmp_path / "b.sqlite")) as store, serving(store, store.import_run(str(tmp_path / "run")),
                                                             require_tokens=True) as port:
        assert call(port, "GET", "/api/meta")[0] == 401     # required before anyone is invited, too


def cli(*args, wait=True):
    """python -m omnijax.annotation ARGS, finished (or, wait=False, running: a Popen)."""
    command = [sys.executable, "-m", "omnijax.annotation", *args]
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_invite_and_revoke_from_the_command_line(tmp_path):
    workdir = make_run(tmp_path / "run")
    serve = cli("serve", f"--run={make_run(tmp_path / 'other')}", "--host=0.0.0.0", "--port=0", wait=False)
    invited = cli("invite", f"--run={workdir}", "--annotator=alice", "--url_base=http://annotate.example:8080/")
    assert serve.wait(timeout=120) != 0 and "--host=0.0.0.0 is not a loopback address" in serve.stderr.read()
    assert invited.returncode == 0, invited.stderr
    (url,) = invited.stdout.split()
    assert re.fullmatch(r"http://annotate\.example:8080/#token=[A-Za-z0-9_-]{43}", url), url
    token = url.split("#token=")[1]
    db = os.path.join(workdir, "annotations.sqlite")
    with Store(db) as store:
        (run,) = store.runs()
        assert authenticate(store, run, f"Bearer {token}") == "alice" and store.invited(run.id) == ["alice"]
    stored = b"".join(open(os.path.join(workdir, f), "rb").read() for f in os.listdir(workdir)
                      if f.startswith("annotations.sqlite"))
    assert token.encode() not in stored and token_hash(token).encode() in stored  # only its hash is kept

    revoked = cli("revoke", f"--run={workdir}", "--annotator=alice")
    assert revoked.returncode == 0 and "revoked the invite of alice" in revoked.stderr
    listed = cli("invites", f"--run={workdir}")
    assert listed.returncode == 0 and re.fullmatch(r"alice\tinvited [-0-9: ]+\trevoked [-0-9: ]+\n", listed.stdout)
    assert token not in listed.stdout + listed.stderr and token_hash(token) not in listed.stdout + listed.stderr
    with Store(db) as store:
        (run,) = store.runs()
        with pytest.raises(Refused, match="revoked") as refused:
            authenticate(store, run, f"Bearer {token}")
        assert refused.value.status == 401 and store.invited(run.id) == []
        with pytest.raises(ValueError, match="'alice' holds no working token"):
            revoke(store, run, "alice")
        store.add_annotator("ref", "judge")
        with pytest.raises(ValueError, match="'ref' is of kind 'judge', not 'person'"):
            invite(store, run, "ref")
        second = invite(store, run, "alice")
        assert invite(store, run, "alice") != second
        with pytest.raises(Refused, match="revoked"):       # a new invite ends the earlier link
            authenticate(store, run, f"Bearer {second}")
