"""/api/v1 end to end: targets, build logs, jobs and the agents' build-report routes with
their build tokens. One scenario suite runs in-process (webtest, a fresh data dir per test)
and against one real server process shared by the module (every test works on its own
repos, archs and targets, so the tests do not see each other); restart persistence runs
against servers of its own."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from conftest import API_KEY, ServerProcess
from http_clients import InProcessClient, Response, ServerClient
from pkgfactory import make_synthetic_package
from vieter_lite.queue import TIMEOUT_GRACE

KEY = {"X-Api-Key": API_KEY}
NO_KEY: dict[str, str] = {}
WRONG_KEY = {"X-Api-Key": API_KEY + "x"}
WRONG_BEARER = {"Authorization": "Bearer " + API_KEY + "x"}
TEXT = "text/plain; charset=utf-8"
TARGET_KEYS = ["id", "kind", "url", "branch", "repo", "schedule", "path", "arch"]
LOG_KEYS = ["id", "target_id", "start_time", "end_time", "arch", "exit_code"]
JOB_KEYS = ["target_id", "kind", "url", "branch", "path", "repo", "base_image", "force",
            "timeout", "build_id", "arch", "token"]
BUILD_KEYS = ["id", "target_id", "arch", "repo", "status", "force", "created_at", "started_at",
              "ended_at", "exit_code", "runner", "lease_expires", "expiries", "tasks"]
BASE_IMAGE = "archlinux:base-devel"
TIMEOUT = 3600
# Far from any test run: the shared server's scheduler must not queue builds of its own.
QUIET_SCHEDULE = "0 3 1 1"


def _start(data_dir: Path) -> ServerProcess:
    return ServerProcess(data_dir, env_extra={"VIETER_GLOBAL_SCHEDULE": QUIET_SCHEDULE}).start()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    proc = _start(tmp_path_factory.mktemp("api-v1") / "data")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(params=["inprocess", "server"])
def client(request):
    if request.param == "inprocess":
        yield InProcessClient(request.getfixturevalue("webapp"),
                              request.getfixturevalue("services"), KEY)
    else:
        proc = request.getfixturevalue("shared_server")
        assert proc.proc.poll() is None, proc.log()
        yield ServerClient(proc, KEY)


_counter = itertools.count()


@pytest.fixture
def u() -> str:
    """A suffix no other test uses: for repo names, archs and URLs on the shared server."""
    return f"{next(_counter)}{uuid.uuid4().hex[:8]}"


# -- assertions and helpers ----------------------------------------------------------------

def envelope(resp: Response) -> tuple[str, Any]:
    """The compact {"message","data"} JSON body, keys in that order; returns its parts."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp
    parsed = resp.json()
    assert list(parsed) == ["message", "data"], parsed
    assert resp.body == json.dumps(parsed, separators=(",", ":")).encode(), resp.body
    return parsed["message"], parsed["data"]


def ok(resp: Response) -> Any:
    assert resp.status == 200, resp
    message, data = envelope(resp)
    assert message == "", resp
    return data


def assert_error(resp: Response, status: int, message: str) -> None:
    assert resp.status == status, resp
    assert envelope(resp) == (message, ""), resp


def q(route: str, /, **params: Any) -> str:
    return f"{route}?{urlencode(params)}" if params else route


def snapshot(c) -> tuple[bytes, bytes]:
    """Every target and every build log, as the API shows them."""
    targets = c.request("GET", "/api/v1/targets?limit=0")
    logs = c.request("GET", "/api/v1/logs?limit=0")
    assert targets.status == logs.status == 200, (targets, logs)
    return targets.body, logs.body


def add_target(c, **params: str) -> int:
    spec = {"kind": "git", "url": "https://example.org/pkg.git", "repo": "bur"}
    spec.update(params)
    target_id = ok(c.request("POST", q("/api/v1/targets", **spec)))
    assert isinstance(target_id, int) and target_id > 0
    return target_id


def get_target(c, target_id: int) -> dict:
    return ok(c.request("GET", f"/api/v1/targets/{target_id}"))


def list_targets(c, **params: Any) -> list[dict]:
    return ok(c.request("GET", q("/api/v1/targets", **params)))


def list_logs(c, **params: Any) -> list[dict]:
    return ok(c.request("GET", q("/api/v1/logs", **params)))


def post_log(c, target: int, text: bytes = b"log\n", start: int = 1_700_000_000,
             end: int = 1_700_000_100, arch: str = "x86_64", code: int = 0) -> int:
    log_id = ok(c.request("POST", q("/api/v1/logs", startTime=start, endTime=end, arch=arch,
                                    exitCode=code, target=target), text))
    assert isinstance(log_id, int) and log_id > 0
    return log_id


def queue(c, target: int, arch: str, extra: str = "") -> int:
    build_id = ok(c.request("POST", f"/api/v1/jobs/queue?target={target}&arch={arch}{extra}"))
    assert isinstance(build_id, int) and build_id > 0
    return build_id


def poll(c, arch: str, max_: int = 10) -> list[dict]:
    return ok(c.request("GET", f"/api/v1/jobs/poll?arch={arch}&max={max_}"))


def claim(c, target: int, arch: str) -> dict:
    """Queue and claim one build: the job, with build_id and token."""
    build_id = queue(c, target, arch)
    jobs = poll(c, arch, 1)
    assert [j["build_id"] for j in jobs] == [build_id]
    return jobs[0]


def token_headers(token: str) -> dict[str, str]:
    return {"X-Api-Key": token}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def content(c, log_id: int, headers: dict[str, str] | None = None) -> Response:
    return c.request("GET", f"/api/v1/logs/{log_id}/content",
                     headers={**KEY, **(headers or {})})


def package(tmp_path: Path, name: str, arch: str = "x86_64") -> bytes:
    pkginfo = {"pkgname": name, "pkgbase": name, "pkgver": "1.0-1", "pkgdesc": "api v1 test",
               "builddate": "1700000000", "packager": "Tests <t@example.org>", "size": "1",
               "arch": arch}
    path = make_synthetic_package(tmp_path / f"{name}.pkg.tar.zst", pkginfo,
                                  {f"usr/share/{name}/README": b"hi\n"})
    return path.read_bytes()


# -- targets: create and read ----------------------------------------------------------------

def test_create_target_defaults_and_get(client, u):
    target_id = add_target(client, url=f"https://example.org/{u}.git", repo=f"r{u}")
    target = get_target(client, target_id)
    assert list(target) == TARGET_KEYS
    assert list(target["arch"][0]) == ["id", "target_id", "value"]
    arch_id = target["arch"][0]["id"]
    assert isinstance(arch_id, int)
    assert target == {"id": target_id, "kind": "git", "url": f"https://example.org/{u}.git",
                      "branch": "", "repo": f"r{u}", "schedule": "", "path": "",
                      "arch": [{"id": arch_id, "target_id": target_id, "value": "x86_64"}]}
    # unknown params are ignored
    other = add_target(client, repo=f"r{u}", colour="blue")
    assert get_target(client, other)["repo"] == f"r{u}" and other > target_id


def test_create_target_with_empty_arch_gets_the_default_arch(client, u):
    """Reference 2.2 POST: 'If arch is absent or empty, it defaults to [default_arch]'."""
    target_id = add_target(client, repo=f"r{u}", arch="")
    assert [a["value"] for a in get_target(client, target_id)["arch"]] == ["x86_64"]


