"""Who may publish what: package names owned by the target that first published them, and a
build token confined to its running build's repo, arch and pkgbase. In-process and against
a real server; ownership also across a restart."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import ServerProcess
from pkgfactory import make_synthetic_package
from test_api_v1 import (  # noqa: F401
    KEY,
    NO_KEY,
    ServerClient,
    add_target,
    assert_error,
    claim,
    client,
    ok,
    shared_server,
    token_headers,
    u,
)
from vieter_lite.errors import Forbidden


def pkg(tmp_path: Path, name: str, version: str = "1.0-1", arch: str = "x86_64",
        base: str | None = None) -> bytes:
    pkginfo = {"pkgname": name, "pkgbase": base or name, "pkgver": version, "arch": arch,
               "pkgdesc": "publish rules", "builddate": "1700000000", "size": "1"}
    path = make_synthetic_package(tmp_path / f"{name}-{version}-{arch}.pkg.tar.zst", pkginfo,
                                  {f"usr/share/{name}/VERSION": version.encode()})
    return path.read_bytes()


def state(c, repo: str, arch: str, files: list[str]) -> dict[str, object]:
    """What a publish could change: both db archives and the given package files."""
    found: dict[str, object] = {}
    for name in [f"{repo}.db", f"{repo}.files", *files]:
        resp = c.request("GET", f"/{repo}/{arch}/{name}", headers=NO_KEY)
        found[name] = (resp.status, hashlib.sha256(resp.body).hexdigest())
    return found


def publish(c, repo: str, body: bytes, token: str | None = None, extra: str = ""):
    return c.request("POST", f"/{repo}/publish{extra}", body,
                     KEY if token is None else token_headers(token))


def finish(c, build_id: int) -> None:
    ok(c.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode=0"))


# -- ownership -------------------------------------------------------------------------------

def test_a_build_cannot_publish_a_name_another_target_owns(client, u, tmp_path):
    repo, arch = f"r{u}", f"a{u}"
    a = add_target(client, repo=repo, arch=arch, url=f"https://e.org/a{u}.git")
    b = add_target(client, repo=repo, arch=arch, url=f"https://e.org/b{u}.git")
    job_a = claim(client, a, arch)
    first = pkg(tmp_path, f"n{u}", "1.0-1", arch)
    assert ok(publish(client, repo, first, job_a["token"]))["name"] == f"n{u}"
    finish(client, job_a["build_id"])

    # the attack: target B's build publishes a newer package under A's name
    job_b = claim(client, b, arch)
    files = [f"n{u}-1.0-1-{arch}.pkg.tar.zst", f"n{u}-2.0-1-{arch}.pkg.tar.zst"]
    before = state(client, repo, arch, files)
    trojan = pkg(tmp_path, f"n{u}", "2.0-1", arch)
    for extra in ("", "?force=true"):
        assert_error(publish(client, repo, trojan, job_b["token"], extra), 403,
                     f"package 'n{u}' in '{repo}' belongs to target {a}: a build of target "
                     f"{b} may not publish it")
    assert state(client, repo, arch, files) == before
    assert before[files[1]][0] == 404

    # B may still publish a name nobody owns; A's next build may publish its own name
    assert ok(publish(client, repo, pkg(tmp_path, f"m{u}", "1.0-1", arch),
                      job_b["token"]))["name"] == f"m{u}"
    finish(client, job_b["build_id"])
    job_a2 = claim(client, a, arch)
    assert ok(publish(client, repo, pkg(tmp_path, f"n{u}", "2.0-1", arch),
                      job_a2["token"]))["version"] == "2.0-1"
    # ... but not B's name
    assert_error(publish(client, repo, pkg(tmp_path, f"m{u}", "3.0-1", arch),
                         job_a2["token"]), 403,
                 f"package 'm{u}' in '{repo}' belongs to target {b}: a build of target "
                 f"{a} may not publish it")


def test_the_api_key_publishes_over_any_name_and_then_owns_it(client, u, tmp_path):
    repo, arch = f"r{u}", f"a{u}"
    a = add_target(client, repo=repo, arch=arch)
    job = claim(client, a, arch)
    ok(publish(client, repo, pkg(tmp_path, f"n{u}", "1.0-1", arch), job["token"]))
    # the admin replaces it: a name of the admin now
    ok(publish(client, repo, pkg(tmp_path, f"n{u}", "1.1-1", arch)))
    before = state(client, repo, arch, [f"n{u}-1.1-1-{arch}.pkg.tar.zst"])
    assert_error(publish(client, repo, pkg(tmp_path, f"n{u}", "1.2-1", arch), job["token"]),
                 403, f"package 'n{u}' in '{repo}' belongs to the admin (api_key): a build of "
                      f"target {a} may not publish it")
    assert state(client, repo, arch, [f"n{u}-1.1-1-{arch}.pkg.tar.zst"]) == before
    # names the admin published first are the admin's too
    ok(publish(client, repo, pkg(tmp_path, f"k{u}", "1.0-1", arch)))
    assert publish(client, repo, pkg(tmp_path, f"k{u}", "1.1-1", arch),
                   job["token"]).status == 403


def test_ownership_is_per_repo_and_kept_until_the_name_leaves_the_repo(client, u, tmp_path):
    repo, arch, other_arch = f"r{u}", f"a{u}", f"b{u}"
    a = add_target(client, repo=repo, arch=f"{arch},{other_arch}")
    b = add_target(client, repo=repo, arch=f"{arch},{other_arch}", url=f"https://e/b{u}.git")
    c = add_target(client, repo=f"s{u}", arch=arch)
    job = claim(client, a, arch)
    ok(publish(client, repo, pkg(tmp_path, f"n{u}", "1.0-1", arch), job["token"]))
    finish(client, job["build_id"])
    # another repo's name space is its own
    job_c = claim(client, c, arch)
    ok(publish(client, f"s{u}", pkg(tmp_path, f"n{u}", "1.0-1", arch), job_c["token"]))
    # published in a second arch-repo too: removing it from one keeps the owner
    job = claim(client, a, other_arch)
    ok(publish(client, repo, pkg(tmp_path, f"n{u}", "1.0-1", other_arch), job["token"]))
    finish(client, job["build_id"])
    assert client.request("DELETE", f"/{repo}/{arch}/n{u}").status == 200
    job_b = claim(client, b, arch)
    assert publish(client, repo, pkg(tmp_path, f"n{u}", "1.0-1", arch),
                   job_b["token"]).status == 403
    # gone from every arch-repo of the repo: the name is free again
    assert client.request("DELETE", f"/{repo}/{other_arch}").status == 200
    assert ok(publish(client, repo, pkg(tmp_path, f"n{u}", "1.0-1", arch),
                      job_b["token"]))["name"] == f"n{u}"


# -- what a build token may publish ----------------------------------------------------------

def test_a_build_token_publishes_for_its_own_arch_or_any_only(client, u, tmp_path):
    repo, arch = f"r{u}", f"a{u}"
    job = claim(client, add_target(client, repo=repo, arch=arch), arch)
    before = state(client, repo, "x86_64", [f"n{u}-1.0-1-x86_64.pkg.tar.zst"])
    assert_error(publish(client, repo, pkg(tmp_path, f"n{u}", arch="x86_64"), job["token"]),
                 403, f"build {job['build_id']} builds for {arch}: it may not publish a "
                      "package for x86_64")
    assert state(client, repo, "x86_64", [f"n{u}-1.0-1-x86_64.pkg.tar.zst"]) == before
    assert ok(publish(client, repo, pkg(tmp_path, f"n{u}", arch="any"),
                      job["token"]))["name"] == f"n{u}"


def test_a_build_token_publishes_one_pkgbase(client, u, tmp_path):
    repo, arch = f"r{u}", f"a{u}"
    job = claim(client, add_target(client, repo=repo, arch=arch), arch)
    # a split package: every part has the pkgbase the first publish fixed
    ok(publish(client, repo, pkg(tmp_path, f"x{u}", arch=arch, base=f"base{u}"), job["token"]))
    ok(publish(client, repo, pkg(tmp_path, f"x{u}-doc", arch="any", base=f"base{u}"),
               job["token"]))
    before = state(client, repo, arch, [f"y{u}-1.0-1-{arch}.pkg.tar.zst"])
    assert_error(publish(client, repo, pkg(tmp_path, f"y{u}", arch=arch, base=f"other{u}"),
                         job["token"]), 403,
                 f"build {job['build_id']} publishes pkgbase 'base{u}': it may not publish "
                 f"'y{u}' of pkgbase 'other{u}'")
    assert state(client, repo, arch, [f"y{u}-1.0-1-{arch}.pkg.tar.zst"]) == before
    # the api_key is not bound to a pkgbase
    ok(publish(client, repo, pkg(tmp_path, f"y{u}", arch=arch, base=f"other{u}")))


def test_a_token_of_a_build_that_is_not_running_publishes_nothing(client, u, tmp_path):
    repo, arch = f"r{u}", f"a{u}"
    target = add_target(client, repo=repo, arch=arch)
    finished = claim(client, target, arch)
    finish(client, finished["build_id"])
    handed_back = claim(client, target, arch)
    ok(client.request("POST", f"/api/v1/builds/{handed_back['build_id']}/release"))
    assert ok(client.request("GET", f"/api/v1/builds/{handed_back['build_id']}"))["status"] \
        == "queued"
    for job in (finished, handed_back):
        assert_error(publish(client, repo, pkg(tmp_path, f"n{u}", arch=arch), job["token"]),
                     401, "Unauthorized.")
    assert client.request("GET", f"/{repo}/{arch}/{repo}.db", headers=NO_KEY).status == 404


def test_a_build_that_ended_while_its_upload_streamed_publishes_nothing(services, tmp_path):
    """The token was valid when the request came; the build ended before the package was
    stored: the store checks the build again under the repo's lock."""
    db, queue_, store = services.db, services.queue, services.store
    target = db.add_target({"kind": "git", "url": "https://e.org/x.git", "repo": "core"},
                           {"x86_64": None})
    build_id = queue_.queue(target, "x86_64")
    queue_.poll("x86_64", 1)
    build = queue_.get(build_id)
    upload = tmp_path / "upload"
    upload.write_bytes(pkg(tmp_path, "late"))
    queue_.finish(build_id, 0)
    with pytest.raises(Forbidden, match=f"build {build_id} is not running any more"):
        store.publish("core", upload, build=build)
    assert db.package("core", "x86_64", "late") is None
    assert db.package_owner("core", "late") is None


def test_ownership_survives_a_restart(tmp_path):
    proc = ServerProcess(tmp_path / "data").start()
    try:
        c = ServerClient(proc, KEY)
        a = add_target(c, repo="core", arch="x86_64")
        b = add_target(c, repo="core", arch="x86_64", url="https://e.org/b.git")
        job = claim(c, a, "x86_64")
        ok(publish(c, "core", pkg(tmp_path, "hello"), job["token"]))
        finish(c, job["build_id"])
        assert proc.stop() == 0
        proc.start()
        job = claim(c, b, "x86_64")
        assert_error(publish(c, "core", pkg(tmp_path, "hello", "2.0-1"), job["token"]), 403,
                     f"package 'hello' in 'core' belongs to target {a}: a build of target "
                     f"{b} may not publish it")
    finally:
        proc.stop()
