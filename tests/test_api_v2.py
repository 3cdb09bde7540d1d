"""/api/v2 end to end: tokens and scopes, builds, targets, repos and packages, the Cloud
Foundry list rules and the errors envelope. Each scenario runs in-process (webtest, a
fresh data dir) and against one real server process shared by the module (every test
uses its own names)."""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, ServerProcess
from http_clients import KEY, InProcessClient, Response, ServerClient
from pkgfactory import make_synthetic_package

JSON_KEY = {**KEY, "Content-Type": "application/json"}
QUIET_SCHEDULE = "0 3 1 1"
CF_ERROR_KEYS = {"code", "title", "detail"}


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("api-v2") / "data",
                         env_extra={"VIETER_GLOBAL_SCHEDULE": QUIET_SCHEDULE}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(params=["inprocess", "server"])
def client(request):
    if request.param == "inprocess":
        yield InProcessClient(request.getfixturevalue("webapp"),
                              request.getfixturevalue("services"), KEY)
    else:
        yield ServerClient(request.getfixturevalue("shared_server"), KEY)


_counter = itertools.count()


@pytest.fixture
def u() -> str:
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


def send(c, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
         ) -> Response:
    data = None if body is None else json.dumps(body).encode()
    return c.request(method, path, data, JSON_KEY if headers is None else headers)


def ok(resp: Response, status: int = 200) -> Any:
    assert resp.status == status, resp
    return resp.json() if resp.body else None


def cf_error(resp: Response, status: int, code: int, detail: str = "") -> str:
    """The errors envelope with one error of `code`; its detail contains `detail`."""
    assert resp.status == status, resp
    assert resp.headers["content-type"].startswith("application/json"), resp
    body = resp.json()
    assert list(body) == ["errors"] and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert set(error) == CF_ERROR_KEYS and error["code"] == code, body
    assert detail in error["detail"], body
    return error["detail"]


def add_token(c, name: str, scopes: list[str], **extra: Any) -> dict:
    return ok(send(c, "POST", "/api/v2/tokens", {"name": name, "scopes": scopes, **extra}), 201)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def add_target(c, repo: str, **extra: Any) -> dict:
    body = {"kind": "git", "url": f"https://example.invalid/{repo}.git", "repo": repo,
            "arch": ["x86_64"], **extra}
    return ok(send(c, "POST", "/api/v2/targets", body), 201)


def queue_build(c, target_id: int, arch: str = "x86_64") -> int:
    resp = c.request("POST", f"/api/v1/jobs/queue?target={target_id}&arch={arch}&force=true")
    return ok(resp)["data"]


def package(tmp_path: Path, name: str, version: str = "1.0-1", arch: str = "x86_64") -> bytes:
    path = make_synthetic_package(tmp_path / f"{name}-{version}-{arch}.pkg.tar.gz",
                                  {"pkgname": name, "pkgver": version, "arch": arch},
                                  {f"usr/share/{name}/data": name.encode()}, compression="gz")
    return path.read_bytes()


# -- tokens ----------------------------------------------------------------------------

def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(client, u):
    made = add_token(client, f"ci{u}", ["builds:read"], repos=[f"r{u}"])
    assert made["secret"].startswith("vl_") and made["scopes"] == ["builds:read"]
    listed = ok(client.request("GET", "/api/v2/tokens?per_page=5000"))["resources"]
    mine = [t for t in listed if t["name"] == f"ci{u}"]
    assert len(mine) == 1 and "secret" not in mine[0]
    assert ok(client.request("GET", f"/api/v2/tokens/{made['id']}"))["name"] == f"ci{u}"
    # the token reads builds, and nothing else
    assert client.request("GET", "/api/v2/builds", headers=bearer(made["secret"])).status == 200
    cf_error(client.request("GET", "/api/v2/targets", headers=bearer(made["secret"])),
             403, 10003, "targets:read")
    cf_error(client.request("GET", "/api/v2/tokens", headers=bearer(made["secret"])),
             403, 10003, "admin")
    assert ok(client.request("DELETE", f"/api/v2/tokens/{made['id']}"), 204) is None
    cf_error(client.request("GET", "/api/v2/builds", headers=bearer(made["secret"])),
             401, 10002)
    cf_error(client.request("GET", f"/api/v2/tokens/{made['id']}"), 404, 10010)


