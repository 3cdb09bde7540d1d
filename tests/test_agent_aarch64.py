"""End to end on two archs: one server, an x86_64 agent and an aarch64 agent on this x86_64
machine (qemu-user emulation), each registered with its own token. A target for both archs,
a split package with an `any` part, builds on both; the aarch64 arch-repo holds the aarch64
package, which a pacman with `Architecture = aarch64` syncs and installs, and whose .PKGINFO
says `arch = aarch64`. The server's base image is one name for both archs (a manifest list,
as a registry's multi-arch image): each agent's platform picks its own."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import platform
import pwd
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from agent_env import AGENT_USER, BASE_IMAGE, agent_ready
from conftest import API_KEY, ROOT, ServerProcess
from pacman_client import PacmanClient
from test_agent_e2e import start_agent
from vieter_lite.agent import emulation

ARM64_IMAGE = os.environ.get("VIETER_TEST_ARM64_IMAGE",
                             "localhost/vieter-lite-test-base-arm64:latest")
MULTI_IMAGE = "localhost/vieter-lite-test-base-multi:e2e"
BUILDER_PREFIX = "localhost/vieter-lite-builder:localhost-vieter-lite-test-base-multi-e2e-"

PKGBUILD = """pkgbase=e2e-multi
pkgname=(e2e-multi-bin e2e-multi-data)
pkgver=1.0
pkgrel=1
arch=('x86_64' 'aarch64')
options=(!debug !strip)
package_e2e-multi-bin() {
    install -d "$pkgdir/usr/share/e2e-multi"
    echo "CARCH=$CARCH uname=$(uname -m)" > "$pkgdir/usr/share/e2e-multi/built-on"
}
package_e2e-multi-data() {
    arch=('any')
    install -Dm644 /dev/stdin "$pkgdir/usr/share/e2e-multi/data" <<< 'shared data'
}
"""


def as_agent(*argv: str) -> subprocess.CompletedProcess:
    home = pwd.getpwnam(AGENT_USER).pw_dir
    return subprocess.run(["runuser", "-u", AGENT_USER, "--", "env", "-u", "XDG_RUNTIME_DIR",
                           f"HOME={home}", *argv], cwd="/", capture_output=True, text=True,
                          timeout=120)


def _why_skip() -> str | None:
    reason = agent_ready()
    if reason is not None:
        return reason
    if platform.machine() != "x86_64":
        return f"builds aarch64 under emulation on x86_64, not on {platform.machine()}"
    problem = emulation.binfmt_problem("aarch64", "x86_64")
    if problem is not None:
        return f"qemu-user emulation does not work here: {problem}"
    if as_agent("podman", "image", "exists", ARM64_IMAGE).returncode != 0:
        return f"image {ARM64_IMAGE} is missing (.ci/podman-setup builds it)"
    return None


pytestmark = pytest.mark.skipif(_why_skip() is not None, reason=str(_why_skip()))


def v2(server: ServerProcess, method: str, path: str, body: object = None,
       key: str = API_KEY) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method,
                                     headers={"X-Api-Key": key,
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def agent_token(server: ServerProcess, name: str, arch: str) -> str:
    made = v2(server, "POST", "/api/v2/tokens",
              {"name": name, "scopes": ["agent"], "archs": [arch]})
    return str(made["secret"])  # type: ignore[index]


@pytest.fixture(scope="module")
def world():
    base = Path(tempfile.mkdtemp(prefix="vieter-aarch64-", dir="/tmp"))
    base.chmod(0o755)
    procs: list[subprocess.Popen] = []
    as_agent("podman", "manifest", "rm", MULTI_IMAGE)
    for argv in (["create", MULTI_IMAGE], ["add", MULTI_IMAGE, f"containers-storage:{BASE_IMAGE}"],
                 ["add", MULTI_IMAGE, f"containers-storage:{ARM64_IMAGE}"]):
        made = as_agent("podman", "manifest", *argv)
        assert made.returncode == 0, made.stderr
    try:
        web_root = base / "web"
        web_root.mkdir()
        (web_root / "PKGBUILD").write_text(PKGBUILD)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=web_root)
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        server = ServerProcess(base / "server", env_extra={
            "VIETER_BASE_IMAGE": MULTI_IMAGE, "VIETER_GLOBAL_SCHEDULE": "0 3 1 1"}).start()
        assert server.proc is not None
        procs.append(server.proc)
        shutil.copytree(ROOT / "vieter_lite", base / "code" / "vieter_lite",
                        ignore=shutil.ignore_patterns("__pycache__"))
        agents = {}
        for arch in ("x86_64", "aarch64"):  # each with a token of its own
            agents[arch] = start_agent(base, server, arch, key=agent_token(server, arch, arch),
                                       name=f"e2e-{arch}")
            procs.append(agents[arch])
        deadline = time.monotonic() + 60  # each registers as it starts polling
        while {a["name"] for a in v2(server, "GET", "/api/v2/agents")["resources"]} != \
                {"e2e-x86_64", "e2e-aarch64"}:  # type: ignore[index]
            assert time.monotonic() < deadline and all(a.poll() is None for a in agents.values())
            time.sleep(0.2)
        yield {"server": server, "base": base, "agents": agents,
               "url": f"http://127.0.0.1:{web.server_address[1]}/PKGBUILD"}
        for arch, agent in agents.items():
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=60) == 0, (base / f"agent-{arch}.log").read_text()
        assert server.stop() == 0, server.log()
        web.shutdown()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        as_agent("podman", "manifest", "rm", MULTI_IMAGE)
        # the builder images the agents made of it (about 300 MB each)
        listed = as_agent("podman", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        builders = [ref for ref in listed.split() if ref.startswith(BUILDER_PREFIX)]
        if builders:
            as_agent("podman", "rmi", "-f", *builders)
        shutil.rmtree(base, ignore_errors=True)


def wait_for(server: ServerProcess, build_ids: list[int], timeout: float = 600) -> dict:
    """The builds once they ended. An emulated makepkg takes about 20 s on an idle 2-core
    machine (a split package's build 60-70 s), several times that on a busy one."""
    deadline = time.monotonic() + timeout
    builds: dict = {}
    while time.monotonic() < deadline:
        builds = {b: v2(server, "GET", f"/api/v2/builds/{b}") for b in build_ids}
        if all(b["status"] not in ("queued", "running") for b in builds.values()):
            return builds
        time.sleep(0.5)
    raise AssertionError(f"builds did not finish: {builds}")


def db_entries(server: ServerProcess, arch: str) -> set[str]:
    with urllib.request.urlopen(f"{server.url}/e2e/{arch}/e2e.db") as resp:
        data = resp.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.split("/")[0] for m in tar.getmembers() if m.isfile()}


