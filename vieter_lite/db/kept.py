"""SQL for kept versions (replaced packages whose files stay, keep_versions) and holds."""

from __future__ import annotations

import sqlite3

from vieter_lite.db.base import Base
from vieter_lite.models import KeptPackage, PackageHold, RepoPackage

_KEPT_COLUMNS = "repo, arch, name, version, filename, pkg_arch, desc, published_at, kept_at"


def _kept(row: sqlite3.Row) -> KeptPackage:
    return KeptPackage(RepoPackage(repo=row["repo"], arch=row["arch"], name=row["name"],
                                   version=row["version"], filename=row["filename"],
                                   pkg_arch=row["pkg_arch"], desc=row["desc"],
                                   published_at=row["published_at"]), row["kept_at"])


def _hold(row: sqlite3.Row) -> PackageHold:
    return PackageHold(row["repo"], row["arch"], row["name"], row["version"], row["since"],
                       row["held_by"])


class KeptQueries(Base):
    # -- kept versions ----------------------------------------------------------------

    def keep_package(self, pkg: RepoPackage, kept_at: int) -> None:
        """Record a replaced package as kept, the newest kept (replacing an older record
        of the same version)."""
        with self.transaction():
            self._run("DELETE FROM kept_packages WHERE repo = ? AND arch = ? AND name = ? "
                      "AND version = ?", pkg.repo, pkg.arch, pkg.name, pkg.version)
            self._run(f"INSERT INTO kept_packages ({_KEPT_COLUMNS}) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      pkg.repo, pkg.arch, pkg.name, pkg.version, pkg.filename, pkg.pkg_arch,
                      pkg.desc, pkg.published_at, kept_at)

    def unkeep(self, repo: str, arch: str, name: str, version: str) -> bool:
        """Forget a kept version (it became the current one again)."""
        return self._run("DELETE FROM kept_packages WHERE repo = ? AND arch = ? AND name = ? "
                         "AND version = ?", repo, arch, name, version) == 1

    def kept_versions(self, repo: str, arch: str, name: str) -> list[KeptPackage]:
        """A name's kept versions, the most recently replaced first."""
        return [_kept(r) for r in self._all(
            f"SELECT {_KEPT_COLUMNS} FROM kept_packages WHERE repo = ? AND arch = ? "
            "AND name = ? ORDER BY id DESC", repo, arch, name)]

    def kept_version(self, repo: str, arch: str, name: str, version: str) -> KeptPackage | None:
        row = self._one(f"SELECT {_KEPT_COLUMNS} FROM kept_packages WHERE repo = ? "
                        "AND arch = ? AND name = ? AND version = ?", repo, arch, name, version)
        return None if row is None else _kept(row)

    def kept_by_name(self, repo: str, arch: str) -> dict[str, list[str]]:
        """Every name of an arch-repo with kept versions -> its versions, most recently
        replaced first."""
        found: dict[str, list[str]] = {}
        for row in self._all("SELECT name, version FROM kept_packages WHERE repo = ? "
                             "AND arch = ? ORDER BY name, id DESC", repo, arch):
            found.setdefault(row["name"], []).append(row["version"])
        return found

    def prune_kept(self, repo: str, arch: str, name: str, keep: int) -> list[str]:
        """Forget all but the `keep` most recently replaced versions of a name; the file
        names of those forgotten."""
        with self.transaction():
            rows = self._all("SELECT id, filename FROM kept_packages WHERE repo = ? AND arch = ? "
                             "AND name = ? ORDER BY id DESC LIMIT -1 OFFSET ?",
                             repo, arch, name, max(0, keep))
            for row in rows:
                self._run("DELETE FROM kept_packages WHERE id = ?", row["id"])
            return [r["filename"] for r in rows]

    def names_keeping_more_than(self, keep: int) -> list[tuple[str, str, str]]:
        """(repo, arch, name) of every name with more than `keep` kept versions."""
        rows = self._all("SELECT repo, arch, name FROM kept_packages GROUP BY repo, arch, name "
                         "HAVING COUNT(*) > ? ORDER BY repo, arch, name", max(0, keep))
        return [(r["repo"], r["arch"], r["name"]) for r in rows]

    # -- holds ------------------------------------------------------------------------

    def package_hold(self, repo: str, arch: str, name: str) -> PackageHold | None:
        row = self._one("SELECT repo, arch, name, version, since, held_by FROM package_holds "
                        "WHERE repo = ? AND arch = ? AND name = ?", repo, arch, name)
        return None if row is None else _hold(row)

    def package_holds(self, repo: str, arch: str) -> dict[str, PackageHold]:
        rows = self._all("SELECT repo, arch, name, version, since, held_by FROM package_holds "
                         "WHERE repo = ? AND arch = ?", repo, arch)
        return {r["name"]: _hold(r) for r in rows}

    def set_hold(self, hold: PackageHold) -> None:
        self._run("INSERT OR REPLACE INTO package_holds (repo, arch, name, version, since, "
                  "held_by) VALUES (?, ?, ?, ?, ?, ?)", hold.repo, hold.arch, hold.name,
                  hold.version, hold.since, hold.held_by)

    def release_hold(self, repo: str, arch: str, name: str) -> bool:
        return self._run("DELETE FROM package_holds WHERE repo = ? AND arch = ? AND name = ?",
                         repo, arch, name) == 1
