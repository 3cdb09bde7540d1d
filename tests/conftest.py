"""Shared fixtures: a real vieter-lite server process on a loopback port, and in-process apps."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

API_KEY = "test-secret"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A `python -m vieter_lite server` child process with its own data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    env_extra: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "vieter_lite"])
    args: list[str] = field(default_factory=list)  # after `server`
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
        env.update({"VIETER_API_KEY": API_KEY, "VIETER_DATA_DIR": str(self.data_dir),
                    "VIETER_PORT": str(self.port), "VIETER_HOST": "127.0.0.1",
                    "VIETER_DEFAULT_ARCH": "x86_64", "VIETER_LOG_LEVEL": "INFO",
                    "PYTHONPATH": str(ROOT)})
        env.update(self.env_extra)
        return env

    def start(self, timeout: float = 15.0) -> ServerProcess:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*self.command, "server", *self.args],
                                         env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.data_dir.parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not come up:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running server process on a fresh data dir; stopped (and checked) afterwards."""
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop()


def make_config(tmp_path: Path, **overrides: object):
    from vieter_lite.config import load_server

    env = {"VIETER_API_KEY": API_KEY, "VIETER_DATA_DIR": str(tmp_path / "data"),
           "VIETER_DEFAULT_ARCH": "x86_64"}
    env.update({f"VIETER_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_server(None, env)


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The server's services on a fresh data dir, in-process."""
    from vieter_lite import config
    from vieter_lite.services import build_services

    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-system.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "no-user.toml")
    svc = build_services(make_config(tmp_path))
    yield svc
    svc.db.close()


@pytest.fixture
def webapp(services):
    """A webtest.TestApp around the real WSGI app."""
    import webtest

    from vieter_lite.web.app import make_app

    return webtest.TestApp(make_app(services))


@pytest.fixture
def scratch_gpg():
    """A throw-away GnuPG home (tests/gpgkeys.py), its agent ended afterwards."""
    from gpgkeys import ScratchGpg

    gpg = ScratchGpg()
    yield gpg
    gpg.close()
