"""Build agents: registration with their own tokens, the list with last-seen times, online
and offline and the builds each holds; agent labels on targets and manifests deciding which
agent claims a build; and the poll that waits for a build (wait=N) on a real server."""

from __future__ import annotations

import itertools
import json
import threading
import urllib.request
import uuid
from typing import Any

import pytest

from conftest import API_KEY, ServerProcess
from http_clients import KEY, InProcessClient, Response
from vieter_lite import agents
from vieter_lite.errors import Invalid
from vieter_lite.models import Agent, AgentSpec
from vieter_lite.web.agent import WAIT_HEADER

JSON_KEY = {**KEY, "Content-Type": "application/json"}
_counter = itertools.count()


@pytest.fixture
def u() -> str:
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def client(webapp, services) -> InProcessClient:
    return InProcessClient(webapp, services, KEY)


def send(c, method: str, path: str, body: Any = None, key: str = API_KEY) -> Response:
    data = None if body is None else json.dumps(body).encode()
    return c.request(method, path, data, {"X-Api-Key": key, "Content-Type": "application/json"})


def ok(resp: Response, status: int = 200) -> Any:
    assert resp.status == status, resp
    return resp.json() if resp.body else None


def token(c, name: str, scopes: list[str], **extra: Any) -> str:
    made = ok(send(c, "POST", "/api/v2/tokens", {"name": name, "scopes": scopes, **extra}), 201)
    return str(made["secret"])


def register(c, key: str, name: str, archs: list[str], labels: dict[str, str] | None = None,
             status: int = 201, **extra: Any) -> Any:
    body = {"name": name, "archs": archs, "labels": labels or {}, "version": "1.2.3",
            "slots": 2, "poll_period": 10, **extra}
    return ok(send(c, "POST", "/api/v2/agents", body, key), status)


def poll(c, arch: str, key: str = API_KEY, agent: str | None = None, extra: str = "") -> Response:
    query = f"arch={arch}&max=1&jobs=v2" + (f"&agent={agent}" if agent else "") + extra
    return c.request("GET", f"/api/v1/jobs/poll?{query}", None, {"X-Api-Key": key})


def claimed(resp: Response) -> list[int]:
    assert resp.status == 200, resp
    return [job["build_id"] for job in resp.json()["data"]]


def add_target(c, repo: str, arch: str, **extra: Any) -> int:
    body = {"kind": "git", "url": f"https://example.invalid/{repo}.git", "repo": repo,
            "arch": [arch], "review": "never", "schedule": "0 3 1 1", **extra}
    return int(ok(send(c, "POST", "/api/v2/targets", body), 201)["id"])


def queue(c, target_id: int, arch: str) -> int:
    return int(ok(c.request("POST", f"/api/v1/jobs/queue?target={target_id}&arch={arch}"
                                    "&force=true"))["data"])


# -- pure rules ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, labels", [
    ("", {}),
    ("emulated=true", {"emulated": "true"}),
    (" gpu = yes , emulated=true,", {"gpu": "yes", "emulated": "true"}),
    ("example.org/disk=ssd", {"example.org/disk": "ssd"}),
    ("empty=", {"empty": ""}),
])
def test_agent_labels_from_the_setting(text, labels):
    assert agents.parse_labels(text) == labels


@pytest.mark.parametrize("text, message", [
    ("emulated", "is not key=value"),
    ("=true", "is not a label key"),
    ("bad key=1", "is not a label key"),
    ("k=v v", "is not a label value"),
    ("k=1,k=2", "given twice"),
])
def test_bad_agent_label_settings_name_the_item(text, message):
    with pytest.raises(ValueError, match=message):
        agents.parse_labels(text)


SPEC = AgentSpec(name="pi-4", archs=("aarch64",), labels={"emulated": "true"}, version="1.0",
                 slots=2, poll_period=30)


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"), ({"name": "a b"}, "name"), ({"name": "x" * 65}, "name"),
    ({"archs": ()}, "archs"), ({"archs": ("any",)}, "archs"), ({"archs": ("x/y",)}, "archs"),
    ({"archs": "aarch64"}, "archs"),
    ({"labels": {"bad key": "1"}}, "labels"), ({"labels": {"k": "v v"}}, "labels.k"),
    ({"labels": ["k=v"]}, "labels"),
    ({"version": "1 0"}, "version"), ({"version": "v" * 65}, "version"),
    ({"slots": 0}, "slots"), ({"slots": True}, "slots"), ({"slots": "2"}, "slots"),
    ({"poll_period": 0}, "poll_period"), ({"poll_period": 86401}, "poll_period"),
])
def test_an_invalid_agent_names_the_field(change, field):
    spec = AgentSpec(**{**SPEC.__dict__, **change})
    with pytest.raises(Invalid) as caught:
        agents.validate(spec)
    assert caught.value.field == field


