"""Kept versions and rollbacks over /api/v2, in-process (webtest, a fresh data dir) and
against one real server process shared by the module, both with keep_versions = 2: the
package views list the kept versions, a rollback republishes one (a downgrade in the db),
a hold refuses the owning target's newer builds until it is released, and bad requests get
the CF envelope."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import ServerProcess, make_config
from http_clients import KEY, Response, ServerClient, client_for
from pkgfactory import make_synthetic_package
from test_api_v2 import cf_error, ok, send, u  # noqa: F401 (u is a fixture)

JSON_KEY = {**KEY, "Content-Type": "application/json"}
QUIET_SCHEDULE = "0 3 1 1"
ARCH = "x86_64"


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("rollback") / "data",
                         env_extra={"VIETER_GLOBAL_SCHEDULE": QUIET_SCHEDULE,
                                    "VIETER_KEEP_VERSIONS": "2"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def keeping_services(tmp_path, monkeypatch):
    from vieter_lite import config
    from vieter_lite.services import build_services

    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-system.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "no-user.toml")
    svc = build_services(make_config(tmp_path, keep_versions=2))
    yield svc
    svc.db.close()


@pytest.fixture(params=["inprocess", "server"])
def client(request):
    return client_for(request, "keeping_services", "shared_server")


def package(tmp_path: Path, name: str, version: str) -> bytes:
    path = make_synthetic_package(tmp_path / f"{name}-{version}-{ARCH}.pkg.tar.gz",
                                  {"pkgname": name, "pkgver": version, "arch": ARCH},
                                  {f"usr/share/{name}/VERSION": version.encode()},
                                  compression="gz")
    return path.read_bytes()


def publish(c, tmp_path: Path, repo: str, name: str, version: str,
            headers: dict[str, str] | None = None) -> Response:
    return c.request("POST", f"/{repo}/publish", package(tmp_path, name, version),
                     KEY if headers is None else headers)


def add_target(c, repo: str) -> int:
    return ok(send(c, "POST", "/api/v2/targets",
                   {"kind": "git", "url": f"https://example.invalid/{repo}.git",
                    "repo": repo, "arch": [ARCH]}), 201)["id"]


def claim(c, target_id: int) -> tuple[int, dict[str, str]]:
    """A running build of the target: (build id, its token's headers)."""
    build_id = ok(c.request("POST", f"/api/v1/jobs/queue?target={target_id}&arch={ARCH}"
                                    "&force=true"))["data"]
    jobs = ok(c.request("GET", f"/api/v1/jobs/poll?arch={ARCH}&max=100&jobs=v2"))["data"]
    job = next(j for j in jobs if j["build_id"] == build_id)
    return build_id, {"X-Api-Key": job["token"]}


def finish(c, build_id: int) -> None:
    ok(c.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode=0"))


def rollback(c, repo: str, name: str, body: Any, headers: dict[str, str] | None = None
             ) -> Response:
    return send(c, "POST", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/rollback", body,
                headers)


def db_entries(c, repo: str) -> set[str]:
    """The entries of the arch-repo's .db as pacman downloads it."""
    import io
    import tarfile
    resp = c.request("GET", f"/{repo}/{ARCH}/{repo}.db", headers={})
    assert resp.status == 200, resp
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tar:
        return {m.name.rpartition("/")[0] for m in tar if m.isfile()}


# -- listing and rolling back ----------------------------------------------------------

def test_a_rollback_makes_the_kept_version_current_and_the_views_list_both(client, u,
                                                                          tmp_path):
    repo, name = f"rb{u}", f"hello{u}"
    for version in ("1.0-1", "2.0-1"):
        assert publish(client, tmp_path, repo, name, version).status == 200
    listed = ok(client.request("GET", f"/api/v2/repos/{repo}/{ARCH}/packages"))["resources"]
    assert [(p["version"], p["kept_versions"], p["hold"]) for p in listed] == \
        [("2.0-1", ["1.0-1"], None)]
    detail = ok(client.request("GET", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}"))
    assert [(v["version"], v["current"], v["kept_at"] is None, v["signed"])
            for v in detail["versions"]] == [("2.0-1", True, True, False),
                                             ("1.0-1", False, False, False)]
    old = detail["versions"][1]
    path = old["links"]["download"]["href"].split("://", 1)[1].split("/", 1)[1]
    kept_file = client.request("GET", "/" + path, headers={})
    assert kept_file.status == 200 and len(kept_file.body) == old["size"]
    assert db_entries(client, repo) == {f"{name}-2.0-1"}

    rolled = ok(rollback(client, repo, name, {"version": "1.0-1"}))
    assert (rolled["version"], rolled["kept_versions"], rolled["hold"]) == \
        ("1.0-1", ["2.0-1"], None)
    assert rolled["owner"] == {"target_id": None, "user": None}
    assert [(v["version"], v["current"]) for v in rolled["versions"]] == \
        [("1.0-1", True), ("2.0-1", False)]
    assert rolled["sha256"] == old["sha256"]  # the very file that was kept
    assert db_entries(client, repo) == {f"{name}-1.0-1"}
    assert client.request("GET", f"/{repo}/{ARCH}/{name}-1.0-1", headers={}).status == 200
    assert client.request("GET", f"/{repo}/{ARCH}/{name}-2.0-1", headers={}).status == 404


def test_a_hold_refuses_the_owning_targets_newer_build_until_released(client, u, tmp_path):
    repo, name = f"hd{u}", f"tool{u}"
    target_id = add_target(client, repo)
    build_id, token = claim(client, target_id)
    for version in ("1.0-1", "2.0-1"):
        assert publish(client, tmp_path, repo, name, version, token).status == 200
    finish(client, build_id)

    held = ok(rollback(client, repo, name, {"version": "1.0-1", "hold_version": True}))
    assert held["version"] == "1.0-1" and held["hold"]["version"] == "1.0-1"
    assert held["hold"]["by"] == "api_key" and held["hold"]["since"].endswith("Z")
    assert held["owner"]["target_id"] is not None  # the target still owns the name
    listed = ok(client.request("GET", f"/api/v2/repos/{repo}/{ARCH}/packages"))["resources"]
    assert listed[0]["hold"] == held["hold"]

    build_id, token = claim(client, target_id)
    refused = publish(client, tmp_path, repo, name, "3.0-1", token)
    assert refused.status == 409, refused
    assert refused.json()["message"].startswith(
        f"{name} is held at 1.0-1 in {repo}/{ARCH} (rolled back): 3.0-1 is not published "
        "until the hold is released")
    assert publish(client, tmp_path, repo, name, "1.0-1", token).status == 200  # a rebuild

    assert send(client, "DELETE", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/hold"
                ).status == 204
    cf_error(send(client, "DELETE", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/hold"),
             404, 10010, "is not held")
    assert publish(client, tmp_path, repo, name, "3.0-1", token).status == 200
    finish(client, build_id)
    assert db_entries(client, repo) == {f"{name}-3.0-1"}


def test_a_builds_log_says_why_its_publish_was_refused(shared_server, u, tmp_path):
    """The agent's publish step (with its control of the running build) against a held
    name: the refusal does not pass for the end of the build; the step fails and the log
    names the hold and how to release it."""
    from vieter_lite.agent.control import BuildControl
    from vieter_lite.agent.daemon import Agent, LogStream
    from vieter_lite.client import Client

    c = ServerClient(shared_server, KEY)
    repo, name = f"lg{u}", f"app{u}"
    target_id = add_target(c, repo)
    build_id, token = claim(c, target_id)
    for version in ("1.0-1", "2.0-1"):
        assert publish(c, tmp_path, repo, name, version, token).status == 200
    finish(c, build_id)
    ok(rollback(c, repo, name, {"version": "1.0-1", "hold_version": True}))

    build_id, token = claim(c, target_id)
    newer = tmp_path / "out" / f"{name}-3.0-1-{ARCH}.pkg.tar.gz"
    newer.parent.mkdir()
    newer.write_bytes(package(tmp_path, name, "3.0-1"))
    api = Client(shared_server.url, token["X-Api-Key"], timeout=10)
    stream = LogStream(api, build_id)
    control = BuildControl(api, build_id, lambda _container: None)  # no watch thread
    try:
        assert Agent._publish(api, repo, [newer], stream, control) == 1
    finally:
        stream.close()
    assert not control.stopped.is_set()
    text = c.request("GET", f"/api/v1/logs/{build_id}/content").body.decode()
    assert f"error: publishing {newer.name} failed: {name} is held at 1.0-1 in " \
           f"{repo}/{ARCH} (rolled back)" in text
    assert f"vieter-lite repos release {repo} {ARCH} {name}" in text


def test_rolling_back_to_the_current_version_only_holds_it(client, u, tmp_path):
    repo, name = f"cu{u}", f"same{u}"
    assert publish(client, tmp_path, repo, name, "1.0-1").status == 200
    held = ok(rollback(client, repo, name, {"version": "1.0-1", "hold_version": True}))
    assert (held["version"], held["kept_versions"], held["hold"]["version"]) == \
        ("1.0-1", [], "1.0-1")
    assert publish(client, tmp_path, repo, name, "1.1-1").status == 409
    released = ok(rollback(client, repo, name, {"version": "1.0-1", "hold_version": False}))
    assert released["hold"] is None
    assert publish(client, tmp_path, repo, name, "1.1-1").status == 200


# -- refusals --------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({}, "version"),
    ({"version": ""}, "version"),
    ({"version": 1}, "version"),
    ({"version": "1.0"}, "version"),           # no pkgrel
    ({"version": "1.0-1", "hold_version": "yes"}, "hold_version"),
    ({"version": "1.0-1", "hold": True}, "hold"),
])
def test_a_bad_body_is_a_422_naming_the_field(client, u, tmp_path, body, field):
    repo, name = f"bb{u}", f"pkg{u}"
    assert publish(client, tmp_path, repo, name, "1.0-1").status == 200
    detail = cf_error(rollback(client, repo, name, body), 422, 10008)
    assert detail.startswith(field)


def test_unknown_versions_packages_and_bodies_that_are_no_object(client, u, tmp_path):
    repo, name = f"nf{u}", f"pkg{u}"
    for version in ("1.0-1", "2.0-1"):
        assert publish(client, tmp_path, repo, name, version).status == 200
    cf_error(rollback(client, repo, name, {"version": "0.5-1"}), 404, 10010,
             f"version 0.5-1 of '{name}' is not kept in {repo}/{ARCH} (kept: 1.0-1)")
    cf_error(rollback(client, repo, f"other{u}", {"version": "1.0-1"}), 404, 10010)
    cf_error(client.request("POST", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/rollback",
                            b"[1]", JSON_KEY), 400, 10004)
    cf_error(client.request("POST", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/rollback",
                            b"{", JSON_KEY), 400, 10004)
    assert db_entries(client, repo) == {f"{name}-2.0-1"}


def test_who_may_roll_back_over_http(client, u, tmp_path):
    repo, name, mine = f"wh{u}", f"built{u}", f"mine{u}"
    build_id, token = claim(client, add_target(client, repo))
    for version in ("1.0-1", "2.0-1"):
        assert publish(client, tmp_path, repo, name, version, token).status == 200
    # a build token may publish, but not roll back (nor release)
    cf_error(rollback(client, repo, name, {"version": "1.0-1"},
                      {**token, "Content-Type": "application/json"}), 403, 10003,
             "a build token may not")
    finish(client, build_id)
    for version in ("1.0-1", "2.0-1"):
        assert publish(client, tmp_path, repo, mine, version).status == 200

    def token_for(scopes: list[str], **extra: Any) -> dict[str, str]:
        made = ok(send(client, "POST", "/api/v2/tokens",
                       {"name": f"t{uuid.uuid4().hex[:8]}", "scopes": scopes, **extra}), 201)
        return {"Authorization": f"Bearer {made['secret']}", "Content-Type": "application/json"}

    publisher = token_for(["repos:publish"])
    cf_error(rollback(client, repo, name, {"version": "1.0-1"}, publisher), 403, 10003,
             "belongs to target")
    cf_error(send(client, "DELETE", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/hold",
                  headers=publisher), 403, 10003)
    cf_error(rollback(client, repo, mine, {"version": "1.0-1"}, token_for(["repos:read"])),
             403, 10003, "repos:publish")
    cf_error(rollback(client, repo, mine, {"version": "1.0-1"},
                      token_for(["repos:publish"], repos=[f"x{u}"])), 403, 10003)
    # the admin's name: any publisher of the repo; a target's: the admin
    assert ok(rollback(client, repo, mine, {"version": "1.0-1"}, publisher))["version"] == \
        "1.0-1"
    assert ok(rollback(client, repo, name, {"version": "1.0-1"}))["version"] == "1.0-1"
    assert db_entries(client, repo) == {f"{name}-1.0-1", f"{mine}-1.0-1"}
    assert client.request("POST", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}/rollback",
                          b'{"version": "2.0-1"}', {"Content-Type": "application/json"}
                          ).status == 401


def test_deleting_a_package_removes_its_kept_files_and_signatures(client, u, tmp_path):
    repo, name = f"dl{u}", f"gone{u}"
    for version in ("1.0-1", "2.0-1", "3.0-1"):
        assert publish(client, tmp_path, repo, name, version).status == 200
        # a detached signature next to the file, as signing writes it
        path = client.pkg_dir / repo / ARCH / f"{name}-{version}-{ARCH}.pkg.tar.gz"
        path.with_name(path.name + ".sig").write_bytes(b"signature")
    detail = ok(client.request("GET", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}"))
    assert [(v["version"], v["signed"]) for v in detail["versions"]] == \
        [("3.0-1", True), ("2.0-1", True), ("1.0-1", True)]
    files = [client.pkg_dir / repo / ARCH / v["filename"] for v in detail["versions"]]
    files += [f.with_name(f.name + ".sig") for f in files]
    assert all(f.exists() for f in files)
    assert client.request("DELETE", f"/{repo}/{ARCH}/{name}").status == 200
    assert not any(f.exists() for f in files)
    assert publish(client, tmp_path, repo, name, "4.0-1").status == 200
    again = ok(client.request("GET", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}"))
    assert again["kept_versions"] == [] and len(again["versions"]) == 1


def test_keep_versions_beyond_two_are_pruned_over_http(client, u, tmp_path):
    repo, name = f"pr{u}", f"many{u}"
    for version in ("1.0-1", "2.0-1", "3.0-1", "4.0-1"):
        assert publish(client, tmp_path, repo, name, version).status == 200
    detail = ok(client.request("GET", f"/api/v2/repos/{repo}/{ARCH}/packages/{name}"))
    assert detail["kept_versions"] == ["3.0-1", "2.0-1"]
    assert sorted(p.name for p in (client.pkg_dir / repo / ARCH).iterdir()) == \
        sorted(f"{name}-{v}-{ARCH}.pkg.tar.gz" for v in ("2.0-1", "3.0-1", "4.0-1"))
    cf_error(rollback(client, repo, name, {"version": "1.0-1"}), 404, 10010)

