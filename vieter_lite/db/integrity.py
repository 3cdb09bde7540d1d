"""Read-only SQL for backup and check, on a plain sqlite3 connection (a read-only one on a
running server's db, or a backup's copy): the package files the db references and the
state of each arch-repo's archives."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileRef:
    """A package file a row uses: a published package ('package') or a kept version
    ('kept'); sha256 is the %SHA256SUM% its desc names ('' when it has none)."""

    repo: str
    arch: str
    name: str
    version: str
    filename: str
    sha256: str
    kind: str

    @property
    def relpath(self) -> str:
        return f"{self.repo}/{self.arch}/{self.filename}"


@dataclass(frozen=True)
class ArchRepoState:
    repo: str
    arch: str
    generation: int
    written: int
    entries: frozenset[str]  # '<name>-<version>' of every package, what the db archive holds


def connect_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """A read-only connection (it never migrates nor writes, safe beside a running server).
    `immutable`: nobody writes the db (a stopped server's): sqlite then leaves no -wal or
    -shm file behind either."""
    conn = sqlite3.connect(f"file:{path}?mode=ro{'&immutable=1' if immutable else ''}",
                           uri=True, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def sha256_of_desc(text: str) -> str:
    lines = text.split("\n")
    try:
        return lines[lines.index("%SHA256SUM%") + 1].strip()
    except (ValueError, IndexError):
        return ""


def file_refs(conn: sqlite3.Connection) -> list[FileRef]:
    """Every (package or kept version, file) the db holds, by repo, arch, file name."""
    rows = conn.execute(
        "SELECT repo, arch, name, version, filename, desc, 'package' AS kind FROM packages "
        "UNION ALL SELECT repo, arch, name, version, filename, desc, 'kept' FROM kept_packages "
        "ORDER BY repo, arch, filename, kind DESC").fetchall()
    return [FileRef(r[0], r[1], r[2], r[3], r[4], sha256_of_desc(r[5]), r[6]) for r in rows]


def arch_repo_states(conn: sqlite3.Connection) -> list[ArchRepoState]:
    repos = conn.execute("SELECT repo, arch, generation, written FROM arch_repos "
                         "ORDER BY repo, arch").fetchall()
    entries: dict[tuple[str, str], set[str]] = {}
    for repo, arch, name, version in conn.execute(
            "SELECT repo, arch, name, version FROM packages"):
        entries.setdefault((repo, arch), set()).add(f"{name}-{version}")
    return [ArchRepoState(r[0], r[1], r[2], r[3], frozenset(entries.get((r[0], r[1]), ())))
            for r in repos]


def read_all(conn: sqlite3.Connection) -> tuple[list[FileRef], list[ArchRepoState]]:
    """Both, in one read transaction (one consistent moment of the db)."""
    conn.execute("BEGIN")
    try:
        return file_refs(conn), arch_repo_states(conn)
    finally:
        conn.execute("COMMIT")
