"""SQL for repositories: arch-repos, their packages and the generations of their archives."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from vieter_lite.db.base import Base
from vieter_lite.models import PackageOwner, RepoPackage

BUCKETS = 64  # packages of an arch-repo are grouped by name hash; a change rewrites one group


def bucket_of(name: str) -> int:
    return zlib.crc32(name.encode()) % BUCKETS


_PKG_COLUMNS = "repo, arch, name, version, filename, pkg_arch, desc, published_at"


def _package(row: sqlite3.Row) -> RepoPackage:
    return RepoPackage(repo=row["repo"], arch=row["arch"], name=row["name"],
                       version=row["version"], filename=row["filename"],
                       pkg_arch=row["pkg_arch"], desc=row["desc"],
                       published_at=row["published_at"])


class RepoQueries(Base):
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

    def bump_generation(self, repo: str, arch: str, name: str | None = None) -> None:
        """Mark an arch-repo (and the bucket holding `name`) as changed."""
        self._run("UPDATE arch_repos SET generation = generation + 1 WHERE repo = ? AND arch = ?",
                  repo, arch)
        if name is not None:
            self._run("INSERT INTO buckets (repo, arch, bucket, generation) VALUES (?, ?, ?, 1) "
                      "ON CONFLICT (repo, arch, bucket) DO UPDATE SET generation = generation + 1",
                      repo, arch, bucket_of(name))

    def unwritten_arch_repos(self) -> list[tuple[str, str]]:
        rows = self._all("SELECT repo, arch FROM arch_repos WHERE written < generation")
        return [(r["repo"], r["arch"]) for r in rows]

    @contextmanager
    def archive_snapshot(self, repo: str, arch: str) -> Iterator[ArchiveSnapshot | None]:
        """One consistent read of an arch-repo for writing its archives, through a separate
        connection (WAL) so writers are not held up; None if there is no such arch-repo."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN")
            row = conn.execute("SELECT generation FROM arch_repos WHERE repo = ? AND arch = ?",
                               (repo, arch)).fetchone()
            if row is None:
                yield None
            else:
                buckets = dict(conn.execute(
                    "SELECT bucket, generation FROM buckets WHERE repo = ? AND arch = ?",
                    (repo, arch)).fetchall())
                yield ArchiveSnapshot(conn, repo, arch, row[0], buckets)
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
        with self.transaction():
            self._run("INSERT OR REPLACE INTO packages (repo, arch, name, version, pkg_arch, "
                      "filename, published_at, desc, db_member, files_member, bucket) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      pkg.repo, pkg.arch, pkg.name, pkg.version, pkg.pkg_arch, pkg.filename,
                      pkg.published_at, pkg.desc, db_member, files_member, bucket_of(pkg.name))
            self.bump_generation(pkg.repo, pkg.arch, pkg.name)

    def copy_package(self, pkg: RepoPackage, to_arch: str) -> None:
        """Copy a package row into another arch-repo of the same repo (for 'any' packages)."""
        with self.transaction():
            self._run("INSERT OR REPLACE INTO packages (repo, arch, name, version, pkg_arch, "
                      "filename, published_at, desc, db_member, files_member, bucket) "
                      "SELECT repo, ?, name, version, pkg_arch, filename, published_at, desc, "
                      "db_member, files_member, bucket FROM packages "
                      "WHERE repo = ? AND arch = ? AND name = ?",
                      to_arch, pkg.repo, pkg.arch, pkg.name)
            self.bump_generation(pkg.repo, to_arch, pkg.name)

    def remove_package(self, repo: str, arch: str, name: str) -> bool:
        with self.transaction():
            removed = self._run("DELETE FROM packages WHERE repo = ? AND arch = ? AND name = ?",
                                repo, arch, name) == 1
            if removed:
                self.bump_generation(repo, arch, name)
            return removed

    def file_referenced(self, repo: str, arch: str, filename: str) -> bool:
        """Whether a package or a kept version of the arch-repo uses the file."""
        return self._one("SELECT 1 FROM packages WHERE repo = ? AND arch = ? AND filename = ? "
                         "UNION ALL SELECT 1 FROM kept_packages WHERE repo = ? AND arch = ? "
                         "AND filename = ?", repo, arch, filename, repo, arch,
                         filename) is not None

    def filenames(self, repo: str, arch: str) -> set[str]:
        """The files the arch-repo's packages and kept versions use."""
        rows = self._all("SELECT filename FROM packages WHERE repo = ? AND arch = ? UNION "
                         "SELECT filename FROM kept_packages WHERE repo = ? AND arch = ?",
                         repo, arch, repo, arch)
        return {r["filename"] for r in rows}

    # -- package names and their owners -----------------------------------------------

    def package_owner(self, repo: str, name: str) -> PackageOwner | None:
        row = self._one("SELECT repo, name, target_id, since, user FROM package_owners "
                        "WHERE repo = ? AND name = ?", repo, name)
        return None if row is None else PackageOwner(row["repo"], row["name"], row["target_id"],
                                                     row["since"], row["user"])

    def package_owners(self, repo: str) -> dict[str, PackageOwner]:
        rows = self._all("SELECT repo, name, target_id, since, user FROM package_owners "
                         "WHERE repo = ?", repo)
        return {r["name"]: PackageOwner(r["repo"], r["name"], r["target_id"], r["since"],
                                        r["user"]) for r in rows}

    def set_package_owner(self, repo: str, name: str, target_id: int | None, now: int,
                          user: str | None = None) -> None:
        """Make a target, a user's manifest builds, or (both None) the admin the owner of a
        name; `since` moves only when the owner changes."""
        self._run("INSERT INTO package_owners (repo, name, target_id, since, user) "
                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (repo, name) DO UPDATE SET "
                  "target_id = excluded.target_id, user = excluded.user, "
                  "since = excluded.since WHERE target_id IS NOT excluded.target_id "
                  "OR user IS NOT excluded.user", repo, name, target_id, now, user)

    def prune_package_owners(self, repo: str) -> int:
        """Forget the owners of names no arch-repo of the repo holds any more."""
        return self._run("DELETE FROM package_owners WHERE repo = ? AND NOT EXISTS "
                         "(SELECT 1 FROM packages p WHERE p.repo = package_owners.repo "
                         "AND p.name = package_owners.name)", repo)

    def repo_package_count(self, repo: str) -> int | None:
        """How many package names a repo holds over its arch-repos (an 'any' package
        once); None for a repo without arch-repos."""
        if self._one("SELECT 1 FROM arch_repos WHERE repo = ? LIMIT 1", repo) is None:
            return None
        row = self._one("SELECT COUNT(DISTINCT name) FROM packages WHERE repo = ?", repo)
        return row[0] if row is not None else 0

    def package_counts(self) -> dict[tuple[str, str], int]:
        rows = self._all("SELECT a.repo, a.arch, COUNT(p.name) AS n FROM arch_repos a "
                         "LEFT JOIN packages p ON p.repo = a.repo AND p.arch = a.arch "
                         "GROUP BY a.repo, a.arch")
        return {(r["repo"], r["arch"]): r["n"] for r in rows}


class ArchiveSnapshot:
    """What write_archives needs of one arch-repo, read in one transaction."""

    def __init__(self, conn: sqlite3.Connection, repo: str, arch: str, generation: int,
                 buckets: dict[int, int]):
        self._conn, self.repo, self.arch = conn, repo, arch
        self.generation = generation
        self.buckets = buckets  # bucket -> its generation

    def members(self, bucket: int) -> Iterator[tuple[bytes, bytes]]:
        """The bucket's (desc members, files member) in entry order."""
        return iter(self._conn.execute(
            "SELECT db_member, files_member FROM packages WHERE repo = ? AND arch = ? "
            "AND bucket = ? ORDER BY name || '-' || version", (self.repo, self.arch, bucket)))
