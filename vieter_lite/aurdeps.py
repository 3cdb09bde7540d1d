"""Pure: an AUR package's dependencies that are AUR packages too, found level by level as
aurutils does (AUR RPC v5 `info`, at most MAX_ROUNDS calls in a row), and the order to
build them in.

A dependency (depends, makedepends, checkdepends) is left alone when a package found so far
meets it (name or provision, versions with vercmp) or an official package does; else its
name is asked of the AUR in the next round. Official packages come from pacman's sync dbs
(their desc entries: names, versions, provisions) or a list of names."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vieter_lite import depgraph
from vieter_lite.repo.desc import parse_desc
from vieter_lite.repo.srcinfo import Dep, ForArch, Package, meets, parse_dep

MAX_ROUNDS = 30
DEP_FIELDS = ("Depends", "MakeDepends", "CheckDepends")


class TooDeep(ValueError):
    """The dependencies go on past MAX_ROUNDS levels."""


@dataclass(frozen=True)
class Official:
    """What the official repos offer: packages with versions and provisions (from sync
    dbs), and names alone (from a list; any version)."""

    packages: tuple[Package, ...] = ()
    names: frozenset[str] = frozenset()

    def meets(self, dep: Dep) -> bool:
        if dep.name in self.names:
            return True
        return any(meets(dep, p.name, p.version, p.provides) for p in self._by_name(dep.name))

    def _by_name(self, name: str) -> list[Package]:
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            for p in self.packages:
                for key in {p.name, *(d.name for d in p.provides)}:
                    index.setdefault(key, []).append(p)
            object.__setattr__(self, "_index", index)
        return index.get(name, [])

    @property
    def known(self) -> bool:
        return bool(self.packages or self.names)


def official_from_list(text: str) -> Official:
    """Names one per line (what `pacman -Slq` prints); blank lines and # comments left out;
    of a `pacman -Sl` line (repo name version) the name."""
    names = set()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 1:
            names.add(words[0])
        elif len(words) >= 3:
            names.add(words[1])
    return Official(names=frozenset(names))


def packages_in_db(data: bytes) -> list[Package]:
    """The packages of a sync db (a tar, compressed or not, of <name-version>/desc);
    ValueError for what is not one."""
    try:
        return _packages_in_db(data)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"not a sync db ({exc.__class__.__name__})") from None


def _packages_in_db(data: bytes) -> list[Package]:
    found = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith("/desc"):
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            fields = parse_desc(extracted.read().decode("utf-8", "replace"))
            name, version = fields.get("NAME", [""])[0], fields.get("VERSION", [""])[0]
            if name:
                found.append(Package(name, version, (),
                                     tuple(parse_dep(p) for p in fields.get("PROVIDES", []))))
    return found


def aur_package(result: dict[str, Any]) -> Package:
    """An AUR RPC result as a package (its own dependencies, its provisions)."""
    return Package(str(result["Name"]), str(result.get("Version") or ""),
                   tuple(parse_dep(d) for d in _strings(result.get("Depends"))),
                   tuple(parse_dep(p) for p in _strings(result.get("Provides"))))


def aur_needs(result: dict[str, Any]) -> list[Dep]:
    return [parse_dep(d) for key in DEP_FIELDS for d in _strings(result.get(key))]


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


@dataclass
class Resolution:
    """What the AUR said: every package found (by name), the level each was found at (0:
    asked for), which package's dependency brought it in, the names asked for that the AUR
    does not know, and the dependencies no package meets: (dependency, needed by), found
    nowhere (`missing`: known only when the official packages are) or found at another
    version (`other_version`)."""

    found: dict[str, dict[str, Any]] = field(default_factory=dict)
    level: dict[str, int] = field(default_factory=dict)
    needed_by: dict[str, str] = field(default_factory=dict)
    not_found: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    other_version: list[tuple[str, str]] = field(default_factory=list)
    rounds: int = 0


def resolve(info: Callable[[list[str]], dict[str, dict[str, Any]]], wanted: Iterable[str],
            official: Official, with_deps: bool = True,
            max_rounds: int = MAX_ROUNDS) -> Resolution:
    """Ask the AUR (info: names -> {name: result}) level by level, at most max_rounds
    times; TooDeep when names are still left after that."""
    out = Resolution()
    asking: dict[str, str] = dict.fromkeys(dict.fromkeys(wanted), "")
    asked: set[str] = set()
    level = 0
    while asking:
        if out.rounds == max_rounds:
            raise TooDeep(f"the dependencies go deeper than {max_rounds} levels "
                          f"(still to look up: {', '.join(sorted(asking))})")
        answer = info(list(asking))
        asked |= set(asking)
        out.rounds += 1
        for name, needed_by in asking.items():
            result = answer.get(name)
            if result is None:
                if not needed_by:
                    out.not_found.append(name)
                elif official.known:  # else it is most likely official
                    out.missing.append((name, needed_by))
                continue
            out.found[name] = result
            out.level[name] = level
            if needed_by:
                out.needed_by[name] = needed_by
        if not with_deps:
            break
        packages = [aur_package(r) for r in out.found.values()]
        nxt: dict[str, str] = {}
        for name in [n for n, lv in out.level.items() if lv == level]:
            for dep in aur_needs(out.found[name]):
                if any(meets(dep, p.name, p.version, p.provides) for p in packages) \
                        or official.meets(dep):
                    continue
                if dep.name in out.found:  # found, but not at the version asked for
                    out.other_version.append((str(dep), name))
                elif dep.name not in asked and dep.name not in nxt:
                    nxt[dep.name] = name
        asking = nxt
        level += 1
    return out


@dataclass(frozen=True)
class Base:
    """A package base to add as one target: its packages found in the AUR (by name)."""

    name: str
    packages: tuple[str, ...]


def build_order(found: dict[str, dict[str, Any]]) -> list[list[Base]]:
    """The package bases of the packages found, in build order: each level needs only
    bases of earlier levels (a cycle shares a level)."""
    bases: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(found):
        result = found[name]
        bases.setdefault(str(result.get("PackageBase") or name), []).append(result)
    names = sorted(bases)
    nodes = []
    for i, base in enumerate(names):
        results = bases[base]
        needs = {str(d): d for r in results for d in aur_needs(r)}
        packages = tuple(aur_package(r) for r in results)
        version = packages[0].version if packages else ""
        nodes.append(depgraph.Node(i, ForArch(base, version, packages, tuple(needs.values()))))
    levels = depgraph.levels(range(len(names)), depgraph.edges(nodes))
    return [[Base(names[i], tuple(sorted(str(r["Name"]) for r in bases[names[i]])))
             for i in level] for level in levels]