def test_a_target_for_x86_64_and_aarch64_builds_on_both_agents(world, tmp_path):
    server, base = world["server"], world["base"]
    listed = {a["name"]: a for a in v2(server, "GET", "/api/v2/agents")["resources"]}  # type: ignore[index]
    assert listed["e2e-aarch64"]["labels"] == {"emulated": "true"}
    assert listed["e2e-x86_64"]["labels"] == {}
    assert all(a["status"] == "online" for a in listed.values())

    target = v2(server, "POST", "/api/v2/targets", {
        "kind": "url", "url": world["url"], "repo": "e2e", "arch": ["x86_64", "aarch64"],
        "review": "never", "schedule": "0 3 1 1"})
    ids = {arch: v2(server, "POST", "/api/v2/builds",
                    {"target_id": target["id"], "arch": arch})["id"]  # type: ignore[index]
           for arch in ("x86_64", "aarch64")}
    builds = wait_for(server, list(ids.values()))
    for arch, build_id in ids.items():
        build = builds[build_id]
        assert build["status"] == "success", (
            build, (base / f"agent-{arch}.log").read_text()[-3000:])
        assert (build["runner"], build["agent_id"]) == \
            (f"e2e-{arch}", listed[f"e2e-{arch}"]["id"]), build

    assert {"e2e-multi-bin-1.0-1", "e2e-multi-data-1.0-1"} <= db_entries(server, "aarch64")
    assert {"e2e-multi-bin-1.0-1", "e2e-multi-data-1.0-1"} <= db_entries(server, "x86_64")
    packages = {p["name"]: p for p in v2(server, "GET", "/api/v2/repos/e2e/aarch64/packages")[
        "resources"]}  # type: ignore[index]
    assert packages["e2e-multi-bin"]["arch"] == "aarch64"
    assert packages["e2e-multi-bin"]["filename"] == "e2e-multi-bin-1.0-1-aarch64.pkg.tar.zst"
    assert packages["e2e-multi-data"]["arch"] == "any"

    # a pacman for aarch64 (a private root) syncs the aarch64 arch-repo and installs from it
    pacman = PacmanClient(tmp_path / "root", {"e2e": server.url + "/$repo/$arch"},
                          arch="aarch64")
    pacman.sync_db()
    assert pacman.search_sync("e2e") == {"e2e-multi-bin": "1.0-1", "e2e-multi-data": "1.0-1"}
    info = pacman.run("-Si", "e2e/e2e-multi-bin").stdout
    assert any(line.split(":", 1)[1].strip() == "aarch64" for line in info.splitlines()
               if line.startswith("Architecture")), info
    pacman.install("e2e-multi-bin", "e2e-multi-data")
    assert (tmp_path / "root/usr/share/e2e-multi/built-on").read_text() == \
        "CARCH=aarch64 uname=aarch64\n"
    assert (tmp_path / "root/usr/share/e2e-multi/data").read_text() == "shared data\n"
    cached = tmp_path / "root/var/cache/pacman/pkg/e2e-multi-bin-1.0-1-aarch64.pkg.tar.zst"
    pkginfo = subprocess.run(["bsdtar", "-xOf", str(cached), ".PKGINFO"], capture_output=True,
                             text=True, check=True).stdout
    assert "arch = aarch64" in pkginfo.splitlines(), pkginfo
    # while the x86_64 pacman sees the x86_64 package
    native = PacmanClient(tmp_path / "native", {"e2e": server.url + "/$repo/$arch"})
    native.sync_db()
    native.install("e2e-multi-bin")
    assert (tmp_path / "native/usr/share/e2e-multi/built-on").read_text() == \
        "CARCH=x86_64 uname=x86_64\n"