def test_create_target_with_every_field(client, u):
    target_id = add_target(client, kind="url", url=f"https://example.org/{u}/PKGBUILD",
                           branch="main", path="sub/dir", repo=f"r{u}.x+y@z-1",
                           schedule="*/5 2", arch=f"b{u}, a{u},b{u}")
    target = get_target(client, target_id)
    archs = target.pop("arch")
    assert target == {"id": target_id, "kind": "url", "url": f"https://example.org/{u}/PKGBUILD",
                      "branch": "main", "repo": f"r{u}.x+y@z-1", "schedule": "*/5 2",
                      "path": "sub/dir"}
    # trimmed, de-duplicated, in the given order, each its own row
    assert [a["value"] for a in archs] == [f"b{u}", f"a{u}"]
    assert [a["target_id"] for a in archs] == [target_id, target_id]
    assert archs[0]["id"] < archs[1]["id"]


@pytest.mark.parametrize("params, message", [
    ({}, "Missing parameter: kind."),
    ({"url": "https://e/x.git", "repo": "bur"}, "Missing parameter: kind."),
    ({"kind": "", "url": "https://e/x.git", "repo": "bur"}, "Missing parameter: kind."),
    ({"kind": "git"}, "Missing parameter: url."),
    ({"kind": "git", "url": "", "repo": "bur"}, "Missing parameter: url."),
    ({"kind": "svn", "repo": "bur"}, "Missing parameter: url."),
    ({"kind": "git", "url": "https://e/x.git"}, "Missing parameter: repo."),
    ({"kind": "git", "url": "https://e/x.git", "repo": ""}, "Missing parameter: repo."),
    ({"kind": "svn", "url": "https://e/x.git", "repo": "bur"}, "Invalid kind."),
    ({"kind": "GIT", "url": "https://e/x.git", "repo": "bur"}, "Invalid kind."),
    ({"kind": "git", "url": "   ", "repo": "bur"}, "url must not be empty."),
    ({"kind": "git", "url": "https://e/x.git", "repo": ".."}, "invalid repository name '..'"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "a/b"}, "invalid repository name 'a/b'"),
    ({"kind": "git", "url": "https://e/x.git", "repo": ".hidden"},
     "invalid repository name '.hidden'"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "api"},
     "'api' is a reserved keyword & cannot be used as a repository name."),
    ({"kind": "git", "url": "https://e/x.git", "repo": "API"},
     "'API' is a reserved keyword & cannot be used as a repository name."),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "schedule": "bad"},
     "Invalid cron expression 'bad': not enough parts (need at least minute and hour)"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "schedule": "61 2"},
     "Invalid cron expression '61 2': 61 is out of range 0-59 in the minute field"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "schedule": "* 24"},
     "Invalid cron expression '* 24': 24 is out of range 0-23 in the hour field"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "arch": "any"},
     "'any' is not an architecture to build on"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "arch": "x86_64,any"},
     "'any' is not an architecture to build on"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "arch": "a b"},
     "invalid architecture 'a b'"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "arch": "x86_64,"},
     "invalid architecture ''"),
    ({"kind": "git", "url": "https://e/x.git", "repo": "bur", "arch": "../x"},
     "invalid architecture '../x'"),
])
def test_create_target_rejects_bad_input_and_saves_nothing(client, params, message):
    before = snapshot(client)
    assert_error(client.request("POST", q("/api/v1/targets", **params)), 400, message)
    assert snapshot(client) == before


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_target_id_is_404(client, method):
    before = snapshot(client)
    for path in ("/api/v1/targets/999999999", "/api/v1/targets/0",
                 "/api/v1/targets/999999999?arch=x86_64,aarch64&url=https://e/x.git"):
        if method != "PATCH" and "?" in path:
            continue
        assert_error(client.request(method, path), 404, "Target not found.")
    assert snapshot(client) == before


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("raw, shown", [("abc", "abc"), ("-1", "-1"), ("1.5", "1.5"),
                                        ("0x1", "0x1"), ("%EF%BC%91", "\uff11"),
                                        ("1" * 19, "1" * 19)])
def test_non_numeric_target_id_is_400(client, method, raw, shown):
    before = snapshot(client)
    resp = client.request(method, f"/api/v1/targets/{raw}")
    assert resp.status == 400, resp
    assert envelope(resp) == (f"invalid id '{shown}'", "")
    assert snapshot(client) == before


# -- targets: list ---------------------------------------------------------------------------

def test_list_targets_filters(client, u):
    r1, r2 = f"r{u}", f"s{u}"
    a1, a2 = f"a{u}", f"b{u}"
    t_url = add_target(client, repo=r1, url=f"https://e/{u}-TOK.git", arch=a1)
    t_path = add_target(client, repo=r1, url="https://e/plain.git", path=f"dir/{u}-TOK",
                         arch=f"{a1},{a2}")
    t_branch = add_target(client, repo=r2, url="https://e/plain.git", branch=f"{u}-TOK",
                           arch=a2)
    t_none = add_target(client, repo=r1, url=f"https://e/{u}-tok.git", arch=a2)
    t_repo = add_target(client, repo=f"r{u}-TOK", url="https://e/plain.git", arch=a1)
    ids = lambda found: [t["id"] for t in found]  # noqa: E731

    assert ids(list_targets(client, repo=r1, limit=0)) == [t_url, t_path, t_none]
    assert ids(list_targets(client, repo=r2)) == [t_branch]
    # query: case-sensitive substring of url, path or branch; never the repo name
    assert ids(list_targets(client, query=f"{u}-TOK", limit=0)) == [t_url, t_path, t_branch]
    assert ids(list_targets(client, query=f"{u}-tok", limit=0)) == [t_none]
    assert ids(list_targets(client, query=f"{u}-Tok", limit=0)) == []
    assert ids(list_targets(client, arch=a1, limit=0)) == [t_url, t_path, t_repo]
    assert ids(list_targets(client, arch=a2, limit=0)) == [t_path, t_branch, t_none]
    # filters AND together
    assert ids(list_targets(client, repo=r1, arch=a2)) == [t_path, t_none]
    assert ids(list_targets(client, repo=r1, arch=a2, query=f"{u}-TOK")) == [t_path]
    assert ids(list_targets(client, repo=r2, arch=a1)) == []
    # offset and limit apply to the filtered sequence
    assert ids(list_targets(client, arch=a2, offset=1, limit=1)) == [t_branch]
    assert ids(list_targets(client, arch=a2, offset=1, limit=0)) == [t_branch, t_none]
    assert ids(list_targets(client, arch=a2, offset=3)) == []
    # list entries are the full targets
    assert list_targets(client, repo=r2) == [get_target(client, t_branch)]
    # empty filter values count as absent
    assert list_targets(client, repo="", query="", arch="", limit=0) == \
        list_targets(client, limit=0)


def test_list_targets_default_limit_and_order(client, u):
    repo = f"r{u}"
    made = [add_target(client, repo=repo, url=f"https://e/{i}.git") for i in range(27)]
    assert made == sorted(made)
    listed = [t["id"] for t in list_targets(client, repo=repo)]
    assert listed == made[:25]
    assert [t["id"] for t in list_targets(client, repo=repo, limit=0)] == made
    assert [t["id"] for t in list_targets(client, repo=repo, offset=25)] == made[25:]
    assert [t["id"] for t in list_targets(client, repo=repo, offset=20, limit=3)] == made[20:23]
    everything = [t["id"] for t in list_targets(client, limit=0)]
    assert everything == sorted(everything) and set(made) <= set(everything)


@pytest.mark.parametrize("path, message", [
    ("/api/v1/targets?limit=abc", "invalid value for 'limit': expected an integer"),
    ("/api/v1/targets?limit=1.5", "invalid value for 'limit': expected an integer"),
    ("/api/v1/targets?limit=-1", "invalid value for 'limit': must be at least 0"),
    ("/api/v1/targets?offset=x", "invalid value for 'offset': expected an integer"),
    ("/api/v1/targets?offset=-3", "invalid value for 'offset': must be at least 0"),
])
def test_list_targets_rejects_bad_numbers(client, path, message):
    assert_error(client.request("GET", path), 400, message)