@pytest.mark.parametrize("body, field", [
    ({"scopes": ["admin"]}, "name"),
    ({"name": "x y", "scopes": ["admin"]}, "name"),
    ({"name": "n", "scopes": []}, "scopes"),
    ({"name": "n", "scopes": ["root"]}, "scopes"),
    ({"name": "n", "scopes": "admin"}, "scopes"),
    ({"name": "n", "scopes": ["agent"], "archs": ["../x"]}, "archs"),
    ({"name": "n", "scopes": ["agent"], "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "n", "scopes": ["agent"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "n", "scopes": ["agent"], "colour": "red"}, "colour"),
])
def test_an_invalid_token_is_a_422_naming_the_field(client, body, field):
    before = ok(client.request("GET", "/api/v2/tokens"))["pagination"]["total_results"]
    detail = cf_error(send(client, "POST", "/api/v2/tokens", body), 422, 10008)
    assert detail.startswith(field), detail
    assert ok(client.request("GET", "/api/v2/tokens"))["pagination"]["total_results"] == before


def test_a_duplicate_token_name_is_a_conflict(client, u):
    add_token(client, f"d{u}", ["builds:read"])
    cf_error(send(client, "POST", "/api/v2/tokens", {"name": f"d{u}", "scopes": ["agent"]}),
             409, 10009)


def test_bodies_that_are_not_json_objects_are_400(client):
    for raw in (b"not json", b"[1, 2]", b"\xff\xfe", b""):
        cf_error(client.request("POST", "/api/v2/tokens", raw, JSON_KEY), 400, 10004)


def test_an_agent_token_polls_only_its_archs(client, u):
    agent = add_token(client, f"a{u}", ["agent"], archs=[f"arm{u}"])
    headers = {"X-Api-Key": agent["secret"]}
    assert client.request("GET", f"/api/v1/jobs/poll?arch=arm{u}&max=1&jobs=v2", headers=headers) \
        .status == 200
    assert client.request("GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2",
                          headers=headers).status == 403
    # and it is no admin on v1 either
    assert client.request("GET", "/api/v1/targets", headers=headers).status == 403


def test_a_publish_token_publishes_only_to_its_repos(client, u, tmp_path):
    publisher = add_token(client, f"p{u}", ["repos:publish"], repos=[f"mine{u}"])
    headers = {"X-Api-Key": publisher["secret"]}
    body = package(tmp_path, f"pk{u}")
    assert client.request("POST", f"/mine{u}/publish", body, headers).status == 200
    refused = client.request("POST", f"/other{u}/publish", body, headers)
    assert refused.status == 403 and b"may not publish" in refused.body
    assert client.request("GET", f"/other{u}/x86_64/other{u}.db", headers={}).status == 404


# -- targets ---------------------------------------------------------------------------

def test_targets_with_labels_triggers_review_and_schedule(client, u):
    trigger = {"action": "webhook", "condition": "failure", "url": "https://example.invalid/h",
               "secret": "s3"}
    made = add_target(client, f"t{u}", metadata={"labels": {"env": "home", "u": u}},
                      triggers=[trigger], schedule="0 4")
    assert made["review"] == "changes"  # v2's default
    assert made["metadata"]["labels"] == {"env": "home", "u": u}
    assert made["triggers"] == [{**trigger, "secret": "********"}]  # the secret is not shown
    assert made["schedule_effective"] == {"schedule": "0 4", "global": False}
    assert list(made["next_run_at"]) == ["x86_64"] and made["next_run_at"]["x86_64"].endswith("Z")
    assert made["last_build"] is None
    found = ok(client.request("GET", f"/api/v2/targets?label_selector=u={u}"))
    assert [t["id"] for t in found["resources"]] == [made["id"]]
    edited = ok(send(client, "PATCH", f"/api/v2/targets/{made['id']}",
                     {"schedule": "", "review": "always", "metadata": {"labels": {"u": u}}}))
    assert edited["schedule_effective"]["global"] is True and edited["review"] == "always"
    assert edited["metadata"]["labels"] == {"u": u}
    build_id = queue_build(client, made["id"])
    got = ok(client.request("GET", f"/api/v2/targets/{made['id']}"))
    assert got["last_build"] == {"id": build_id, "status": "queued"}
    # the same target through v1: v1's fields and shape only
    v1 = ok(client.request("GET", f"/api/v1/targets/{made['id']}"))["data"]
    assert list(v1) == ["id", "kind", "url", "branch", "repo", "schedule", "path", "arch"]
    assert ok(client.request("DELETE", f"/api/v2/targets/{made['id']}"), 204) is None
    cf_error(client.request("GET", f"/api/v2/targets/{made['id']}"), 404, 10010)


def test_a_target_made_through_v1_is_never_held_for_review(client, u):
    resp = client.request("POST", f"/api/v1/targets?kind=git&url=https://e/{u}.git&repo=v{u}")
    target_id = ok(resp)["data"]
    assert ok(client.request("GET", f"/api/v2/targets/{target_id}"))["review"] == "never"


@pytest.mark.parametrize("body, field", [
    ({"kind": "svn", "url": "https://e/x", "repo": "r"}, "kind"),
    ({"kind": "git", "repo": "r"}, "url"),
    ({"kind": "git", "url": "https://e/x", "repo": "../r"}, "repo"),
    ({"kind": "git", "url": "https://e/x", "repo": "r", "schedule": "61 *"}, "schedule"),
    ({"kind": "git", "url": "https://e/x", "repo": "r", "arch": ["any"]}, "arch"),
    ({"kind": "git", "url": "https://e/x", "repo": "r", "arch": []}, "arch"),
    ({"kind": "git", "url": "https://e/x", "repo": "r", "review": "sometimes"}, "review"),
    ({"kind": "git", "url": "https://e/x", "repo": "r", "url2": "x"}, "url2"),
    ({"kind": "git", "url": 5, "repo": "r"}, "url"),
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "metadata": {"labels": {"bad key!": "v"}}}, "metadata.labels"),
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "triggers": [{"action": "webhook", "condition": "always", "url": "ftp://x"}]},
     "triggers[0].url"),
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "triggers": [{"action": "email", "condition": "never", "to": "a@b"}]},
     "triggers[0].condition"),
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "triggers": [{"action": "sms", "condition": "always"}]}, "triggers[0].action"),
    # each of these was a 500: an unhashable action, an unclosed IPv6 bracket, cc not a list
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "triggers": [{"action": ["webhook"], "condition": "always"}]}, "triggers[0].action"),
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "triggers": [{"action": "webhook", "condition": "always", "url": "http://[::1"}]},
     "triggers[0].url"),
    ({"kind": "git", "url": "https://e/x", "repo": "r",
      "triggers": [{"action": "email", "condition": "always", "to": "a@b", "cc": 5}]},
     "triggers[0].cc"),
])
def test_an_invalid_target_is_a_422_naming_the_field_and_saves_nothing(client, body, field):
    before = ok(client.request("GET", "/api/v2/targets"))["pagination"]["total_results"]
    detail = cf_error(send(client, "POST", "/api/v2/targets", body), 422, 10008)
    assert detail.startswith(field), detail
    assert ok(client.request("GET", "/api/v2/targets"))["pagination"]["total_results"] == before


