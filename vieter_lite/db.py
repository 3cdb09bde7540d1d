"""The only module with SQL: one sqlite connection (WAL) behind one lock, migrations by user_version."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vieter_lite.models import RepoPackage

MIGRATIONS: tuple[str, ...] = (
    # 1: repositories
    """
    CREATE TABLE arch_repos (
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1,
        written INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (repo, arch)
    );
    CREATE TABLE packages (
        repo TEXT NOT NULL,
        arch TEXT NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        pkg_arch TEXT NOT NULL,
        filename TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        desc TEXT NOT NULL,
        db_member BLOB NOT NULL,
        files_member BLOB NOT NULL,
        PRIMARY KEY (repo, arch, name),
        FOREIGN KEY (repo, arch) REFERENCES arch_repos (repo, arch) ON DELETE CASCADE
    );
    CREATE INDEX packages_by_file ON packages (repo, arch, filename);
    """,
)

Snapshot = tuple[int, Iterator[tuple[bytes, bytes]]]
_PKG_COLUMNS = "repo, arch, name, version, filename, pkg_arch, desc, published_at"


def _package(row: sqlite3.Row) -> RepoPackage:
    return RepoPackage(repo=row["repo"], arch=row["arch"], name=row["name"],
                       version=row["version"], filename=row["filename"],
                       pkg_arch=row["pkg_arch"], desc=row["desc"],
                       published_at=row["published_at"])


class Database:
    """All SQL of vieter_lite. Methods are atomic; `transaction()` groups several."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False,
                                     isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        """Run several calls as one sqlite transaction (re-entrant within a thread)."""
        with self._lock:
            if self._conn.in_transaction:
                yield self
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, *args: object) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def _run(self, sql: str, *args: object) -> int:
        with self._lock:
            return self._conn.execute(sql, args).rowcount

    # -- arch-repos -------------------------------------------------------------------

    def arch_repos(self, repo: str | None = None) -> list[tuple[str, str]]:
        if repo is None:
            rows = self._all("SELECT repo, arch FROM arch_repos ORDER BY repo, arch")
        else:
            rows = self._all("SELECT repo, arch FROM arch_repos WHERE repo = ? ORDER BY arch", repo)
        return [(r["repo"], r["arch"]) for r in rows]

    def add_arch_repo(self, repo: str, arch: str) -> bool:
        """Create an arch-repo; False when it already existed."""
        return self._run("INSERT OR IGNORE INTO arch_repos (repo, arch) VALUES (?, ?)",
                         repo, arch) == 1

    def remove_arch_repo(self, repo: str, arch: str) -> bool:
        return self._run("DELETE FROM arch_repos WHERE repo = ? AND arch = ?", repo, arch) == 1

    def bump_generation(self, repo: str, arch: str) -> None:
        self._run("UPDATE arch_repos SET generation = generation + 1 WHERE repo = ? AND arch = ?",
                  repo, arch)

    def unwritten_arch_repos(self) -> list[tuple[str, str]]:
        rows = self._all("SELECT repo, arch FROM arch_repos WHERE written < generation")
        return [(r["repo"], r["arch"]) for r in rows]

    @contextmanager
    def members_snapshot(self, repo: str, arch: str) -> Iterator[Snapshot | None]:
        """(generation, tar members in entry order) from one consistent read, streamed
        through a separate connection so writers are not held up; None if no such arch-repo."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN")
            row = conn.execute("SELECT generation FROM arch_repos WHERE repo = ? AND arch = ?",
                               (repo, arch)).fetchone()
            if row is None:
                yield None
            else:
                cursor = conn.execute(
                    "SELECT db_member, files_member FROM packages WHERE repo = ? AND arch = ? "
                    "ORDER BY name || '-' || version", (repo, arch))
                yield row[0], iter(cursor)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def written_generation(self, repo: str, arch: str) -> int | None:
        row = self._one("SELECT written FROM arch_repos WHERE repo = ? AND arch = ?", repo, arch)
        return None if row is None else row["written"]

    def mark_written(self, repo: str, arch: str, generation: int) -> None:
        self._run("UPDATE arch_repos SET written = MAX(written, ?) WHERE repo = ? AND arch = ?",
                  generation, repo, arch)

    # -- packages ---------------------------------------------------------------------

    def package(self, repo: str, arch: str, name: str) -> RepoPackage | None:
        row = self._one(f"SELECT {_PKG_COLUMNS} FROM packages WHERE repo = ? AND arch = ? "
                        "AND name = ?", repo, arch, name)
        return None if row is None else _package(row)

    def packages(self, repo: str, arch: str, pkg_arch: str | None = None) -> list[RepoPackage]:
        sql = f"SELECT {_PKG_COLUMNS} FROM packages WHERE repo = ? AND arch = ?"
        args: tuple[object, ...] = (repo, arch)
        if pkg_arch is not None:
            sql += " AND pkg_arch = ?"
            args += (pkg_arch,)
        return [_package(r) for r in self._all(sql + " ORDER BY name", *args)]

    def put_package(self, pkg: RepoPackage, db_member: bytes, files_member: bytes) -> None:
        self._run("INSERT OR REPLACE INTO packages (repo, arch, name, version, pkg_arch, "
                  "filename, published_at, desc, db_member, files_member) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  pkg.repo, pkg.arch, pkg.name, pkg.version, pkg.pkg_arch, pkg.filename,
                  pkg.published_at, pkg.desc, db_member, files_member)

    def copy_package(self, pkg: RepoPackage, to_arch: str) -> None:
        """Copy a package row into another arch-repo of the same repo (for 'any' packages)."""
        self._run("INSERT OR REPLACE INTO packages (repo, arch, name, version, pkg_arch, "
                  "filename, published_at, desc, db_member, files_member) "
                  "SELECT repo, ?, name, version, pkg_arch, filename, published_at, desc, "
                  "db_member, files_member FROM packages WHERE repo = ? AND arch = ? AND name = ?",
                  to_arch, pkg.repo, pkg.arch, pkg.name)

    def remove_package(self, repo: str, arch: str, name: str) -> bool:
        return self._run("DELETE FROM packages WHERE repo = ? AND arch = ? AND name = ?",
                         repo, arch, name) == 1

    def file_referenced(self, repo: str, arch: str, filename: str) -> bool:
        return self._one("SELECT 1 FROM packages WHERE repo = ? AND arch = ? AND filename = ?",
                         repo, arch, filename) is not None

    def filenames(self, repo: str, arch: str) -> set[str]:
        rows = self._all("SELECT filename FROM packages WHERE repo = ? AND arch = ?", repo, arch)
        return {r["filename"] for r in rows}

    def package_counts(self) -> dict[tuple[str, str], int]:
        rows = self._all("SELECT a.repo, a.arch, COUNT(p.name) AS n FROM arch_repos a "
                         "LEFT JOIN packages p ON p.repo = a.repo AND p.arch = a.arch "
                         "GROUP BY a.repo, a.arch")
        return {(r["repo"], r["arch"]): r["n"] for r in rows}
