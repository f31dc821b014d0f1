"""The annotation page end to end in headless Chromium: two annotators, each opening their own invite
link in a tab of one browser, score a bin with the keyboard (and a slider); the server is SIGKILLed and
restarted, every score is there under the right annotator and r(z) is right; a score given while the
server is down reaches the store once it is back; the page never shows z, nor one annotator's progress
to another; it runs under its Content-Security-Policy.

Needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver; other paths with
$OMNIJAX_TEST_CHROMIUM, $OMNIJAX_TEST_CHROMEDRIVER) and the selenium package (the `test` extra). When the
browser is missing and the test runs as root on a machine with apt-get (a fresh CI container), it installs
them itself; otherwise it fails (never skips) and says exactly what to install."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from omnijax.annotation import Store
from omnijax.annotation.access import invite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("OMNIJAX_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OMNIJAX_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver")
# Outputs and bin edges with digits that cannot appear in the page by chance.
Z = {0: [-2.7182818, -3.1415926], 1: [0.5772156, 1.4142135, 1.7320508, 0.6931471], 3: [6.2831853, 7.3890561, 5.4365636]}
EDGES = [-4.1234567, -1.0987654, 2.2468013, 5.1357913, 8.9753197]
TARGET = 1  # the bin both annotators score


def _missing(paths) -> list[str]:
    return [path for path in paths if not (os.path.isfile(path) and os.access(path, os.X_OK))]


def find_browser(chromium=CHROMIUM, chromedriver=CHROMEDRIVER, *, euid=None, apt_get="which", run=subprocess.run,
                 log=print) -> tuple[str, str]:
    """(chromium, chromedriver), installing Debian's packages first when they are missing and this process
    may: as root (`euid`, default os.geteuid()) with apt-get (`apt_get`: its path, None for none, "which"
    to look it up). Otherwise, or if the install does not produce them, pytest.fail saying what to install.
    `run` and `log` are subprocess.run and print, replaceable so the decision can be tested."""
    paths = (chromium, chromedriver)
    missing = _missing(paths)
    if not missing:
        return paths
    euid = os.geteuid() if euid is None else euid
    apt_get = shutil.which("apt-get") if apt_get == "which" else apt_get
    command = f"apt-get install -y {' '.join(APT_PACKAGES)}"
    what = (f"{' and '.join(missing)} missing: the annotation browser test drives Debian's headless chromium "
            f"through its chromedriver; install both with `{command}` (as root; `apt-get update` first on a "
            "fresh machine)")
    if euid != 0 or not apt_get:
        why = "not running as root" if euid != 0 else "apt-get not found"
        pytest.fail(f"{what}. The test installs them itself only as root with apt-get ({why}).", pytrace=False)
    install = [apt_get, "install", "-y", "-q", *APT_PACKAGES]
    log(f"{what}. Installing them now: {' '.join(install)} (this takes a minute or two)")
    done = run(install, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = done.stdout or ""
    if done.returncode != 0:
        log(f"apt-get install failed ({done.returncode}); running apt-get update -q and trying again")
        update = run([apt_get, "update", "-q"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        done = run(install, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = (update.stdout or "") + (done.stdout or "")
    missing = _missing(paths)
    if done.returncode != 0 or missing:
        pytest.fail(f"{what}. Installing them with {' '.join(install)} failed (exit {done.returncode}"
                    f"{'; still missing ' + ', '.join(missing) if missing else ''}):\n{output[-3000:]}",
                    pytrace=False)
    log(f"installed {' '.join(APT_PACKAGES)}")
    return paths


@pytest.fixture
def browser(capsys):
    """(chromium, chromedriver), installed first if need be (see find_browser); selenium checked."""
    def log(message):
        with capsys.disabled():     # shown while it happens (pytest -n 0 or -s), not only on failure
            print(f"\n[test_annotation_browser] {message}", flush=True)

    paths = find_browser(log=log)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("the selenium package is missing: pip install -e '.[test]' (or pip install selenium)",
                    pytrace=False)
    return paths


def make_run(directory):
    rng = np.random.default_rng(0)
    bins = [b for b, zs in Z.items() for _ in zs]
    np.savez_compressed(os.path.join(directory, "samples.npz"), bin=np.asarray(bins, np.int32),
                        z=np.asarray([z for zs in Z.values() for z in zs], np.float32),
                        inputs=rng.integers(0, 2, (len(bins), 28, 28)).astype(np.int32), bin_edges=np.asarray(EDGES))
    with open(os.path.join(directory, "metrics.json"), "w") as f:
        json.dump({"grey_levels": 2}, f)


def keys_of(obj) -> set[str]:
    """Every key of every object inside a JSON value."""
    if isinstance(obj, dict):
        return set(obj).union(*map(keys_of, obj.values()))
    return set().union(*map(keys_of, obj)) if isinstance(obj, list) else set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir, port, log):
    server = subprocess.Popen([sys.executable, "-m", "omnijax.annotation", "serve", f"--run={workdir}", f"--port={port}"],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            log.seek(0)
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/meta", timeout=2).read()
            return server
        except urllib.error.HTTPError:  # it answers, and wants a token
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    pytest.fail("the server did not answer within 120 s")


def start_browser(profile, chromium, chromedriver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


class Page:
    """The annotation page as a person uses it: typing, keys, a slider."""

    def __init__(self, driver, url):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.url = driver, url
        self.wait = WebDriverWait(driver, 60, poll_frequency=0.1)

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def keys(self, *keys):
        from selenium.webdriver.common.action_chains import ActionChains
        for key in keys:
            ActionChains(self.driver).send_keys(key).perform()

    def open_link(self, link, name):
        """Opens an annotator's invite link and waits for their grid."""
        self.driver.get(link)
        self.wait.until(lambda d: self.shown() and self.title())
        assert self.find("#who")[0].text == f"annotator: {name}"

    def login(self, name):
        self.wait.until(lambda d: self.find("#name")[0].is_displayed())
        assert not self.find("#work")[0].is_displayed()
        assert not self.shown(), "the previous annotator's grid is still on the page"
        self.find("#name")[0].send_keys(name + "\n")
        self.wait.until(lambda d: self.shown() and self.title())

    def read(self, script):
        """One DOM read in one JavaScript task, so a re-render cannot land halfway through it."""
        return self.driver.execute_script(script)

    def title(self) -> str:
        return self.read("return document.getElementById('title').textContent")

    def shown(self) -> list[int]:
        return [int(i) for i in self.read(
            "return Array.from(document.querySelectorAll('#grid .cell'), c => c.dataset.sample)")]

    def open_group_of(self, sample_ids):
        """Goes to group 1 with [, then steps with ] (waiting for each group's title) until the group
        holding these samples is shown."""
        self.keys("[" * 10)
        self.wait.until(lambda d: self.title().startswith("Group 1 of "))
        num_groups = int(self.title().rsplit(" ", 1)[1])
        for g in range(1, num_groups + 1):
            self.wait.until(lambda d: self.title() == f"Group {g} of {num_groups}")
            if set(self.shown()) == set(sample_ids):
                return
            self.keys("]")
        pytest.fail(f"no group shows samples {sample_ids}")

    def all_sent(self):
        self.wait.until(lambda d: self.find("#pending")[0].text == "0" and not self.find(".cell.unsaved"))

    def scores(self) -> dict[int, float]:
        pairs = self.read("return Array.from(document.querySelectorAll('#grid .cell'), "
                          "c => [c.dataset.sample, c.dataset.score || ''])")
        return {int(sample): float(score) for sample, score in pairs if score}


