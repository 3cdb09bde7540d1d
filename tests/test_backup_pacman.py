"""A backup of a running signing server, restored into a fresh data dir: the server started
on it has the same key, and the real pacman with SigLevel = Required syncs and installs
every package from it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, ServerProcess
from test_pacman_signing import (  # noqa: F401 - fixtures
    _missing,
    built,
    client_setup,
    fingerprint,
    keyring_template,
    make_client,
    publish,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vieter_lite", *args], env=server.env(),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_a_restored_backup_serves_pacman_with_signatures_required(tmp_path, built,  # noqa: F811
                                                                  make_client):  # noqa: F811
    original = ServerProcess(tmp_path / "data", env_extra={"VIETER_SIGN": "true"}).start()
    try:
        for path in built.all:
            publish(original, path)
        key = fingerprint(original)
        dest = tmp_path / "backup"
        done = cli(original, "backup", str(dest))  # the server runs
        assert done.returncode == 0, done.stderr
        assert "backed up 4 packages" in done.stdout
    finally:
        assert original.stop() == 0

    restored = ServerProcess(tmp_path / "restored", env_extra={"VIETER_SIGN": "true"})
    done = cli(restored, "restore", str(dest))
    assert done.returncode == 0, done.stderr
    assert not (restored.data_dir / "repos").exists()  # the archives come from start-up
    restored.start()
    try:
        assert fingerprint(restored) == key
        pacman = make_client()
        client_setup(restored, pacman)
        sync = pacman.run("-Syy", "--debug")
        assert "signature is valid" in sync.stdout + sync.stderr
        pacman.install("sig-any", "sig-arch", "sig-split-a", "sig-split-b")
        assert pacman.installed() == {"sig-any": "1.0-1", "sig-arch": "2.0-1",
                                      "sig-split-a": "3.0-1", "sig-split-b": "3.0-1"}
        checked = cli(restored, "check")  # read-only beside the running server
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        assert restored.stop() == 0
