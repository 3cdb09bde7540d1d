"""What counts as a safe repo, arch, package name and version; one place for all routes."""

from __future__ import annotations

import re

_REPO = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@-]{0,127}")
_ARCH = re.compile(r"[A-Za-z0-9_]{1,32}")
_PKGNAME = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]{0,254}")
_PKGVER = re.compile(r"[A-Za-z0-9._+~]{1,254}")
_EPOCH = re.compile(r"[0-9]{1,9}")
_PKGREL = re.compile(r"[0-9]+(\.[0-9]+)*")

RESERVED_REPOS = frozenset({"api", "badge"})   # /api/..., /badge/<name>.svg


def check_repo(name: str) -> str:
    if not _REPO.fullmatch(name or ""):
        raise ValueError(f"invalid repository name '{name}'")
    if name.lower() in RESERVED_REPOS:
        raise ValueError(f"'{name}' is a reserved keyword & cannot be used as a repository name.")
    return name


def check_arch(name: str) -> str:
    if not _ARCH.fullmatch(name or ""):
        raise ValueError(f"invalid architecture '{name}'")
    return name


def check_pkgname(name: str) -> str:
    if not _PKGNAME.fullmatch(name or ""):
        raise ValueError(f"invalid package name '{name}'")
    return name


def check_version(version: str) -> str:
    """A full version as makepkg writes it: [epoch:]pkgver-pkgrel."""
    rest = version or ""
    if ":" in rest:
        epoch, _, rest = rest.partition(":")
        if not _EPOCH.fullmatch(epoch):
            raise ValueError(f"invalid epoch in version '{version}'")
    pkgver, sep, pkgrel = rest.rpartition("-")
    if not sep or not _PKGVER.fullmatch(pkgver) or pkgver.startswith(".") \
            or not _PKGREL.fullmatch(pkgrel):
        raise ValueError(f"invalid version '{version}' (expected [epoch:]pkgver-pkgrel)")
    return version


def split_entry(entry: str) -> tuple[str, str]:
    """'<name>-<pkgver>-<pkgrel>' (a db entry name) -> (name, version); ValueError if not one."""
    parts = entry.rsplit("-", 2)
    if len(parts) != 3:
        raise ValueError(f"'{entry}' is not <name>-<version>")
    name, version = parts[0], parts[1] + "-" + parts[2]
    return check_pkgname(name), check_version(version)
