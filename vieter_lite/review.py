"""Pure: review before build, from a build's source bundle to the diff a reviewer reads.

A bundle is an uncompressed tar of the files of the PKGBUILD's directory. A build is held
when its source differs from the source of the target's last successful build in anything
but the version (pkgver, pkgrel, epoch) and the checksum arrays; the hold carries a unified
diff of the real texts."""

from __future__ import annotations

import difflib
import io
import re
import tarfile
from collections.abc import Iterator

from vieter_lite.errors import Invalid, InvalidPackage
from vieter_lite.repo.tarstream import TarReader

MAX_BUNDLE = 1 << 20  # bytes of tar
MAX_FILES = 500  # members of a bundle: files and directories
MAX_DIFF = 256 * 1024  # bytes of diff text; the rest is cut, with a line that says so
# Aligning the lines of two texts costs up to about (lines of old) x (lines of new) steps,
# more on hostile texts: past this many pairs, summed over the files of one diff, what lies
# between a file's common first and last lines is shown as removed and added whole.
ALIGN_BUDGET = 4_000_000
CONTEXT = 3  # lines around each change, as diff -u
ALWAYS_UNCHANGED = "review: always (the source is the same as the last successful build's)\n"
IGNORED = (".git",)  # a directory of this name, at any depth, is not part of the source
DERIVED = (".SRCINFO",)  # top-level files made from the PKGBUILD
_REGULAR = (b"0", b"\0", b"7")
_DIRECTORY = b"5"

_SUMS = r"(?:md5|sha1|sha224|sha256|sha384|sha512|b2|ck)sums(?:_[A-Za-z0-9_]+)?"
# an assignment at the start of a line, not continuing the line before (checked apart)
_START = re.compile(rf"^[ \t]*(?:(?P<scalar>pkgver|pkgrel|epoch)=|(?P<array>{_SUMS})"
                    r"(?P<op>\+?=)\()", re.M)
# a literal of letters, digits and . _ + (no expansion, no code), then the end of the word
_SCALAR = re.compile(r"(?:[\w.+]+|'[\w.+]*'|\"[\w.+]*\")(?=[ \t\n;&|)<>]|\Z)", re.A)
# inside a checksum array: blanks, a comment, the closing ')' or a literal of letters and digits
_ITEM = re.compile(r"[ \t\n]+|#[^\n]*|\)|(?:[A-Za-z0-9]+|'[A-Za-z0-9]*'|\"[A-Za-z0-9]*\")"
                   r"(?=[ \t\n)])")
_REST_OF_LINE = re.compile(r"[ \t]*(?:\n|\Z)")
# shown as \xNN / \uNNNN in a diff: they could rewrite or reorder what a terminal displays
_HIDING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def _invalid(code: str, message: str) -> Invalid:
    return Invalid("source", code, message)


def _relative(path: str) -> str:
    """'./a//b/' -> 'a/b'; a path that is not UTF-8 is refused."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("bad_path", f"the path {ascii(path[:80])} is not UTF-8") from None
    return "/".join(part for part in path.split("/") if part not in ("", "."))


def read_bundle(data: bytes) -> dict[str, bytes]:
    """An uncompressed tar of the PKGBUILD's directory -> {relative path: content}.

    Accepts what `git archive --format=tar` and `pack_bundle` write (pax and GNU headers).
    Refused with Invalid("source", code, message): more than MAX_BUNDLE bytes (too_large),
    not a readable tar or an unsafe path, as vieter_lite.repo.tarstream checks them
    (invalid), more than MAX_FILES members (too_many), a path that is not UTF-8 (bad_path),
    a member other than a regular file or a directory: links, devices, fifos (bad_member),
    a path named twice or both a file and a directory (duplicate), no PKGBUILD at the top
    (missing). Ignored: anything under a .git directory and a top-level .SRCINFO, which
    makepkg derives from the PKGBUILD.

    What is reviewed must be what is built: store pack_bundle(read_bundle(body)), not the
    body, so that no other tar reader sees other files in it."""
    if len(data) > MAX_BUNDLE:
        raise _invalid("too_large", f"the bundle is larger than {MAX_BUNDLE} bytes")
    files: dict[str, bytes] = {}
    seen: set[str] = set()
    reader = TarReader(io.BytesIO(data), max_bytes=len(data) + 1)
    try:
        for count, entry in enumerate(reader, 1):
            if count > MAX_FILES:
                raise _invalid("too_many", f"the bundle has more than {MAX_FILES} members")
            path = _relative(entry.path)
            if not path or set(path.split("/")) & set(IGNORED) or path in DERIVED:
                continue
            if entry.kind not in _REGULAR + (_DIRECTORY,):
                raise _invalid("bad_member", f"{path} is not a regular file or a directory "
                                             f"(tar type {entry.kind!r})")
            if path in seen:
                raise _invalid("duplicate", f"{path} is in the bundle twice")
            seen.add(path)
            if entry.kind in _REGULAR:
                files[path] = reader.read_data(entry)
    except InvalidPackage as exc:
        reason = exc.message.partition(": ")[2] or exc.message
        raise _invalid("invalid", f"the bundle is not a tar this server reads: {reason}") from None
    except ValueError as exc:  # a number in a header that int() refuses
        raise _invalid("invalid", f"the bundle is not a tar this server reads: {exc}") from None
    for path in files:
        parent = path.rpartition("/")[0]
        while parent:
            if parent in files:
                raise _invalid("duplicate", f"{parent} is both a file and a directory")
            parent = parent.rpartition("/")[0]
    if "PKGBUILD" not in files:
        raise _invalid("missing", "the bundle has no PKGBUILD at its top")
    return files


def pack_bundle(files: dict[str, bytes]) -> bytes:
    """The same bytes for the same files: sorted names, regular files of mode 0644 owned by
    0:0 with mtime 0, no directory entries. read_bundle(pack_bundle(x)) == x."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