# -- targets: edit and delete ----------------------------------------------------------------

def test_patch_scalar_fields(client, u):
    target_id = add_target(client, repo=f"r{u}", branch="main", path="p", schedule="0 2",
                           arch=f"a{u},b{u}")
    before = get_target(client, target_id)
    updated = ok(client.request("PATCH", q(f"/api/v1/targets/{target_id}", kind="url",
                                           url=f"https://e/{u}/PKGBUILD", repo=f"s{u}")))
    expected = dict(before, kind="url", url=f"https://e/{u}/PKGBUILD", repo=f"s{u}")
    assert updated == expected  # the arch rows are untouched
    assert get_target(client, target_id) == expected
    updated = ok(client.request("PATCH", q(f"/api/v1/targets/{target_id}", branch="", path="")))
    assert updated == dict(expected, branch="", path="")
    # nothing to change: 200, unchanged
    assert ok(client.request("PATCH", f"/api/v1/targets/{target_id}")) == updated


def test_patch_schedule_clears_and_keeps_arch_rows(client, u):
    target_id = add_target(client, repo=f"r{u}", schedule="0 2", arch=f"a{u},b{u}")
    before = get_target(client, target_id)
    updated = ok(client.request("PATCH", f"/api/v1/targets/{target_id}?schedule=15%204"))
    assert updated["schedule"] == "15 4"
    updated = ok(client.request("PATCH", f"/api/v1/targets/{target_id}?schedule="))
    assert get_target(client, target_id) == updated
    # only `arch` replaces the arch rows (reference 2.2 PATCH): a new schedule keeps them
    assert updated == dict(before, schedule="")


def test_patch_arch_replaces_the_list(client, u):
    target_id = add_target(client, repo=f"r{u}", arch=f"a{u},b{u}")
    old = get_target(client, target_id)
    old_ids = {a["id"] for a in old["arch"]}
    updated = ok(client.request("PATCH", q(f"/api/v1/targets/{target_id}",
                                           arch=f"b{u}, c{u},c{u}")))
    assert [a["value"] for a in updated["arch"]] == [f"b{u}", f"c{u}"]
    assert all(a["target_id"] == target_id for a in updated["arch"])
    new_ids = [a["id"] for a in updated["arch"]]
    assert new_ids == sorted(new_ids) and not old_ids & set(new_ids)
    assert min(new_ids) > max(old_ids)
    assert dict(updated, arch=None) == dict(old, arch=None)
    assert get_target(client, target_id) == updated
    assert [t["id"] for t in list_targets(client, arch=f"a{u}")] == []
    assert [t["id"] for t in list_targets(client, arch=f"c{u}")] == [target_id]


@pytest.mark.parametrize("query, message", [
    ("kind=svn", "Invalid kind."),
    ("kind=", "Invalid kind."),
    ("kind=svn&url=https://e/new.git", "Invalid kind."),
    ("url=", "url must not be empty."),
    ("url=%20", "url must not be empty."),
    ("repo=..", "invalid repository name '..'"),
    ("repo=", "invalid repository name ''"),
    ("repo=api", "'api' is a reserved keyword & cannot be used as a repository name."),
    ("schedule=bad", "Invalid cron expression 'bad': not enough parts (need at least minute "
                     "and hour)"),
    ("schedule=61%202&url=https://e/new.git",
     "Invalid cron expression '61 2': 61 is out of range 0-59 in the minute field"),
    ("arch=any", "'any' is not an architecture to build on"),
    ("arch=a%20b", "invalid architecture 'a b'"),
    ("arch=", "invalid architecture ''"),
    ("arch=x86_64,,aarch64&url=https://e/new.git", "invalid architecture ''"),
])
def test_patch_rejects_bad_input_and_changes_nothing(client, u, query, message):
    target_id = add_target(client, repo=f"r{u}", schedule="0 2", arch="x86_64")
    build_id = queue(client, target_id, "x86_64")
    before = snapshot(client)
    target = get_target(client, target_id)
    assert_error(client.request("PATCH", f"/api/v1/targets/{target_id}?{query}"), 400, message)
    assert get_target(client, target_id) == target
    assert snapshot(client) == before
    # the queued build is untouched too
    assert queue(client, target_id, "x86_64") == build_id


def test_patch_updates_queued_builds_and_drops_removed_archs(client, u):
    target_id = add_target(client, repo=f"r{u}", arch=f"a{u},b{u}")
    queue(client, target_id, f"a{u}")
    kept = queue(client, target_id, f"b{u}")
    ok(client.request("PATCH", q(f"/api/v1/targets/{target_id}", arch=f"b{u}", repo=f"s{u}",
                                 url=f"https://e/{u}.git", branch="dev")))
    assert poll(client, f"a{u}") == []
    [job] = poll(client, f"b{u}")
    assert (job["build_id"], job["repo"], job["url"], job["branch"]) == \
        (kept, f"s{u}", f"https://e/{u}.git", "dev")