def test_two_annotators_with_their_own_links_server_killed_and_restarted(tmp_path, browser):
    from selenium.webdriver.common.keys import Keys

    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    make_run(workdir)
    port, log = free_port(), open(tmp_path / "server.log", "w+")
    url = f"http://127.0.0.1:{port}/"
    with Store(os.path.join(workdir, "annotations.sqlite")) as store:
        run = store.import_run(workdir)
        target = [s.id for s in store.samples(run.id, bin=TARGET)]
        tokens = {name: invite(store, run, name) for name in ("alice", "bob")}
    server = start_server(workdir, port, log)
    driver = None
    try:
        driver = start_browser(tmp_path / "profile", *browser)
        page = Page(driver, url)

        page.open_link(url + "#token=" + tokens["alice"], "alice")
        assert "token" not in driver.current_url                # dropped from the address bar
        assert page.read("return getComputedStyle(document.querySelector('header')).display") == "flex"  # CSP
        alice_tab = driver.current_window_handle
        page.open_group_of(target)
        alice_order = page.shown()
        page.keys("1", "0", "1", "1")
        page.all_sent()
        alice = dict(zip(alice_order, [1.0, 0.0, 1.0, 1.0]))
        assert page.scores() == alice

        driver.switch_to.new_window("tab")                      # bob, at the same time, in the same browser
        page.open_link(url + "?token=" + tokens["bob"], "bob")
        assert "token" not in driver.current_url
        page.open_group_of(target)
        bob_order = page.shown()
        assert bob_order != alice_order  # each annotator has an order of their own
        page.keys("0", "1", "1")
        slider = page.find("#grid .cell")[3].find_element("css selector", "input[type=range]")
        slider.send_keys(Keys.END, Keys.ARROW_LEFT, Keys.ARROW_LEFT)   # 1, 0.95, 0.9: the last counts
        page.all_sent()
        bob = dict(zip(bob_order, [0.0, 1.0, 1.0, 0.9]))
        assert page.scores() == pytest.approx(bob)
        assert page.find("#mine")[0].text == "4/9" and "4/4" in page.find("#groups button.current")[0].text
        assert "alice" not in driver.page_source                # only his own progress

        # Blind: neither the page nor any answer of the API carries z, bin edges or bin indices.
        texts = [driver.page_source, driver.find_element("tag name", "body").text]
        for query in ("meta", "progress", "group?group=0", "group?group=2"):
            request = urllib.request.Request(url + "api/" + query, headers={"Authorization": f"Bearer {tokens['bob']}"})
            texts.append(urllib.request.urlopen(request).read().decode())
            assert not {"z", "bin", "bin_edges", "lo", "hi"} & keys_of(json.loads(texts[-1]))
        for value in [z for zs in Z.values() for z in zs] + EDGES:
            for digits in (f"{abs(value):.3f}", f"{abs(value):.4f}"[:-1]):
                assert not [text for text in texts if digits in text], digits

        server.kill()  # SIGKILL
        server.wait()
        page.find("#grid .cell canvas")[0].click()
        page.keys("1")                                   # bob changes his mind while the server is down
        bob[bob_order[0]] = 1.0
        page.wait.until(lambda d: "unreachable" in page.find("#status")[0].text)
        assert page.find(".cell.unsaved") and page.find("#pending")[0].text == "1"

        server = start_server(workdir, port, log)
        page.all_sent()                                  # the page resends what it kept
        driver.refresh()                                 # the tab keeps its token
        page.wait.until(lambda d: len(page.scores()) == 4)
        assert page.scores() == pytest.approx(bob) and page.find("#who")[0].text == "annotator: bob"
        driver.switch_to.window(alice_tab)
        driver.refresh()
        page.wait.until(lambda d: len(page.scores()) == 4)
        assert page.scores() == alice and page.find("#who")[0].text == "annotator: alice"

        with Store(os.path.join(workdir, "annotations.sqlite")) as store:
            given = {(s.annotator, s.sample): s.score for s in store.current_scores(run.id)}
            assert given == pytest.approx({**{("alice", i): v for i, v in alice.items()},
                                           **{("bob", i): v for i, v in bob.items()}})
            assert store.annotators() == {"alice": "person", "bob": "person"}
            table = store.bin_precision_table(run.id)
        expected = np.mean([(alice[i] + bob[i]) / 2 for i in target])   # every sample has both annotators
        assert [row.bin for row in table.rows] == [TARGET]
        assert table.rows[0].r == pytest.approx(expected) and (table.rows[0].n_scores, table.rows[0].n_scored) == (8, 4)
        assert table.unannotated == [0, 3] and table.empty == [2]
    finally:
        if driver is not None:
            driver.quit()
        server.kill()
        server.wait()
        log.close()