def test_archs_are_kept_once_in_order():
    spec = AgentSpec(**{**SPEC.__dict__, "archs": ("aarch64", "armv7h", "aarch64")})
    assert agents.validate(spec).archs == ("aarch64", "armv7h")


@pytest.mark.parametrize("unseen, is_online", [(0, True), (89, True), (90, True), (91, False),
                                                (10_000, False)])
def test_an_agent_is_offline_after_three_poll_periods_unseen(unseen, is_online):
    agent = Agent(id=1, name="a", archs=("x86_64",), labels={}, version="", slots=1,
                  poll_period=30, token_id=None, registered_at=0, last_seen_at=1000)
    assert agents.online(agent, 1000 + unseen) is is_online


# -- registration and the list ---------------------------------------------------------------

def test_an_agent_registers_with_its_token_and_is_listed(client, services, u):
    key = token(client, f"pi{u}", ["agent"], archs=["aarch64"])
    made = register(client, key, f"pi{u}", ["aarch64"], {"emulated": "true"})
    assert (made["name"], made["archs"], made["labels"], made["version"], made["slots"],
            made["poll_period"], made["status"], made["builds"]) == \
        (f"pi{u}", ["aarch64"], {"emulated": "true"}, "1.2.3", 2, 10, "online", [])
    assert made["last_seen_at"] == made["registered_at"] and made["token_id"] is not None
    listed = ok(send(client, "GET", "/api/v2/agents?label_selector=emulated%3Dtrue"))
    assert [a["name"] for a in listed["resources"]] == [f"pi{u}"]
    assert ok(send(client, "GET", "/api/v2/agents?archs=x86_64"))["resources"] == []
    assert ok(send(client, "GET", f"/api/v2/agents/{made['id']}"))["name"] == f"pi{u}"
    # a reader of builds sees agents; the agent's own token registers but does not read
    reader = token(client, f"r{u}", ["builds:read"])
    assert ok(send(client, "GET", "/api/v2/agents", key=reader))["pagination"][
        "total_results"] == 1
    assert send(client, "GET", "/api/v2/agents", key=key).status == 403
    assert send(client, "POST", "/api/v2/agents", {"name": "x", "archs": ["aarch64"]},
                key=reader).status == 403


def test_a_name_belongs_to_the_token_that_registered_it(client, u):
    first = token(client, f"a{u}", ["agent"])
    second = token(client, f"b{u}", ["agent"])
    made = register(client, first, f"box{u}", ["x86_64"])
    again = register(client, first, f"box{u}", ["x86_64"], {"disk": "ssd"}, status=200,
                     slots=4)
    assert (again["id"], again["labels"], again["slots"]) == (made["id"], {"disk": "ssd"}, 4)
    refused = send(client, "POST", "/api/v2/agents", {"name": f"box{u}", "archs": ["x86_64"]},
                   key=second)
    assert refused.status == 409 and "another token" in refused.body.decode()
    assert poll(client, "x86_64", second, f"box{u}").status == 403
    # once the first token is revoked, the name is free for another
    first_id = next(t["id"] for t in ok(send(client, "GET", "/api/v2/tokens"))["resources"]
                    if t["name"] == f"a{u}")
    ok(send(client, "DELETE", f"/api/v2/tokens/{first_id}"), 204)
    taken = register(client, second, f"box{u}", ["x86_64"], status=200)
    assert taken["id"] == made["id"] and taken["token_id"] != made["token_id"]


def test_an_agent_registers_only_archs_its_token_may_use(client, u):
    key = token(client, f"t{u}", ["agent"], archs=["aarch64"])
    refused = send(client, "POST", "/api/v2/agents", {"name": f"n{u}", "archs": ["x86_64"]},
                   key=key)
    assert refused.status == 403 and "x86_64" in refused.body.decode()


@pytest.mark.parametrize("body, field", [
    ({"archs": ["x86_64"]}, "name"), ({"name": "n"}, "archs"),
    ({"name": "n", "archs": ["x86_64"], "colour": "red"}, "colour"),
    ({"name": "n", "archs": ["x86_64"], "labels": {"k": 1}}, "labels.k"),
    ({"name": "n", "archs": ["x86_64"], "slots": -1}, "slots"),
])
def test_a_bad_registration_is_a_422_naming_the_field(client, body, field):
    resp = send(client, "POST", "/api/v2/agents", body)
    assert resp.status == 422, resp
    assert resp.json()["errors"][0]["detail"].startswith(field), resp