def test_delete_target(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    posted = post_log(client, target_id, b"posted\n", arch=arch, code=1)
    job = claim(client, target_id, arch)
    ok(client.request("POST", f"/api/v1/builds/{job['build_id']}/log", b"built\n",
                      token_headers(job["token"])))
    ok(client.request("POST", f"/api/v1/builds/{job['build_id']}/finish?exitCode=0",
                      headers=token_headers(job["token"])))
    queued = queue(client, target_id, arch)
    assert queued != job["build_id"]
    logs_before = list_logs(client, target=target_id)
    assert [log["id"] for log in logs_before] == [posted, job["build_id"]]

    resp = client.request("DELETE", f"/api/v1/targets/{target_id}")
    assert resp.status == 200 and envelope(resp) == ("Target removed.", "")
    assert_error(client.request("GET", f"/api/v1/targets/{target_id}"), 404, "Target not found.")
    assert_error(client.request("DELETE", f"/api/v1/targets/{target_id}"), 404,
                 "Target not found.")
    assert target_id not in [t["id"] for t in list_targets(client, limit=0)]
    # its queued build is gone; its finished builds' logs stay, with their contents
    assert poll(client, arch) == []
    assert list_logs(client, target=target_id) == logs_before
    assert content(client, posted).body == b"posted\n"
    assert content(client, job["build_id"]).body == b"built\n"
    # and the target can no longer be queued or logged
    assert_error(client.request("POST", f"/api/v1/jobs/queue?target={target_id}&arch={arch}"),
                 400, "Unknown target id.")


# -- build logs ------------------------------------------------------------------------------

def test_post_log_and_read_it_back(client, u):
    target_id = add_target(client, repo=f"r{u}")
    text = "==> Making package: foo 1.0-1\nstdout and stderr, ünïcödé\n".encode()
    log_id = post_log(client, target_id, text, start=1_700_000_000, end=1_700_000_042,
                      arch=f"a{u}", code=3)
    meta = ok(client.request("GET", f"/api/v1/logs/{log_id}"))
    assert list(meta) == LOG_KEYS
    assert meta == {"id": log_id, "target_id": target_id, "start_time": 1_700_000_000,
                    "end_time": 1_700_000_042, "arch": f"a{u}", "exit_code": 3}
    assert list_logs(client, target=target_id) == [meta]

    resp = content(client, log_id)
    assert resp.status == 200 and resp.body == text
    assert resp.headers["content-type"] == TEXT
    assert resp.headers["content-length"] == str(len(text))
    assert resp.headers["accept-ranges"] == "bytes"

    resp = content(client, log_id, {"Range": "bytes=4-9"})
    assert resp.status == 206 and resp.body == text[4:10]
    assert resp.headers["content-range"] == f"bytes 4-9/{len(text)}"
    resp = content(client, log_id, {"Range": "bytes=-5"})
    assert resp.status == 206 and resp.body == text[-5:]
    resp = content(client, log_id, {"Range": "bytes=10-"})
    assert resp.status == 206 and resp.body == text[10:]
    resp = content(client, log_id, {"Range": f"bytes={len(text)}-"})
    assert resp.status == 416 and resp.headers["content-range"] == f"bytes */{len(text)}"

    empty = post_log(client, target_id, b"", code=0)
    resp = content(client, empty)
    assert resp.status == 200 and resp.body == b""


def test_two_logs_in_the_same_second_keep_their_own_contents(client, u):
    target_id = add_target(client, repo=f"r{u}")
    first = post_log(client, target_id, b"first\n", start=1_700_000_000)
    second = post_log(client, target_id, b"second\n", start=1_700_000_000)
    assert first != second
    assert content(client, first).body == b"first\n"
    assert content(client, second).body == b"second\n"


def test_post_log_validation(client, u):
    target_id = add_target(client, repo=f"r{u}")
    good = {"startTime": "1700000000", "endTime": "1700000100", "exitCode": "0",
            "arch": "x86_64", "target": str(target_id)}
    cases = [
        ("startTime", None, "Invalid or missing start time."),
        ("startTime", "", "Invalid or missing start time."),
        ("startTime", "abc", "invalid value for 'startTime': expected an integer"),
        ("startTime", "0", "invalid value for 'startTime': must be at least 1"),
        ("endTime", None, "Invalid or missing end time."),
        ("endTime", "", "Invalid or missing end time."),
        ("endTime", "12abc", "invalid value for 'endTime': expected an integer"),
        ("exitCode", None, "Missing exit code."),
        ("exitCode", "", "Missing exit code."),
        ("exitCode", "abc", "invalid value for 'exitCode': expected an integer"),
        ("arch", None, "Missing parameter 'arch'."),
        ("arch", "", "invalid architecture ''"),
        ("arch", "any", "'any' is not an architecture to build on"),
        ("arch", "a b", "invalid architecture 'a b'"),
        ("target", None, "Unknown target."),
        ("target", "", "Unknown target."),
        ("target", "999999999", "Unknown target."),
        ("target", "abc", "invalid value for 'target': expected an integer"),
    ]
    before = snapshot(client)
    for name, value, message in cases:
        params = dict(good)
        if value is None:
            del params[name]
        else:
            params[name] = value
        resp = client.request("POST", q("/api/v1/logs", **params), b"some log\n")
        assert resp.status == 400, (name, value, resp)
        assert envelope(resp) == (message, ""), (name, value)
    # the first failing check wins, in the documented order
    assert_error(client.request("POST", "/api/v1/logs", b"x"), 400,
                 "Invalid or missing start time.")
    assert_error(client.request("POST", "/api/v1/logs?startTime=1&endTime=2", b"x"), 400,
                 "Missing exit code.")
    assert snapshot(client) == before


def test_post_log_without_content_length_is_411_and_saves_nothing(client, u):
    target_id = add_target(client, repo=f"r{u}")
    before = snapshot(client)
    resp = client.post_without_length(
        f"/api/v1/logs?startTime=1700000000&endTime=1700000001&exitCode=0&arch=x86_64"
        f"&target={target_id}", b"")
    assert_error(resp, 411, "Content-Length is required.")
    assert snapshot(client) == before


@pytest.fixture
def log_set(client, u):
    """Logs of one target: (id, start, arch, exit code) rows, posted in this order."""
    target_id = add_target(client, repo=f"r{u}")
    other = add_target(client, repo=f"r{u}")
    rows = []
    for start, arch, code in [(1000, "x86_64", 0), (2000, "aarch64", 1), (3000, "x86_64", 2),
                              (4000, "x86_64", 3), (5000, "aarch64", 1), (6000, "x86_64", 0),
                              (7000, "x86_64", -1)]:
        log_id = post_log(client, target_id, f"{start}\n".encode(), start=start,
                          end=start + 10, arch=arch, code=code)
        rows.append((log_id, start, arch, code))
    post_log(client, other, start=2500, code=1)
    return client, target_id, rows


@pytest.mark.parametrize("params, keep", [
    ({}, lambda s, a, c: True),
    ({"exit_codes": "1,2"}, lambda s, a, c: c in (1, 2)),
    ({"exit_codes": "1"}, lambda s, a, c: c == 1),
    ({"exit_codes": "!1,!2"}, lambda s, a, c: c not in (1, 2)),
    ({"exit_codes": "!0"}, lambda s, a, c: c != 0),
    ({"exit_codes": "0"}, lambda s, a, c: c == 0),
    ({"exit_codes": "-1"}, lambda s, a, c: c == -1),
    ({"exit_codes": "1,!1"}, lambda s, a, c: False),
    ({"exit_codes": "1,2,3,!2"}, lambda s, a, c: c in (1, 3)),
    ({"exit_codes": ""}, lambda s, a, c: True),
    ({"before": 3000}, lambda s, a, c: s < 3000),
    ({"after": 3000}, lambda s, a, c: s > 3000),
    ({"after": 2000, "before": 5000}, lambda s, a, c: 2000 < s < 5000),
    ({"before": 1000}, lambda s, a, c: False),
    ({"after": 7000}, lambda s, a, c: False),
    ({"arch": "aarch64"}, lambda s, a, c: a == "aarch64"),
    ({"arch": "x86_64", "exit_codes": "!0"}, lambda s, a, c: a == "x86_64" and c != 0),
    ({"arch": ""}, lambda s, a, c: True),
    ({"arch": "riscv64"}, lambda s, a, c: False),
])
def test_list_logs_filters(log_set, params, keep):
    client, target_id, rows = log_set
    found = list_logs(client, target=target_id, limit=0, **params)
    assert [log["id"] for log in found] == [i for i, s, a, c in rows if keep(s, a, c)]
    for log in found:
        i, s, a, c = next(r for r in rows if r[0] == log["id"])
        assert log == {"id": i, "target_id": target_id, "start_time": s, "end_time": s + 10,
                       "arch": a, "exit_code": c}


def test_list_logs_offset_limit_and_target(log_set):
    client, target_id, rows = log_set
    ids = [r[0] for r in rows]
    listed = lambda **p: [log["id"] for log in list_logs(client, target=target_id, **p)]  # noqa
    assert listed() == ids
    assert listed(limit=2) == ids[:2]
    assert listed(offset=2, limit=3) == ids[2:5]
    assert listed(offset=5, limit=0) == ids[5:]
    assert listed(offset=7) == []
    assert listed(exit_codes="!0", offset=1, limit=2) == [rows[2][0], rows[3][0]]
    everything = [log["id"] for log in list_logs(client, limit=0)]
    assert everything == sorted(everything) and set(ids) < set(everything)
    assert [log["id"] for log in list_logs(client, target=0, limit=0)] == everything
    assert list_logs(client, target=999999999) == []


def test_list_logs_default_limit(client, u):
    target_id = add_target(client, repo=f"r{u}")
    made = [post_log(client, target_id, start=1000 + i) for i in range(27)]
    assert [log["id"] for log in list_logs(client, target=target_id)] == made[:25]
    assert [log["id"] for log in list_logs(client, target=target_id, limit=0)] == made


@pytest.mark.parametrize("query, message", [
    ("exit_codes=1,,2", "invalid exit code '' in exit_codes"),
    ("exit_codes=,", "invalid exit code '' in exit_codes"),
    ("exit_codes=1,", "invalid exit code '' in exit_codes"),
    ("exit_codes=!", "invalid exit code '!' in exit_codes"),
    ("exit_codes=x", "invalid exit code 'x' in exit_codes"),
    ("exit_codes=1.5", "invalid exit code '1.5' in exit_codes"),
    ("exit_codes=!!1", "invalid exit code '!!1' in exit_codes"),
    ("exit_codes=1%3BDROP%20TABLE%20builds",
     "invalid exit code '1;DROP TABLE builds' in exit_codes"),
    ("limit=abc", "invalid value for 'limit': expected an integer"),
    ("limit=-1", "invalid value for 'limit': must be at least 0"),
    ("offset=1e3", "invalid value for 'offset': expected an integer"),
    ("target=abc", "invalid value for 'target': expected an integer"),
    ("before=yesterday", "invalid value for 'before': expected an integer"),
    ("after=12abc", "invalid value for 'after': expected an integer"),
])
def test_list_logs_rejects_bad_filters(client, query, message):
    assert_error(client.request("GET", f"/api/v1/logs?{query}"), 400, message)


def test_unknown_logs_are_404_and_bad_ids_400(client, u):
    before = snapshot(client)
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        assert_error(client.request(method, f"/api/v1/logs/999999999{suffix}"), 404,
                     "Build log not found.")
        assert_error(client.request(method, f"/api/v1/logs/abc{suffix}"), 400,
                     "invalid id 'abc'")
        assert_error(client.request(method, f"/api/v1/logs/-2{suffix}"), 400, "invalid id '-2'")
    # a queued build has no log yet
    target_id = add_target(client, repo=f"r{u}", arch=f"a{u}")
    queued = queue(client, target_id, f"a{u}")
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        assert_error(client.request(method, f"/api/v1/logs/{queued}{suffix}"), 404,
                     "Build log not found.")
    resp = client.request("DELETE", f"/api/v1/targets/{target_id}")
    assert resp.status == 200 and envelope(resp) == ("Target removed.", "")
    assert snapshot(client) == before


def test_delete_log(client, u):
    target_id = add_target(client, repo=f"r{u}")
    keep = post_log(client, target_id, b"keep\n")
    gone = post_log(client, target_id, b"gone\n")
    resp = client.request("DELETE", f"/api/v1/logs/{gone}")
    assert resp.status == 200 and envelope(resp) == ("Build log removed.", "")
    assert_error(client.request("GET", f"/api/v1/logs/{gone}"), 404, "Build log not found.")
    assert_error(content(client, gone), 404, "Build log not found.")
    assert_error(client.request("DELETE", f"/api/v1/logs/{gone}"), 404, "Build log not found.")
    assert [log["id"] for log in list_logs(client, target=target_id)] == [keep]
    assert content(client, keep).body == b"keep\n"


def test_delete_log_of_a_running_build_is_409(client, u):
    target_id = add_target(client, repo=f"r{u}", arch=f"a{u}")
    job = claim(client, target_id, f"a{u}")
    build_id, token = job["build_id"], job["token"]
    ok(client.request("POST", f"/api/v1/builds/{build_id}/log", b"half", token_headers(token)))
    assert_error(client.request("DELETE", f"/api/v1/logs/{build_id}"), 409,
                 "The build is still running.")
    assert content(client, build_id).body == b"half"
    ok(client.request("POST", f"/api/v1/builds/{build_id}/log", b"-done", token_headers(token)))
    assert content(client, build_id).body == b"half-done"


# -- jobs ------------------------------------------------------------------------------------

def test_queue_and_poll_hand_out_the_seed_fields(client, u):
    arch = f"a{u}"
    target_id = add_target(client, kind="git", url=f"https://e/{u}.git", branch="dev",
                           path="sub", repo=f"r{u}", arch=arch)
    build_id = queue(client, target_id, arch)
    assert poll(client, f"b{u}") == []
    [job] = ok(client.request("GET", f"/api/v1/jobs/poll?arch={arch}&max=5&runner=agent-{u}"))
    assert list(job) == JOB_KEYS
    token = job.pop("token")
    assert isinstance(token, str) and len(token) >= 32
    assert job == {"target_id": target_id, "kind": "git", "url": f"https://e/{u}.git",
                   "branch": "dev", "path": "sub", "repo": f"r{u}", "base_image": BASE_IMAGE,
                   "force": False, "timeout": TIMEOUT, "build_id": build_id, "arch": arch}
    assert poll(client, arch, 5) == []
    # the claimed build is running: a log (not yet in the list) with no end
    assert ok(client.request("GET", f"/api/v1/logs/{build_id}")) == {
        "id": build_id, "target_id": target_id, "start_time": job_start(client, build_id),
        "end_time": None, "arch": arch, "exit_code": None}
    assert build_id not in [log["id"] for log in list_logs(client, limit=0)]
    build = ok(client.request("GET", f"/api/v1/builds/{build_id}"))
    assert (build["runner"], build["force"], build["repo"]) == (f"agent-{u}", False, f"r{u}")


def job_start(client, build_id: int) -> int:
    build = ok(client.request("GET", f"/api/v1/builds/{build_id}"))
    assert list(build) == BUILD_KEYS
    assert build["status"] == "running" and isinstance(build["started_at"], int)
    return build["started_at"]


def test_one_queued_build_per_target_and_arch(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=f"{arch},b{u}")
    first = queue(client, target_id, arch)
    assert queue(client, target_id, arch) == first
    other_arch = queue(client, target_id, f"b{u}")
    assert other_arch != first
    assert [j["build_id"] for j in poll(client, arch)] == [first]
    assert poll(client, arch) == []
    # while it runs, a new build can be queued, but it is not handed out alongside
    second = queue(client, target_id, arch)
    assert second not in (first, other_arch)
    assert poll(client, arch) == []
    assert [j["build_id"] for j in poll(client, f"b{u}")] == [other_arch]


@pytest.mark.parametrize("flag, forced", [("", False), ("&force", True), ("&force=", True),
                                          ("&force=true", True), ("&force=1", True),
                                          ("&force=false", False), ("&force=0", False)])
def test_queue_force_flag(client, u, flag, forced):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    build_id = queue(client, target_id, arch, flag)
    [job] = poll(client, arch)
    assert (job["build_id"], job["force"]) == (build_id, forced)


def test_queue_force_is_ored_into_a_queued_build(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    build_id = queue(client, target_id, arch, "&force=false")
    assert queue(client, target_id, arch, "&force") == build_id
    assert queue(client, target_id, arch, "&force=false") == build_id
    [job] = poll(client, arch)
    assert (job["build_id"], job["force"]) == (build_id, True)


def test_poll_max(client, u):
    arch = f"a{u}"
    targets = [add_target(client, repo=f"r{u}", arch=arch) for _ in range(3)]
    builds = [queue(client, t, arch) for t in targets]
    assert poll(client, arch, 0) == []
    first = poll(client, arch, 2)
    assert [(j["build_id"], j["target_id"]) for j in first] == list(zip(builds, targets, strict=True))[:2]
    assert len({j["token"] for j in first}) == 2
    assert [j["build_id"] for j in poll(client, arch, 2)] == builds[2:]
    assert poll(client, arch, 2) == []


@pytest.mark.parametrize("query, message", [
    ("max=1", "Missing arch query arg."),
    ("arch=x86_64", "Missing max query arg."),
    ("arch=x86_64&max=", "Missing max query arg."),
    ("arch=x86_64&max=abc", "invalid value for 'max': expected an integer"),
    ("arch=x86_64&max=-1", "invalid value for 'max': must be at least 0"),
])
def test_poll_rejects_bad_input(client, query, message):
    assert_error(client.request("GET", f"/api/v1/jobs/poll?{query}"), 400, message)


def test_queue_rejects_bad_input_and_queues_nothing(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    cases = [
        (f"arch={arch}", "Missing target query arg."),
        (f"target=&arch={arch}", "Missing target query arg."),
        (f"target={target_id}", "Missing arch query arg."),
        (f"target={target_id}&arch=", "Empty arch query arg."),
        (f"target=999999999&arch={arch}", "Unknown target id."),
        (f"target=abc&arch={arch}", "invalid value for 'target': expected an integer"),
        (f"target=0&arch={arch}", "invalid value for 'target': must be at least 1"),
        (f"target={target_id}&arch=a%20b", "invalid architecture 'a b'"),
        (f"target={target_id}&arch={arch}&force=maybe",
         "invalid value for 'force': expected true or false"),
    ]
    before = snapshot(client)
    for query, message in cases:
        assert_error(client.request("POST", f"/api/v1/jobs/queue?{query}"), 400, message)
    assert snapshot(client) == before
    assert poll(client, arch) == []
    assert poll(client, "", 5) == []


# -- build tokens ----------------------------------------------------------------------------

def test_build_token_scope(client, u, tmp_path):
    arch = f"a{u}"
    mine_t = add_target(client, repo=f"r{u}", arch=arch)
    other_t = add_target(client, repo=f"s{u}", arch=arch)
    mine, other = claim(client, mine_t, arch), claim(client, other_t, arch)
    me, token = mine["build_id"], mine["token"]
    them = other["build_id"]

    for headers in (token_headers(token), bearer(token)):
        build = ok(client.request("GET", f"/api/v1/builds/{me}", headers=headers))
        assert (build["id"], build["status"], build["repo"]) == (me, "running", f"r{u}")
        assert ok(client.request("POST", f"/api/v1/builds/{me}/lease",
                                 headers=headers))["status"] == "running"
    assert ok(client.request("POST", f"/api/v1/builds/{me}/log", b"one\n",
                             token_headers(token))) == {"size": 4}
    assert ok(client.request("POST", f"/api/v1/builds/{me}/log", b"two\n",
                             bearer(token))) == {"size": 8}
    build = ok(client.request("PATCH", f"/api/v1/builds/{me}/tasks/build?status=running",
                              headers=bearer(token)))
    assert build["tasks"] == [{"name": "setup", "status": "pending"},
                              {"name": "source", "status": "pending"},
                              {"name": "build", "status": "running"},
                              {"name": "publish", "status": "pending"}]

    # another build's routes: 403, and nothing changes there
    for method, path, body in [("GET", f"/api/v1/builds/{them}", None),
                               ("POST", f"/api/v1/builds/{them}/lease", None),
                               ("POST", f"/api/v1/builds/{them}/log", b"evil\n"),
                               ("PATCH", f"/api/v1/builds/{them}/tasks/build?status=failed",
                                None),
                               ("POST", f"/api/v1/builds/{them}/finish?exitCode=0", None),
                               ("GET", "/api/v1/builds/999999999", None)]:
        for headers in (token_headers(token), bearer(token)):
            assert_error(client.request(method, path, body, headers), 403,
                         "This token belongs to another build.")
    assert b"evil" not in content(client, them).body
    assert ok(client.request("GET", f"/api/v1/builds/{them}"))["status"] == "running"

    # the admin routes are not for tokens
    for method, path in [("GET", "/api/v1/targets"), ("GET", f"/api/v1/targets/{mine_t}"),
                         ("POST", "/api/v1/targets?kind=git&url=https://e/x.git&repo=bur"),
                         ("PATCH", f"/api/v1/targets/{mine_t}?branch=x"),
                         ("DELETE", f"/api/v1/targets/{mine_t}"),
                         ("GET", "/api/v1/logs"), ("GET", f"/api/v1/logs/{me}"),
                         ("GET", f"/api/v1/logs/{me}/content"),
                         ("DELETE", f"/api/v1/logs/{me}"),
                         ("GET", f"/api/v1/jobs/poll?arch={arch}&max=1"),
                         ("POST", f"/api/v1/jobs/queue?target={mine_t}&arch={arch}"),
                         ("DELETE", f"/r{u}/x86_64/foo"), ("DELETE", f"/r{u}/x86_64"),
                         ("DELETE", f"/r{u}")]:
        assert_error(client.request(method, path, headers=token_headers(token)), 401,
                     "Unauthorized.")
    assert get_target(client, mine_t)["branch"] == ""

    # publishing: the build's own repo (and arch) only
    pkg = package(tmp_path, f"p{u}", arch)
    resp = client.request("POST", f"/s{u}/publish", pkg, token_headers(token))
    assert_error(resp, 403, f"this build token may publish to 'r{u}' only")
    assert client.request("GET", f"/s{u}/{arch}/s{u}.db", headers=NO_KEY).status == 404
    published = ok(client.request("POST", f"/r{u}/publish", pkg, bearer(token)))
    assert published == {"name": f"p{u}", "version": "1.0-1", "archs": [arch]}
    resp = client.request("GET", f"/r{u}/{arch}/p{u}-1.0-1-{arch}.pkg.tar.zst", headers=NO_KEY)
    assert resp.status == 200 and resp.body == pkg

    # finishing ends the token
    done = ok(client.request("POST", f"/api/v1/builds/{me}/finish?exitCode=0",
                             headers=token_headers(token)))
    assert (done["status"], done["exit_code"]) == ("success", 0)
    for method, path, body in [("GET", f"/api/v1/builds/{me}", None),
                               ("POST", f"/api/v1/builds/{me}/lease", None),
                               ("POST", f"/api/v1/builds/{me}/log", b"late\n"),
                               ("PATCH", f"/api/v1/builds/{me}/tasks/build?status=success",
                                None),
                               ("POST", f"/api/v1/builds/{me}/finish?exitCode=1", None),
                               ("POST", f"/r{u}/publish", package(tmp_path, f"q{u}"))]:
        for headers in (token_headers(token), bearer(token)):
            assert_error(client.request(method, path, body, headers), 401, "Unauthorized.")
    assert content(client, me).body == b"one\ntwo\n"
    # the other build's token still works for its own build
    ok(client.request("POST", f"/api/v1/builds/{them}/log", b"fine\n",
                      token_headers(other["token"])))


def test_build_log_in_chunks_is_readable_midway_and_listed_when_finished(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    job = claim(client, target_id, arch)
    build_id, token = job["build_id"], job["token"]
    chunks = [b"==> Starting build\n", b"compiling " * 50 + b"\n", b"==> Finished\n"]
    size = 0
    for i, chunk in enumerate(chunks):
        size += len(chunk)
        assert ok(client.request("POST", f"/api/v1/builds/{build_id}/log", chunk,
                                 token_headers(token))) == {"size": size}
        expected = b"".join(chunks[:i + 1])
        resp = content(client, build_id)
        assert resp.status == 200 and resp.body == expected
        assert resp.headers["content-length"] == str(len(expected))
        if i == 0:
            resp = content(client, build_id, {"Range": "bytes=4-11"})
            assert resp.status == 206 and resp.body == chunks[0][4:12]
            assert resp.headers["content-range"] == f"bytes 4-11/{len(chunks[0])}"
            assert build_id not in [log["id"] for log in list_logs(client, target=target_id)]
    meta = ok(client.request("GET", f"/api/v1/logs/{build_id}"))
    assert (meta["end_time"], meta["exit_code"]) == (None, None)

    # an end time from the agent is taken when it lies between the claim and now
    done = ok(client.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode=0"
                                     f"&endTime={meta['start_time']}",
                             headers=token_headers(token)))
    assert list(done) == BUILD_KEYS
    assert (done["status"], done["exit_code"], done["ended_at"]) == \
        ("success", 0, meta["start_time"])
    assert done["tasks"] == [{"name": n, "status": "skipped"}
                             for n in ("setup", "source", "build", "publish")]
    assert list_logs(client, target=target_id) == [
        {"id": build_id, "target_id": target_id, "start_time": meta["start_time"],
         "end_time": meta["start_time"], "arch": arch, "exit_code": 0}]
    assert [log["id"] for log in list_logs(client, target=target_id, exit_codes="0")] == \
        [build_id]
    assert content(client, build_id).body == b"".join(chunks)
    # now it is over, its log can be deleted
    resp = client.request("DELETE", f"/api/v1/logs/{build_id}")
    assert resp.status == 200 and envelope(resp) == ("Build log removed.", "")
    assert list_logs(client, target=target_id) == []


def test_build_report_routes_with_the_api_key(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    build_id = claim(client, target_id, arch)["build_id"]
    base = f"/api/v1/builds/{build_id}"
    assert ok(client.request("POST", f"{base}/log", b"x"))["size"] == 1
    ok(client.request("PATCH", f"{base}/tasks/setup?status=success"))
    assert_error(client.request("PATCH", f"{base}/tasks/deploy?status=success"), 400,
                 "unknown task 'deploy' (one of setup, source, build, publish)")
    assert_error(client.request("PATCH", f"{base}/tasks/build?status=done"), 400,
                 "unknown task status 'done' (one of pending, running, success, failed, "
                 "skipped)")
    assert_error(client.request("PATCH", f"{base}/tasks/build"), 400,
                 "unknown task status '' (one of pending, running, success, failed, skipped)")
    assert_error(client.request("POST", f"{base}/finish"), 400, "Missing exit code.")
    assert_error(client.request("POST", f"{base}/finish?exitCode=x"), 400,
                 "invalid value for 'exitCode': expected an integer")
    done = ok(client.request("POST", f"{base}/finish?exitCode=2"))
    assert (done["status"], done["exit_code"]) == ("failed", 2)
    assert [t["status"] for t in done["tasks"]] == ["success", "skipped", "skipped", "skipped"]
    for method, path, body in [("POST", f"{base}/finish?exitCode=0", None),
                               ("POST", f"{base}/log", b"y"),
                               ("POST", f"{base}/lease", None),
                               ("PATCH", f"{base}/tasks/build?status=running", None)]:
        assert_error(client.request(method, path, body), 409,
                     f"build {build_id} is failed, not running")
    assert [log["id"] for log in list_logs(client, target=target_id, exit_codes="!0")] == \
        [build_id]
    for method in ("GET", "POST"):
        path = "/api/v1/builds/999999999" + ("/lease" if method == "POST" else "")
        assert_error(client.request(method, path), 404, "build 999999999 not found")
    assert_error(client.request("GET", "/api/v1/builds/abc"), 400, "invalid id 'abc'")


def test_build_token_expires_with_the_build_timeout(webapp, services, u, monkeypatch):
    """In-process only: the queue's clock is moved past the build's timeout and the grace
    an agent has to report a build it killed at its timeout."""
    c = InProcessClient(webapp, services, KEY)
    target_id = add_target(c, repo=f"r{u}", arch=f"a{u}")
    job = claim(c, target_id, f"a{u}")
    path = f"/api/v1/builds/{job['build_id']}/log"
    ok(c.request("POST", path, b"a", token_headers(job["token"])))
    started = job_start(c, job["build_id"])
    monkeypatch.setattr(services.queue, "clock", lambda: started + TIMEOUT + TIMEOUT_GRACE)
    ok(c.request("POST", path, b"b", token_headers(job["token"])))
    monkeypatch.setattr(services.queue, "clock", lambda: started + TIMEOUT + TIMEOUT_GRACE + 1)
    for method, route, body in [("POST", path, b"c"),
                                ("POST", f"/r{u}/publish", b"not even a package")]:
        assert_error(c.request(method, route, body, token_headers(job["token"])), 401,
                     "Unauthorized.")
    # the api_key still reaches the build; the log holds what the token sent in time
    assert content(c, job["build_id"]).body == b"ab"


# -- authentication ----------------------------------------------------------------------------

API_ROUTES = [
    ("GET", "/api/v1/targets", None),
    ("GET", "/api/v1/targets/1", None),
    ("POST", "/api/v1/targets?kind=git&url=https://e/x.git&repo=bur", None),
    ("PATCH", "/api/v1/targets/1?branch=x", None),
    ("DELETE", "/api/v1/targets/1", None),
    ("GET", "/api/v1/logs", None),
    ("GET", "/api/v1/logs/1", None),
    ("GET", "/api/v1/logs/1/content", None),
    ("POST", "/api/v1/logs?startTime=1&endTime=2&arch=x86_64&exitCode=0&target=1", b"log"),
    ("DELETE", "/api/v1/logs/1", None),
    ("POST", "/api/v1/jobs/queue?target=1&arch=x86_64", None),
    ("GET", "/api/v1/jobs/poll?arch=x86_64&max=1", None),
    ("GET", "/api/v1/builds/1", None),
    ("POST", "/api/v1/builds/1/lease", None),
    ("POST", "/api/v1/builds/1/log", b"log"),
    ("PATCH", "/api/v1/builds/1/tasks/build?status=running", None),
    ("POST", "/api/v1/builds/1/finish?exitCode=0", None),
    ("GET", "/api/v1/builds?status=queued", None),
    ("GET", "/api/v1/targets/1/schedule", None),
    ("GET", "/api/v1/repos", None),
    ("GET", "/api/v1/repos/core", None),
    ("GET", "/api/v1/repos/core/x86_64", None),
]


@pytest.mark.parametrize("headers", [NO_KEY, WRONG_KEY, WRONG_BEARER, {"X-Api-Key": ""},
                                     {"Authorization": API_KEY},
                                     {"Authorization": "Basic " + API_KEY}],
                         ids=["none", "wrong-key", "wrong-bearer", "empty-key", "no-scheme",
                              "basic"])
@pytest.mark.parametrize("method, path, body", API_ROUTES,
                         ids=[f"{m} {p.split('?')[0]}" for m, p, _ in API_ROUTES])
def test_every_api_route_needs_the_key(client, headers, method, path, body):
    before = snapshot(client)
    assert_error(client.request(method, path, body, headers), 401, "Unauthorized.")
    assert snapshot(client) == before


def test_the_key_works_both_ways(client):
    assert client.request("GET", "/api/v1/targets?limit=1", headers=KEY).status == 200
    assert client.request("GET", "/api/v1/targets?limit=1", headers=bearer(API_KEY)).status == 200
    assert client.request("GET", "/api/v1/targets?limit=1",
                          headers={"Authorization": f"bearer   {API_KEY}"}).status == 200


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/targets/abc"), ("PATCH", "/api/v1/targets/abc?kind=svn"),
    ("DELETE", "/api/v1/targets/abc"), ("GET", "/api/v1/targets?limit=abc"),
    ("POST", "/api/v1/targets?kind=svn"), ("GET", "/api/v1/logs?exit_codes=,"),
    ("GET", "/api/v1/logs/abc"), ("GET", "/api/v1/logs/abc/content"),
    ("DELETE", "/api/v1/logs/abc"), ("POST", "/api/v1/logs"),
    ("POST", "/api/v1/jobs/queue"), ("GET", "/api/v1/jobs/poll"),
    ("GET", "/api/v1/builds/abc"), ("POST", "/api/v1/builds/abc/lease"),
    ("POST", "/api/v1/builds/abc/log"), ("PATCH", "/api/v1/builds/abc/tasks/build"),
    ("POST", "/api/v1/builds/abc/finish"),
    ("GET", "/api/v1/builds?status=nope"), ("GET", "/api/v1/targets/abc/schedule"),
    ("GET", "/api/v1/repos/-bad"),
])
def test_authentication_comes_before_validation(client, method, path):
    """Without a key nothing about the input is told: 401, never a 400."""
    assert_error(client.request(method, path, headers=NO_KEY), 401, "Unauthorized.")


# -- restart persistence (real server only) ------------------------------------------------------

def test_queue_and_tokens_survive_a_restart(tmp_path, u):
    data_dir = tmp_path / "data"
    first = _start(data_dir)
    try:
        c = ServerClient(first, KEY)
        arch = f"a{u}"
        waiting_t = add_target(c, repo=f"r{u}", branch="dev", arch=arch)
        running_t = add_target(c, repo=f"s{u}", arch=arch)
        running = claim(c, running_t, arch)
        ok(c.request("POST", f"/api/v1/builds/{running['build_id']}/log", b"before\n",
                     token_headers(running["token"])))
        waiting = queue(c, waiting_t, arch, "&force")
        posted = post_log(c, waiting_t, b"old\n", code=4)
        before = snapshot(c)
    finally:
        rc = first.stop()
    assert rc == 0, first.log()

    second = _start(data_dir)
    try:
        c = ServerClient(second, KEY)
        assert snapshot(c) == before
        [job] = poll(c, arch)
        token = job.pop("token")
        assert job == {"target_id": waiting_t, "kind": "git", "url": "https://example.org/pkg.git",
                       "branch": "dev", "path": "", "repo": f"r{u}", "base_image": BASE_IMAGE,
                       "force": True, "timeout": TIMEOUT, "build_id": waiting, "arch": arch}
        assert token != running["token"]
        assert poll(c, arch) == []
        # the build that was running keeps its token and its log
        me = running["build_id"]
        assert ok(c.request("POST", f"/api/v1/builds/{me}/log", b"after\n",
                            bearer(running["token"]))) == {"size": len(b"before\nafter\n")}
        done = ok(c.request("POST", f"/api/v1/builds/{me}/finish?exitCode=0",
                            headers=token_headers(running["token"])))
        assert done["status"] == "success"
        assert content(c, me).body == b"before\nafter\n"
        assert content(c, posted).body == b"old\n"
        assert [log["id"] for log in list_logs(c, limit=0)] == [me, posted]
    finally:
        rc = second.stop()
    assert rc == 0, second.log()


def test_release_at_most_three_times_then_the_build_fails(client, u):
    arch = f"a{u}"
    target_id = add_target(client, repo=f"r{u}", arch=arch)
    build_id = queue(client, target_id, arch)
    for n in (1, 2, 3):
        assert [j["build_id"] for j in poll(client, arch, 1)] == [build_id]
        released = ok(client.request("POST", f"/api/v1/builds/{build_id}/release"))
        assert released["status"] == "queued", n
    poll(client, arch, 1)
    failed = ok(client.request("POST", f"/api/v1/builds/{build_id}/release"))
    assert (failed["status"], failed["exit_code"]) == ("failed", -1)
    assert content(client, build_id).body.endswith(
        b"vieter-lite: the build was handed back 3 times already; build failed\n")
    assert poll(client, arch, 1) == []


def test_finish_keeps_the_servers_times_against_the_agents(client, u):
    arch = f"a{u}"
    job = claim(client, add_target(client, repo=f"r{u}", arch=arch), arch)
    claimed = ok(client.request("GET", f"/api/v1/builds/{job['build_id']}"))["started_at"]
    done = ok(client.request("POST", f"/api/v1/builds/{job['build_id']}/finish?exitCode=0"
                                     "&startTime=1&endTime=99999999999",
                             headers=token_headers(job["token"])))
    assert done["started_at"] == claimed
    assert claimed <= done["ended_at"] < 99999999999


def test_read_routes_for_builds_repos_and_schedules(client, u, tmp_path):
    repo, arch = f"r{u}", f"a{u}"
    target_id = add_target(client, repo=repo, arch=arch)
    job = claim(client, target_id, arch)
    queued = queue(client, add_target(client, repo=repo, arch=arch, url=f"https://e/{u}"), arch)
    found = ok(client.request("GET", "/api/v1/builds?status=queued,running&limit=0"))
    mine = [b for b in found if b["repo"] == repo]
    assert [(b["id"], b["status"]) for b in mine] == [(job["build_id"], "running"),
                                                      (queued, "queued")]
    assert all(list(b) == BUILD_KEYS for b in mine)
    assert [b["id"] for b in ok(client.request(
        "GET", f"/api/v1/builds?target={target_id}"))] == [job["build_id"]]
    assert_error(client.request("GET", "/api/v1/builds?status=queued,waiting"), 400,
                 "unknown build status 'waiting' (one of pending, queued, running, success, "
                 "failed, timeout, cancelled)")
    assert_error(client.request("GET", "/api/v1/builds?target=x"), 400,
                 "invalid value for 'target': expected an integer")

    body = package(tmp_path, f"p{u}", arch)
    ok(client.request("POST", f"/{repo}/publish", body, token_headers(job["token"])))
    ok(client.request("POST", f"/{repo}/publish", package(tmp_path, f"q{u}", "any")))
    repos = [r for r in ok(client.request("GET", "/api/v1/repos")) if r["name"] == repo]
    assert repos == [{"name": repo, "archs": [{"arch": arch, "packages": 2},
                                              {"arch": "x86_64", "packages": 1}]}]
    listed = ok(client.request("GET", f"/api/v1/repos/{repo}/{arch}"))
    assert [{k: v for k, v in p.items() if k != "published_at"} for p in listed] == [
        {"name": f"p{u}", "version": "1.0-1", "arch": arch, "pkg_arch": arch,
         "filename": f"p{u}-1.0-1-{arch}.pkg.tar.zst", "size": len(body),
         "owner": {"target_id": target_id}},
        {"name": f"q{u}", "version": "1.0-1", "arch": arch, "pkg_arch": "any",
         "filename": f"q{u}-1.0-1-any.pkg.tar.zst", "size": len(package(tmp_path, f"q{u}", "any")),
         "owner": {"target_id": None}}]
    assert [(p["name"], p["arch"]) for p in ok(client.request("GET", f"/api/v1/repos/{repo}"))] \
        == [(f"p{u}", arch), (f"q{u}", arch), (f"q{u}", "x86_64")]
    assert_error(client.request("GET", f"/api/v1/repos/n{u}"), 404,
                 f"repository 'n{u}' not found")
    assert_error(client.request("GET", f"/api/v1/repos/{repo}/b{u}"), 404,
                 f"arch-repo {repo}/b{u} not found")
    assert client.request("GET", "/api/v1/repos/-bad").status == 400

    plan = ok(client.request("GET", f"/api/v1/targets/{target_id}/schedule"))
    global_schedule = client.services.config.global_schedule if client.mode == "inprocess" \
        else QUIET_SCHEDULE
    assert (plan["schedule"], plan["global"]) == (global_schedule, True)
    assert [a["arch"] for a in plan["archs"]] == [arch]
    assert isinstance(plan["archs"][0]["next_run"], int)
    ok(client.request("PATCH", f"/api/v1/targets/{target_id}?schedule=0+4"))
    plan = ok(client.request("GET", f"/api/v1/targets/{target_id}/schedule"))
    assert (plan["schedule"], plan["global"]) == ("0 4", False)
    assert_error(client.request("GET", "/api/v1/targets/999999999/schedule"), 404,
                 "Target not found.")
    # admin routes: not for a build token
    for path in ("/api/v1/builds", "/api/v1/repos", f"/api/v1/repos/{repo}",
                 f"/api/v1/targets/{target_id}/schedule"):
        assert_error(client.request("GET", path, headers=token_headers(job["token"])), 401,
                     "Unauthorized.")


def test_a_posted_log_with_a_time_past_year_9999_is_refused(client, u):
    target = add_target(client, repo=f"y{u}")
    resp = client.request("POST", q("/api/v1/logs", target=target, arch="x86_64",
                                    startTime=1, endTime=10 ** 17, exitCode=0), b"log\n")
    assert_error(resp, 400, "invalid value for 'endTime': must be at most 253402300799")
