"""Pure: review before build, from a build's source bundle to the diff a reviewer reads.

A bundle is an uncompressed tar of the files of the PKGBUILD's directory. A build is held
when its source differs from the source of the target's last successful build in anything
but the version (pkgver, pkgrel, epoch) and the checksum arrays; the hold carries a unified
diff of the real texts."""

from __future__ import annotations

import bisect
import difflib
import io
import re
import tarfile
from collections import Counter
from collections.abc import Iterator

from vieter_lite.errors import Invalid, InvalidPackage
from vieter_lite.repo.tarstream import TarReader

MAX_BUNDLE = 1 << 20  # bytes of tar
MAX_FILES = 500  # members of a bundle: files and directories
MAX_DIFF = 256 * 1024  # bytes of diff text; the rest is cut, with a line that says so
# difflib aligns two texts in about (lines of old) x (lines of new) steps, far more on
# hostile texts (6000 lines of each: seconds): past this many pairs of lines, summed over
# the files of one diff, a piece of text is shown as removed and added whole.
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
                    r"\+?=\()", re.M)
# a literal of letters, digits and . _ + (no expansion, no code), then the end of the word
_SCALAR = re.compile(r"(?:[\w.+]+|'[\w.+]*'|\"[\w.+]*\")(?=[ \t\n;&|)<>]|\Z)", re.A)
# the rest of a checksum array up to its ')': blanks, comments and literals of letters and
# digits (atomic and possessive: a text that fails is not tried again another way)
_ARRAY_REST = re.compile(r"(?>[ \t\n]+|#[^\n]*|(?:[A-Za-z0-9]+|'[A-Za-z0-9]*'|\"[A-Za-z0-9]*\")"
                         r"(?=[ \t\n)]))*+\)")
_COMMENT = re.compile(r"#[^\n]*")
_REST_OF_LINE = re.compile(r"[ \t]*(?:\n|\Z)")
# shown as \xNN / \uNNNN in a diff: they could rewrite or reorder what a terminal displays
_HIDING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")

Run = tuple[int, int, int, int]  # a changed run: lines a[i1:i2] become b[j1:j2]


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

def normalise_pkgbuild(text: str) -> str:
    """The PKGBUILD with its pkgver=, pkgrel= and epoch= values and its checksum arrays
    (md5sums ... b2sums, cksums, their _<arch> variants, '=' or '+=', over one line or
    several) blanked: two PKGBUILDs that differ only there normalise the same.

    Each such assignment becomes ':', a command that does nothing, so the text still reads
    as a PKGBUILD; trailing blanks go with it, and an epoch= line is dropped whole, since a
    bump may add one. Comments inside a checksum array are kept.

    Only assignments that start a line are blanked, and only when every value is a literal
    of letters, digits and '.', '_', '+' (checksums: letters and digits), so no code and no
    expansion is ever ignored. Not blanked, so a change there counts: a variable the version
    is built from (_pkgver=...), the pkgver() function, values with '$' or concatenated
    quotes, a line continuing the one before. Text that only looks like such an assignment
    (a line of a string or a here-document) is blanked the same way: what is ignored is
    still no more than a plain literal."""
    out: list[str] = []
    kept = pos = 0  # text[:kept] is done with; the search goes on from pos
    while match := _START.search(text, pos):
        line, pos = match.start(), match.end()
        if line >= 2 and text[line - 2] == "\\":  # this line continues the one before
            continue
        comments: list[str] = []  # kept from a checksum array
        if match["scalar"]:
            value = _SCALAR.match(text, pos)
            if value is None:
                continue
            end = value.end()
        else:
            array = _ARRAY_REST.match(text, pos)
            if array is None:  # an item that is not a literal: an expansion, code, no ')'
                continue
            end, comments = array.end(), _COMMENT.findall(array.group())
        marker = ":" + "".join(f" {comment}\n" for comment in comments)
        rest = _REST_OF_LINE.match(text, end)
        if rest:  # blanks up to the end of the line go with it
            end, marker = rest.end(), marker + rest.group().lstrip(" \t")
        if rest and match["scalar"] == "epoch":
            out.append(text[kept:line])
        else:
            name = match.start("scalar") if match["scalar"] else match.start("array")
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


def _aligned(a: list[str], b: list[str], i1: int, i2: int, j1: int, j2: int,
             budget: list[int]) -> list[Run]:
    """The changed runs from a[i1:i2] to b[j1:j2]: difflib's while the budget of line
    pairs lasts, past it the whole piece as one run."""
    if i1 == i2 or j1 == j2:  # only added or only removed lines: nothing to align
        return [(i1, i2, j1, j2)] if (i1, j1) != (i2, j2) else []
    pairs = (i2 - i1) * (j2 - j1)
    if pairs > budget[0]:
        return [(i1, i2, j1, j2)]
    budget[0] -= pairs
    matcher = difflib.SequenceMatcher(None, a[i1:i2], b[j1:j2])
    return [(i1 + r1, i1 + r2, j1 + s1, j1 + s2)
            for tag, r1, r2, s1, s2 in matcher.get_opcodes() if tag != "equal"]


def _anchors(a: list[str], b: list[str], i1: int, i2: int, j1: int,
             j2: int) -> list[tuple[int, int]]:
    """Patience diff's anchors in a[i1:i2] and b[j1:j2]: of the lines found once in each,
    the longest sequence that comes in the same order in both (O(n log n))."""
    count_a, count_b = Counter(a[i1:i2]), Counter(b[j1:j2])
    where_b = {b[j]: j for j in range(j1, j2) if count_b[b[j]] == 1}
    pairs = [(i, where_b[a[i]]) for i in range(i1, i2)
             if count_a[a[i]] == 1 and a[i] in where_b]
    tails: list[int] = []  # tails[n]: the pair ending the best sequence of length n + 1
    tail_js: list[int] = []
    before: list[int] = []  # the pair before each pair in its sequence, -1 for none
    for k, (_, j) in enumerate(pairs):
        n = bisect.bisect_left(tail_js, j)
        before.append(tails[n - 1] if n else -1)
        tails[n:n + 1], tail_js[n:n + 1] = [k], [j]
    chain = []
    k = tails[-1] if tails else -1
    while k >= 0:
        chain.append(pairs[k])
        k = before[k]
    return chain[::-1]


def _changed(a: list[str], b: list[str], budget: list[int]) -> list[Run]:
    """The changed runs in order: the common first and last lines set apart, difflib
    aligns the rest; when that would pass the budget, lines found once in each text
    anchor the alignment first and difflib aligns the pieces between them."""
    first = 0
    while first < min(len(a), len(b)) and a[first] == b[first]:
        first += 1
    last = 0
    while last < min(len(a), len(b)) - first and a[-1 - last] == b[-1 - last]:
        last += 1
    i2, j2 = len(a) - last, len(b) - last
    if (i2 - first) * (j2 - first) <= budget[0]:
        return _aligned(a, b, first, i2, first, j2, budget)
    runs: list[Run] = []
    i, j = first, first
    for anchor_i, anchor_j in [*_anchors(a, b, first, i2, first, j2), (i2, j2)]:
        runs += _aligned(a, b, i, anchor_i, j, anchor_j, budget)
        i, j = anchor_i + 1, anchor_j + 1
    return runs


def _hunks(a: list[str], b: list[str], budget: list[int]) -> Iterator[str]:
    groups: list[list[Run]] = []
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
