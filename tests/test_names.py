"""Tests for vieter_lite.names: which repo, arch, package names and versions are accepted."""

from __future__ import annotations

import pytest

from vieter_lite.names import check_arch, check_pkgname, check_repo, check_version, split_entry

REPO_OK = ["vieter", "my-repo", "r_1", "R", "0", "_x", "repo.v2", "a+b", "me@home", "apis", "x" * 128,
           "Vieter", "api-2"]
REPO_BAD = ["", ".", "..", "a/b", "/", "api", "API", "Api", "badge", "Badge", ".hidden", "-x", "+x", "@x",
            "my repo", " x",
            "x ", "x\n", "x" * 129, "x" * 200, "a\\b", "caf\u00e9", "a:b", "a%2Fb", "a?b", "a#b", "\0"]


@pytest.mark.parametrize("name", REPO_OK)
def test_check_repo_ok(name):
    assert check_repo(name) == name


@pytest.mark.parametrize("name", REPO_BAD, ids=[repr(n)[:30] for n in REPO_BAD])
def test_check_repo_bad(name):
    with pytest.raises(ValueError):
        check_repo(name)


def test_check_repo_messages():
    with pytest.raises(ValueError, match="invalid repository name 'a/b'"):
        check_repo("a/b")
    with pytest.raises(ValueError, match="'API' is a reserved keyword"):
        check_repo("API")
    with pytest.raises(ValueError, match="invalid repository name"):
        check_repo(None)  # type: ignore[arg-type]


ARCH_OK = ["x86_64", "aarch64", "armv7h", "armv6h", "i686", "any", "riscv64", "pentium4", "X", "a" * 32]
ARCH_BAD = ["", "x86-64", "x86 64", "../x", "x/y", ".", "..", "a" * 33, "arm.v7", "x86_64\n", "caf\u00e9", "$arch"]


@pytest.mark.parametrize("arch", ARCH_OK)
def test_check_arch_ok(arch):
    assert check_arch(arch) == arch


@pytest.mark.parametrize("arch", ARCH_BAD, ids=[repr(a)[:30] for a in ARCH_BAD])
def test_check_arch_bad(arch):
    with pytest.raises(ValueError, match="invalid architecture"):
        check_arch(arch)


PKGNAME_OK = ["foo", "lib32-glibc", "python-foo_bar", "gtk+", "c++utilities", "foo@bar", "0ad", "_x", "+x", "@x",
              "a.b", "Foo", "x" * 255, "a-", "a..b"]
PKGNAME_BAD = ["", ".foo", "-foo", "foo/bar", "/", "..", ".", "foo bar", "foo:bar", "x" * 256, "caf\u00e9",
               "foo\n", "foo\t", "foo=1", "foo>1", "f*", "$x"]


@pytest.mark.parametrize("name", PKGNAME_OK)
def test_check_pkgname_ok(name):
    assert check_pkgname(name) == name


@pytest.mark.parametrize("name", PKGNAME_BAD, ids=[repr(n)[:30] for n in PKGNAME_BAD])
def test_check_pkgname_bad(name):
    with pytest.raises(ValueError, match="invalid package name"):
        check_pkgname(name)


VERSION_OK = ["1.0-1", "1-1", "2:1.0-1", "0:1.0-1", "123456789:1-1", "1.0.r3.g1a2b-2", "1.0_rc1-1", "1.0+git-1",
              "1.0~beta-1", "20240101-3", "1.0-1.1", "1.0-1.2.3", "a-1", "A.b-10", "1." + "0" * 250 + "-1"]
VERSION_BAD = [
    ("empty", ""),
    ("no-pkgrel", "1.0"),
    ("empty-pkgrel", "1.0-"),
    ("empty-pkgver", "-1"),
    ("alpha-pkgrel", "1.0-a"),
    ("pkgrel-trailing-dot", "1.0-1."),
    ("pkgrel-leading-dot", "1.0-.1"),
    ("hyphen-in-pkgver", "1.0-1-1"),
    ("whitespace", "1.0 -1"),
    ("newline", "1.0-1\n"),
    ("slash", "1/0-1"),
    ("leading-dot", ".1-1"),
    ("empty-epoch", ":1.0-1"),
    ("alpha-epoch", "a:1.0-1"),
    ("negative-epoch", "-1:1.0-1"),
    ("huge-epoch", "1234567890:1.0-1"),
    ("two-colons", "1:2:3-1"),
    ("pkgver-too-long", "1" * 255 + "-1"),
    ("non-ascii", "caf\u00e9-1"),
    ("arabic-pkgrel", "1.0-\u0661"),
]


@pytest.mark.parametrize("version", VERSION_OK)
def test_check_version_ok(version):
    assert check_version(version) == version


@pytest.mark.parametrize("version", [c[1] for c in VERSION_BAD], ids=[c[0] for c in VERSION_BAD])
def test_check_version_bad(version):
    with pytest.raises(ValueError, match="invalid (version|epoch)"):
        check_version(version)


SPLIT_OK = [
    ("foo-1.0-1", ("foo", "1.0-1")),
    ("foo-bar-1.0-1", ("foo-bar", "1.0-1")),
    ("lib32-foo-bar-2:0.5-3", ("lib32-foo-bar", "2:0.5-3")),
    ("a-1-1.1", ("a", "1-1.1")),
    ("gtk+-3.24.41-1", ("gtk+", "3.24.41-1")),
]
SPLIT_BAD = ["foo", "foo-1", "-1.0-1", "foo-1.0-x", "foo--1", ".foo-1.0-1", "foo/bar-1.0-1", "foo-1.0-1/", ""]


@pytest.mark.parametrize("entry,expected", SPLIT_OK, ids=[c[0] for c in SPLIT_OK])
def test_split_entry(entry, expected):
    assert split_entry(entry) == expected


@pytest.mark.parametrize("entry", SPLIT_BAD)
def test_split_entry_bad(entry):
    with pytest.raises(ValueError):
        split_entry(entry)
