"""`vieter-lite aur add` with dependencies, against a real server and a fake AUR RPC v5 on
loopback (the AUR cannot run here): the AUR packages a package needs are added as targets
too, dependencies first, and the build order is printed; official packages come from a
list or from pacman's sync dbs (made by repo-add)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import API_KEY
from fake_aur import FakeAur
from pkgfactory import make_synthetic_package
from test_cli_client import Cli, admin, base_env, home, one_error, srv, u  # noqa: F401

pytestmark = pytest.mark.integration


def aur_pkg(name: str, base: str | None = None, version: str = "1.0-1", **deps: list[str]):
    return {"ID": 0, "Name": name, "PackageBase": base or name, "Version": version,
            "Description": f"{name} for tests", "URL": None, "NumVotes": 0, "Popularity": 0,
            "OutOfDate": None, "Maintainer": None, "FirstSubmitted": 0, "LastModified": 0,
            **{key: value for key, value in deps.items()}}


PACKAGES = [
    aur_pkg("app", Depends=["glibc", "lib-a>=1"], MakeDepends=["cmake"]),
    aur_pkg("lib-a", version="2.0-1", MakeDepends=["lib-b-core"], CheckDepends=["python"]),
    aur_pkg("lib-b-core", base="lib-b"),
    aur_pkg("lib-b-extra", base="lib-b", Depends=["lib-b-core"]),
    aur_pkg("needs-ghost", Depends=["ghost", "glibc"]),
] + [aur_pkg(f"deep{i}", Depends=[f"deep{i + 1}"]) for i in range(31)]


@pytest.fixture(scope="module")
def deps_aur():
    with FakeAur(PACKAGES) as fake:
        yield fake


@pytest.fixture
def cli(srv, deps_aur, home) -> Cli:  # noqa: F811
    return Cli(base_env(home, VIETER_ADDRESS=srv.url, VIETER_API_KEY=API_KEY,
                        VIETER_AUR_URL=deps_aur.url))


def info_calls(fake: FakeAur) -> list[list[str]]:
    return [q["arg[]"] for _, q in fake.requests if q.get("type") == ["info"]]


def test_aur_add_adds_the_aur_dependencies_first_and_prints_the_order(cli, admin, deps_aur,
                                                                      tmp_path, u):
    repo = f"aurdeps{u}"
    official = tmp_path / "official"
    official.write_text("glibc\ncmake\npython\n")
    deps_aur.requests.clear()
    out = cli.ok("aur", "add", "app", repo, "--official", str(official))
    assert info_calls(deps_aur) == [["app"], ["lib-a"], ["lib-b-core"]]
    targets = {t["url"].rsplit("/", 1)[1]: t["id"] for t in admin.list_targets(repo=repo)}
    assert sorted(targets, key=targets.get) == ["lib-b.git", "lib-a.git", "app.git"]
    assert out == (f"Added lib-b-core (target {targets['lib-b.git']}), needed by lib-a\n"
                   f"Added lib-a (target {targets['lib-a.git']}), needed by app\n"
                   f"Added app (target {targets['app.git']})\n"
                   "Build order: lib-b -> lib-a -> app\n")

    # again, with the official packages from standard input: all there already
    again = cli.json("aur", "add", "app", repo, "--official", "-",
                     input=b"core glibc 2.39-1\nextra cmake 3.29-1\nextra python 3.12-1\n")
    assert [(r["package_base"], r["existed"], r["level"]) for r in again] == \
        [("lib-b", True, 0), ("lib-a", True, 1), ("app", True, 2)]


def test_aur_add_names_what_is_nowhere(cli, admin, tmp_path, u):
    repo = f"ghost{u}"
    official = tmp_path / "official"
    official.write_text("glibc\n")
    result = cli("aur", "add", "needs-ghost", repo, "--official", str(official))
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == ("vieter-lite: warning: ghost (needed by needs-ghost) is "
                                      "neither an official package nor in the AUR\n")
    assert [t["url"].rsplit("/", 1)[1] for t in admin.list_targets(repo=repo)] == \
        ["needs-ghost.git"]


def test_aur_add_stops_after_thirty_levels_and_adds_nothing(cli, admin, tmp_path, u):
    repo = f"deep{u}"
    official = tmp_path / "official"
    official.write_text("glibc\n")
    assert one_error(cli("aur", "add", "deep0", repo, "--official", str(official)), 1) == (
        "vieter-lite: nothing added: the dependencies go deeper than 30 levels (still to "
        "look up: deep30)")
    assert admin.list_targets(repo=repo) == []
    out = cli.ok("aur", "add", "deep0", repo, "--no-deps")
    assert out.startswith("Added deep0 (target ") and "Build order" not in out


@pytest.mark.skipif(shutil.which("repo-add") is None, reason="needs repo-add")
def test_aur_add_reads_the_official_packages_from_pacmans_sync_dbs(cli, admin, tmp_path, u):
    repo = f"sync{u}"
    sync = tmp_path / "sync"
    sync.mkdir()
    for db, names in (("core", ["glibc", "python"]), ("extra", ["cmake"]),
                      (repo, ["lib-a"])):   # the target repo's own db is not official
        files = [str(make_synthetic_package(tmp_path / f"{n}-1-1-x86_64.pkg.tar.gz",
                                            {"pkgname": n, "pkgver": "9-1", "arch": "x86_64"},
                                            compression="gz")) for n in names]
        subprocess.run(["repo-add", "-q", str(sync / f"{db}.db.tar.gz"), *files], check=True,
                       capture_output=True)
    (sync / "broken.db").write_bytes(b"not a db")
    result = cli("aur", "add", "app", repo, "--sync-dir", str(sync))
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().startswith(f"vieter-lite: warning: {sync}/broken.db is left "
                                             "out: ")
    assert result.stdout.decode().endswith("Build order: lib-b -> lib-a -> app\n")


def test_aur_add_without_official_packages_takes_the_unknown_as_official(cli, admin, u,
                                                                          tmp_path, deps_aur):
    repo = f"noofficial{u}"
    deps_aur.requests.clear()
    out = cli.ok("aur", "add", "app", repo, "--sync-dir", str(tmp_path / "none"))
    assert info_calls(deps_aur) == [["app"], ["glibc", "lib-a", "cmake"], ["lib-b-core", "python"]]
    assert out.endswith("Build order: lib-b -> lib-a -> app\n")
    assert one_error(cli("aur", "add", "app", repo, "--official", str(tmp_path / "missing")),
                     2).startswith(f"vieter-lite: cannot read {tmp_path / 'missing'}: ")


def test_aur_add_help_names_the_options(cli):
    text = cli.ok("aur", "add", "--help")
    for option in ("--official", "--sync-dir", "--no-deps", "at most 30 levels"):
        assert option in " ".join(text.split())