# -- what a version bump may change -------------------------------------------------------

def _array_end(text: str, pos: int) -> tuple[int, list[str]] | None:
    """After 'name=(': the end of the array and its comments; None when an item is anything
    but a literal of letters and digits (an expansion, a quote left open, code)."""
    comments: list[str] = []
    while match := _ITEM.match(text, pos):
        pos = match.end()
        if match.group() == ")":
            return pos, comments
        if match.group().startswith("#"):
            comments.append(match.group())
    return None


def normalise_pkgbuild(text: str) -> str:
    """The PKGBUILD without its pkgver=, pkgrel= and epoch= values and its checksum arrays
    (md5sums ... b2sums, cksums, their _<arch> variants, '=' or '+=', over one line or
    several): two PKGBUILDs that differ only there normalise the same.

    Only assignments that start a line are blanked, and only when every value is a literal
    of letters, digits and '.', '_', '+' (checksums: letters and digits), so no code and no
    expansion is ever ignored. Comments inside a checksum array are kept. An assignment
    alone on its lines is dropped with them (an epoch added by a bump is ignored too);
    one sharing its line leaves 'name=' or 'name=()' behind. Not blanked, so a change
    there counts: a variable the version is built from (_pkgver=...), the pkgver()
    function, values with quotes concatenated or '$'. Text that only looks like such an
    assignment (a line of a string or a here-document) is blanked the same way: what is
    ignored is still no more than a plain literal."""
    out: list[str] = []
    kept = pos = 0  # text[:kept] is done with; the search goes on from pos
    while match := _START.search(text, pos):
        line, pos = match.start(), match.end()
        if line >= 2 and text[line - 2] == "\\":  # this line continues the one before
            continue
        comments: list[str] = []
        if match["scalar"]:
            value = _SCALAR.match(text, pos)
            if value is None:
                continue
            name, end, marker = match.start("scalar"), value.end(), match["scalar"] + "="
        else:
            found = _array_end(text, pos)
            if found is None:
                continue
            end, comments = found
            name, kept_comments = match.start("array"), "".join(c + "\n" for c in comments)
            marker = f"{match['array']}{match['op']}({kept_comments})"
        rest = _REST_OF_LINE.match(text, end)
        if rest and not comments:  # alone on its lines: dropped with them
            out.append(text[kept:line])
            kept = pos = rest.end()
        else:
            out.append(text[kept:name] + marker)
            kept = pos = end
    out.append(text[kept:])
    return "".join(out)


# -- the diff a reviewer reads ------------------------------------------------------------

def _same_but_version(old: dict[str, bytes], new: dict[str, bytes]) -> bool:
    if old.keys() != new.keys():
        return False
    for path, data in new.items():
        if data == old[path]:
            continue
        if path != "PKGBUILD":
            return False
        texts = (raw.decode("utf-8", "surrogateescape") for raw in (old[path], data))
        if len({normalise_pkgbuild(text) for text in texts}) > 1:
            return False
    return True


def _visible(text: str) -> str:
    return _HIDING.sub(lambda m: ascii(m.group())[1:-1], text)


def _line(prefix: str, line: str) -> str:
    if line.endswith("\n"):
        return prefix + _visible(line[:-1]) + "\n"
    return prefix + _visible(line) + "\n\\ No newline at end of file\n"


def _range(start: int, stop: int) -> str:
    """A hunk's line range as diff -u writes it: 'first,count', 'first' for one line."""
    if stop - start == 1:
        return str(start + 1)
    return f"{start + 1 if stop > start else start},{stop - start}"