# --------------------------------------------------------------------------------------------
# How the test gets its browser, decided without touching this machine's real browser.


class FakeApt:
    """Stands in for subprocess.run of apt-get: records the commands; install fails `failures` times,
    then "installs" by creating the given files."""

    def __init__(self, creates, failures=0):
        self.creates, self.failures, self.commands = creates, failures, []

    def __call__(self, command, **kwargs):
        self.commands.append(command[1:])
        if command[1] == "install":
            if self.failures:
                self.failures -= 1
                return subprocess.CompletedProcess(command, 100, stdout="E: Unable to locate package chromium\n")
            for path in self.creates:
                with open(path, "w") as f:
                    f.write("#!/bin/sh\n")
                os.chmod(path, 0o755)
        return subprocess.CompletedProcess(command, 0, stdout="ok\n")


def test_present_browser_is_used_as_is(tmp_path):
    paths = [str(tmp_path / "chromium"), str(tmp_path / "chromedriver")]
    apt = FakeApt(paths)
    apt([None, "install"])                       # make them exist
    apt.commands.clear()
    assert find_browser(*paths, euid=1000, apt_get=None, run=apt, log=lambda m: None) == tuple(paths)
    assert apt.commands == []


@pytest.mark.parametrize("failures, commands", [
    (0, [["install", "-y", "-q", "chromium", "chromium-driver"]]),
    (1, [["install", "-y", "-q", "chromium", "chromium-driver"], ["update", "-q"],
         ["install", "-y", "-q", "chromium", "chromium-driver"]]),
])
def test_missing_browser_is_installed_as_root_with_apt(tmp_path, failures, commands):
    paths = [str(tmp_path / "chromium"), str(tmp_path / "chromedriver")]
    apt, said = FakeApt(paths, failures), []
    assert find_browser(*paths, euid=0, apt_get="/usr/bin/apt-get", run=apt, log=said.append) == tuple(paths)
    assert apt.commands == commands
    assert "Installing them now" in said[0] and said[-1] == "installed chromium chromium-driver"


@pytest.mark.parametrize("euid, apt_get, why", [(1000, "/usr/bin/apt-get", "not running as root"),
                                                (0, None, "apt-get not found")])
def test_missing_browser_fails_saying_what_to_install(tmp_path, euid, apt_get, why):
    paths = [str(tmp_path / "chromium"), str(tmp_path / "chromedriver")]
    apt = FakeApt(paths)
    with pytest.raises(pytest.fail.Exception) as failed:
        find_browser(*paths, euid=euid, apt_get=apt_get, run=apt, log=lambda m: None)
    message = str(failed.value)
    assert f"{paths[0]} and {paths[1]} missing" in message and why in message
    assert "`apt-get install -y chromium chromium-driver`" in message
    assert apt.commands == []                    # nothing was run


def test_failed_install_fails_with_apt_output(tmp_path):
    paths = [str(tmp_path / "chromium"), str(tmp_path / "chromedriver")]
    apt = FakeApt(paths, failures=2)
    with pytest.raises(pytest.fail.Exception, match="(?s)failed \\(exit 100.*Unable to locate package"):
        find_browser(*paths, euid=0, apt_get="/usr/bin/apt-get", run=apt, log=lambda m: None)
    assert [c[0] for c in apt.commands] == ["install", "update", "install"]
