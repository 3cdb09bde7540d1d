"""What the store does for kept versions (keep_versions) and holds when a package is
replaced or removed: which replaced files stay, which go, and which publishes a hold refuses.
A package file's detached signature, `<file>.sig` next to it, is part of the file: it stays
and goes with it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from vieter_lite.db import Database
from vieter_lite.errors import Conflict
from vieter_lite.models import RepoPackage
from vieter_lite.repo import signing
from vieter_lite.repo.vercmp import vercmp

log = logging.getLogger(__name__)

SIGNATURE = signing.SIG


def signature_of(path: Path) -> Path:
    """The detached signature that belongs to a package file."""
    return signing.signature_path(path)


def owning_file(name: str) -> str:
    """The file a directory entry belongs to: a signature's package file, else itself."""
    return name[:-len(SIGNATURE)] if name.endswith(SIGNATURE) else name


def unlink_file(path: Path) -> None:
    """Remove a package file and its signature (either may be missing)."""
    path.unlink(missing_ok=True)
    signature_of(path).unlink(missing_ok=True)


def check_holds(db: Database, repo: str, archs: Iterable[str], name: str, version: str) -> None:
    """409 when a rollback holds `name` in one of the arch-repos at a version older than
    the one being published (the held version itself, or an older one, may be published)."""
    for arch in archs:
        hold = db.package_hold(repo, arch, name)
        if hold is not None and vercmp(version, hold.version) > 0:
            raise Conflict(
                f"{name} is held at {hold.version} in {repo}/{arch} (rolled back): "
                f"{version} is not published until the hold is released "
                f"(DELETE /api/v2/repos/{repo}/{arch}/packages/{name}/hold, or "
                f"vieter-lite repos release {repo} {arch} {name})")


def replace(db: Database, keep: int, repo: str, current: dict[str, RepoPackage | None],
            name: str, version: str, now: int) -> list[tuple[str, str]]:
    """Inside a publish's transaction, for each arch-repo it writes: keep the version being
    replaced (when it is another version and keep > 0), forget a kept record of the version
    being published (it is current again), and forget the kept versions beyond `keep`. The
    (arch, file name) of every record forgotten, for removal once the new db is out (when
    nothing uses the file any more)."""
    freed: list[tuple[str, str]] = []
    for arch, cur in current.items():
        was_kept = db.kept_version(repo, arch, name, version)
        if was_kept is not None:
            db.unkeep(repo, arch, name, version)
            freed.append((arch, was_kept.package.filename))
        if keep > 0 and cur is not None and cur.version != version:
            db.keep_package(cur, now)
        freed += [(arch, filename) for filename in db.prune_kept(repo, arch, name, keep)]
    return freed


def forget(db: Database, repo: str, arch: str, name: str) -> list[str]:
    """Inside a package's removal: forget its kept versions and its hold; the kept files'
    names (for removal once the new db is out)."""
    db.release_hold(repo, arch, name)
    return db.prune_kept(repo, arch, name, 0)


def prune_all(db: Database, keep: int) -> list[tuple[str, str, str]]:
    """Forget the kept versions beyond `keep` of every name (keep_versions was lowered);
    the (repo, arch, file name) of each one forgotten."""
    freed: list[tuple[str, str, str]] = []
    for repo, arch, name in db.names_keeping_more_than(keep):
        freed += [(repo, arch, f) for f in db.prune_kept(repo, arch, name, keep)]
    if freed:
        log.info("forgot %d kept versions beyond keep_versions = %d", len(freed), keep)
    return freed
