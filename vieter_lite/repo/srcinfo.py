"""Pure: what `makepkg --printsrcinfo` says of a PKGBUILD, and pacman's dependency rules.

A .SRCINFO has a `pkgbase = NAME` section, then one `pkgname = NAME` section per package;
each line under a section is `<TAB>key = value`, arrays as one line per item, arch-specific
arrays as `key_ARCH`. A package section that sets a key replaces the base's array for that
package (`depends = ` with nothing after it: emptied). makedepends and checkdepends belong
to the base. Lines that are none of that (what a PKGBUILD prints while it is sourced) are
left out.

Matching follows libalpm: a dependency without a version is met by a package of that name
or by any provision of the name; one with a version (`>=`, `<=`, `=`, `<`, `>`) by a
package of that name whose version compares so with vercmp, or by a provision of the name
with `=VERSION` that does (a provision without a version does not meet it).
"""

from __future__ import annotations

from dataclasses import dataclass

from vieter_lite.repo.vercmp import vercmp

# the arrays of a section that say what it needs or offers (arch-specific forms too)
BASE_ONLY = ("makedepends", "checkdepends")
PER_PACKAGE = ("depends", "provides")
ARRAYS = (*BASE_ONLY, *PER_PACKAGE)
OPERATORS = (">=", "<=", "=", "<", ">")  # looked for in this order, as libalpm does
MAX_ITEMS = 5000  # array items in one .SRCINFO, all sections together


class SrcinfoError(ValueError):
    """Not a .SRCINFO: no pkgbase, no package, or absurd sizes."""


@dataclass(frozen=True)
class Dep:
    """A dependency (or a provision): a name, and optionally an operator and a version."""

    name: str
    op: str = ""
    version: str = ""

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.version}"


def parse_dep(text: str) -> Dep:
    """'foo>=1.2' -> Dep('foo', '>=', '1.2'); 'foo' -> Dep('foo')."""
    for op in OPERATORS:
        at = text.find(op)
        if at >= 0:
            return Dep(text[:at], op, text[at + len(op):])
    return Dep(text)


def version_meets(version: str, op: str, wanted: str) -> bool:
    """Whether a package's version meets `op wanted` (no op: any version)."""
    if not op:
        return True
    cmp = vercmp(version, wanted)
    return {"=": cmp == 0, ">=": cmp >= 0, "<=": cmp <= 0, ">": cmp > 0, "<": cmp < 0}[op]


def meets(dep: Dep, name: str, version: str, provides: tuple[Dep, ...]) -> bool:
    """Whether a package (name, full version, provisions) meets a dependency."""
    if name == dep.name and version_meets(version, dep.op, dep.version):
        return True
    for given in provides:
        if given.name != dep.name:
            continue
        if not dep.op or (given.op == "=" and version_meets(given.version, dep.op,
                                                             dep.version)):
            return True
    return False


@dataclass(frozen=True)
class Section:
    """One section of a .SRCINFO: its name and its key/values in order (arrays repeated)."""

    name: str
    values: tuple[tuple[str, str], ...]

    def get(self, key: str) -> list[str] | None:
        """Every value of a key, None when the section does not set it (an emptied array
        is [])."""
        found = [v for k, v in self.values if k == key]
        if not found:
            return None
        return [v for v in found if v]

    def first(self, key: str) -> str:
        found = self.get(key)
        return found[0] if found else ""


@dataclass(frozen=True)
class Package:
    """A package of a PKGBUILD as built for one arch."""

    name: str
    version: str
    depends: tuple[Dep, ...]
    provides: tuple[Dep, ...]


@dataclass(frozen=True)
class ForArch:
    """What a PKGBUILD offers and needs when built for one arch: its packages (each with
    the full version and its provisions), and every dependency of the build (depends of
    each package, makedepends, checkdepends; arch-specific ones included), de-duplicated."""

    pkgbase: str
    version: str
    packages: tuple[Package, ...]
    needs: tuple[Dep, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.packages)

    def meets(self, dep: Dep) -> bool:
        return any(meets(dep, p.name, p.version, p.provides) for p in self.packages)


@dataclass(frozen=True)
class Srcinfo:
    base: Section
    packages: tuple[Section, ...]

    @property
    def pkgbase(self) -> str:
        return self.base.name

    @property
    def version(self) -> str:
        """epoch:pkgver-pkgrel (no epoch when it is empty or 0)."""
        epoch = self.base.first("epoch")
        full = f"{self.base.first('pkgver')}-{self.base.first('pkgrel')}"
        return f"{epoch}:{full}" if epoch not in ("", "0") else full

    def archs(self) -> tuple[str, ...]:
        return tuple(self.base.get("arch") or ())

    def _array(self, section: Section | None, key: str, arch: str) -> list[str]:
        """A package's array (its own, else the base's) plus the arch-specific one."""
        out: list[str] = []
        for name in (key, f"{key}_{arch}"):
            own = None if section is None else section.get(name)
            out += own if own is not None else (self.base.get(name) or [])
        return out

    def for_arch(self, arch: str) -> ForArch:
        packages = []
        needs: dict[str, Dep] = {}
        for section in self.packages:
            depends = tuple(parse_dep(d) for d in self._array(section, "depends", arch))
            provides = tuple(parse_dep(p) for p in self._array(section, "provides", arch))
            packages.append(Package(section.name, self.version, depends, provides))
            for dep in depends:
                needs.setdefault(str(dep), dep)
        for key in BASE_ONLY:
            for text in self._array(None, key, arch):
                dep = parse_dep(text)
                needs.setdefault(str(dep), dep)
        return ForArch(self.pkgbase, self.version, tuple(packages), tuple(needs.values()))


def parse(text: str) -> Srcinfo:
    """A .SRCINFO's sections. SrcinfoError without a pkgbase or a package, or with more
    than MAX_ITEMS values."""
    sections: list[tuple[str, str, list[tuple[str, str]]]] = []
    count = 0
    for raw in text.split("\n"):  # as makepkg writes it (splitlines() also cuts at \x1e, ...)
        line = raw.strip()
        key, sep, value = line.partition(" = ")
        if not sep:
            if line.endswith(" ="):  # an emptied array: 'depends ='
                key, sep, value = line[:-2], " = ", ""
            else:
                continue
        key, value = key.strip(), value.strip()
        if not raw.startswith(("\t", " ")) and key in ("pkgbase", "pkgname"):
            if key == "pkgbase" and sections:
                continue  # a second pkgbase is not makepkg's; the first one counts
            if key == "pkgname" and not sections:
                continue
            sections.append((key, value, []))
            continue
        if not sections or not key.replace("_", "").replace("-", "").isalnum():
            continue
        count += 1
        if count > MAX_ITEMS:
            raise SrcinfoError(f"more than {MAX_ITEMS} values")
        sections[-1][2].append((key, value))
    if not sections or sections[0][0] != "pkgbase" or not sections[0][1]:
        raise SrcinfoError("no 'pkgbase = NAME' line")
    base = Section(sections[0][1], tuple(sections[0][2]))
    packages = tuple(Section(name, tuple(values)) for kind, name, values in sections[1:]
                     if kind == "pkgname" and name)
    if not packages:
        raise SrcinfoError("no 'pkgname = NAME' line")
    return Srcinfo(base, packages)
