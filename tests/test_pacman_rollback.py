"""A rollback as the real pacman sees it: makepkg packages published to a real server with
keep_versions = 1, a private pacman root that installed the newer versions, then
`vieter-lite repos rollback` (the CLI against the server): `pacman -Syu` keeps the newer
version and warns, `pacman -Syuu` downgrades to the kept one."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, ServerProcess
from pacman_client import PacmanClient, pacman_available
from pkgfactory import build_with_makepkg, makepkg_available
from vieter_lite.client import Client

REPO = "rollback"
ARCH = "x86_64"


def _missing() -> str | None:
    if not makepkg_available():
        return "makepkg/bsdtar/fakeroot (or, as root, runuser and the build user) missing"
    if not pacman_available():
        return "pacman missing, or not running as root (pacman -S needs root)"
    return None


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(name, pkgver) -> package file: an arch package and an 'any' one, 1.0 and 2.0 each."""
    work = tmp_path_factory.mktemp("rollback-pkgs")
    specs = {(name, ver): dict(pkgname=name, pkgver=ver, arch=arch)
             for name, arch in (("rb-tool", ARCH), ("rb-data", "any"))
             for ver in ("1.0", "2.0")}
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = {key: pool.submit(build_with_makepkg, work, **spec)
                   for key, spec in specs.items()}
        return {key: future.result()[0] for key, future in futures.items()}


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_KEEP_VERSIONS": "1"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def cli(server: ServerProcess, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
    env.update({"VIETER_ADDRESS": server.url, "VIETER_API_KEY": API_KEY,
                "PYTHONPATH": str(ROOT), "HOME": str(server.data_dir.parent)})
    proc = subprocess.run([sys.executable, "-m", "vieter_lite", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc.stdout


def installed(client: PacmanClient) -> dict[str, str]:
    out = client.run("-Q").stdout
    return dict(line.split() for line in out.splitlines())


def test_pacman_syuu_downgrades_to_a_rolled_back_version(built, server, tmp_path):
    admin = Client(server.url, API_KEY, timeout=30)
    for name in ("rb-tool", "rb-data"):
        admin.publish(REPO, built[(name, "1.0")])
    client = PacmanClient(tmp_path / "root", {REPO: f"{server.url}/$repo/$arch"}, arch=ARCH)
    client.sync_db()
    client.install("rb-tool", "rb-data")
    for name in ("rb-tool", "rb-data"):
        admin.publish(REPO, built[(name, "2.0")])
    client.upgrade()
    assert installed(client) == {"rb-tool": "2.0-1", "rb-data": "2.0-1"}

    for name in ("rb-tool", "rb-data"):
        out = cli(server, "repos", "rollback", REPO, ARCH, name, "1.0-1")
        assert out == f"Rolled {name} in {REPO}/{ARCH} back to 1.0-1.\n"

    # -Syu never downgrades: pacman says the local version is newer and keeps it
    plain = client.run("-Syu", "--noscriptlet", "-dd")
    for name in ("rb-tool", "rb-data"):
        assert f"{name}: local (2.0-1) is newer than {REPO} (1.0-1)" in plain.stderr, plain
    assert installed(client) == {"rb-tool": "2.0-1", "rb-data": "2.0-1"}

    # -Syuu takes the repo's version, older or not
    down = client.run("-Syuu", "--noscriptlet", "-dd")
    assert "downgrading rb-tool" in down.stdout and "downgrading rb-data" in down.stdout, down
    assert installed(client) == {"rb-tool": "1.0-1", "rb-data": "1.0-1"}
    readme = tmp_path / "root" / "usr" / "share" / "rb-tool" / "README"
    assert readme.read_text().startswith("rb-tool 1.0-1")
    assert (tmp_path / "root" / "usr" / "bin" / "rb-tool").read_text() == \
        "#!/bin/sh\necho rb-tool 1.0\n"
    # 2.0-1 is the kept version now
    kept = admin.call_v2("GET", f"/api/v2/repos/{REPO}/{ARCH}/packages/rb-tool")
    assert kept["kept_versions"] == ["2.0-1"]
