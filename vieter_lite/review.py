"""Pure: review before build. A build's source bundle (the files of its PKGBUILD's
directory as an uncompressed tar) is read within fixed limits, and compared with the last
successful build's: a change in anything but the version (`pkgver`, `pkgrel`, `epoch`)
and the checksum arrays is shown as a unified diff of the real texts.

`.git/` and `.SRCINFO` (derived from the PKGBUILD, and not read by makepkg) are left out of
a bundle; every other file counts, `.install` scripts and patches included.
"""

from __future__ import annotations

import difflib
import io
import re
import tarfile

from vieter_lite.errors import Invalid

MAX_BUNDLE = 1 << 20      # bytes of tar
MAX_FILES = 500
MAX_DIFF = 256 * 1024     # characters of diff shown; the rest is cut with a line saying so
IGNORED = (".SRCINFO",)
REVIEW_RULES = ("changes", "never", "always")

_PART = re.compile(r"[^\x00-\x1f\x7f/]+")
_SUMS = r"(?:md5|sha1|sha224|sha256|sha384|sha512|b2|ck)sums(?:_[A-Za-z0-9_]+)?"
# `pkgver=1.0`, `pkgrel='2'`, `epoch=1`, and checksum arrays over one or several lines
_VERSION = re.compile(r"^[ \t]*(pkgver|pkgrel|epoch)=[^\n]*$", re.M)
_CHECKSUMS = re.compile(rf"^[ \t]*({_SUMS})(\+?=)\((?:[^()'\"]|'[^']*'|\"[^\"]*\")*\)[^\n]*$",
                        re.M)
_CHECKSUM_LINE = re.compile(rf"^[ \t]*({_SUMS})(\+?=)[^(\n][^\n]*$", re.M)


def _refuse(code: str, message: str) -> Invalid:
    return Invalid("source", code, f"source bundle refused: {message}")


def _name(raw: str) -> str:
    name = raw[2:] if raw.startswith("./") else raw
    parts = name.rstrip("/").split("/")
    if not name or name.startswith("/") or any(
            p in ("", ".", "..") or not _PART.fullmatch(p) for p in parts):
        raise _refuse("invalid", f"{raw!r} is not a plain relative path")
    return "/".join(parts)


def read_bundle(data: bytes) -> dict[str, bytes]:
    """{relative path: content} of a bundle; Invalid('source', ...) for one over MAX_BUNDLE,
    not a tar, over MAX_FILES, with a name that is not a plain relative path, a member that
    is not a regular file or directory, a file named twice, or no PKGBUILD at the top."""
    if len(data) > MAX_BUNDLE:
        raise _refuse("too_large", f"over {MAX_BUNDLE} bytes")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_FILES:
                    raise _refuse("too_many", f"more than {MAX_FILES} entries")
                name = _name(member.name)
                if member.isdir() or name.split("/")[0] == ".git" or name in IGNORED:
                    continue
                if not member.isreg():
                    raise _refuse("invalid", f"{name} is not a regular file")
                if name in files:
                    raise _refuse("invalid", f"{name} is in it twice")
                extracted = tar.extractfile(member)
                files[name] = extracted.read() if extracted is not None else b""
    except (tarfile.TarError, EOFError, UnicodeError) as exc:
        raise _refuse("invalid", f"not a tar archive ({exc})") from None
    if "PKGBUILD" not in files:
        raise _refuse("missing", "no PKGBUILD at its top")
    return files


def pack_bundle(files: dict[str, bytes]) -> bytes:
    """A deterministic tar of `files` (sorted names, mode 0644, owner 0, time 0)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def normalise_pkgbuild(text: str) -> str:
    """The PKGBUILD with its version assignments and checksum arrays blanked: two that
    differ only there compare equal. A pkgver() function is code, and stays."""
    text = _CHECKSUMS.sub(r"\1\2(...)", text)
    text = _CHECKSUM_LINE.sub(r"\1\2...", text)
    return _VERSION.sub(r"\1=...", text)


def _comparable(name: str, data: bytes) -> bytes:
    if name == "PKGBUILD" or name.endswith("/PKGBUILD"):
        return normalise_pkgbuild(data.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape")
    return data


def _text(data: bytes) -> list[str] | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _file_diff(name: str, old: bytes | None, new: bytes | None) -> str:
    a = f"a/{name}" if old is not None else "/dev/null"
    b = f"b/{name}" if new is not None else "/dev/null"
    header = f"diff --git a/{name} b/{name}\n"
    if old is None:
        header += "new file\n"
    elif new is None:
        header += "deleted file\n"
    old_lines = _text(old or b"")
    new_lines = _text(new or b"")
    if old_lines is None or new_lines is None:
        return header + f"Binary files {a} and {b} differ\n"
    body = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in difflib.unified_diff(old_lines, new_lines, a, b))
    return header + body


def diff(old: dict[str, bytes], new: dict[str, bytes]) -> str:
    """A unified diff of every file that differs, added or removed (real texts), cut at
    MAX_DIFF characters."""
    parts = [_file_diff(name, old.get(name), new.get(name))
             for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
    text = "".join(parts)
    if len(text) > MAX_DIFF:
        text = text[:MAX_DIFF] + f"\n[the diff is cut here: {len(text)} characters in all]\n"
    return text


def changes(old: dict[str, bytes] | None, new: dict[str, bytes]) -> str | None:
    """None when `new` differs from `old` in nothing but the version and checksums;
    otherwise the diff (against nothing when there is no `old`: all of it is new)."""
    if old is not None and set(old) == set(new) and all(
            _comparable(n, old[n]) == _comparable(n, new[n]) for n in new):
        return None
    return diff(old or {}, new)


def decide(rule: str, old: dict[str, bytes] | None, new: dict[str, bytes]) -> str | None:
    """What holds a build under its review rule: None to build, else the diff to show.
    'always' holds every build (the note says so when nothing changed)."""
    if rule == "never":
        return None
    found = changes(old, new)
    if rule == "always":
        return found or diff(old or {}, new) or "review: always (nothing changed since the " \
            "last successful build)\n"
    return found
