"""`vieter-lite check [--repair]`: compare sqlite, the package files and the served db
archives, and say what is wrong, one line each.

The comparisons are pure functions over what the I/O shell (inspect()) reads; repair()
fixes what can be fixed on a stopped server's data dir. Without --repair nothing is
written, so it may run beside a running server: the db is read twice (before and after the
files and archives are), and only what is wrong against both reads is reported, so a
publish in between is not taken for damage.

What is wrong, and what --repair does about it:

missing-file       a package's file is gone: the row is removed (the file cannot be made
                   again; pacman would be served a db naming a file that 404s) and the
                   archives are rewritten
bad-sha256         a package's file differs from its desc's %SHA256SUM%: pacman refuses
                   it; the row and the file are removed, the archives rewritten
missing-kept-file  a kept version's file is gone: the kept record is forgotten
orphan             a file in pkg_dir that no package or kept version uses: removed
temp-file          a temp file a crash left (data_dir/tmp, `.tmp.*`): removed
missing-archive    an arch-repo without its db archive: written
stale-archive      a db archive older than its generation, or whose entries differ from
                   the db: rewritten
bad-signature      a package's or an archive's signature made by the server's key does not
                   verify (or does not parse): a package is signed again when the server
                   signs (sign = true), else its signature is removed; an archive is
                   rewritten
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vieter_lite import datalock, pgp
from vieter_lite.config import ServerConfig
from vieter_lite.db import integrity
from vieter_lite.db.integrity import ArchRepoState, FileRef
from vieter_lite.errors import full_disk
from vieter_lite.gpg import GnuPG, GpgError
from vieter_lite.repo import archives, kept, signing

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp."
SETTLE = 1.0  # s between the two looks beside a running server
KINDS = ("missing-file", "bad-sha256", "missing-kept-file", "orphan", "temp-file",
         "missing-archive", "stale-archive", "bad-signature")


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str  # relative to pkg_dir (package files) or data_dir (the rest)
    detail: str
    repo: str = ""
    arch: str = ""
    name: str = ""
    version: str = ""
    root: str = "pkg_dir"  # what `path` is relative to: pkg_dir or data_dir

    def line(self) -> str:
        return f"{self.kind} {self.path}: {self.detail}"


# -- the comparisons (pure) -------------------------------------------------------------

def file_problems(refs: Iterable[FileRef], disk: dict[str, str], sigs: set[str],
                  known: set[str]) -> list[Problem]:
    """Package files against the db. `refs`: what the db names (in every read); `disk`:
    relpath -> sha256 of each package file in pkg_dir; `sigs`: the `.sig` relpaths there;
    `known`: the relpaths any read of the db names (what is not an orphan)."""
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for ref in refs:
        if (ref.relpath, ref.kind) in seen:
            continue
        seen.add((ref.relpath, ref.kind))
        where = dict(repo=ref.repo, arch=ref.arch, name=ref.name, version=ref.version)
        if ref.relpath not in disk:
            kind = "missing-file" if ref.kind == "package" else "missing-kept-file"
            what = "package" if ref.kind == "package" else "kept version"
            problems.append(Problem(kind, ref.relpath,
                                    f"the file of {what} {ref.name} {ref.version} in "
                                    f"{ref.repo}/{ref.arch} is missing", **where))
        elif ref.sha256 and disk[ref.relpath] != ref.sha256 and ref.kind == "package":
            problems.append(Problem("bad-sha256", ref.relpath,
                                    f"sha256 {disk[ref.relpath]} is not the db's "
                                    f"{ref.sha256}", **where))
    for rel in sorted(set(disk) | sigs):
        if kept.owning_file(rel) not in known:
            problems.append(Problem("orphan", rel, "no package or kept version uses it"))
    return problems


def archive_problems(states: Iterable[ArchRepoState], later: dict[tuple[str, str], ArchRepoState],
                     served: dict[tuple[str, str], frozenset[str] | None],
                     running: bool = False, kind: str = "db") -> list[Problem]:
    """The served db archives against the db: `served` holds each arch-repo's archive
    entries ('<name>-<version>'), None when it has none; `later` is a second read of the
    db (an archive right by either read is right). `running`: a server is at work, so an
    arch-repo whose generation is not written yet is being written."""
    problems = []
    for state in states:
        key = (state.repo, state.arch)
        path = f"repos/{state.repo}/{state.arch}/{archives.archive_name(state.repo, kind)}"
        where = dict(repo=state.repo, arch=state.arch)
        if key not in later:
            continue  # removed meanwhile
        entries = served.get(key)
        if entries is None:
            problems.append(Problem("missing-archive", path, "the arch-repo has no db archive",
                                    root="data_dir", **where))
            continue
        reads = (state, later[key])
        if running and any(s.written < s.generation for s in reads):
            continue
        if any(s.written >= s.generation and entries == s.entries for s in reads):
            continue
        if entries not in [s.entries for s in reads]:
            both = reads[-1].entries
            detail = (f"{len(both - entries)} entries of the db are not in it, "
                      f"{len(entries - both)} it has are not in the db")
        else:
            detail = (f"written for generation {reads[-1].written}, the db is at "
                      f"{reads[-1].generation}")
        problems.append(Problem("stale-archive", path, detail, root="data_dir", **where))
    return problems


def bad_signature(path: str, reason: str, **where: str) -> Problem:
    return Problem("bad-signature", path, reason, **where)


# -- reading the data dir ---------------------------------------------------------------

@dataclass
class Inspection:
    problems: list[Problem] = field(default_factory=list)
    packages: int = 0
    files: int = 0
    signatures_checked: int = 0
    signatures_not_checked: int = 0  # made by another key: nothing to check them with


def _scan_pkg_dir(pkg_dir: Path) -> tuple[dict[str, str], set[str], list[str]]:
    from vieter_lite.backup import sha256_file

    disk: dict[str, str] = {}
    sigs: set[str] = set()
    temps: list[str] = []
    if not pkg_dir.is_dir():
        return disk, sigs, temps
    for repo_dir in sorted(p for p in pkg_dir.iterdir() if p.is_dir()):
        for arch_dir in sorted(p for p in repo_dir.iterdir() if p.is_dir()):
            for path in sorted(arch_dir.iterdir()):
                rel = f"{repo_dir.name}/{arch_dir.name}/{path.name}"
                if path.name.startswith(TEMP_PREFIX):
                    temps.append(rel)
                elif path.name.endswith(signing.SIG):
                    sigs.add(rel)
                elif path.is_file():
                    try:
                        disk[rel] = sha256_file(path)
                    except FileNotFoundError:
                        pass
    return disk, sigs, temps


def _archive_entries(path: Path) -> frozenset[str] | None:
    try:
        with tarfile.open(path, "r:*") as tar:
            return frozenset(m.name.split("/", 1)[0] for m in tar.getmembers() if m.name)
    except (OSError, tarfile.TarError):
        return None


def _served(repos_dir: Path, states: Iterable[ArchRepoState], kind: str
            ) -> dict[tuple[str, str], frozenset[str] | None]:
    return {(s.repo, s.arch): _archive_entries(
        archives.current_path(repos_dir / s.repo / s.arch, s.repo, kind))
        for s in states}


def _temp_files(config: ServerConfig, pkg_temps: list[str]) -> list[Problem]:
    problems = [Problem("temp-file", f"tmp/{p.name}", "left by an upload or a crash",
                        root="data_dir")
                for p in sorted((config.data_dir / "tmp").glob("*"))]
    repos_dir = config.data_dir / "repos"
    if repos_dir.is_dir():
        problems += [Problem("temp-file", str(p.relative_to(config.data_dir)),
                             "left by a crash", root="data_dir")
                     for p in sorted(repos_dir.glob("*/*/.tmp.*"))]
    problems += [Problem("temp-file", rel, "left by a crash") for rel in pkg_temps]
    return problems


def _verify(gpg: GnuPG, signature: Path, data: Path) -> str | None:
    """Why the signature does not verify, None when it does."""
    try:
        gpg.run("--verify", str(signature), str(data))
    except GpgError as exc:
        return str(exc)
    return None


def _signature_problems(config: ServerConfig, refs: list[FileRef], disk: dict[str, str],
                        sigs: set[str], states: list[ArchRepoState],
                        found: Inspection) -> list[Problem]:
    home = config.data_dir / signing.HOME
    own = signing.own_fingerprints(home)
    if not own:
        return []
    problems: list[Problem] = []
    gpg = GnuPG(home)
    try:
        checks: list[tuple[str, Path, Path, dict[str, str]]] = []
        for ref in {r.relpath: r for r in refs}.values():
            # a file that differs from its sha256 is reported (and removed) as such
            if ref.relpath + signing.SIG in sigs and ref.relpath in disk \
                    and (not ref.sha256 or disk[ref.relpath] == ref.sha256):
                path = config.pkg_dir / ref.relpath
                checks.append((ref.relpath + signing.SIG, signing.signature_path(path), path,
                               dict(repo=ref.repo, arch=ref.arch, name=ref.name,
                                    version=ref.version)))
        for s in states:
            directory = config.data_dir / "repos" / s.repo / s.arch
            for kind in archives.KINDS:
                sig = archives.current_path(directory, s.repo, kind, signature=True)
                if sig.exists():
                    checks.append((str(sig.relative_to(config.data_dir)), sig,
                                   archives.current_path(directory, s.repo, kind),
                                   dict(repo=s.repo, arch=s.arch, root="data_dir")))
        for rel, sig, data, where in checks:
            try:
                parsed = pgp.parse_signature(sig.read_bytes())
            except ValueError as exc:
                problems.append(bad_signature(rel, f"not a signature: {exc}", **where))
                continue
            except OSError:
                continue
            if not parsed.issued_by(own):
                found.signatures_not_checked += 1
                continue
            found.signatures_checked += 1
            reason = _verify(gpg, sig, data)
            if reason is not None:
                problems.append(bad_signature(rel, f"does not verify: {reason}", **where))
    finally:
        gpg.close()
    return problems


def _read_db(config: ServerConfig) -> tuple[list[FileRef], list[ArchRepoState]]:
    conn = integrity.connect_readonly(config.data_dir / "vieter.sqlite",
                                      immutable=not datalock.held(config.data_dir))
    try:
        return integrity.read_all(conn)
    finally:
        conn.close()


def inspect(config: ServerConfig, signatures: bool = True) -> Inspection:
    """Everything wrong in the data dir (read-only)."""
    db_path = config.data_dir / "vieter.sqlite"
    if not db_path.is_file():
        raise FileNotFoundError(f"there is no database at {db_path}")
    refs1, states1 = _read_db(config)
    disk, sigs, pkg_temps = _scan_pkg_dir(config.pkg_dir)
    served = {kind: _served(config.data_dir / "repos", states1, kind)
              for kind in archives.KINDS}
    refs2, states2 = _read_db(config)
    in_both = {(r.relpath, r.kind, r.sha256) for r in refs2}
    refs = [r for r in refs1 if (r.relpath, r.kind, r.sha256) in in_both]
    known = {r.relpath for r in refs1} | {r.relpath for r in refs2}
    found = Inspection(packages=sum(1 for r in refs2 if r.kind == "package"),
                       files=len(disk))
    found.problems += file_problems(refs, disk, sigs, known)
    found.problems += _temp_files(config, pkg_temps)
    running = datalock.held(config.data_dir)
    for kind in archives.KINDS:
        found.problems += archive_problems(states1, {(s.repo, s.arch): s for s in states2},
                                           served[kind], running=running, kind=kind)
    if signatures:
        found.problems += _signature_problems(config, refs, disk, sigs, states1, found)
    return found


# -- repairing (a stopped server) -------------------------------------------------------

class CheckError(Exception):
    """check --repair refused (the server runs)."""


class RepairStopped(CheckError):
    """check --repair stopped part way, the data disk being full; `done`: what it did
    before (one line each)."""

    def __init__(self, message: str, done: list[str]):
        super().__init__(message)
        self.done = done


def repair(config: ServerConfig, problems: list[Problem]) -> list[str]:
    """Fix what can be fixed; one line per thing done. A full disk stops it
    (RepairStopped); run again once there is room, it goes on from what is left."""
    from vieter_lite.repo.store import RepoStore
    from vieter_lite.services import open_database, start_signer

    if datalock.held(config.data_dir):
        raise CheckError(f"a server is running on {config.data_dir}: stop it before "
                         "check --repair")
    done: list[str] = []
    db = open_database(config.data_dir)
    store = RepoStore(db, config.data_dir, config.pkg_dir, config.default_arch,
                      keep_versions=config.keep_versions)
    rewrite: set[tuple[str, str]] = set()
    try:
        # the server's own key only: a new one would sign what clients cannot check
        if config.sign and signing.own_fingerprints(config.data_dir / signing.HOME):
            store.signer = start_signer(config)
        for p in problems:
            path = (config.pkg_dir if p.root == "pkg_dir" else config.data_dir) / p.path
            if p.kind in ("missing-file", "bad-sha256"):
                with db.transaction():
                    db.remove_package(p.repo, p.arch, p.name)
                    db.prune_package_owners(p.repo)
                rewrite.add((p.repo, p.arch))
                if not db.file_referenced(p.repo, p.arch, path.name):
                    kept.unlink_file(path)  # what is left of it, and its signature
                done.append(f"removed {p.name} {p.version} from {p.repo}/{p.arch}: its file "
                            f"is {'missing' if p.kind == 'missing-file' else 'damaged'} "
                            "(publish it again)")
            elif p.kind == "missing-kept-file":
                db.unkeep(p.repo, p.arch, p.name, p.version)
                if not db.file_referenced(p.repo, p.arch, path.name):
                    kept.unlink_file(path)
                done.append(f"forgot kept version {p.name} {p.version} of {p.repo}/{p.arch}")
            elif p.kind in ("orphan", "temp-file"):
                path.unlink(missing_ok=True)
                done.append(f"removed {p.kind} {p.path}")
            elif p.kind in ("missing-archive", "stale-archive"):
                rewrite.add((p.repo, p.arch))
            elif p.kind == "bad-signature":
                if p.root == "data_dir":
                    rewrite.add((p.repo, p.arch))
                    continue
                sig = path
                if store.signer is not None:
                    fresh = store.tmp_dir / f"sig-{os.getpid()}"
                    store.signer.sign([(config.pkg_dir / kept.owning_file(p.path), fresh)])
                    os.replace(fresh, sig)
                    done.append(f"signed {kept.owning_file(p.path)} again")
                else:
                    sig.unlink(missing_ok=True)
                    done.append(f"removed the bad signature {p.path} (sign is off: the "
                                "package is unsigned now)")
        for repo, arch in sorted(rewrite):
            if db.written_generation(repo, arch) is None:
                continue
            with db.transaction():
                db.bump_generation(repo, arch)
            store.write_archives(repo, arch)
            done.append(f"rewrote the db archives of {repo}/{arch}")
    except Exception as exc:
        full = full_disk(exc, "repairing")
        if full is None:
            raise
        why = "" if full is exc else f" ({exc})"
        raise RepairStopped(f"check --repair stopped: {full.message}{why}", done) from exc
    finally:
        if store.signer is not None:
            store.signer.close()
        db.close()
    return done


def as_json(problems: list[Problem]) -> list[dict[str, str]]:
    return [{k: v for k, v in asdict(p).items() if v} for p in problems]
