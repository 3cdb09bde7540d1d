"""The agent's side of dependency order: the build container prints what makepkg reads of
the PKGBUILD between marker lines; the log stream hands the first such .SRCINFO over (cut
anywhere between chunks) and still sends every line to the server; the agent PUTs it and
stops the build when the server sends it back to the queue. Against a real server."""

from __future__ import annotations

import pytest

from conftest import API_KEY, ServerProcess
from test_dependencies import srcinfo
from vieter_lite.agent import script
from vieter_lite.agent.control import BuildControl
from vieter_lite.agent.daemon import MAX_SRCINFO, Agent, LogStream
from vieter_lite.client import Client


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("agent-srcinfo") / "data").start()
    yield proc
    assert proc.stop() == 0, proc.log()


def claimed(server: ServerProcess, repo: str, url: str) -> tuple[Client, int, str]:
    admin = Client(server.url, API_KEY)
    target_id = admin.add_target(url, repo, arch="x86_64")
    build_id = admin.queue_build(target_id, "x86_64")
    [job] = [j for j in admin.poll_jobs("x86_64", 5) if j["build_id"] == build_id]
    return admin, build_id, job["token"]


def test_the_stream_hands_over_the_first_srcinfo_and_sends_every_line(server):
    admin, build_id, token = claimed(server, "s1", "https://example.invalid/s1.git")
    told: list[str] = []
    stream = LogStream(Client(server.url, token), build_id, on_srcinfo=told.append)
    text = srcinfo("s1", depends=["a>=1"])
    printed = (f"+ makepkg --printsrcinfo\n{script.SRCINFO_MARKER} begin\n{text}"
               f"{script.SRCINFO_MARKER} end\n+ pacman -Syu\n{script.SRCINFO_MARKER} begin\n"
               f"pkgbase = later\n{script.SRCINFO_MARKER} end\n").encode()
    for at in range(0, len(printed), 7):   # chunks cut lines anywhere
        stream.feed(printed[at:at + 7])
    stream.close()
    assert told == [text]
    assert admin.log_content(build_id)[0].decode() == printed.decode()


def test_a_srcinfo_that_never_ends_is_cut_at_the_limit(server):
    told: list[str] = []
    stream = LogStream(Client(server.url, "nobody"), 999999, on_srcinfo=told.append)
    stream.abandon()
    stream.feed(f"{script.SRCINFO_MARKER} begin\n".encode() + b"\tdepends = x\n" * 10000)
    stream.close()
    [text] = told
    assert MAX_SRCINFO < len(text) < MAX_SRCINFO + 100


def test_the_agent_stops_a_build_the_server_sends_back(server):
    admin, first, token_a = claimed(server, "s2", "https://example.invalid/a.git")
    api_a = Client(server.url, token_a)
    assert api_a.put_srcinfo(first, srcinfo("a")) == {"action": "build"}
    _, build_b, token_b = claimed(server, "s2", "https://example.invalid/b.git")
    killed: list[str] = []
    api_b = Client(server.url, token_b)
    control = BuildControl(api_b, build_b, killed.append)
    control.register("the-build-container")
    stream = LogStream(api_b, build_b)
    Agent._srcinfo(api_b, build_b, srcinfo("b", makedepends=["a"]), stream, control)
    assert control.stopped.is_set() and killed == ["the-build-container"]
    assert control.reason == (f"the server sent it back to the queue to wait for build(s) "
                              f"{first} of its dependencies")
    assert admin.get_build(build_b)["status"] == "queued"

    # a refusal (here: not a .SRCINFO) is a line in the log, and the build goes on
    _, build_c, token_c = claimed(server, "s2", "https://example.invalid/c.git")
    api_c = Client(server.url, token_c)
    control = BuildControl(api_c, build_c, killed.append)
    stream = LogStream(api_c, build_c)
    Agent._srcinfo(api_c, build_c, "nothing makepkg would print\n", stream, control)
    stream.close()
    assert not control.stopped.is_set()
    assert "vieter-lite agent: the server did not take what makepkg read of the PKGBUILD: " \
           "srcinfo: not makepkg's .SRCINFO" in admin.log_content(build_c)[0].decode()
