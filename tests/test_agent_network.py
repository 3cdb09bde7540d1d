"""build_network: with a private network a PKGBUILD cannot reach services on the host's
loopback, while the build still reaches the server on a LAN address (skip check, pacman)."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import ROOT, ServerProcess
from test_agent_e2e import Api, add_target, db_entries, pkgbuild, pytestmark, queue, start_agent, tasks, wait_for  # noqa: F401


def lan_address() -> str | None:
    """This host's first global IPv4 address (not loopback)."""
    done = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                          capture_output=True, text=True)
    for line in done.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    return None


class LoopbackService:
    """A TCP service on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)  # the request (closing unread would reset the connection)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\nloopback secret\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def probe(port: int) -> str:
    """build() lines that try the host's loopback service directly and through slirp4netns'
    host address, and print what they got."""
    return (f'for host in 127.0.0.1 10.0.2.2; do '
            f'if out=$(curl -sS -m 5 http://$host:{port}/ 2>&1); then echo "reached $host: $out"; '
            f'else echo "no way to $host:{port}: $out"; fi; done')


@pytest.fixture(scope="module")
def lan():
    """A server listening on every address, a PKGBUILD server on the LAN address, and a
    service on the host's loopback that builds must not reach."""
    address = lan_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    base = Path(tempfile.mkdtemp(prefix="vieter-net-", dir="/tmp"))
    base.chmod(0o755)
    service = LoopbackService()
    server = ServerProcess(base / "server", env_extra={
        "VIETER_BASE_IMAGE": "localhost/vieter-lite-test-base:latest", "VIETER_HOST": "0.0.0.0"})
    web_root = base / "web"
    web_root.mkdir()
    web = http.server.ThreadingHTTPServer(
        ("0.0.0.0", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=web_root))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    agents: list[subprocess.Popen] = []
    try:
        server.start()
        shutil.copytree(ROOT / "vieter_lite", base / "code" / "vieter_lite",
                        ignore=shutil.ignore_patterns("__pycache__"))
        lan_url = f"http://{address}:{server.port}"
        for arch, network in (("x86_64", "private"), ("e2ehost", "host")):
            agents.append(start_agent(base, server, arch, network=network, address=lan_url))
        yield {"api": Api(server.url), "service": service, "base": base, "web_root": web_root,
               "web_url": f"http://{address}:{web.server_address[1]}", "lan_url": lan_url}
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait(60)
        if server.proc is not None:
            server.stop()
        web.shutdown()
        service.close()
        shutil.rmtree(base, ignore_errors=True)


def build(lan, name: str, arch: str) -> tuple[dict, str]:
    api = lan["api"]
    (lan["web_root"] / f"{name}.PKGBUILD").write_text(
        pkgbuild(name, body=probe(lan["service"].port),
                 bin_arch="x86_64" if arch == "x86_64" else "any"))
    target = add_target(api, "url", f"{lan['web_url']}/{name}.PKGBUILD", arch=arch)
    builds, _ = wait_for(api, [queue_arch(api, target, arch)], timeout=240)
    (done,) = builds.values()
    return done, api.log(done["id"])


def queue_arch(api: Api, target: int, arch: str) -> int:
    return api.ok("POST", f"/api/v1/jobs/queue?target={target}&arch={arch}")  # type: ignore


def test_a_private_build_network_keeps_the_host_loopback_out_of_reach(lan):
    api = lan["api"]
    before = lan["service"].accepted
    done, log = build(lan, "e2e-private", "x86_64")
    assert done["status"] == "success", log[-3000:]
    assert "no way to 127.0.0.1" in log and "no way to 10.0.2.2" in log, log[-3000:]
    assert "reached" not in log and "loopback secret" not in log
    assert lan["service"].accepted == before
    # the build still reached the server on its LAN address: pacman's repo, publishing
    # (from the agent), and the skip check of the next build
    assert "e2e-private-bin-1.0-1" in db_entries(api)
    again, _ = wait_for(api, [queue_arch(api, done["target_id"], "x86_64")])
    (skipped,) = again.values()
    assert tasks(skipped)["build"] == "skipped", api.log(skipped["id"])


def test_the_host_network_reaches_the_loopback_service(lan):
    """The same probe with build_network = host: the service is reachable (the probe works)."""
    before = lan["service"].accepted
    done, log = build(lan, "e2e-hostnet", "e2ehost")
    assert done["status"] == "success", log[-3000:]
    assert "reached 127.0.0.1: loopback secret" in log, [
        line for line in log.splitlines() if "way" in line or "reached" in line]
    assert lan["service"].accepted > before