# -- builds ----------------------------------------------------------------------------

def test_builds_list_and_show_with_tasks_links_and_filters(client, u):
    target = add_target(client, f"b{u}", arch=["x86_64", f"arm{u}"])
    first = queue_build(client, target["id"])
    second = queue_build(client, target["id"], f"arm{u}")
    page = ok(client.request("GET", f"/api/v2/builds?target_ids={target['id']}"
                                    "&order_by=-created_at&per_page=1"))
    assert page["pagination"]["total_results"] == 2 and page["pagination"]["total_pages"] == 2
    assert [b["id"] for b in page["resources"]] == [second]  # newest first; ties by id
    nxt = page["pagination"]["next"]["href"]
    assert f"target_ids={target['id']}" in nxt and "order_by=-created_at" in nxt
    assert page["pagination"]["previous"] is None
    path = nxt[nxt.index("/api/v2/"):]
    assert [b["id"] for b in ok(client.request("GET", path))["resources"]] == [first]
    only_arm = ok(client.request("GET", f"/api/v2/builds?archs=arm{u}&states=queued"))
    assert [b["id"] for b in only_arm["resources"]] == [second]
    build = ok(client.request("GET", f"/api/v2/builds/{first}"))
    assert build["status"] == "queued" and build["target_id"] == target["id"]
    assert build["links"]["self"]["href"].endswith(f"/api/v2/builds/{first}")
    assert build["links"]["target"]["href"].endswith(f"/api/v2/targets/{target['id']}")
    assert build["created_at"].endswith("Z") and build["ended_at"] is None
    cf_error(client.request("GET", "/api/v2/builds/999999999"), 404, 10010)


