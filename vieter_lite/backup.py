"""`vieter-lite backup DEST` and `vieter-lite restore SRC`.

A backup is a directory: `vieter.sqlite` (sqlite's online backup API: one consistent
moment of the db, taken while the server runs), `pkgs/<repo>/<arch>/` holding every
package file and kept version that db names (with their `.sig`), `gnupg/` (the signing
key's home, sockets left out), `logs/` (the build logs), `sign_key_file` (when the config
names one) and `manifest.json` with the sha256 of every file. It is written to DEST.tmp and
renamed to DEST at the end: a DEST that exists is always complete.

Files are hard-linked when the backup is on the package files' filesystem (the server
never changes a package file in place: a publish writes a new file and renames it), else
copied. A file the db snapshot names may be replaced or removed by a publish before it is
linked; its sha256 is checked against the desc's %SHA256SUM%, and when one is gone or
differs the db is backed up again and the files collected anew (what was linked stays
linked), a few times, before the backup gives up naming what is missing.

Restore (the server stopped) verifies every sha256, then puts the files in the configured
data dir and pkg_dir; the server's start-up rewrites the db archives from sqlite (and signs
them) as after a crash: archives are not part of a backup.

A disk that fills up is a BackupError saying so: a backup removes its DEST.tmp; a restore
has not put the db in place yet, so the data dir holds no server's data (run it again with
--force once there is room).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vieter_lite import __version__, datalock
from vieter_lite.config import ServerConfig
from vieter_lite.db import integrity
from vieter_lite.errors import full_disk
from vieter_lite.repo import signing

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
DB_NAME = "vieter.sqlite"
ATTEMPTS = 5  # db snapshots taken before a backup gives up on a vanished file


class BackupError(Exception):
    """What makes a backup or restore refuse or fail (the CLI prints it, exit 1)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def usable_destination(path: Path) -> bool:
    """A backup goes where nothing is: a missing path or an empty directory."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


@dataclass
class BackupResult:
    dest: Path
    packages: int = 0
    files: int = 0
    linked: int = 0
    copied: int = 0
    bytes: int = 0
    attempts: int = 0
    missing: list[str] = field(default_factory=list)


def _place(source: Path, dest: Path, result: BackupResult) -> None:
    """Hard-link (else copy) `source` to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
        result.linked += 1
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    shutil.copyfile(source, dest)
    result.copied += 1


def _snapshot_db(source: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    src = integrity.connect_readonly(source)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            # one file, no -wal beside it (the server turns WAL on again when it opens it)
            out.execute("PRAGMA journal_mode=DELETE")
        finally:
            out.close()
    finally:
        src.close()


def _collect_packages(pkg_dir: Path, tmp: Path, refs: list[integrity.FileRef],
                      files: dict[str, str], result: BackupResult) -> list[str]:
    """Link the files `refs` name into tmp/pkgs; `files` gets their sha256 (relpath ->).
    The relpaths that are gone or differ from their desc's sha256."""
    wrong: list[str] = []
    for ref in refs:
        rel = f"pkgs/{ref.relpath}"
        dest = tmp / rel
        if rel in files and (not ref.sha256 or files[rel] == ref.sha256):
            continue
        dest.unlink(missing_ok=True)
        signing.signature_path(dest).unlink(missing_ok=True)
        files.pop(rel, None)
        files.pop(rel + signing.SIG, None)
        source = pkg_dir / ref.relpath
        try:
            _place(source, dest, result)
        except FileNotFoundError:
            wrong.append(ref.relpath)
            continue
        digest = sha256_file(dest)
        if ref.sha256 and digest != ref.sha256:
            dest.unlink()
            wrong.append(ref.relpath)
            continue
        files[rel] = digest
        sig = signing.signature_path(source)
        try:
            _place(sig, signing.signature_path(dest), result)
            files[rel + signing.SIG] = sha256_file(signing.signature_path(dest))
        except FileNotFoundError:
            pass
    return wrong


def _copy_tree(source: Path, dest: Path, prefix: str, files: dict[str, str],
               keep: Callable[[Path], bool] = lambda p: True) -> None:
    """Copy the regular files under `source` (not sockets, not symlinks) into dest."""
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if path.is_symlink() or not path.is_file() or not keep(path):
            continue
        rel = path.relative_to(source)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, target)
        except FileNotFoundError:  # a log removed meanwhile
            continue
        files[f"{prefix}/{rel.as_posix()}"] = sha256_file(target)


def backup(config: ServerConfig, dest: Path, logs: bool = True) -> BackupResult:
    """Back the data dir up into `dest` (see the module's text); BackupError when DEST is
    not usable or the db is not there."""
    dest = Path(dest)
    if not usable_destination(dest):
        raise BackupError(f"{dest} exists and is not empty: give a new directory")
    db_path = config.data_dir / DB_NAME
    if not db_path.is_file():
        raise BackupError(f"there is no database at {db_path}")
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # a backup that did not finish
    try:
        tmp.mkdir(parents=True)
        return _backup(config, dest, tmp, logs)
    except Exception as exc:
        if full_disk(exc) is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackupError(f"no space left on the disk of {dest} ({exc}); the partial backup "
                          "is removed: free some space and try again") from None