def test_offline_after_three_poll_periods_unseen_and_seen_again_by_a_poll(client, services,
                                                                          u):
    now = [1_900_000_000.0]
    services.agents.clock = lambda: now[0]
    made = register(client, API_KEY, f"s{u}", ["x86_64"], poll_period=10)
    now[0] += 30
    assert ok(send(client, "GET", f"/api/v2/agents/{made['id']}"))["status"] == "online"
    now[0] += 1
    gone = ok(send(client, "GET", f"/api/v2/agents/{made['id']}"))
    assert gone["status"] == "offline" and gone["last_seen_at"] == made["last_seen_at"]
    assert claimed(poll(client, "x86_64", agent=f"s{u}")) == []
    back = ok(send(client, "GET", f"/api/v2/agents/{made['id']}"))
    assert back["status"] == "online" and back["last_seen_at"] > made["last_seen_at"]


def test_an_agent_lists_the_builds_it_holds(client, u):
    register(client, API_KEY, f"h{u}", [f"h{u}"])
    target = add_target(client, f"h{u}", f"h{u}")
    build = queue(client, target, f"h{u}")
    assert claimed(poll(client, f"h{u}", agent=f"h{u}")) == [build]
    agent = ok(send(client, "GET", f"/api/v2/agents?names=h{u}"))["resources"][0]
    assert [b["id"] for b in agent["builds"]] == [build]
    shown = ok(send(client, "GET", f"/api/v2/builds/{build}"))
    assert (shown["agent_id"], shown["runner"]) == (agent["id"], f"h{u}")
    ok(client.request("POST", f"/api/v1/builds/{build}/finish?exitCode=0"))
    assert ok(send(client, "GET", f"/api/v2/agents/{agent['id']}"))["builds"] == []


def test_a_build_handed_back_names_no_agent_until_the_next_claims_it(client, u):
    register(client, API_KEY, f"b{u}", [f"b{u}"])
    register(client, API_KEY, f"c{u}", [f"b{u}"])
    build = queue(client, add_target(client, f"b{u}", f"b{u}"), f"b{u}")
    assert claimed(poll(client, f"b{u}", agent=f"b{u}")) == [build]
    ok(client.request("POST", f"/api/v1/builds/{build}/release"))
    shown = ok(send(client, "GET", f"/api/v2/builds/{build}"))
    assert (shown["status"], shown["agent_id"], shown["runner"]) == ("queued", None, None)
    assert claimed(poll(client, f"b{u}", agent=f"c{u}")) == [build]
    other = ok(send(client, "GET", f"/api/v2/agents?names=c{u}"))["resources"][0]
    assert ok(send(client, "GET", f"/api/v2/builds/{build}"))["agent_id"] == other["id"]


def test_polling_as_an_agent_that_is_not_registered_or_not_for_that_arch(client, u):
    register(client, API_KEY, f"p{u}", ["x86_64"])
    missing = poll(client, "x86_64", agent=f"nobody{u}")
    assert missing.status == 404 and "not registered" in missing.json()["message"]
    wrong = poll(client, "aarch64", agent=f"p{u}")
    assert wrong.status == 400 and "registered for x86_64" in wrong.json()["message"]


def test_a_forgotten_agent_registers_again(client, u):
    made = register(client, API_KEY, f"f{u}", ["x86_64"])
    ok(send(client, "DELETE", f"/api/v2/agents/{made['id']}"), 204)
    assert send(client, "GET", f"/api/v2/agents/{made['id']}").status == 404
    assert poll(client, "x86_64", agent=f"f{u}").status == 404
    assert register(client, API_KEY, f"f{u}", ["x86_64"])["id"] != made["id"]


# -- agent labels on targets and manifests ---------------------------------------------------

def test_a_build_that_asks_for_agent_labels_goes_only_to_an_agent_that_has_them(client, u):
    arch = f"l{u}"
    register(client, API_KEY, f"plain{u}", [arch])
    register(client, API_KEY, f"other{u}", [arch], {"gpu": "no"})
    register(client, API_KEY, f"gpu{u}", [arch], {"gpu": "yes", "disk": "ssd"})
    target = add_target(client, f"l{u}", arch, agent_labels={"gpu": "yes"})
    assert ok(send(client, "GET", f"/api/v2/targets/{target}"))["agent_labels"] == \
        {"gpu": "yes"}
    build = queue(client, target, arch)
    assert claimed(poll(client, arch)) == []              # an agent that did not register
    assert claimed(poll(client, arch, agent=f"plain{u}")) == []
    assert claimed(poll(client, arch, agent=f"other{u}")) == []
    assert claimed(poll(client, arch, agent=f"gpu{u}")) == [build]
    assert ok(send(client, "GET", f"/api/v2/builds/{build}"))["agent_labels"] == {"gpu": "yes"}


