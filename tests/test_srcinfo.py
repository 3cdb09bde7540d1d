"""vieter_lite.repo.srcinfo: .SRCINFO as Debian's real `makepkg --printsrcinfo` prints it
(the oracle), per arch; pacman's dependency strings and how packages meet them."""

from __future__ import annotations

import pytest

from oracles import printsrcinfo
from pkgfactory import makepkg_available
from vieter_lite.repo.srcinfo import Dep, SrcinfoError, meets, parse, parse_dep

needs_makepkg = pytest.mark.skipif(not makepkg_available(), reason="needs makepkg (and a build user)")

SPLIT = """pkgbase=foo
pkgname=(foo-bin foo-data foo-none)
pkgver=1.2
pkgrel=3
epoch=1
arch=(x86_64 aarch64)
depends=('glibc' 'bar>=2')
depends_aarch64=('raspi-thing')
makedepends=(cmake 'baz<3')
makedepends_x86_64=(nasm)
checkdepends=(python-pytest)
checkdepends_aarch64=(qemu-check)
provides=('libfoo.so=1-64')
echo "pkgname = printed while sourced"
package_foo-bin() { provides=('foo=1.2' 'foox'); depends+=(extra); }
package_foo-data() { arch=(any); depends=(); }
package_foo-none() { depends_x86_64=(onlyx); provides=(); }
"""

# (PKGBUILD, arch, [(package, version, depends, provides)], every dependency of the build)
CASES = {
    "one package": (
        "pkgname=hello\npkgver=1.0\npkgrel=2\narch=(x86_64)\ndepends=(glibc)\n"
        "makedepends=(cmake)\npackage() { :; }\n",
        "x86_64",
        [("hello", "1.0-2", ["glibc"], [])],
        ["cmake", "glibc"]),
    "epoch 0 is left out, versioned and bare provisions": (
        "pkgname=lib\npkgver=2.1\npkgrel=1\nepoch=0\narch=(any)\n"
        "provides=('libx=2.1' 'liby' 'libz.so=3-64')\ndepends=('a=1' 'b<2' 'c>1' 'd<=4')\n"
        "package() { :; }\n",
        "x86_64",
        [("lib", "2.1-1", ["a=1", "b<2", "c>1", "d<=4"], ["libx=2.1", "liby", "libz.so=3-64"])],
        ["a=1", "b<2", "c>1", "d<=4"]),
    "a split package on x86_64": (
        SPLIT, "x86_64",
        [("foo-bin", "1:1.2-3", ["glibc", "bar>=2", "extra"], ["foo=1.2", "foox"]),
         ("foo-data", "1:1.2-3", [], ["libfoo.so=1-64"]),
         ("foo-none", "1:1.2-3", ["glibc", "bar>=2", "onlyx"], [])],
        ["bar>=2", "baz<3", "cmake", "extra", "glibc", "nasm", "onlyx", "python-pytest"]),
    "the same split package on aarch64": (
        SPLIT, "aarch64",
        [("foo-bin", "1:1.2-3", ["glibc", "bar>=2", "extra", "raspi-thing"], ["foo=1.2", "foox"]),
         ("foo-data", "1:1.2-3", ["raspi-thing"], ["libfoo.so=1-64"]),
         ("foo-none", "1:1.2-3", ["glibc", "bar>=2", "raspi-thing"], [])],
        ["bar>=2", "baz<3", "cmake", "extra", "glibc", "python-pytest", "qemu-check",
         "raspi-thing"]),
}


def _check(text: str, arch: str, packages: list, needs: list) -> None:
    view = parse(text).for_arch(arch)
    assert [(p.name, p.version, [str(d) for d in p.depends], [str(d) for d in p.provides])
            for p in view.packages] == [(n, v, d, p) for n, v, d, p in packages]
    assert sorted(str(d) for d in view.needs) == needs


@needs_makepkg
@pytest.mark.parametrize("name", CASES)
def test_what_makepkg_prints_per_arch(name):
    pkgbuild, arch, packages, needs = CASES[name]
    _check(printsrcinfo(pkgbuild), arch, packages, needs)


def test_the_split_package_as_makepkg_prints_it():
    """The split package's .SRCINFO as Debian's makepkg 6.0.2 printed it (kept, so the
    parser is tested where makepkg is missing too): an emptied array is 'depends = ', and
    a line the PKGBUILD printed while sourced comes first."""
    text = ("pkgname = printed while sourced\npkgbase = foo\n\tpkgver = 1.2\n\tpkgrel = 3\n"
            "\tepoch = 1\n\tarch = x86_64\n\tarch = aarch64\n\tcheckdepends = python-pytest\n"
            "\tmakedepends = cmake\n\tmakedepends = baz<3\n\tdepends = glibc\n"
            "\tdepends = bar>=2\n\tprovides = libfoo.so=1-64\n\tmakedepends_x86_64 = nasm\n"
            "\tcheckdepends_aarch64 = qemu-check\n\tdepends_aarch64 = raspi-thing\n\n"
            "pkgname = foo-bin\n\tdepends = glibc\n\tdepends = bar>=2\n\tdepends = extra\n"
            "\tprovides = foo=1.2\n\tprovides = foox\n\npkgname = foo-data\n\tarch = any\n"
            "\tdepends = \n\npkgname = foo-none\n\tprovides = \n\tdepends_x86_64 = onlyx\n")
    for name in ("a split package on x86_64", "the same split package on aarch64"):
        _, arch, packages, needs = CASES[name]
        _check(text, arch, packages, needs)
    assert parse(text).pkgbase == "foo" and parse(text).archs() == ("x86_64", "aarch64")


