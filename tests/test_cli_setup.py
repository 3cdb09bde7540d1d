"""`vieter-lite client setup` run as `python -m vieter_lite` against real servers: the dry
run, an unsigned server, and its refusals. (The full run with pacman-key and pacman is in
test_pacman_signing.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, ServerProcess
from gpgkeys import gpg_available
from pkgfactory import make_synthetic_package
from vieter_lite.client import Client
from vieter_lite.clientsetup import with_repo

OPTIONS = "[options]\nArchitecture = auto\n"


def setup(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
    env.update({"PYTHONPATH": str(ROOT), "LC_ALL": "C"})
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "vieter_lite", "client", "setup", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def publish_one(url: str, tmp_path: Path) -> None:
    pkg = make_synthetic_package(tmp_path / "p.pkg.tar.zst", {
        "pkgname": "p", "pkgver": "1.0-1", "arch": "x86_64", "size": "1"})
    Client(url, API_KEY).publish("core", pkg)


@pytest.fixture
def conf(tmp_path) -> Path:
    path = tmp_path / "pacman.conf"
    path.write_text(OPTIONS)
    return path


@pytest.mark.skipif(not gpg_available(), reason="gpg, gpgv or gpg-agent missing")
def test_a_dry_run_prints_the_steps_and_changes_nothing(tmp_path, conf):
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_SIGN": "true"}).start()
    try:
        publish_one(proc.url, tmp_path)
        fpr = json.loads(Client(proc.url).request("GET", "/health")[2])["data"]["fingerprint"]
        # no pacman-key on the PATH: a dry run runs nothing
        done = setup(proc.url, "core", "--pacman-conf", str(conf), "--gpgdir",
                     str(tmp_path / "keyring"), "--dry-run", path=str(tmp_path / "empty"))
    finally:
        proc.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        f"the signing key of {proc.url}: {fpr}",
        f"would run: pacman-key --config {conf} --gpgdir {tmp_path / 'keyring'} --add "
        f"<the key from {proc.url}/key>",
        f"would run: pacman-key --config {conf} --gpgdir {tmp_path / 'keyring'} "
        f"--lsign-key {fpr}"]
    assert f"would change {conf}:" in done.stdout
    assert "+[core]\n+SigLevel = Required\n" in done.stdout
    assert conf.read_text() == OPTIONS and not (tmp_path / "keyring").exists()


def test_an_unsigned_server_gets_an_optional_stanza_and_no_key(server, tmp_path, conf):
    publish_one(server.url, tmp_path)
    empty = str(tmp_path / "empty")  # no pacman-key: none is needed
    first = setup(server.url + "/", "core", "--pacman-conf", str(conf), path=empty)
    assert first.returncode == 0, first.stderr
    assert "does not sign its repos" in first.stdout
    assert conf.read_text() == with_repo(OPTIONS, "core", server.url, signed=False)
    second = setup(server.url, "core", "--pacman-conf", str(conf), path=empty)
    assert second.returncode == 0 and f"{conf}: [core] is set up already" in second.stdout


class _LyingServer(BaseHTTPRequestHandler):
    """/health names one key, /key serves another."""

    key = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps({"message": "Healthy.", "data": {"fingerprint": "A" * 40}}).encode() \
            if self.path == "/health" else self.key
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(not gpg_available(), reason="gpg, gpgv or gpg-agent missing")
def test_a_key_that_is_not_the_one_health_names_is_refused(conf, scratch_gpg):
    _LyingServer.key = scratch_gpg.export(scratch_gpg.new_key("X <x@example.invalid>"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _LyingServer)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        done = setup(f"http://127.0.0.1:{httpd.server_port}", "core", "--pacman-conf",
                     str(conf))
    finally:
        httpd.shutdown()
        thread.join()
    assert done.returncode == 1 and "but /health names " + "A" * 40 in done.stderr
    assert conf.read_text() == OPTIONS


@pytest.mark.parametrize("args, code, message", [
    (["pi:8000", "core"], 2, "'pi:8000' is not a server URL"),
    (["http://pi:8000", "../core"], 2, "invalid repository name"),
    (["http://127.0.0.1:1", "core", "--pacman-conf", "/nonexistent/pacman.conf"], 1,
     "cannot read /nonexistent/pacman.conf"),
    (["http://127.0.0.1:1", "core"], 1, "cannot reach http://127.0.0.1:1"),
])
def test_refusals_are_one_line(args, code, message, conf):
    if "--pacman-conf" not in args:
        args = [*args, "--pacman-conf", str(conf)]
    done = setup(*args)
    assert done.returncode == code and message in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1
