"""What the dashboard reads: /api/v2/info, /api/v2/whoami, the public dashboard (callers
without a key read public builds only, nothing else), the builds list's
since_last_success and /api/v2/stats/builds. In-process (webtest, a fresh data dir with
public_dashboard = true) and against one real server process with it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import ServerProcess, make_config
from http_clients import KEY, InProcessClient, client_for
from test_api_v2 import (  # noqa: F401 (u is a fixture)
    QUIET_SCHEDULE,
    add_target,
    add_token,
    bearer,
    cf_error,
    ok,
    send,
    u,
)

NO_KEY: dict[str, str] = {}
WEBHOOK = "https://hooks.example.invalid/secret-path"


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("dashboard") / "data",
                         env_extra={"VIETER_GLOBAL_SCHEDULE": QUIET_SCHEDULE,
                                    "VIETER_PUBLIC_DASHBOARD": "true"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


@pytest.fixture
def dashboard_services(tmp_path):
    from vieter_lite.services import build_services

    svc = build_services(make_config(tmp_path, public_dashboard=True))
    yield svc
    svc.db.close()


@pytest.fixture(params=["inprocess", "server"])
def client(request):
    return client_for(request, "dashboard_services", "dashboard_server")


def anon(c, path: str, method: str = "GET", body: Any = None):
    data = None if body is None else json.dumps(body).encode()
    return c.request(method, path, data, NO_KEY)


def submit(c, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
    return ok(send(c, "POST", "/api/v2/builds", body, headers), 201)


def finished(c, target_id: int, code: int, start: int = 1_790_000_000) -> int:
    """A build log posted as an agent does through /api/v1 (a finished build)."""
    path = (f"/api/v1/logs?target={target_id}&arch=x86_64&startTime={start}"
            f"&endTime={start + 60}&exitCode={code}")
    return ok(c.request("POST", path, b"a log\n"))["data"]


def seed(c, u: str) -> dict[str, Any]:
    """A target with a public failed build (with a log) and a private build of alice's;
    a public manifest build with a webhook and a private one."""
    alice = bearer(add_token(c, f"alice{u}", ["builds:read", "builds:write"],
                             user=f"alice{u}")["secret"])
    target = add_target(c, f"d{u}")
    failed = finished(c, target["id"], 1)
    private_of_target = submit(c, {"target_id": target["id"], "arch": "x86_64",
                                   "access:read": [f"alice{u}"], "execute": False}, alice)
    manifest = json.dumps({"repo": f"d{u}", "source": {"git": "https://e.invalid/x.git"}})
    public = submit(c, {"manifest": manifest, "execute": False,
                        "triggers": [{"action": "webhook", "condition": "always",
                                      "url": WEBHOOK}]}, alice)
    private = submit(c, {"manifest": manifest, "execute": False,
                         "access:read": [f"alice{u}"]}, alice)
    return {"alice": alice, "target": target, "failed": failed,
            "private_of_target": private_of_target["id"], "public": public["id"],
            "private": private["id"]}


# -- info and whoami -------------------------------------------------------------------

def test_info_needs_no_key_and_says_the_dashboard_is_public(client):
    info = ok(anon(client, "/api/v2/info"))
    from vieter_lite import __version__
    assert info == {"version": __version__, "public_dashboard": True, "signing": None,
                    "public_url": None}


def test_info_of_a_closed_dashboard(webapp, services):
    c = InProcessClient(webapp, services, KEY)
    assert ok(anon(c, "/api/v2/info"))["public_dashboard"] is False


def test_whoami_shows_the_key_and_its_scopes(client, u):
    assert ok(client.request("GET", "/api/v2/whoami")) == {
        "name": "api_key", "scopes": ["builds:read", "builds:write", "targets:read",
                                      "targets:write", "repos:read", "repos:publish",
                                      "repos:delete", "agent", "admin"],
        "admin": True, "repos": [], "archs": []}
    made = add_token(client, f"who{u}", ["builds:write", "targets:read"], repos=[f"r{u}"],
                     archs=["aarch64"])
    assert ok(client.request("GET", "/api/v2/whoami", headers=bearer(made["secret"]))) == {
        "name": f"who{u}", "scopes": ["builds:read", "builds:write", "targets:read"],
        "admin": False, "repos": [f"r{u}"], "archs": ["aarch64"]}
    # a token of any scope may ask (agent only, here)
    agent = add_token(client, f"ag{u}", ["agent"])
    assert ok(client.request("GET", "/api/v2/whoami",
                             headers=bearer(agent["secret"])))["scopes"] == ["agent"]


@pytest.mark.parametrize("headers", [NO_KEY, {"X-Api-Key": "wrong"},
                                     {"Authorization": "Bearer vl_nothing"}])
def test_whoami_without_a_valid_key_is_401_even_with_a_public_dashboard(client, headers):
    cf_error(client.request("GET", "/api/v2/whoami", headers=headers), 401, 10002)


# -- the public dashboard --------------------------------------------------------------

def test_a_caller_without_a_key_sees_only_public_builds(client, u):
    seeded = seed(client, u)
    everything = ok(client.request("GET", "/api/v2/builds?per_page=5000"))["resources"]
    shown = ok(anon(client, "/api/v2/builds?per_page=5000"))
    ids = {b["id"] for b in shown["resources"]}
    assert ids == {b["id"] for b in everything if "*" in b["access:read"]}
    assert shown["pagination"]["total_results"] == len(ids)
    assert {seeded["failed"], seeded["public"]} <= ids
    assert not {seeded["private"], seeded["private_of_target"]} & ids
    # filters combine with it
    of_target = ok(anon(client, f"/api/v2/builds?target_ids={seeded['target']['id']}"))
    assert [b["id"] for b in of_target["resources"]] == [seeded["failed"]]


def test_a_public_build_its_log_tasks_and_deliveries_without_a_key(client, u):
    seeded = seed(client, u)
    failed = seeded["failed"]
    assert ok(anon(client, f"/api/v2/builds/{failed}"))["id"] == failed
    assert ok(anon(client, f"/api/v2/builds/{failed}/log"))["logs"] == "a log\n"
    assert anon(client, f"/api/v2/builds/{failed}/log/content").body == b"a log\n"
    assert anon(client, f"/api/v2/builds/{failed}/tasks/build/log").status == 200
    assert ok(anon(client, f"/api/v2/builds/{failed}/deliveries"))["resources"] == []


def test_triggers_are_hidden_from_a_caller_without_a_key(client, u):
    seeded = seed(client, u)
    public = seeded["public"]
    keyed = ok(client.request("GET", f"/api/v2/builds/{public}"))
    assert keyed["triggers"][0]["url"] == WEBHOOK
    assert ok(anon(client, f"/api/v2/builds/{public}"))["triggers"] == []
    listed = ok(anon(client, "/api/v2/builds?per_page=5000"))["resources"]
    assert all(b["triggers"] == [] for b in listed)
    target = seeded["target"]["id"]
    ok(send(client, "PATCH", f"/api/v2/targets/{target}", {"triggers": [
        {"action": "webhook", "condition": "failure", "url": WEBHOOK}]}))
    assert ok(client.request("GET", f"/api/v2/targets/{target}"))["triggers"] != []
    assert ok(anon(client, f"/api/v2/targets/{target}"))["triggers"] == []
    assert WEBHOOK not in anon(client, "/api/v2/targets?per_page=5000").body.decode()


@pytest.mark.parametrize("suffix", ["", "/log", "/log/content", "/tasks/build/log",
                                    "/deliveries"])
def test_a_private_build_is_not_found_without_a_key(client, u, suffix):
    seeded = seed(client, u)
    for build in (seeded["private"], seeded["private_of_target"]):
        resp = anon(client, f"/api/v2/builds/{build}{suffix}")
        cf_error(resp, 404, 10010)
        # the same answer as for a build that does not exist
        missing = anon(client, f"/api/v2/builds/999999{suffix}")
        assert resp.body.replace(str(build).encode(), b"N") \
            == missing.body.replace(b"999999", b"N")
    # its owner still reads it
    assert ok(client.request("GET", f"/api/v2/builds/{seeded['private']}",
                             headers=seeded["alice"]))["id"] == seeded["private"]


def test_targets_repos_and_agents_without_a_key(client, u):
    seeded = seed(client, u)
    targets = ok(anon(client, "/api/v2/targets?per_page=5000"))["resources"]
    assert seeded["target"]["id"] in {t["id"] for t in targets}
    assert ok(anon(client, f"/api/v2/targets/{seeded['target']['id']}"))["repo"] == f"d{u}"
    assert "resources" in ok(anon(client, "/api/v2/repos"))
    agent = add_token(client, f"ag{u}", ["agent"])
    ok(send(client, "POST", "/api/v2/agents", {"name": f"ag{u}", "archs": ["x86_64"]},
            bearer(agent["secret"])), 201)
    keyed = [a for a in ok(client.request("GET", "/api/v2/agents?per_page=5000"))["resources"]
             if a["name"] == f"ag{u}"]
    shown = [a for a in ok(anon(client, "/api/v2/agents?per_page=5000"))["resources"]
             if a["name"] == f"ag{u}"]
    assert keyed[0]["token_id"] == agent["id"]
    assert shown == [{**keyed[0], "token_id": None, "last_seen_at": shown[0]["last_seen_at"]}]


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/v2/tokens", None),
    ("GET", "/api/v2/tokens/1", None),
    ("POST", "/api/v2/tokens", {"name": "x", "scopes": ["admin"]}),
    ("POST", "/api/v2/builds", {"manifest": "repo: x\nsource: {git: https://e.invalid/x}"}),
    ("POST", "/api/v2/builds/1/cancel", None),
    ("POST", "/api/v2/builds/1/start", None),
    ("DELETE", "/api/v2/builds/1", None),
    ("GET", "/api/v2/builds/1/manifest", None),
    ("PATCH", "/api/v2/builds/1/log", {"append": "x"}),
    ("POST", "/api/v2/targets", {"kind": "git", "url": "https://e.invalid/x", "repo": "x"}),
    ("DELETE", "/api/v2/targets/1", None),
    ("GET", "/api/v2/agents/1", None),
    ("GET", "/api/v1/targets", None),
    ("GET", "/api/v1/logs", None),
])
def test_a_caller_without_a_key_cannot_write_or_read_anything_else(client, method, path, body):
    resp = anon(client, path, method, body)
    assert resp.status == 401, resp
    if path.startswith("/api/v2/"):
        cf_error(resp, 401, 10002)


@pytest.mark.parametrize("headers", [{"X-Api-Key": "wrong"}, {"Authorization": "Bearer "},
                                     {"Authorization": "Basic eDp5"}])
def test_a_wrong_key_is_still_refused_with_a_public_dashboard(client, headers):
    cf_error(client.request("GET", "/api/v2/builds", headers=headers), 401, 10002)


def test_a_closed_dashboard_refuses_a_caller_without_a_key(webapp, services):
    c = InProcessClient(webapp, services, KEY)
    for path in ("/api/v2/builds", "/api/v2/targets", "/api/v2/repos", "/api/v2/agents",
                 "/api/v2/stats/builds", "/api/v2/builds/1", "/api/v2/builds/1/log"):
        cf_error(anon(c, path), 401, 10002)


# -- since_last_success ----------------------------------------------------------------

def test_since_last_success_lists_what_needs_attention(client, u):
    target = add_target(client, f"a{u}")["id"]
    path = f"/api/v2/builds?since_last_success=true&target_ids={target}&per_page=5000"
    first = finished(client, target, 1, 1_790_000_000)
    second = finished(client, target, 1, 1_790_000_100)
    assert [b["id"] for b in ok(client.request("GET", path))["resources"]] == [first, second]
    finished(client, target, 0, 1_790_000_200)            # fixed
    assert ok(client.request("GET", path))["resources"] == []
    third = finished(client, target, 1, 1_790_000_300)    # broken again
    assert [b["id"] for b in ok(client.request("GET", path))["resources"]] == [third]
    assert [b["id"] for b in ok(anon(client, path))["resources"]] == [third]
    states = ok(client.request("GET", path + "&states=timeout"))
    assert states["resources"] == [] and states["pagination"]["total_results"] == 0


@pytest.mark.parametrize("value", ["yes", "1", "", "TRUE"])
def test_since_last_success_takes_only_true_or_false(client, value):
    detail = cf_error(client.request("GET", f"/api/v2/builds?since_last_success={value}"),
                      400, 10005)
    assert "since_last_success" in detail


# -- stats -----------------------------------------------------------------------------

def test_stats_count_the_builds_the_caller_may_read(client, u):
    seeded = seed(client, u)
    target = seeded["target"]["id"]
    bob = bearer(add_token(client, f"bob{u}", ["builds:read"], user=f"bob{u}")["secret"])

    def today(headers: dict[str, str]) -> dict[str, Any]:
        body = ok(client.request("GET", f"/api/v2/stats/builds?target_id={target}",
                                 headers=headers))
        assert body["bucket"] == "day" and body["target_id"] == target
        assert len(body["buckets"]) == 30
        assert all(b["builds"] == 0 for b in body["buckets"][:-1])
        return body["buckets"][-1]

    # the failed build (it ran 60 s) and alice's pending one; bob and no key: the failed one
    assert today(KEY) == today(seeded["alice"]) == {
        **today(KEY), "builds": 2, "success": 0, "failed": 1, "cancelled": 0,
        "success_rate": 0.0, "duration_p50": 60, "duration_max": 60}
    assert today(bob)["builds"] == today(NO_KEY)["builds"] == 1


def test_stats_buckets_by_hour_over_a_window(client):
    body = ok(client.request("GET", "/api/v2/stats/builds?bucket=hour"
                                    "&since=2026-01-01T10:30:00Z&until=2026-01-01T13:00:00Z"))
    assert [b["start"] for b in body["buckets"]] == [
        "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"]
    assert (body["since"], body["until"]) == ("2026-01-01T10:00:00Z", "2026-01-01T13:00:00Z")
    assert body["target_id"] is None


@pytest.mark.parametrize("query, field", [
    ("bucket=week", "bucket"), ("since=yesterday", "since"),
    ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
    ("bucket=hour&since=2025-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
    ("target_id=abc", "target_id"),
])
def test_stats_invalid_values_are_422(client, query, field):
    detail = cf_error(client.request("GET", f"/api/v2/stats/builds?{query}"), 422, 10008)
    assert field in detail


def test_stats_unknown_parameter_is_400(client):
    cf_error(client.request("GET", "/api/v2/stats/builds?colour=red"), 400, 10005, "colour")
