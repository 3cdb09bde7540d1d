"""vieter_lite.aurdeps: AUR dependencies found level by level (from AUR RPC v5 results),
official packages from a list or from sync dbs (made by Debian's repo-add, the oracle of
the format), and the build order of the package bases."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pkgfactory import make_synthetic_package
from vieter_lite import aurdeps
from vieter_lite.aurdeps import Base, Official, TooDeep


def pkg(name: str, version: str = "1.0-1", base: str | None = None, depends=(),
        makedepends=(), checkdepends=(), provides=()) -> dict:
    """An AUR RPC v5 info result."""
    return {"Name": name, "PackageBase": base or name, "Version": version,
            "Depends": list(depends), "MakeDepends": list(makedepends),
            "CheckDepends": list(checkdepends), "Provides": list(provides)}


class Lookup:
    """The AUR's answers to info calls from a table, and the calls made."""

    def __init__(self, *packages: dict):
        self.packages = {p["Name"]: p for p in packages}
        self.calls: list[list[str]] = []

    def __call__(self, names: list[str]) -> dict[str, dict]:
        self.calls.append(list(names))
        return {n: self.packages[n] for n in names if n in self.packages}


OFFICIAL = aurdeps.official_from_list("glibc\npython\ncore gcc 13.2-1\n# comment\n\n")

TREE = Lookup(
    pkg("app", depends=["glibc", "lib-a>=1"], makedepends=["gcc"]),
    pkg("lib-a", "2.0-1", makedepends=["lib-b-core"], checkdepends=["python", "tester"]),
    pkg("lib-b-core", base="lib-b", provides=["libb.so=1-64"]),
    pkg("lib-b-extra", base="lib-b", depends=["lib-b-core"]),
    pkg("tester", depends=["lib-a"]),   # a cycle through checkdepends
)


def test_a_tree_level_by_level():
    lookup = Lookup(*TREE.packages.values())
    found = aurdeps.resolve(lookup, ["app"], OFFICIAL)
    assert lookup.calls == [["app"], ["lib-a"], ["lib-b-core", "tester"]]
    assert found.rounds == 3
    assert found.level == {"app": 0, "lib-a": 1, "lib-b-core": 2, "tester": 2}
    assert found.needed_by == {"lib-a": "app", "lib-b-core": "lib-a", "tester": "lib-a"}
    assert (found.not_found, found.missing, found.other_version) == ([], [], [])
    assert aurdeps.build_order(found.found) == [
        [Base("lib-b", ("lib-b-core",))], [Base("lib-a", ("lib-a",)), Base("tester", ("tester",))],
        [Base("app", ("app",))]]


def test_no_deps_asks_once():
    lookup = Lookup(*TREE.packages.values())
    found = aurdeps.resolve(lookup, ["app", "nope"], OFFICIAL, with_deps=False)
    assert lookup.calls == [["app", "nope"]]
    assert list(found.found) == ["app"] and found.not_found == ["nope"]


def test_what_is_missing_or_at_another_version():
    lookup = Lookup(pkg("app", depends=["lib>=3", "ghost", "glibc"]), pkg("lib", "2.0-1"),
                    pkg("other", depends=["ghost"]))
    found = aurdeps.resolve(lookup, ["app", "other"], OFFICIAL)
    assert found.missing == [("ghost", "app")]
    assert lookup.calls == [["app", "other"], ["lib", "ghost"]]   # ghost asked once
    found = aurdeps.resolve(Lookup(*lookup.packages.values()), ["app", "lib"], OFFICIAL)
    assert found.other_version == [("lib>=3", "app")]


def test_without_official_packages_what_the_aur_does_not_know_is_taken_as_official():
    lookup = Lookup(pkg("app", depends=["glibc", "lib"]), pkg("lib"))
    found = aurdeps.resolve(lookup, ["app"], Official())
    assert lookup.calls == [["app"], ["glibc", "lib"]]
    assert list(found.found) == ["app", "lib"] and found.missing == []


def test_a_provision_of_a_package_found_meets_a_dependency():
    lookup = Lookup(pkg("app", depends=["libb.so=1-64", "java-runtime>=11"]),
                    pkg("lib-b-core", provides=["libb.so=1-64"]), pkg("jre", provides=["java-runtime=17"]))
    found = aurdeps.resolve(lookup, ["app", "lib-b-core", "jre"], OFFICIAL)
    assert lookup.calls == [["app", "lib-b-core", "jre"]]
    assert aurdeps.build_order(found.found) == [
        [Base("jre", ("jre",)), Base("lib-b-core", ("lib-b-core",))], [Base("app", ("app",))]]


def test_at_most_thirty_levels():
    chain = [pkg(f"p{i}", depends=[f"p{i + 1}"]) for i in range(1, 31)] + [pkg("p31")]
    found = aurdeps.resolve(Lookup(*chain), ["p2"], OFFICIAL)   # p2 .. p31: 30 levels
    assert found.rounds == 30
    assert [level[0].name for level in aurdeps.build_order(found.found)] == \
        [f"p{i}" for i in range(31, 1, -1)]
    with pytest.raises(TooDeep, match=r"deeper than 30 levels \(still to look up: p31\)"):
        aurdeps.resolve(Lookup(*chain), ["p1"], OFFICIAL)


@pytest.mark.parametrize("dep, met", [
    ("glibc", True), ("gcc>=99", True),          # a name from a list: any version
    ("python3", False),
])
def test_official_from_a_list(dep, met):
    from vieter_lite.repo.srcinfo import parse_dep
    assert OFFICIAL.meets(parse_dep(dep)) is met


@pytest.mark.skipif(shutil.which("repo-add") is None, reason="needs repo-add")
def test_official_packages_from_a_sync_db_made_by_repo_add(tmp_path: Path):
    files = []
    for name, version, provides in (("bash", "5.2.026-1", ["sh"]),
                                    ("jdk-openjdk", "21.0.2-1", ["java-runtime=21", "jre"]),
                                    ("zlib", "1:1.3.1-1", [])):
        files.append(str(make_synthetic_package(
            tmp_path / f"{name}-{version}-x86_64.pkg.tar.gz",
            {"pkgname": name, "pkgver": version, "arch": "x86_64", "provides": provides},
            compression="gz")))
    subprocess.run(["repo-add", "-q", str(tmp_path / "core.db.tar.gz"), *files], check=True,
                   capture_output=True)
    official = Official(packages=tuple(aurdeps.packages_in_db(
        (tmp_path / "core.db").read_bytes())))
    from vieter_lite.repo.srcinfo import parse_dep
    for dep, met in (("sh", True), ("jre", True), ("java-runtime>=17", True),
                     ("java-runtime>=22", False), ("zlib>=1:1.3", True), ("zlib>=2", True),
                     ("zlib>=2:0", False), ("bash<5", False), ("python", False)):
        assert official.meets(parse_dep(dep)) is met, dep
