"""`vieter-lite repos rollback` and `repos release` (and what `repos show` says of kept
versions and holds), run as `python -m vieter_lite ...` against a real server process with
keep_versions = 2."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from test_cli_client import Cli, base_env, one_error, rows
from vieter_lite.client import Client, ClientError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("cli-rollback") / "data",
                         env_extra={"VIETER_GLOBAL_SCHEDULE": "0 3 1 1",
                                    "VIETER_KEEP_VERSIONS": "2"}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def admin(srv) -> Client:
    return Client(srv.url, API_KEY, timeout=10)


@pytest.fixture
def cli(srv, tmp_path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(base_env(home, VIETER_ADDRESS=srv.url, VIETER_API_KEY=API_KEY))


_counter = itertools.count()


@pytest.fixture
def u() -> str:
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


def publish(admin: Client, tmp_path: Path, repo: str, name: str, version: str) -> None:
    path = make_synthetic_package(tmp_path / f"{name}-{version}.pkg.tar.zst",
                                  {"pkgname": name, "pkgver": version, "arch": "x86_64",
                                   "size": "1"}, {f"usr/share/{name}/VERSION": version.encode()})
    assert admin.publish(repo, path)["version"] == version


def shown(cli: Cli, repo: str) -> list[tuple[str, str, str]]:
    """(name, version, kept) rows of `repos show REPO x86_64`."""
    table = rows(cli.ok("repos", "show", repo, "x86_64"))
    assert table[0] == ["NAME", "VERSION", "ARCH", "SIZE", "PUBLISHED", "OWNER", "KEPT"]
    return [(r[0], r[1], r[6]) for r in table[1:]]


def test_rollback_with_hold_then_release(cli, admin, tmp_path, u):
    repo = f"r{u}"
    for version in ("1.0-1", "2.0-1"):
        publish(admin, tmp_path, repo, "hello", version)
    publish(admin, tmp_path, repo, "plain", "1.0-1")
    assert shown(cli, repo) == [("hello", "2.0-1", "1.0-1"), ("plain", "1.0-1", "-")]

    assert cli.ok("repos", "rollback", repo, "x86_64", "hello", "1.0-1", "--hold") == (
        f"Rolled hello in {repo}/x86_64 back to 1.0-1.\n"
        f"Held: no newer version is published until `vieter-lite repos release {repo} "
        "x86_64 hello`.\n")
    assert shown(cli, repo) == [("hello", "1.0-1 (held)", "2.0-1"), ("plain", "1.0-1", "-")]
    with pytest.raises(ClientError, match="hello is held at 1.0-1"):
        publish(admin, tmp_path, repo, "hello", "3.0-1")

    assert cli.ok("repos", "release", repo, "x86_64", "hello") == \
        f"Released the hold of hello in {repo}/x86_64.\n"
    assert one_error(cli("repos", "release", repo, "x86_64", "hello"), 1) == \
        f"vieter-lite: 'hello' is not held in {repo}/x86_64"
    publish(admin, tmp_path, repo, "hello", "3.0-1")
    assert shown(cli, repo) == [("hello", "3.0-1", "1.0-1,2.0-1"), ("plain", "1.0-1", "-")]


def test_rollback_json_and_refusals(cli, admin, tmp_path, u):
    repo = f"j{u}"
    for version in ("1.0-1", "2.0-1"):
        publish(admin, tmp_path, repo, "hello", version)
    assert one_error(cli("repos", "rollback", repo, "x86_64", "hello", "0.1-1"), 1) == \
        f"vieter-lite: version 0.1-1 of 'hello' is not kept in {repo}/x86_64 (kept: 1.0-1)"
    assert one_error(cli("repos", "rollback", repo, "x86_64", "hello", "1.0"), 1).startswith(
        "vieter-lite: version: invalid version '1.0'")
    assert one_error(cli("repos", "rollback", repo, "x86_64", "nope", "1.0-1"), 1) == \
        f"vieter-lite: package 'nope' not found in {repo}/x86_64"
    found = cli.json("repos", "rollback", repo, "x86_64", "hello", "1.0-1")
    assert (found["version"], found["kept_versions"], found["hold"]) == ("1.0-1", ["2.0-1"],
                                                                          None)
    assert [v["version"] for v in found["versions"]] == ["1.0-1", "2.0-1"]
    assert cli.json("repos", "show", repo, "x86_64")[0]["kept_versions"] == ["2.0-1"]
    assert cli("repos", "rollback", repo, "x86_64", "hello").returncode == 2  # no VERSION
