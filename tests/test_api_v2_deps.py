"""Dependency order on /api/v2: an agent PUTs what makepkg read of a build's PKGBUILD
(`/api/v2/builds/:id/srcinfo`), a queued build shows the builds it waits for
(`blocked_by`), a target shows what it depends on and rebuild_on_dependency. In-process
and against one real server process."""

from __future__ import annotations

from http_clients import KEY, ServerClient
from test_api_v2 import (  # noqa: F401 (client, shared_server and u are fixtures)
    add_target,
    cf_error,
    client,
    ok,
    send,
    shared_server,
    u,
)
from test_dependencies import srcinfo


def queue(c, target_id: int) -> int:
    return ok(c.request("POST", f"/api/v1/jobs/queue?target={target_id}&arch=x86_64"))["data"]


def claim(c, build_id: int) -> str:
    jobs = ok(c.request("GET", f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build_id}"
                               "&jobs=v2"))["data"]
    assert [j["build_id"] for j in jobs] == [build_id], jobs
    return jobs[0]["token"]


def put_srcinfo(c, build_id: int, token: str, text: str):
    return c.request("PUT", f"/api/v2/builds/{build_id}/srcinfo", text.encode(),
                     {"X-Api-Key": token, "Content-Type": "text/plain"})


def finish(c, build_id: int, token: str, code: int = 0) -> None:
    ok(c.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode={code}", b"",
                 {"X-Api-Key": token}))


def test_a_build_reads_its_pkgbuild_and_its_dependents_wait(client, u):
    repo = f"d{u}"
    a = add_target(client, repo, url=f"https://example.invalid/a{u}.git")["id"]
    b = add_target(client, repo, url=f"https://example.invalid/b{u}.git",
                   rebuild_on_dependency=True)["id"]
    assert ok(client.request("GET", f"/api/v2/targets/{b}"))["rebuild_on_dependency"] is True

    # each PKGBUILD read once, by a build of its own
    for target_id, text in ((a, srcinfo(f"a{u}")), (b, srcinfo(f"b{u}", depends=[f"a{u}>=1"]))):
        build_id = queue(client, target_id)
        token = claim(client, build_id)
        assert ok(put_srcinfo(client, build_id, token, text)) == {"action": "build"}
        finish(client, build_id, token)
    target_b = ok(client.request("GET", f"/api/v2/targets/{b}"))
    assert target_b["dependencies"] == [{"arch": "x86_64", "target_id": a, "kind": "needs",
                                         "via": f"a{u}>=1"}]
    assert target_b["srcinfo"]["x86_64"]["pkgbase"] == f"b{u}"

    build_a, build_b = queue(client, a), queue(client, b)
    shown = ok(client.request("GET", f"/api/v2/builds/{build_b}"))
    assert (shown["status"], shown["blocked_by"]) == ("queued", [build_a])
    listed = ok(client.request("GET", f"/api/v2/builds?target_ids={a},{b}&states=queued"))[
        "resources"]
    assert {x["id"]: x["blocked_by"] for x in listed} == {build_a: [], build_b: [build_a]}
    poll = "/api/v1/jobs/poll?arch=x86_64&max=5&jobs=v2&build="
    assert ok(client.request("GET", f"{poll}{build_b}"))["data"] == []   # it waits
    finish(client, build_a, claim(client, build_a))
    assert ok(client.request("GET", f"/api/v2/builds/{build_b}"))["blocked_by"] == []


def test_a_build_that_must_wait_is_told_so(client, u):
    repo = f"w{u}"
    a = add_target(client, repo, url=f"https://example.invalid/a{u}.git")["id"]
    b = add_target(client, repo, url=f"https://example.invalid/b{u}.git")["id"]
    build_b, build_a = queue(client, b), queue(client, a)
    token_b = claim(client, build_b)
    claim(client, build_a)
    assert ok(put_srcinfo(client, build_b, token_b, srcinfo(f"b{u}", makedepends=[f"a{u}"]))) \
        == {"action": "wait", "blocked_by": [build_a]}
    assert ok(client.request("GET", f"/api/v2/builds/{build_b}"))["status"] == "queued"
    # its token died with the claim
    assert put_srcinfo(client, build_b, token_b, srcinfo(f"b{u}")).status == 401


def test_bad_srcinfo_reports(client, u):
    a = add_target(client, f"x{u}", url=f"https://example.invalid/a{u}.git")["id"]
    b = add_target(client, f"x{u}", url=f"https://example.invalid/b{u}.git")["id"]
    build_a, build_b = queue(client, a), queue(client, b)
    token = claim(client, build_a)
    claim(client, build_b)
    cf_error(put_srcinfo(client, build_a, token, "no srcinfo here\n"), 422, 10008,
             "srcinfo: not makepkg's .SRCINFO: no 'pkgbase = NAME' line")
    cf_error(put_srcinfo(client, build_a, token, "pkgbase = a\n\xff\n"), 422, 10008,
             "no 'pkgname = NAME' line")
    cf_error(put_srcinfo(client, build_b, token, srcinfo("b")), 403, 10003)
    cf_error(put_srcinfo(client, build_a, "wrong", srcinfo("a")), 401, 10002)
    cf_error(send(client, "PATCH", f"/api/v2/targets/{a}", {"rebuild_on_dependency": "yes"}),
             422, 10008, "rebuild_on_dependency")
    assert ok(client.request("GET", f"/api/v2/targets/{a}"))["srcinfo"] == {}


def test_a_srcinfo_over_max_api_body_is_refused_from_its_headers(shared_server):
    c = ServerClient(shared_server, KEY)
    resp = c.request("PUT", "/api/v2/builds/1/srcinfo", b"x" * (65536 + 1))
    cf_error(resp, 413, 10012)