@pytest.mark.parametrize("separator", ["\u2028", "\x0c", "\x85", "\x1e"])
def test_a_line_ends_only_at_a_newline(separator):
    """A value holding a character that str.splitlines() breaks at (but makepkg and pacman
    do not) stays one value: it was cut there, and its rest read as a line of its own,
    here a second package. makepkg prints \x1e as it is (the others as spaces)."""
    pkgdesc = f"x{separator}pkgname = evil"
    text = f"pkgbase = a\n\tpkgdesc = {pkgdesc}\n\tpkgver = 1\n\npkgname = a\n"
    texts = [text]
    if makepkg_available():
        texts.append(printsrcinfo(f"pkgname=a\npkgver=1\npkgrel=1\narch=(any)\n"
                                  f"pkgdesc='{pkgdesc}'\npackage() {{ :; }}\n"))
    for each in texts:
        got = parse(each)
        assert [p.name for p in got.packages] == ["a"], each
        assert got.base.first("pkgdesc").endswith("pkgname = evil"), each


@pytest.mark.parametrize("text, error", [
    ("", "no 'pkgbase = NAME' line"),
    ("pkgname = x\n\tpkgver = 1\n", "no 'pkgbase = NAME' line"),
    ("pkgbase = x\n\tpkgver = 1\n", "no 'pkgname = NAME' line"),
    ("pkgbase = \n\npkgname = x\n", "no 'pkgbase = NAME' line"),
    ("just some output\nof a program\n", "no 'pkgbase = NAME' line"),
    ("pkgbase = x\n" + "\tdepends = y\n" * 5001 + "pkgname = x\n", "more than 5000 values"),
])
def test_what_is_not_a_srcinfo(text, error):
    with pytest.raises(SrcinfoError, match=error):
        parse(text)


@pytest.mark.parametrize("text, dep", [
    ("foo", Dep("foo")),
    ("foo>=1.2", Dep("foo", ">=", "1.2")),
    ("foo<=1:1.2-3", Dep("foo", "<=", "1:1.2-3")),
    ("foo=2", Dep("foo", "=", "2")),
    ("foo<2", Dep("foo", "<", "2")),
    ("foo>2", Dep("foo", ">", "2")),
    ("libfoo.so=1-64", Dep("libfoo.so", "=", "1-64")),
    ("c++-lib>=1", Dep("c++-lib", ">=", "1")),
])
def test_parse_dep(text, dep):
    assert parse_dep(text) == dep
    assert str(parse_dep(text)) == text


# (dependency, package name, its version, its provisions, met?)
MEETS = [
    ("foo", "foo", "1.0-1", [], True),
    ("foo", "bar", "1.0-1", [], False),
    ("foo>=1.0", "foo", "1.0-1", [], True),      # a release on one side only is not compared
    ("foo>1.0", "foo", "1.0-1", [], False),
    ("foo>1.0-0", "foo", "1.0-1", [], True),
    ("foo<2", "foo", "1:1.0-1", [], False),       # the epoch wins
    ("foo=1.0-1", "foo", "1.0-1", [], True),
    ("foo=1.0", "foo", "1.0-7", [], True),
    ("foo<=1.0", "foo", "1.0.1-1", [], False),
    ("foo", "bar", "1-1", ["foo"], True),          # a bare provision meets a bare dependency
    ("foo>=1", "bar", "1-1", ["foo"], False),      # ... and no versioned one
    ("foo", "bar", "1-1", ["foo=3"], True),
    ("foo>=2", "bar", "1-1", ["foo=3"], True),     # the provision's version counts
    ("foo>=4", "bar", "9-1", ["foo=3"], False),
    ("foo<1", "bar", "9-1", ["foo>=0"], False),    # only '=' provisions carry a version
    ("libfoo.so=1-64", "foo", "1-1", ["libfoo.so=1-64"], True),
    ("foo>=1.0", "foo", "1.0rc1-1", [], False),
]


@pytest.mark.parametrize("dep, name, version, provides, met", MEETS)
def test_meets(dep, name, version, provides, met):
    assert meets(parse_dep(dep), name, version, tuple(parse_dep(p) for p in provides)) is met