def test_a_list_reads_its_query_as_utf8_and_links_it_so(client, u):
    """Bottle holds a query's values as latin-1: a list filtered by a runner named in UTF-8
    matched nothing, and its pagination links encoded the value twice (each following
    link changed the query); bytes that are not UTF-8 read as U+FFFD."""
    target = add_target(client, f"q{u}", review="never")
    build = queue_build(client, target["id"])
    runner = urllib.parse.quote(f"büro-{u}")
    claimed = ok(client.request("GET", f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build}"
                                       f"&runner={runner}"))["data"]
    assert [job["build_id"] for job in claimed] == [build]
    page = ok(client.request("GET", f"/api/v2/builds?runners={runner}&per_page=1"))
    assert [b["id"] for b in page["resources"]] == [build]
    first = page["pagination"]["first"]["href"]
    assert f"runners={runner}" in first, first
    again = ok(client.request("GET", first[first.index("/api/v2/"):]))
    assert again["pagination"]["first"]["href"] == first
    page = ok(client.request("GET", "/api/v2/builds?runners=%FF"))
    assert "runners=%EF%BF%BD" in page["pagination"]["first"]["href"], page


def test_a_build_shows_the_packages_it_published_and_its_timeout(client, u, tmp_path):
    target = add_target(client, f"p{u}")
    build_id = queue_build(client, target["id"])
    job = ok(client.request("GET", "/api/v1/jobs/poll?arch=x86_64&max=100&jobs=v2"))["data"]
    mine = next(j for j in job if j["build_id"] == build_id)
    token = {"X-Api-Key": mine["token"]}
    body = package(tmp_path, f"pp{u}")
    assert client.request("POST", f"/p{u}/publish", body, token).status == 200
    finish = client.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode=124"
                                    "&status=timeout", headers=token)
    assert finish.status == 200, finish
    build = ok(client.request("GET", f"/api/v2/builds/{build_id}"))
    assert build["status"] == "timeout" and build["exit_code"] == 124
    assert build["packages"] == [{"name": f"pp{u}", "version": "1.0-1", "arch": "x86_64",
                                  "filename": f"pp{u}-1.0-1-x86_64.pkg.tar.gz"}]
    assert [t["name"] for t in build["tasks"]] == ["setup", "source", "build", "publish"]
    timeouts = ok(client.request("GET", f"/api/v2/builds?states=timeout&repos=p{u}"))
    assert [b["id"] for b in timeouts["resources"]] == [build_id]
    # v1 still shows it as a finished build log with its exit code
    log = ok(client.request("GET", f"/api/v1/logs/{build_id}"))["data"]
    assert log["exit_code"] == 124


@pytest.mark.parametrize("query, parameter", [
    ("colour=red", "colour"),
    ("page=0", "page"),
    ("per_page=0", "per_page"),
    ("per_page=5001", "per_page"),
    ("order_by=size", "order_by"),
    ("created_ats[gt]=2026-11-23T07:00:00", "created_ats"),
    ("created_ats=2026-02-30T00:00:00Z", "created_ats"),
    ("states=lost", "states"),
    ("page=1&page=2", "page"),
    ("label_selector=" + ",".join(f"k{i}=v" for i in range(51)), "label_selector"),
])
def test_bad_list_parameters_are_400_bad_query_parameter(client, query, parameter):
    detail = cf_error(client.request("GET", f"/api/v2/builds?{query}"), 400, 10005)
    assert parameter in detail


def test_an_unknown_parameter_lists_the_valid_ones(client):
    detail = cf_error(client.request("GET", "/api/v2/builds?x=1"), 400, 10005)
    assert detail.startswith("Unknown query parameter(s): 'x'. Valid parameters are: "
                             "'page', 'per_page', 'order_by'")


def test_timestamp_filters_and_an_empty_last_page(client, u):
    target = add_target(client, f"ts{u}")
    build_id = queue_build(client, target["id"])
    build = ok(client.request("GET", f"/api/v2/builds/{build_id}"))
    at = build["created_at"]
    same = ok(client.request("GET", f"/api/v2/builds?created_ats={at}&target_ids={target['id']}"))
    assert [b["id"] for b in same["resources"]] == [build_id]
    later = ok(client.request("GET", f"/api/v2/builds?created_ats[gt]={at}"
                                     f"&target_ids={target['id']}"))
    assert later["resources"] == [] and later["pagination"]["total_pages"] == 1
    assert later["pagination"]["next"] is None


# -- repos and packages ----------------------------------------------------------------

