"""GET /badge/<target id or repo>.svg over the real app: in-process and against a real
server process (no key, the catch-all repository routes not in the way, ETag and 304)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from test_api_v2 import (  # noqa: F401 (client, shared_server and u are fixtures)
    add_target,
    client,
    ok,
    package,
    shared_server,
    u,
)

NO_KEY: dict[str, str] = {}
SVG = "{http://www.w3.org/2000/svg}"


def texts(body: bytes) -> list[str]:
    return [t.text or "" for t in ET.fromstring(body).iter(f"{SVG}text")]


def get(c, name: str, headers: dict[str, str] | None = None):
    return c.request("GET", f"/badge/{name}.svg", None, headers or NO_KEY)


def finished(c, target_id: int, code: int, arch: str = "x86_64", start: int = 1_790_000_000):
    ok(c.request("POST", f"/api/v1/logs?target={target_id}&arch={arch}&startTime={start}"
                         f"&endTime={start + 60}&exitCode={code}", b"log\n"))


def test_a_targets_badge_follows_its_builds(client, u):
    target = add_target(client, f"b{u}", arch=["x86_64", "aarch64"])["id"]
    resp = get(client, str(target))
    assert resp.status == 200 and resp.headers["content-type"].startswith("image/svg+xml")
    assert texts(resp.body) == ["build", "unknown"]
    finished(client, target, 1)
    assert texts(get(client, str(target)).body) == ["build", "failing"]
    finished(client, target, 0, start=1_790_000_100)
    assert texts(get(client, str(target)).body) == ["build", "passing"]
    finished(client, target, 124, arch="aarch64")       # a timeout on the other arch
    assert texts(get(client, str(target)).body) == ["build", "failing"]
    finished(client, target, 0, arch="aarch64", start=1_790_000_200)
    assert texts(get(client, str(target)).body) == ["build", "passing"]
    build = ok(client.request("POST", f"/api/v1/jobs/queue?target={target}&arch=x86_64"
                                      "&force=true"))["data"]
    jobs = ok(client.request("GET", f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build}"
                                    "&jobs=v2"))["data"]
    assert [j["build_id"] for j in jobs] == [build]
    assert texts(get(client, str(target)).body) == ["build", "running"]


def test_a_repos_badge_counts_its_packages(client, u, tmp_path):
    repo = f"br{u}"
    for name, arch in (("foo", "x86_64"), ("bar", "x86_64"), ("bar", "aarch64")):
        assert client.request("POST", f"/{repo}/publish",
                              package(tmp_path, f"{name}{u}", arch=arch)).status == 200
    resp = get(client, repo)
    assert resp.status == 200 and texts(resp.body) == [repo, "2 packages"]


@pytest.mark.parametrize("name", ["999999", "nosuchrepo", "api", "badge", "a%20b"])
def test_an_unknown_target_or_repo_is_a_404_unknown_badge(client, name):
    resp = get(client, name)
    assert resp.status == 404, resp
    assert resp.headers["content-type"].startswith("image/svg+xml")
    assert texts(resp.body)[1] == "unknown"
    assert resp.headers["cache-control"] == "no-cache"


def test_etag_and_304_until_the_badge_changes(client, u):
    target = add_target(client, f"e{u}")["id"]
    first = get(client, str(target))
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = get(client, str(target), {"If-None-Match": tag})
    assert again.status == 304 and again.body == b"" and again.headers["etag"] == tag
    assert get(client, str(target), {"If-None-Match": '"other"'}).status == 200
    finished(client, target, 1)
    changed = get(client, str(target), {"If-None-Match": tag})
    assert changed.status == 200 and changed.headers["etag"] != tag
    assert texts(changed.body) == ["build", "failing"]


def test_a_badge_needs_no_key_and_ignores_a_wrong_one(client, u):
    target = add_target(client, f"k{u}")["id"]
    assert get(client, str(target), {"X-Api-Key": "wrong"}).status == 200
