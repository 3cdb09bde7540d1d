"""The files of an arch-repo's db archives on disk. Each rewrite writes a generation
directory (`.g<mtime>-<id>/`) holding `<repo>.db.tar.gz`, `<repo>.files.tar.gz` and, when
signing, their `.sig` files; then one symlink, `.current`, is switched to it. A reader
opens every name through `.current`, so the db and the signature it gets are always of
the same rewrite: it never sees a db newer than its signature, or the reverse.

The names pacman and tools use are symlinks that go through `.current`:
`<repo>.db.tar.gz -> .current/<repo>.db.tar.gz`, `<repo>.db -> <repo>.db.tar.gz`, and
(signed) `<repo>.db.tar.gz.sig`, `<repo>.db.sig`; the same for `.files`. A static file
server pointed at the directory serves the same consistent pairs.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

CURRENT = ".current"
GENERATION = ".g"
KINDS = ("db", "files")
SIG = ".sig"
# generations kept besides the current one: a reader that resolved `.current` just
# before a switch still finds its files
KEEP_OLD = 2

Writer = Callable[[BinaryIO, BinaryIO], int]
SignFiles = Callable[[Sequence[tuple[Path, Path]]], None]


def archive_name(repo: str, kind: str) -> str:
    return f"{repo}.{kind}.tar.gz"


def current_path(directory: Path, repo: str, kind: str, signature: bool = False) -> Path:
    """Where the current archive (or its signature) is, through `.current`."""
    return directory / CURRENT / (archive_name(repo, kind) + (SIG if signature else ""))


def is_signed(directory: Path, repo: str) -> bool:
    """Whether the current db archive has a signature (False before the first rewrite in
    this layout)."""
    return current_path(directory, repo, "db", signature=True).exists()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_symlink(path: Path, target: str) -> None:
    """Make `path` a symlink to `target`, replacing what is there in one rename."""
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f".tmp.{uuid.uuid4().hex}")
    tmp.symlink_to(target)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_generation(directory: Path, repo: str, mtime: int, write: Writer,
                     sign: SignFiles | None) -> int:
    """Write both archives (and, with `sign`, their signatures) into a new generation and
    switch `.current` to it; returns what `write` returns (the package count)."""
    directory.mkdir(parents=True, exist_ok=True)
    generation = directory / f"{GENERATION}{mtime}-{uuid.uuid4().hex[:8]}"
    generation.mkdir()
    try:
        count = _fill_generation(generation, repo, mtime, write, sign)
    except BaseException:
        # a full disk, a failed signature: the current generation stays what is served,
        # and the partial one goes (it holds a truncated archive)
        shutil.rmtree(generation, ignore_errors=True)
        raise
    ensure_symlink(directory / CURRENT, generation.name)
    _link_names(directory, repo, signed=sign is not None)
    _fsync(directory)
    _prune(directory)
    return count


def _fill_generation(generation: Path, repo: str, mtime: int, write: Writer,
                     sign: SignFiles | None) -> int:
    """Write the archives (and signatures) into a new generation directory, synced."""
    paths = [generation / archive_name(repo, kind) for kind in KINDS]
    with open(paths[0], "wb") as db_out, open(paths[1], "wb") as files_out:
        count = write(db_out, files_out)
        for out in (db_out, files_out):
            out.flush()
            os.fsync(out.fileno())
    written = list(paths)
    if sign is not None:
        signatures = [(path, path.with_name(path.name + SIG)) for path in paths]
        sign(signatures)
        for _, signature in signatures:
            _fsync(signature)
            written.append(signature)
    for path in written:
        os.utime(path, (mtime, mtime))
    _fsync(generation)
    return count


def _link_names(directory: Path, repo: str, signed: bool) -> None:
    for kind in KINDS:
        name = archive_name(repo, kind)
        ensure_symlink(directory / name, f"{CURRENT}/{name}")
        ensure_symlink(directory / f"{repo}.{kind}", name)
        if signed:
            ensure_symlink(directory / (name + SIG), f"{CURRENT}/{name}{SIG}")
            ensure_symlink(directory / f"{repo}.{kind}{SIG}", name + SIG)
        else:
            (directory / f"{repo}.{kind}{SIG}").unlink(missing_ok=True)
            (directory / (name + SIG)).unlink(missing_ok=True)


def _generation_time(path: Path) -> int:
    try:
        return int(path.name[len(GENERATION):].split("-", 1)[0])
    except ValueError:
        return 0


def _prune(directory: Path) -> None:
    """Remove all generations but the current one and the KEEP_OLD newest others (and
    temp links a crash left)."""
    current = os.readlink(directory / CURRENT)
    others = []
    for path in directory.iterdir():
        if path.name.startswith(".tmp.") and not path.is_dir():
            path.unlink(missing_ok=True)
        elif path.name.startswith(GENERATION) and path.name != current \
                and not path.is_symlink() and path.is_dir():
            others.append(path)
    others.sort(key=_generation_time, reverse=True)
    for old in others[KEEP_OLD:]:
        shutil.rmtree(old, ignore_errors=True)
