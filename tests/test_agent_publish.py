"""The agent's publish step against a real server: every refused upload fails the build."""

from __future__ import annotations

import pytest

from conftest import API_KEY, ServerProcess
from vieter_lite.agent.daemon import Agent, LogStream
from vieter_lite.client import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("publish") / "data").start()
    yield proc
    proc.stop()


def publish(server: ServerProcess, key: str, files) -> tuple[int, str]:
    out: list[bytes] = []
    api = Client(server.url, key)
    stream = LogStream(api, 999999, echo=out.append)  # no such build: task/log reports fail
    try:
        code = Agent._publish(api, "pub", files, stream)
    finally:
        stream.close()
    return code, b"".join(out).decode()


def test_a_refused_upload_fails_the_build(server, tmp_path):
    junk = tmp_path / "junk-1-1-any.pkg.tar.zst"
    junk.write_bytes(b"not a package")
    for key in (API_KEY, "not-the-token"):
        code, log = publish(server, key, [junk])
        assert code == 1
        assert "+ publish junk-1-1-any.pkg.tar.zst" in log
        assert "error: publishing junk-1-1-any.pkg.tar.zst failed:" in log


def test_no_package_fails_the_build(server):
    code, log = publish(server, API_KEY, [])
    assert code == 1 and "error: makepkg produced no package" in log
