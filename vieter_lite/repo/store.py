"""The on-disk repositories: publish and remove under locks, db archives by atomic rename.

sqlite is the source of truth for what each arch-repo holds; the .db/.files archives are
derived from it. Every change bumps the arch-repo's generation (and its name-hash
bucket's); a writer rewrites the archives for the newest generation, so a burst of
publishes shares one rewrite, and start-up rewrites whatever a crash left unwritten. The
writer keeps each bucket's compressed bytes and recompresses only changed buckets.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vieter_lite import names, pgp
from vieter_lite.db import Database
from vieter_lite.errors import (
    NO_SPACE,
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    full_disk,
)
from vieter_lite.models import Build, Package, PackageOwner, RepoPackage
from vieter_lite.repo import archives, database, desc, kept, signing
from vieter_lite.repo.package import read_package, unpacked_limit
from vieter_lite.repo.vercmp import vercmp
from vieter_lite.streams import copy_exact

log = logging.getLogger(__name__)

# seconds between attempts to write db archives a full disk held back
RETRY_INTERVAL = 2.0
DB_KINDS = {"db": "db", "files": "files"}


@dataclass(frozen=True)
class PublishResult:
    name: str
    version: str
    archs: tuple[str, ...]


@dataclass(frozen=True)
class ListedPackage:
    """A package as a listing shows it: the record, its file's size and the name's owner."""

    package: RepoPackage
    size: int
    owner: PackageOwner | None
    signed: bool = False


def _csize(desc_text: str) -> int:
    """%CSIZE% of a desc entry (the package file's size), 0 when absent."""
    lines = desc_text.split("\n")
    try:
        return int(lines[lines.index("%CSIZE%") + 1])
    except (ValueError, IndexError):
        return 0


def checked(repo: str, arch: str | None = None, pkgname: str | None = None) -> None:
    """Raise BadRequest for an unsafe repo, arch or package name."""
    try:
        names.check_repo(repo)
        if arch is not None:
            names.check_arch(arch)
        if pkgname is not None:
            names.check_pkgname(pkgname)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


class RepoStore:
    """Publishes, removes and locates packages and db archives under data_dir/pkg_dir.
    With a `signer` (sign = true), packages and db archives get signatures."""

    signer: signing.Signer | None = None

    def __init__(self, db: Database, data_dir: Path, pkg_dir: Path, default_arch: str,
                 max_upload_size: int = 2 * 1024 ** 3, clock: Callable[[], float] = time.time,
                 keep_versions: int = 0):
        self.db = db
        self.keep_versions = keep_versions  # replaced versions of a name that stay on disk
        self.repos_dir = Path(data_dir) / "repos"
        self.tmp_dir = Path(data_dir) / "tmp"
        self.pkg_dir = Path(pkg_dir)
        self.default_arch = default_arch
        self.max_upload_size = max_upload_size
        self.clock = clock
        self._locks: dict[object, threading.Lock] = {}
        self._segments: dict[tuple[str, str], dict[int, tuple[int, database.Segment]]] = {}
        self._last_mtime: dict[tuple[str, str], int] = {}
        self._locks_guard = threading.Lock()
        # arch-repos whose db archives a full disk kept from being written: the served
        # archives are the last good ones until retry_pending() writes them
        self.pending: set[tuple[str, str]] = set()
        # and those whose old package files are to go once their archives are out
        self._unswept: set[tuple[str, str]] = set()
        for path in (self.repos_dir, self.tmp_dir, self.pkg_dir):
            path.mkdir(parents=True, exist_ok=True)

    def _lock(self, key: object) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- uploads ----------------------------------------------------------------------

    def receive_upload(self, read: Callable[[int], bytes], length: int) -> tuple[Path, str]:
        """Stream `length` bytes into a temp file; returns (path, sha256). Caller removes it."""
        if length > self.max_upload_size:
            raise PayloadTooLarge(
                f"package is larger than the limit of {self.max_upload_size} bytes")
        path = self.tmp_dir / f"upload-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        try:
            with open(path, "wb") as out:
                copy_exact(read, length, out, digest.update)
        except BaseException as exc:
            path.unlink(missing_ok=True)
            full = full_disk(exc, "receiving the package")
            if full is not None:
                raise full from exc
            raise
        return path, digest.hexdigest()

    # -- publishing -------------------------------------------------------------------

    @staticmethod
    def check_publisher(repo: str, build: Build | None) -> None:
        """What can be refused before the body is read: a build token publishes to its
        build's repo only (None is the api_key, which publishes anywhere)."""
        if build is not None and build.repo != repo:
            raise Forbidden(f"this build token may publish to '{build.repo}' only")

    def _check_build_may_publish(self, repo: str, build: Build, pkg: Package) -> None:
        """A build token's publish (under the repo's lock): the build is running under the
        same claim, the package is for its arch (or any), its name is unowned or owned by
        the build's target, and its pkgbase is the build's."""
        self.check_publisher(repo, build)
        info = pkg.info
        now = self.db.build(build.id)
        if now is None or now.status != "running" or now.started_at != build.started_at:
            raise Forbidden(f"build {build.id} is not running any more: its token may not "
                            "publish")
        if info.arch not in (now.arch, "any"):
            raise Forbidden(f"build {build.id} builds for {now.arch}: it may not publish a "
                            f"package for {info.arch}")
        owner = self.db.package_owner(repo, info.name)
        if owner is not None and (owner.target_id, owner.user) != now.publisher:
            who = f"target {now.target_id}" if now.has_target else \
                f"user '{now.publisher[1]}' (a manifest's build)"
            raise Forbidden(f"package '{info.name}' in '{repo}' belongs to {owner}: a build "
                            f"of {who} may not publish it")
        base = info.base or info.name
        if now.pkgbase and now.pkgbase != base:
            raise Forbidden(f"build {build.id} publishes pkgbase '{now.pkgbase}': it may not "
                            f"publish '{info.name}' of pkgbase '{base}'")

    def publish(self, repo: str, upload: Path, sha256: str | None = None,
                force: bool = False, build: Build | None = None,
                signature: bytes | None = None, keep_owner: bool = False) -> PublishResult:
        """Publish a package file; `build` is the build whose token sent it (None: the
        api_key). Names are owned: see _check_build_may_publish; `keep_owner` leaves an
        owned name's owner as it is (a rollback). `signature`: the package's own detached
        signature, kept as it is; without one the server signs it when it signs. The
        replaced version stays on disk as a kept version when keep_versions > 0."""
        checked(repo)
        self.check_publisher(repo, build)
        pkg = read_package(upload, sha256, unpacked_limit(self.max_upload_size))
        with signing.package_signature(self.signer, upload, signature, self.tmp_dir,
                                       f"{pkg.info.name} {pkg.info.version}") as sig:
            return self._publish(repo, upload, pkg, force, build, sig, keep_owner)

    def _publish(self, repo: str, upload: Path, pkg: Package, force: bool,
                 build: Build | None, sig: Path | None, keep_owner: bool) -> PublishResult:
        info = pkg.info
        desc_text = desc.render_desc(pkg)
        members = database.entry_members(database.Entry(
            info.entry, desc_text, desc.render_files(pkg.files), int(info.builddate or 0)))
        with self._lock(repo):
            if build is not None:
                self._check_build_may_publish(repo, build, pkg)
            existing = [arch for _, arch in self.db.arch_repos(repo)]
            targets = sorted(set(existing) | {self.default_arch}) if info.arch == "any" \
                else [info.arch]
            current = {a: self.db.package(repo, a, info.name) for a in targets}
            for arch, cur in current.items():
                if cur and not force and vercmp(info.version, cur.version) < 0:
                    raise Conflict(f"{info.name} {info.version} is older than {cur.version} "
                                   f"in {repo}/{arch}; add ?force=true to downgrade")
            kept.check_holds(self.db, repo, targets, info.name, info.version)
            new_archs = [a for a in targets if a not in existing]
            backfill = self._any_packages(repo, existing) if new_archs else []
            linked = [(arch, pkg.filename) for arch in targets] + \
                [(arch, other.filename) for arch in new_archs for other in backfill]
            try:
                freed = self._link_and_commit(repo, upload, pkg, build, sig, keep_owner,
                                              desc_text, members, targets, new_archs,
                                              backfill, current)
            except BaseException as exc:
                # nothing was committed: the files just linked go again (those an
                # earlier publish of the same file name still uses stay)
                self._unlink_unreferenced_locked(repo, linked)
                full = full_disk(exc, f"publishing {info.name} {info.version}")
                if full is not None:
                    raise full from exc
                raise
        failed = self._write_after_change(repo, targets)
        if failed:
            # the old files stay: the archives served (the last good ones) name them
            raise InsufficientStorage(
                f"{info.name} {info.version} is published in {repo}, but its db archive "
                f"could not be rewritten: {NO_SPACE}. pacman sees the last good db until "
                "space is freed; the archive is then written without a new publish")
        self._unlink_unreferenced(repo, [(arch, cur.filename) for arch, cur in current.items()
                                         if cur and cur.filename != pkg.filename] + freed)
        log.info("published %s %s to %s/%s", info.name, info.version, repo, ",".join(targets))
        return PublishResult(info.name, info.version, tuple(targets))

    def _link_and_commit(self, repo: str, upload: Path, pkg: Package, build: Build | None,
                         sig: Path | None, keep_owner: bool, desc_text: str,
                         members: tuple[bytes, bytes], targets: list[str],
                         new_archs: list[str], backfill: list[RepoPackage],
                         current: dict[str, RepoPackage | None]) -> list[tuple[str, str]]:
        """Link the package file into each arch-repo and commit its rows (under the repo's
        lock); returns the kept versions' files that went."""
        info = pkg.info
        for arch in targets:
            self._link_package(upload, self.pkg_dir / repo / arch / pkg.filename, sig)
        for arch in new_archs:
            for other in backfill:
                if other.name != info.name:
                    source = self.pkg_dir / repo / other.arch / other.filename
                    source_sig = signing.signature_path(source)
                    self._link_package(source, self.pkg_dir / repo / arch / other.filename,
                                       source_sig if source_sig.exists() else None)
        now = int(self.clock())
        with self.db.transaction():
            for arch in new_archs:
                self.db.add_arch_repo(repo, arch)
                for other in backfill:
                    if other.name != info.name:
                        self.db.copy_package(other, arch)
            for arch in targets:
                self.db.put_package(self._record(repo, arch, pkg, desc_text, now), *members)
            freed = kept.replace(self.db, self.keep_versions, repo, current, info.name,
                                 info.version, now)
            target_id, user = (None, None) if build is None else build.publisher
            if not keep_owner or self.db.package_owner(repo, info.name) is None:
                self.db.set_package_owner(repo, info.name, target_id, now, user)
            if build is not None:
                self.db.fix_pkgbase(build.id, info.base or info.name)
                self.db.add_build_package(build.id, info.name, info.version, info.arch,
                                          pkg.filename)
        return freed

    @staticmethod
    def _record(repo: str, arch: str, pkg: Package, desc_text: str, now: int) -> RepoPackage:
        return RepoPackage(repo=repo, arch=arch, name=pkg.info.name, version=pkg.info.version,
                           filename=pkg.filename, pkg_arch=pkg.info.arch, desc=desc_text,
                           published_at=now)

    def _any_packages(self, repo: str, existing: list[str]) -> list[RepoPackage]:
        """The repo's 'any' packages, read from one existing arch-repo (they are alike)."""
        if not existing:
            return []
        source = self.default_arch if self.default_arch in existing else existing[0]
        return self.db.packages(repo, source, pkg_arch="any")

    def _link(self, source: Path, dest: Path) -> None:
        """Put `source` at `dest` as a hard link (a copy across filesystems), atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".tmp.{uuid.uuid4().hex}"
        try:
            try:
                os.link(source, tmp)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copyfile(source, tmp)  # a full disk leaves part of a copy
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # rename(2) does nothing when both names are links of one file (`source` already
        # is `dest`: a rollback's kept file): then the temp name is left to remove
        tmp.unlink(missing_ok=True)

    def _link_package(self, source: Path, dest: Path, sig: Path | None) -> None:
        """A package file and its signature (a stale one goes when it comes without)."""
        if sig is not None:
            self._link(sig, signing.signature_path(dest))
        else:
            signing.signature_path(dest).unlink(missing_ok=True)
        self._link(source, dest)

    def _unlink_unreferenced(self, repo: str, files: list[tuple[str, str]]) -> None:
        """Remove package files (with their signatures) that no package or kept version
        uses any more (after the new db is out)."""
        with self._lock(repo):
            self._unlink_unreferenced_locked(repo, files)

    def _unlink_unreferenced_locked(self, repo: str, files: list[tuple[str, str]]) -> None:
        for arch, filename in files:
            if not self.db.file_referenced(repo, arch, filename):
                kept.unlink_file(self.pkg_dir / repo / arch / filename)

    def attach_signature(self, repo: str, arch: str, filename: str, sig: Path) -> bool:
        """Link `sig` next to a published package that has no signature yet; False when a
        publish or removal got there first."""
        with self._lock(repo):
            dest = signing.signature_path(self.pkg_dir / repo / arch / filename)
            if dest.exists() or not self.db.file_referenced(repo, arch, filename):
                return False
            self._link(sig, dest)
            return True

    def detach_signature(self, repo: str, arch: str, filename: str, made_by: set[str]) -> bool:
        """Remove a package's signature if one of the keys `made_by` made it."""
        with self._lock(repo):
            path = signing.signature_path(self.pkg_dir / repo / arch / filename)
            try:
                made = pgp.parse_signature(path.read_bytes()).issued_by(made_by)
            except (OSError, ValueError):
                return False
            if made:
                path.unlink(missing_ok=True)
            return made

    def signed(self, pkg: RepoPackage) -> bool:
        return signing.signature_path(self.pkg_dir / pkg.repo / pkg.arch / pkg.filename).exists()

    # -- db archives ------------------------------------------------------------------

    def archive_path(self, repo: str, arch: str, kind: str) -> Path:
        return self.repos_dir / repo / arch / f"{repo}.{kind}.tar.gz"

    def write_archives(self, repo: str, arch: str, signatures: bool = True) -> bool:
        """Bring the arch-repo's archives up to its newest generation, and (`signatures`)
        signed or not as the store signs; False when they were current already. On a full
        disk the served archives stay the last good ones, the arch-repo is noted as
        pending (retry_pending() writes it once there is room) and InsufficientStorage is
        raised."""
        try:
            return self._write_archives(repo, arch, signatures)
        except Exception as exc:
            full = full_disk(exc, f"writing the db archive of {repo}/{arch}")
            if full is None:
                raise
            with self._locks_guard:
                if (repo, arch) not in self.pending:
                    log.error("%s/%s: %s: the last good db archive is served until there "
                              "is room (%s)", repo, arch, NO_SPACE, exc)
                self.pending.add((repo, arch))
                self._unswept.add((repo, arch))
            raise full from exc

    def _write_after_change(self, repo: str, archs: list[str]) -> list[str]:
        """Write the archives of arch-repos that just changed; returns those a full disk
        held back (noted as pending)."""
        failed = []
        for arch in archs:
            try:
                self.write_archives(repo, arch)
            except InsufficientStorage:
                failed.append(arch)
        return failed

    def retry_pending(self) -> int:
        """Write the db archives a full disk held back; returns how many are still
        pending. Once an arch-repo's archives are out, the package files that only the
        old archives named (their removal was put off) go."""
        with self._locks_guard:
            waiting = sorted(self.pending)
        for repo, arch in waiting:
            try:
                self.write_archives(repo, arch)
                log.info("%s/%s: db archive written after the disk was full", repo, arch)
            except InsufficientStorage:
                continue
        with self._locks_guard:
            sweep = sorted(self._unswept - self.pending)
        for repo, arch in sweep:
            with self._lock(repo):
                arch_dir = self.pkg_dir / repo / arch
                if arch_dir.is_dir() and (repo, arch) in self.db.arch_repos(repo):
                    self._remove_orphans(repo, arch_dir)
            with self._locks_guard:
                self._unswept.discard((repo, arch))
        with self._locks_guard:
            return len(self.pending)

    def run(self, stop: threading.Event) -> None:
        """The archive writer's thread: retries what a full disk held back, until stop."""
        while not stop.wait(RETRY_INTERVAL):
            if self.pending or self._unswept:
                self.retry_pending()

    def _write_archives(self, repo: str, arch: str, signatures: bool) -> bool:
        key = (repo, arch)
        directory = self.repos_dir / repo / arch
        with self._lock(("archives", repo, arch)), \
                self.db.archive_snapshot(repo, arch) as snapshot:
            written = self.db.written_generation(repo, arch)
            if snapshot is None or written is None:
                self._written(key)
                return False
            if written >= snapshot.generation and self.archive_path(repo, arch, "db").exists() \
                    and (not signatures
                         or archives.is_signed(directory, repo) == (self.signer is not None)):
                self._written(key)
                return False
            cache = self._segments.setdefault(key, {})
            for bucket in set(cache) - set(snapshot.buckets):
                del cache[bucket]
            for bucket, generation in snapshot.buckets.items():
                if bucket not in cache or cache[bucket][0] != generation:
                    cache[bucket] = (generation,
                                     database.compress_segment(snapshot.members(bucket)))
            segments = [cache[b][1] for b in sorted(cache)]
            mtime = self._next_mtime(key, self.archive_path(repo, arch, "db"))
            count = archives.write_generation(
                directory, repo, int(mtime),
                lambda db_out, files_out: database.write_segments(segments, db_out, files_out),
                None if self.signer is None else self.signer.sign)
            self.db.mark_written(repo, arch, snapshot.generation)
            self._written(key)
            log.debug("wrote %s/%s db (generation %d, %d packages%s)", repo, arch,
                      snapshot.generation, count, ", signed" if self.signer else "")
            return True

    def _written(self, key: tuple[str, str]) -> None:
        """The arch-repo's archives are current (called under its archives lock, so a
        failure after this write notes it pending again)."""
        with self._locks_guard:
            self.pending.discard(key)

    def _next_mtime(self, key: tuple[str, str], current: Path) -> float:
        """Now, but always a later second than the archive it replaces (even one deleted
        since), so clients' If-Modified-Since (1 s resolution) never keeps a stale db."""
        previous = self._last_mtime.get(key, 0)
        try:
            previous = max(previous, int(current.stat().st_mtime))
        except FileNotFoundError:
            pass
        mtime = max(int(self.clock()), previous + 1)
        self._last_mtime[key] = mtime
        return mtime

    # -- removal ----------------------------------------------------------------------

    def remove_package(self, repo: str, arch: str, name: str) -> None:
        checked(repo, arch, name)
        with self._lock(repo):
            pkg = self.db.package(repo, arch, name)
            if pkg is None:
                raise NotFound(f"package '{name}' not found in {repo}/{arch}")
            with self.db.transaction():
                self.db.remove_package(repo, arch, name)
                freed = kept.forget(self.db, repo, arch, name)
                self.db.prune_package_owners(repo)
        if self._write_after_change(repo, [arch]):
            raise InsufficientStorage(
                f"package '{name}' is removed from {repo}/{arch}, but its db archive could "
                f"not be rewritten: {NO_SPACE}. pacman sees the last good db until space "
                "is freed; the archive is then written without a restart")
        self._unlink_unreferenced(repo, [(arch, f) for f in [pkg.filename, *freed]])

    def remove_arch_repo(self, repo: str, arch: str) -> None:
        checked(repo, arch)
        with self._lock(repo):
            if not self._remove_arch_repo_locked(repo, arch):
                raise NotFound(f"arch-repo {repo}/{arch} not found")

    def remove_repo(self, repo: str) -> None:
        checked(repo)
        with self._lock(repo):
            archs = [arch for _, arch in self.db.arch_repos(repo)]
            if not archs:
                raise NotFound(f"repository '{repo}' not found")
            for arch in archs:
                self._remove_arch_repo_locked(repo, arch)
            shutil.rmtree(self.repos_dir / repo, ignore_errors=True)
            shutil.rmtree(self.pkg_dir / repo, ignore_errors=True)

    def _remove_arch_repo_locked(self, repo: str, arch: str) -> bool:
        with self._lock(("archives", repo, arch)):
            with self.db.transaction():
                if not self.db.remove_arch_repo(repo, arch):
                    return False
                self.db.prune_package_owners(repo)
            self._segments.pop((repo, arch), None)
            shutil.rmtree(self.repos_dir / repo / arch, ignore_errors=True)
            shutil.rmtree(self.pkg_dir / repo / arch, ignore_errors=True)
        log.info("removed arch-repo %s/%s", repo, arch)
        return True

    # -- listings ---------------------------------------------------------------------

    def repos(self) -> dict[str, dict[str, int]]:
        """{repo: {arch: package count}} for every arch-repo, by name."""
        result: dict[str, dict[str, int]] = {}
        for (repo, arch), count in sorted(self.db.package_counts().items()):
            result.setdefault(repo, {})[arch] = count
        return result

    def package_count(self, repo: str) -> int:
        """How many package names a repo holds (over its arch-repos); NotFound for an
        unknown or invalid repo name."""
        try:
            names.check_repo(repo)
        except ValueError:
            raise NotFound(f"repository '{repo}' not found") from None
        count = self.db.repo_package_count(repo)
        if count is None:
            raise NotFound(f"repository '{repo}' not found")
        return count

    def listed_packages(self, repo: str, arch: str | None = None) -> list[ListedPackage]:
        """The packages of a repo's arch-repos (or of one), by arch then name; 404 for an
        unknown repo or arch-repo."""
        checked(repo, arch)
        archs = [a for _, a in self.db.arch_repos(repo)]
        if not archs:
            raise NotFound(f"repository '{repo}' not found")
        if arch is not None:
            if arch not in archs:
                raise NotFound(f"arch-repo {repo}/{arch} not found")
            archs = [arch]
        owners = self.db.package_owners(repo)
        return [ListedPackage(p, _csize(p.desc), owners.get(p.name), self.signed(p))
                for a in archs for p in self.db.packages(repo, a)]

    def listed_package(self, repo: str, arch: str, name: str) -> ListedPackage:
        """One package of an arch-repo; 404 when it is not there."""
        checked(repo, arch, name)
        pkg = self.db.package(repo, arch, name)
        if pkg is None:
            raise NotFound(f"package '{name}' not found in {repo}/{arch}")
        return ListedPackage(pkg, _csize(pkg.desc), self.db.package_owners(repo).get(name),
                             self.signed(pkg))

    def archive_mtime(self, repo: str, arch: str) -> int | None:
        """When an arch-repo's db archive last changed (what If-Modified-Since compares)."""
        try:
            return int(self.archive_path(repo, arch, "db").stat().st_mtime)
        except OSError:
            return None

    # -- lookups for serving ----------------------------------------------------------

    def db_file(self, repo: str, arch: str, filename: str) -> Path | None:
        """The archive for '<repo>.db', '<repo>.files' or their '.tar.gz' names, or its
        signature for those names + '.sig', else None."""
        signature = filename.endswith(archives.SIG)
        base = filename[:-len(archives.SIG)] if signature else filename
        base = base[:-len(".tar.gz")] if base.endswith(".tar.gz") else base
        for kind in DB_KINDS:
            if base == f"{repo}.{kind}":
                if signature:
                    return archives.current_path(self.repos_dir / repo / arch, repo, kind, True)
                return self.archive_path(repo, arch, kind)
        return None

    def package_file(self, repo: str, arch: str, filename: str) -> Path:
        if "/" in filename or filename.startswith("."):
            raise BadRequest(f"invalid file name '{filename}'")
        return self.pkg_dir / repo / arch / filename

    def desc_entry(self, repo: str, arch: str, entry: str) -> RepoPackage | None:
        """The package whose db entry is '<name>-<version>', if published in that arch-repo."""
        try:
            name, version = names.split_entry(entry)
        except ValueError:
            return None
        pkg = self.db.package(repo, arch, name)
        return pkg if pkg is not None and pkg.version == version else None

    # -- start-up ---------------------------------------------------------------------

    def recover(self) -> None:
        """Finish what a crash interrupted: temp files, unwritten archives, orphan files
        (kept versions beyond keep_versions are forgotten first, so their files go too)."""
        kept.prune_all(self.db, self.keep_versions)
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        known = set(self.db.arch_repos())
        for repo, arch in known:
            try:
                self.write_archives(repo, arch, signatures=False)  # signatures: SignatureSync
            except InsufficientStorage:
                pass  # pending: the archive writer's thread writes it once there is room
        own = {p.resolve() for p in (self.pkg_dir, self.repos_dir, self.tmp_dir)}
        for root in (self.pkg_dir, self.repos_dir):
            for repo_dir in [p for p in root.iterdir()
                             if p.is_dir() and p.resolve() not in own]:
                for arch_dir in [p for p in repo_dir.iterdir() if p.is_dir()]:
                    if (repo_dir.name, arch_dir.name) not in known:
                        log.warning("removing leftover %s", arch_dir)
                        shutil.rmtree(arch_dir, ignore_errors=True)
                    elif root == self.pkg_dir:
                        self._remove_orphans(repo_dir.name, arch_dir)
                if not any(repo_dir.iterdir()):
                    repo_dir.rmdir()

    def _remove_orphans(self, repo: str, arch_dir: Path) -> None:
        wanted = self.db.filenames(repo, arch_dir.name)
        wanted |= {name + signing.SIG for name in wanted}
        for path in arch_dir.iterdir():
            if kept.owning_file(path.name) not in wanted:
                log.warning("removing unreferenced %s", path)
                path.unlink(missing_ok=True)
