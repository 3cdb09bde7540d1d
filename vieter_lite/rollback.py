"""Rolling a package back to a kept version (keep_versions), holding its name at that
version, and the versions a package has on disk."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vieter_lite.db import Database
from vieter_lite.errors import Forbidden, NotFound
from vieter_lite.models import PackageHold, PackageOwner, RepoPackage
from vieter_lite.repo.kept import signature_of
from vieter_lite.repo.store import RepoStore, checked
from vieter_lite.tokens import Principal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageVersion:
    """One version of a package in an arch-repo: the current one or a kept one."""

    package: RepoPackage
    size: int
    signed: bool             # its detached signature (<file>.sig) is on disk
    current: bool
    kept_at: int | None      # when it was replaced (None: the current one)


def refusal(principal: Principal, owner: PackageOwner | None) -> str | None:
    """Why `principal` may not roll back (or release) a name `owner` owns, or None: a
    name owned by a target, or by another user's manifest builds, needs an admin."""
    if principal.is_admin or owner is None:
        return None
    if owner.target_id is not None or (owner.user is not None and owner.user != principal.user):
        return f"it belongs to {owner}: only an admin may roll it back or release it"
    return None


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copyfile(source, dest)


class Rollbacks:
    """Kept versions of the store's packages: listing them, rolling back, holds."""

    def __init__(self, db: Database, store: RepoStore,
                 clock: Callable[[], float] = time.time):
        self.db, self.store, self.clock = db, store, clock

    # -- reading ------------------------------------------------------------------------

    def _version(self, pkg: RepoPackage, kept_at: int | None) -> PackageVersion:
        path = self.store.pkg_dir / pkg.repo / pkg.arch / pkg.filename
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        return PackageVersion(pkg, size, signature_of(path).exists(), kept_at is None, kept_at)

    def versions(self, repo: str, arch: str, name: str) -> list[PackageVersion]:
        """The current version, then the kept ones (the most recently replaced first);
        404 when the arch-repo has no such package."""
        checked(repo, arch, name)
        current = self.db.package(repo, arch, name)
        if current is None:
            raise NotFound(f"package '{name}' not found in {repo}/{arch}")
        return [self._version(current, None),
                *(self._version(k.package, k.kept_at)
                  for k in self.db.kept_versions(repo, arch, name))]

    def kept_by_name(self, repo: str, arch: str) -> dict[str, list[str]]:
        """name -> its kept versions (most recently replaced first), for names with any."""
        return self.db.kept_by_name(repo, arch)

    def holds(self, repo: str, arch: str) -> dict[str, PackageHold]:
        return self.db.package_holds(repo, arch)

    def hold(self, repo: str, arch: str, name: str) -> PackageHold | None:
        return self.db.package_hold(repo, arch, name)

    # -- changing -----------------------------------------------------------------------

    def _allowed(self, repo: str, name: str, principal: Principal) -> None:
        if not principal.may_use_repo(repo):
            raise Forbidden(f"this token may not publish to '{repo}'")
        reason = refusal(principal, self.db.package_owner(repo, name))
        if reason is not None:
            raise Forbidden(f"package '{name}' in '{repo}': {reason}")

    def _hold_archs(self, repo: str, arch: str, pkg_arch: str) -> list[str]:
        """The arch-repos a hold of a package applies to: its own, or every arch-repo of
        the repo for an 'any' package (which is published into all of them)."""
        if pkg_arch != "any":
            return [arch]
        return [a for _, a in self.db.arch_repos(repo)]

    def rollback(self, repo: str, arch: str, name: str, version: str, principal: Principal,
                 hold: bool = False) -> None:
        """Make a kept `version` current again (published with force: the current version
        becomes a kept one). With `hold`, no newer version of the name is published in
        its arch-repo(s) until released; without, a hold there is released. Rolling back
        to the current version only sets or releases the hold. 404: no such package or
        version kept."""
        checked(repo, arch, name)
        current = self.db.package(repo, arch, name)
        if current is None:
            raise NotFound(f"package '{name}' not found in {repo}/{arch}")
        self._allowed(repo, name, principal)
        kept = None
        if version != current.version:
            kept = self.db.kept_version(repo, arch, name, version)
            if kept is None:
                have = [k.package.version for k in self.db.kept_versions(repo, arch, name)]
                raise NotFound(f"version {version} of '{name}' is not kept in {repo}/{arch} "
                               f"(kept: {', '.join(have) or 'none'})")
        pkg_arch = current.pkg_arch if kept is None else kept.package.pkg_arch
        archs = self._hold_archs(repo, arch, pkg_arch)
        before = {a: self.db.package_hold(repo, a, name) for a in archs}
        now = int(self.clock())
        with self.db.transaction():
            for a in archs:
                if hold:
                    self.db.set_hold(PackageHold(repo, a, name, version, now, principal.name))
                else:
                    self.db.release_hold(repo, a, name)
        if kept is None:
            return
        try:
            self._republish(kept.package)
        except BaseException:
            with self.db.transaction():
                for a, old in before.items():
                    if old is None:
                        self.db.release_hold(repo, a, name)
                    else:
                        self.db.set_hold(old)
            raise
        log.info("rolled %s in %s/%s back from %s to %s%s", name, repo, arch, current.version,
                 version, " (held)" if hold else "")

    def _republish(self, pkg: RepoPackage) -> None:
        """Publish a kept file again with force, its name's owner unchanged; through a
        link of its own, so a concurrent prune cannot take the file away half-way."""
        source = self.store.pkg_dir / pkg.repo / pkg.arch / pkg.filename
        tmp = self.store.tmp_dir / f"rollback-{uuid.uuid4().hex}"
        try:
            _link_or_copy(source, tmp)
        except FileNotFoundError:
            raise NotFound(f"the file of {pkg.name} {pkg.version} is missing from "
                           f"{pkg.repo}/{pkg.arch}") from None
        try:
            # the kept version's own signature goes with it (the server's, or one uploaded)
            sig = signature_of(source)
            signature = sig.read_bytes() if sig.is_file() else None
            self.store.publish(pkg.repo, tmp, force=True, keep_owner=True, signature=signature)
        finally:
            tmp.unlink(missing_ok=True)

    def release(self, repo: str, arch: str, name: str, principal: Principal) -> None:
        """Release a name's hold (in every arch-repo for an 'any' package); 404 when it
        is not held there."""
        checked(repo, arch, name)
        current = self.db.package(repo, arch, name)
        if current is None:
            raise NotFound(f"package '{name}' not found in {repo}/{arch}")
        self._allowed(repo, name, principal)
        if self.db.package_hold(repo, arch, name) is None:
            raise NotFound(f"'{name}' is not held in {repo}/{arch}")
        with self.db.transaction():
            for a in self._hold_archs(repo, arch, current.pkg_arch):
                self.db.release_hold(repo, a, name)
        log.info("released the hold of %s in %s/%s", name, repo, arch)
