"""The agent's reports outlive a server restart: the result of a build and its packages'
uploads are tried again while the server cannot be reached, instead of leaving the build
running until its lease runs out (and then building it again) or failing a good build."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite.agent import daemon
from vieter_lite.agent.control import BuildControl
from vieter_lite.agent.daemon import Agent, AgentSettings, LogStream, again
from vieter_lite.client import Client, ClientError

PKGBUILD = "pkgname=x\npkgver=1\npkgrel=1\narch=(any)\npackage() { :; }\n"


@pytest.fixture
def server(tmp_path):
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def restart_soon(server: ServerProcess) -> threading.Thread:
    """Stop the server now; start it again on the same port and data dir in a moment."""
    server.stop()

    def start() -> None:
        time.sleep(2)
        server.start(timeout=120)

    thread = threading.Thread(target=start)
    thread.start()
    return thread


def claimed_build(server: ServerProcess) -> tuple[int, str]:
    admin = Client(server.url, API_KEY)
    manifest = json.dumps({"repo": "rep", "arch": "x86_64", "source": {"pkgbuild": PKGBUILD}})
    build_id = admin.submit_build({"manifest": manifest, "execute": True})["id"]
    jobs = admin.poll_jobs("x86_64", 1)
    assert [j["build_id"] for j in jobs] == [build_id]
    return build_id, jobs[0]["token"]


def test_a_result_reported_while_the_server_restarts_ends_the_build(server):
    build_id, token = claimed_build(server)
    api = Client(server.url, token)
    agent = Agent(AgentSettings(server.url, API_KEY, "x86_64"), None, None)  # type: ignore[arg-type]
    control = BuildControl(api, build_id, kill=lambda cid: None)
    stream = LogStream(api, build_id)
    restarting = restart_soon(server)
    agent._end(api, build_id, stream, control, False, 0, int(time.time()))
    restarting.join()
    build = Client(server.url, API_KEY).get_build_v2(build_id)
    assert build["status"] == "success"  # not running until its lease runs out


def test_a_package_uploaded_while_the_server_restarts_is_published(server, tmp_path):
    build_id, token = claimed_build(server)
    api = Client(server.url, token)
    package = make_synthetic_package(tmp_path / "x-1-1-any.pkg.tar.zst",
                                     {"pkgname": "x", "pkgver": "1-1", "arch": "any"})
    out: list[bytes] = []
    stream = LogStream(api, build_id, echo=out.append)
    restarting = restart_soon(server)
    try:
        code = Agent._publish(api, "rep", [package], stream)
    finally:
        restarting.join()
        stream.close()
    assert code == 0, b"".join(out).decode()
    names = [p["name"] for p in Client(server.url, API_KEY).list_packages("rep", "x86_64")]
    assert names == ["x"]


def test_again_gives_up_on_a_refusal_at_once_and_on_no_answer_after_its_time():
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise ClientError("no", status=409)

    with pytest.raises(ClientError):
        again(refused, "x", sleep=lambda s: None)
    assert len(calls) == 1
    now = [0.0]

    def unreachable() -> None:
        now[0] += 10
        raise ClientError("down", status=0)

    with pytest.raises(ClientError, match="down"):
        again(unreachable, "x", retry_for=daemon.RETRY_FOR, sleep=lambda s: None,
              clock=lambda: now[0])
    assert now[0] >= daemon.RETRY_FOR


def test_a_task_reported_while_the_server_restarts_is_running_on_the_server(server):
    """(found by the soak: a build ended `success` with its task publish `skipped`)"""
    build_id, token = claimed_build(server)
    api = Client(server.url, token)
    stream = LogStream(api, build_id)
    restarting = restart_soon(server)
    try:
        stream.start_task("setup")
    finally:
        restarting.join()
        stream.close()
    build = Client(server.url, API_KEY).get_build_v2(build_id)
    assert {t["name"]: t["status"] for t in build["tasks"]}["setup"] == "running"
