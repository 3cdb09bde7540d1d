"""The agent's poller against a real server: it registers with its token, claims the builds
its labels allow, lets the server wait for a build and polls again at once, registers again
when the server forgot it, polls anonymously when its name is taken, and hands back a build
that came after a stop."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest

from conftest import API_KEY, ServerProcess
from vieter_lite.agent.poller import Identity, Poller
from vieter_lite.client import Client

_counter = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("poller") / "data",
                         env_extra={"VIETER_GLOBAL_SCHEDULE": "0 3 1 1"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def u() -> str:
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


def admin(server: ServerProcess) -> Client:
    return Client(server.url, API_KEY)


def target(server: ServerProcess, arch: str, labels: dict[str, str] | None = None) -> int:
    body = {"kind": "git", "url": f"https://example.invalid/{uuid.uuid4().hex}.git",
            "repo": "poller", "arch": [arch], "review": "never", "schedule": "0 3 1 1",
            "agent_labels": labels or {}}
    return int(admin(server).call_v2("POST", "/api/v2/targets", body=body)["id"])


def poller(server: ServerProcess, name: str, arch: str, key: str = API_KEY,
           labels: dict[str, str] | None = None, period: int = 10) -> Poller:
    return Poller(Client(server.url, key), Identity(name=name, arch=arch, labels=labels or {},
                                                    version="test", slots=1,
                                                    poll_period=period))


def ids(jobs: list[dict]) -> list[int]:
    return [job["build_id"] for job in jobs]


def test_it_registers_and_claims_only_what_its_labels_allow(server, u):
    arch = f"p{u}"
    build = admin(server).queue_build(target(server, arch, {"gpu": "yes"}), arch)
    plain, gpu = poller(server, f"plain{u}", arch), poller(server, f"gpu{u}", arch,
                                                           labels={"gpu": "yes"})
    stop = threading.Event()
    assert plain.poll(0, stop) == [] and plain.registered == f"plain{u}"
    assert ids(gpu.poll(1, stop)) == [build]
    agents = {a["name"]: a for a in admin(server).list_agents()}
    assert agents[f"gpu{u}"]["labels"] == {"gpu": "yes"}
    assert [b["id"] for b in agents[f"gpu{u}"]["builds"]] == [build]
    assert agents[f"plain{u}"]["builds"] == []


def test_a_waiting_poll_gets_a_build_queued_meanwhile(server, u):
    arch = f"w{u}"
    target_id = target(server, arch)
    agent = poller(server, f"w{u}", arch)
    agent.register()
    found: list = []
    thread = threading.Thread(target=lambda: found.append(agent.poll(1, threading.Event())))
    thread.start()
    thread.join(0.5)
    assert found == []          # it waits
    build = admin(server).queue_build(target_id, arch)
    thread.join(30)
    assert ids(found[0]) == [build] and agent.waits is True


def test_a_stop_ends_a_waiting_poll_and_what_came_after_it_goes_back(server, u):
    arch = f"s{u}"
    target_id = target(server, arch)
    agent = poller(server, f"s{u}", arch, period=20)
    agent.register()
    stop = threading.Event()
    found: list = []
    thread = threading.Thread(target=lambda: found.append(agent.poll(1, stop)))
    thread.start()
    thread.join(0.5)
    stop.set()
    thread.join(5)
    assert found == [[]] and agent.waits is False
    # the server still waits on that request: the build it hands out there goes back
    build = admin(server).queue_build(target_id, arch)
    for _ in range(100):
        shown = admin(server).get_build_v2(build)
        if shown["status"] == "queued" and shown["started_at"] is None and \
                b"handed the build back" in admin(server).build_log(build):
            break
        threading.Event().wait(0.1)
    else:
        raise AssertionError(f"build {build} did not come back: {shown}")
    assert ids(poller(server, f"s2{u}", arch).poll(1, threading.Event())) == [build]


def test_it_registers_again_when_the_server_forgot_it(server, u):
    arch = f"f{u}"
    agent = poller(server, f"f{u}", arch)
    stop = threading.Event()
    agent.poll(0, stop)
    first = next(a for a in admin(server).list_agents() if a["name"] == f"f{u}")
    admin(server).call_v2("DELETE", f"/api/v2/agents/{first['id']}")
    assert agent.poll(0, stop) == [] and agent.registered is None
    agent.poll(0, stop)
    again = next(a for a in admin(server).list_agents() if a["name"] == f"f{u}")
    assert agent.registered == f"f{u}" and again["id"] != first["id"]


def test_a_name_another_token_holds_leaves_it_polling_without_labels(server, u):
    arch = f"t{u}"
    mine = admin(server).add_token({"name": f"mine{u}", "scopes": ["agent"]})["secret"]
    theirs = admin(server).add_token({"name": f"theirs{u}", "scopes": ["agent"]})["secret"]
    assert poller(server, f"t{u}", arch, mine).register()
    plain = admin(server).queue_build(target(server, arch), arch)
    labelled = admin(server).queue_build(target(server, arch, {"gpu": "yes"}), arch)
    other = poller(server, f"t{u}", arch, theirs, labels={"gpu": "yes"}, period=1)
    assert ids(other.poll(2, threading.Event())) == [plain]
    assert (other.registered, other.anonymous) == (None, True)
    assert labelled not in ids(other.poll(2, threading.Event()))


def test_a_server_that_does_not_wait_is_polled_on_the_agents_period(tmp_path, u):
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_MAX_POLL_WAIT": "0"}).start()
    try:
        agent = poller(proc, f"n{u}", "x86_64")
        assert agent.poll(1, threading.Event()) == []
        assert agent.registered == f"n{u}" and agent.waits is False
    finally:
        assert proc.stop() == 0, proc.log()