def test_editing_a_targets_agent_labels_changes_its_queued_builds(client, u):
    arch = f"e{u}"
    register(client, API_KEY, f"plain{u}", [arch])
    target = add_target(client, f"e{u}", arch, agent_labels={"emulated": "false"})
    build = queue(client, target, arch)
    assert claimed(poll(client, arch, agent=f"plain{u}")) == []
    ok(send(client, "PATCH", f"/api/v2/targets/{target}", {"agent_labels": {}}))
    assert claimed(poll(client, arch, agent=f"plain{u}")) == [build]


def test_a_manifest_asks_for_agent_labels(client, u):
    arch = f"m{u}"
    register(client, API_KEY, f"plain{u}", [arch])
    register(client, API_KEY, f"emu{u}", [arch], {"emulated": "true"})
    manifest = (f"repo: m{u}\narch: {arch}\nsource:\n  pkgbuild: 'pkgname=x'\n"
                "agent_labels:\n  emulated: 'true'\n")
    build = ok(send(client, "POST", "/api/v2/builds", {"manifest": manifest}), 201)
    assert build["agent_labels"] == {"emulated": "true"}
    assert claimed(poll(client, arch, agent=f"plain{u}")) == []
    assert claimed(poll(client, arch, agent=f"emu{u}")) == [build["id"]]


@pytest.mark.parametrize("labels, field", [({"bad key": "x"}, "agent_labels"),
                                           ({"k": "a b"}, "agent_labels.k"),
                                           (["k=v"], "agent_labels")])
def test_bad_agent_labels_are_a_422_naming_the_field(client, u, labels, field):
    body = {"kind": "git", "url": "https://example.invalid/x.git", "repo": f"b{u}",
            "agent_labels": labels}
    resp = send(client, "POST", "/api/v2/targets", body)
    assert resp.status == 422 and resp.json()["errors"][0]["detail"].startswith(field), resp
    manifest = f"repo: b{u}\nsource:\n  pkgbuild: x\nagent_labels: {json.dumps(labels)}\n"
    resp = send(client, "POST", "/api/v2/builds", {"manifest": manifest})
    assert resp.status == 422, resp
    assert resp.json()["errors"][0]["detail"].startswith(f"manifest.{field}"), resp


# -- the poll that waits for a build (a real server) -----------------------------------------

def _get(url: str, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return resp.status, dict(resp.headers), json.load(resp)


def _call(url: str, method: str) -> Any:
    request = urllib.request.Request(url, method=method, headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)["data"]


@pytest.fixture
def waiting_server(tmp_path):
    """A server with two HTTP threads, so waiting polls would take all of them."""
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_THREADS": "2",
                                                       "VIETER_GLOBAL_SCHEDULE": "0 3 1 1"})
    yield proc.start()
    if proc.proc is not None and proc.proc.poll() is None:
        assert proc.stop() == 0, proc.log()


def _poll_in_thread(url: str, results: list, wait: int = 15) -> threading.Thread:
    def run() -> None:
        try:
            results.append(_get(f"{url}/api/v1/jobs/poll?arch=x86_64&max=1&wait={wait}"))
        except OSError as exc:
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_poll_with_wait_claims_a_build_queued_while_it_waits(waiting_server):
    url = waiting_server.url
    target = _call(f"{url}/api/v1/targets?kind=git&url=https://example.invalid/w.git&repo=w",
                   "POST")
    # without wait (Vieter's agents): an empty answer at once, without the header
    status, headers, body = _get(f"{url}/api/v1/jobs/poll?arch=x86_64&max=1")
    assert (status, body["data"], WAIT_HEADER in headers) == (200, [], False)
    results: list = []
    thread = _poll_in_thread(url, results)
    # the poll is waiting (it answered nothing yet) when the build is queued
    thread.join(0.5)
    assert results == []
    build = _call(f"{url}/api/v1/jobs/queue?target={target}&arch=x86_64", "POST")
    thread.join(30)
    status, headers, body = results[0]
    assert [job["build_id"] for job in body["data"]] == [build]
    assert headers[WAIT_HEADER] == "15"


def test_waiting_polls_leave_the_servers_threads_to_the_others(waiting_server):
    url = waiting_server.url
    results: list = []
    threads = [_poll_in_thread(url, results) for _ in range(5)]
    threads[-1].join(0.5)
    # five polls wait on a server of two threads; it still answers everything else
    status, _, _ = _get(f"{url}/health", timeout=10)
    assert status == 200 and results == []
    target = _call(f"{url}/api/v1/targets?kind=git&url=https://example.invalid/t.git&repo=t",
                   "POST")
    assert _call(f"{url}/api/v1/targets/{target}", "GET")["id"] == target
    # a stop ends the waiting polls at once (each with nothing), and the server exits cleanly
    assert waiting_server.stop() == 0, waiting_server.log()
    for thread in threads:
        thread.join(10)
    assert len(results) == 5
    assert all(isinstance(r, OSError) or r[2]["data"] == [] for r in results), results