def test_repos_and_packages(client, u, tmp_path):
    repo = f"rp{u}"
    for name in ("alpha", "beta"):
        assert client.request("POST", f"/{repo}/publish", package(tmp_path, f"{name}{u}")) \
            .status == 200
    repos = ok(client.request("GET", "/api/v2/repos?per_page=5000"))["resources"]
    mine = next(r for r in repos if r["name"] == repo)
    assert [(a["arch"], a["packages"]) for a in mine["archs"]] == [("x86_64", 2)]
    assert mine["archs"][0]["db_last_modified"].endswith("Z")
    assert f"[{repo}]" in mine["pacman_conf"]
    listed = ok(client.request("GET", f"/api/v2/repos/{repo}/x86_64/packages?per_page=1"))
    assert listed["pagination"]["total_results"] == 2
    assert [p["name"] for p in listed["resources"]] == [f"alpha{u}"]
    one = listed["resources"][0]
    assert len(one["sha256"]) == 64 and one["signed"] is False
    assert one["owner"] == {"target_id": None, "user": None}  # the api_key published it
    named = ok(client.request("GET", f"/api/v2/repos/{repo}/x86_64/packages?names=beta{u}"))
    assert [p["name"] for p in named["resources"]] == [f"beta{u}"]
    detail = ok(client.request("GET", f"/api/v2/repos/{repo}/x86_64/packages/beta{u}"))
    assert detail["desc"]["name"] == [f"beta{u}"]
    assert [(v["version"], v["current"]) for v in detail["versions"]] == [("1.0-1", True)]
    assert detail["kept_versions"] == [] and detail["hold"] is None
    cf_error(client.request("GET", f"/api/v2/repos/{repo}/x86_64/packages/none{u}"), 404, 10010)
    cf_error(client.request("GET", f"/api/v2/repos/{repo}/x86_64/packages/-bad"), 400,
             10004)


# -- the errors envelope everywhere under /api/v2 ---------------------------------------

def test_routing_errors_under_api_v2_use_the_errors_envelope(client):
    cf_error(client.request("GET", "/api/v2/nothing/here"), 404, 10010)
    cf_error(client.request("GET", "/api/v2"), 404, 10010)
    cf_error(client.request("PUT", "/api/v2/builds"), 405, 10000)
    cf_error(client.request("GET", "/api/v2/builds", headers={}), 401, 10002)
    cf_error(client.request("GET", "/api/v2/builds", headers={"X-Api-Key": API_KEY + "x"}),
             401, 10002)


def test_the_http_servers_own_refusals_under_api_v2_use_the_errors_envelope(shared_server):
    raw = ServerClient(shared_server)._send_raw
    resp = raw(b"POST /api/v2/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
               b"Connection: close\r\n\r\n0123456789")
    cf_error(resp, 401, 10002)
    resp = raw(f"POST /api/v2/tokens HTTP/1.1\r\nHost: x\r\nX-Api-Key: {API_KEY}\r\n"
               f"Content-Length: {10 ** 9}\r\nConnection: close\r\n\r\n".encode())
    cf_error(resp, 413, 10012)
    # the same refusal elsewhere keeps Vieter's envelope
    resp = raw(b"POST /api/v1/targets HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
               b"Connection: close\r\n\r\n0123456789")
    assert resp.status == 401 and set(resp.json()) == {"message", "data"}


def test_a_crash_in_a_v2_route_is_a_500_in_the_envelope_and_logged(webapp, services,
                                                                    monkeypatch, caplog):
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(services.queue, "page", broken)
    resp = webapp.get("/api/v2/builds", headers=KEY, expect_errors=True)
    assert resp.status_int == 500
    assert resp.json == {"errors": [{"code": 10001, "title": "UnknownError",
                                     "detail": "An unknown error occurred."}]}
    assert "boom" in caplog.text


def test_times_are_rfc3339_utc_seconds(client, u):
    made = add_token(client, f"t{u}", ["builds:read"])
    parsed = time.strptime(made["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(parsed) - time.mktime(time.gmtime())) < 3600


def test_an_agent_token_reports_only_on_builds_of_its_archs(client, u):
    target = add_target(client, f"ag{u}", arch=[f"arm{u}", f"riscv{u}"])
    arm = queue_build(client, target["id"], f"arm{u}")
    riscv = queue_build(client, target["id"], f"riscv{u}")
    for arch in (f"arm{u}", f"riscv{u}"):
        assert ok(client.request("GET", f"/api/v1/jobs/poll?arch={arch}&max=1&jobs=v2"))["data"]
    agent = add_token(client, f"ag{u}", ["agent"], archs=[f"arm{u}"])
    reader = add_token(client, f"rd{u}", ["builds:read"])
    as_agent = {"X-Api-Key": agent["secret"]}
    assert client.request("POST", f"/api/v1/builds/{arm}/lease", headers=as_agent).status == 200
    assert client.request("POST", f"/api/v1/builds/{riscv}/lease",
                          headers=as_agent).status == 403
    assert client.request("POST", f"/api/v1/builds/{arm}/lease",
                          headers={"X-Api-Key": reader["secret"]}).status == 403