def _backup(config: ServerConfig, dest: Path, tmp: Path, logs: bool) -> BackupResult:
    db_path = config.data_dir / DB_NAME
    result = BackupResult(dest)
    files: dict[str, str] = {}
    wrong: list[str] = []
    refs: list[integrity.FileRef] = []
    for attempt in range(1, ATTEMPTS + 1):
        result.attempts = attempt
        _snapshot_db(db_path, tmp / DB_NAME)
        conn = integrity.connect_readonly(tmp / DB_NAME)
        try:
            refs = integrity.file_refs(conn)
        finally:
            conn.close()
        wrong = _collect_packages(config.pkg_dir, tmp, refs, files, result)
        if not wrong:
            break
        log.info("backup: %d files changed since the db snapshot; taking it again",
                 len(wrong))
    # files of an earlier snapshot that this one does not name
    wanted = {f"pkgs/{r.relpath}" for r in refs}
    wanted |= {w + signing.SIG for w in wanted}
    for rel in [r for r in files if r.startswith("pkgs/") and r not in wanted]:
        (tmp / rel).unlink(missing_ok=True)
        del files[rel]
    result.missing = wrong
    result.packages = sum(1 for r in refs if r.kind == "package")
    files[DB_NAME] = sha256_file(tmp / DB_NAME)
    _copy_tree(config.data_dir / signing.HOME, tmp / "gnupg", "gnupg", files,
               keep=lambda p: not p.name.startswith("S.") and p.name != "random_seed")
    if logs:
        _copy_tree(config.data_dir / "logs", tmp / "logs", "logs", files,
                   keep=lambda p: p.suffix == ".log")
    if config.sign_key_file and Path(config.sign_key_file).is_file():
        shutil.copy2(config.sign_key_file, tmp / "sign_key_file")
        files["sign_key_file"] = sha256_file(tmp / "sign_key_file")
    result.files = len(files)
    result.bytes = sum((tmp / rel).stat().st_size for rel in files)
    manifest = {"format": FORMAT, "version": __version__, "created": int(time.time()),
                "data_dir": str(config.data_dir), "pkg_dir": str(config.pkg_dir),
                "sign": config.sign, "packages": result.packages, "missing": wrong,
                "db_snapshots": result.attempts,
                "files": dict(sorted(files.items()))}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    _sync_tree(tmp)
    if dest.exists():
        dest.rmdir()
    os.replace(tmp, dest)
    return result


def _sync_tree(root: Path) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- restore ----------------------------------------------------------------------------

def read_manifest(src: Path) -> dict:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} is not a vieter-lite backup (no {MANIFEST})") from None
    except ValueError as exc:
        raise BackupError(f"{src / MANIFEST} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{src / MANIFEST}: not a backup of format {FORMAT}")
    return manifest


def verify(src: Path, manifest: dict) -> list[str]:
    """One line per file of the manifest that is missing or whose sha256 differs."""
    problems = []
    for rel, digest in sorted(manifest["files"].items()):
        path = src / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            problems.append(f"{rel}: not a path inside the backup")
        elif not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


def _destination(config: ServerConfig, rel: str) -> Path:
    top, _, rest = rel.partition("/")
    if top == "pkgs":
        return config.pkg_dir / rest
    if rel == "sign_key_file":
        return config.data_dir / "sign_key_file"
    return config.data_dir / rel  # vieter.sqlite, gnupg/..., logs/...


def _in_use(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def restore(config: ServerConfig, src: Path, force: bool = False) -> int:
    """Restore a backup into the configured data dir and pkg_dir; the number of files.
    BackupError when the server runs, the dirs are not empty (without `force`), or a
    file's sha256 differs from the manifest (nothing is written then)."""
    src = Path(src)
    manifest = read_manifest(src)
    if datalock.held(config.data_dir):
        raise BackupError(f"a server is running on {config.data_dir}: stop it first")
    occupied = [p for p in (config.data_dir / DB_NAME, config.pkg_dir,
                            config.data_dir / signing.HOME, config.data_dir / "repos",
                            config.data_dir / "logs") if _in_use(p)]
    if occupied and not force:
        raise BackupError(f"{config.data_dir} holds a server's data already "
                          f"({', '.join(str(p) for p in occupied)}): restore into an empty "
                          "data dir, or give --force to replace it")
    problems = verify(src, manifest)
    if problems:
        raise BackupError("the backup is damaged, nothing was restored:\n  "
                          + "\n  ".join(problems))
    for path in (config.pkg_dir, config.data_dir / "repos", config.data_dir / signing.HOME,
                 config.data_dir / "logs", config.data_dir / "tmp"):
        shutil.rmtree(path, ignore_errors=True)
    for suffix in ("", "-wal", "-shm"):
        (config.data_dir / (DB_NAME + suffix)).unlink(missing_ok=True)
    try:
        _restore_files(config, src, manifest)
    except Exception as exc:
        if full_disk(exc) is None:
            raise
        raise BackupError(f"no space left to restore into ({exc}); the db goes in last and "
                          "is not there, so the data dir holds no server's data yet: free "
                          "some space and run restore again with --force") from None
    return len(manifest["files"])


def _restore_files(config: ServerConfig, src: Path, manifest: dict) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    for rel, digest in sorted(manifest["files"].items()):
        if rel == DB_NAME:
            continue
        target = _destination(config, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(src / rel, target)
        except BaseException:
            target.unlink(missing_ok=True)  # a part of it
            raise
        if sha256_file(target) != digest:
            raise BackupError(f"{target}: the copy's sha256 differs from the manifest")
    home = config.data_dir / signing.HOME
    if home.is_dir():
        for directory in [home, *[p for p in home.rglob("*") if p.is_dir()]]:
            os.chmod(directory, 0o700)
    # the db last: a data dir with a db is a restored one
    tmp_db = config.data_dir / (DB_NAME + ".restoring")
    try:
        shutil.copy2(src / DB_NAME, tmp_db)
        if sha256_file(tmp_db) != manifest["files"][DB_NAME]:
            raise BackupError("the db copy's sha256 differs from the manifest")
        os.replace(tmp_db, config.data_dir / DB_NAME)
    finally:
        tmp_db.unlink(missing_ok=True)  # a part of it, or a bad copy