def _changed(a: list[str], b: list[str], budget: list[int]) -> list[tuple[int, int, int, int]]:
    """The changed runs (a[i1:i2] -> b[j1:j2]) in order, aligned by difflib between the
    common first and last lines while the budget of line pairs lasts."""
    first = 0
    while first < min(len(a), len(b)) and a[first] == b[first]:
        first += 1
    last = 0
    while last < min(len(a), len(b)) - first and a[-1 - last] == b[-1 - last]:
        last += 1
    inner_a, inner_b = a[first:len(a) - last], b[first:len(b) - last]
    pairs = len(inner_a) * len(inner_b)
    if pairs > budget[0]:
        runs = [(0, len(inner_a), 0, len(inner_b))]
    else:
        budget[0] -= pairs
        runs = [(i1, i2, j1, j2) for tag, i1, i2, j1, j2
                in difflib.SequenceMatcher(None, inner_a, inner_b).get_opcodes()
                if tag != "equal"]
    return [(i1 + first, i2 + first, j1 + first, j2 + first) for i1, i2, j1, j2 in runs]


def _hunks(a: list[str], b: list[str], budget: list[int]) -> Iterator[str]:
    groups: list[list[tuple[int, int, int, int]]] = []
    for run in _changed(a, b, budget):
        if groups and run[0] - groups[-1][-1][1] <= 2 * CONTEXT:
            groups[-1].append(run)
        else:
            groups.append([run])
    for group in groups:
        (i1, _, j1, _), (_, i2, _, j2) = group[0], group[-1]
        before, after = min(CONTEXT, i1), min(CONTEXT, len(a) - i2)
        yield (f"@@ -{_range(i1 - before, i2 + after)} "
               f"+{_range(j1 - before, j2 + after)} @@\n")
        shown = i1 - before  # lines of a shown so far
        for r1, r2, s1, s2 in group:
            yield from (_line(" ", line) for line in a[shown:r1])
            yield from (_line("-", line) for line in a[r1:r2])
            yield from (_line("+", line) for line in b[s1:s2])
            shown = r2
        yield from (_line(" ", line) for line in a[shown:i2 + after])


def _file_diff(path: str, old: bytes | None, new: bytes | None,
               budget: list[int]) -> Iterator[str]:
    """One file's part of a git-style diff: a missing side is a new or a removed file."""
    name = _visible(path)
    yield f"diff --git a/{name} b/{name}\n"
    if old is None:
        yield "new file mode 100644\n"
    if new is None:
        yield "deleted file mode 100644\n"
    old_name = "/dev/null" if old is None else f"a/{name}"
    new_name = "/dev/null" if new is None else f"b/{name}"
    if any(data is not None and b"\0" in data[:8000] for data in (old, new)):  # as git
        yield f"Binary files {old_name} and {new_name} differ\n"
        return
    a, b = (_LINE.findall((data or b"").decode("utf-8", "backslashreplace"))
            for data in (old, new))
    if a or b:
        yield f"--- {old_name}\n+++ {new_name}\n"
        yield from _hunks(a, b, budget)


def _diff(old: dict[str, bytes], new: dict[str, bytes]) -> str:
    """Every file that differs, by path; cut after MAX_DIFF bytes."""
    paths = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    budget = [ALIGN_BUDGET]
    out: list[str] = []
    size = 0
    for index, path in enumerate(paths):
        for line in _file_diff(path, old.get(path), new.get(path), budget):
            size += len(line.encode())
            if size > MAX_DIFF:
                out.append(f"[the diff is longer than {MAX_DIFF} bytes and is cut here; "
                           f"{len(paths) - index - 1} more changed files are not shown]\n")
                return "".join(out)
            out.append(line)
    return "".join(out)


def changes(old: dict[str, bytes] | None, new: dict[str, bytes]) -> str | None:
    """None when `new` differs from `old` only in what normalise_pkgbuild blanks (or not
    at all); otherwise a git-style unified diff of the real texts of every file that
    differs (binary files: 'Binary files a/x and b/x differ'). With no `old` (no build of
    the target succeeded yet), the whole source as new files. Characters that could hide
    text on a terminal (controls other than tab, bidi marks) are shown as \\xNN / \\uNNNN."""
    if old is not None and _same_but_version(old, new):
        return None
    return _diff(old or {}, new) or None


def decide(rule: str, old: dict[str, bytes] | None, new: dict[str, bytes]) -> str | None:
    """What holds a build under its review rule: None (it goes on) or the diff to show.
    'always' holds every build, with the whole diff against `old`, version lines included."""
    if rule == "never":
        return None
    if rule == "changes":
        return changes(old, new)
    if rule == "always":
        return _diff(old or {}, new) or ALWAYS_UNCHANGED
    raise ValueError(f"unknown review rule {rule!r}")
