"""The server's signing key and what it signs. With `sign = true` the key lives in a
private GnuPG home under the data dir (found there, imported from sign_key_file, or
generated on first start); every published package and every db archive written gets a
detached binary signature next to it (`<file>.sig`). A package that arrives with its own
signature keeps it. SignatureSync brings an existing repo in line at start."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vieter_lite.errors import BadRequest
from vieter_lite.gpg import GnuPG, GpgError, Key
from vieter_lite.repo import pgp

if TYPE_CHECKING:
    from vieter_lite.repo.store import RepoStore

log = logging.getLogger(__name__)

SIG = ".sig"
HOME = "gnupg"  # under data_dir


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + SIG)


def key_uid(name: str, email: str, hostname: str) -> str:
    """The new key's user id: the configured name and email, else the server's."""
    host = hostname or "localhost"
    return f"{name or f'vieter-lite on {host}'} <{email or f'vieter-lite@{host}'}>"


def choose_key(secret: Sequence[Key], wanted: str | None) -> str | None:
    """The fingerprint to sign with: `wanted` (sign_key_file's key) when the home holds
    it, else the newest secret key that can sign; None when there is none."""
    usable = [k for k in secret if k.secret and k.can_sign]
    if wanted is not None:
        return wanted if any(k.fingerprint == wanted for k in usable) else None
    return max(usable, key=lambda k: (k.created, k.fingerprint)).fingerprint if usable else None


def decode_signature(value: str) -> bytes:
    """An uploaded signature (`?sig=`): base64 (standard or URL-safe alphabet, padding
    optional) of a binary detached signature; BadRequest saying what is wrong."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("sig: not base64 (send the binary .sig file base64-encoded)") from None
    try:
        pgp.parse_signature(raw)
    except ValueError as exc:
        raise BadRequest(f"sig: {exc}") from None
    return raw


class Signer:
    """Signs files with one key of a private GnuPG home."""

    def __init__(self, gpg: GnuPG, fingerprint: str):
        self.gpg = gpg
        self.fingerprint = fingerprint
        self.public_key = gpg.export_public(fingerprint)
        self.own = {k.fingerprint for k in gpg.secret_keys()}

    @classmethod
    def start(cls, home: Path, uid: str, key_file: str = "") -> Signer:
        """The key at start: sign_key_file's (imported when the home lacks it), else the
        home's newest, else a new Ed25519 key. Checks that it signs without a passphrase.
        GpgError says what failed."""
        gpg = GnuPG(home)
        try:
            gpg.prepare()
            wanted = _key_file_fingerprint(gpg, Path(key_file)) if key_file else None
            fingerprint = choose_key(gpg.secret_keys(), wanted)
            if fingerprint is None and wanted is not None:
                gpg.import_keys(Path(key_file))
                fingerprint = choose_key(gpg.secret_keys(), wanted)
                if fingerprint is None:
                    raise GpgError(f"sign_key_file {key_file}: the key {wanted} was not "
                                   "imported as a secret key that can sign")
                log.info("imported the signing key %s from sign_key_file", fingerprint)
            elif fingerprint is None:
                fingerprint = gpg.generate(uid)
                log.info("generated the signing key %s (%s) in %s; back up that directory "
                         "to keep it", fingerprint, uid, home)
            signer = cls(gpg, fingerprint)
            signer.check()
        except BaseException:
            gpg.close()
            raise
        return signer

    def check(self) -> None:
        """Sign a few bytes: a key that wants a passphrase fails here, not at a publish."""
        with tempfile.TemporaryDirectory(dir=self.gpg.home) as scratch:
            probe = Path(scratch) / "probe"
            probe.write_bytes(b"vieter-lite signing check\n")
            try:
                self.sign([(probe, signature_path(probe))])
            except GpgError as exc:
                raise GpgError(f"the key {self.fingerprint} cannot sign without a passphrase "
                               f"({exc}); give sign_key_file a key without one") from None

    def sign(self, files: Sequence[tuple[Path, Path]]) -> None:
        """Detached binary signatures: (file, where its signature goes), all at once."""
        self.gpg.sign(self.fingerprint, files)

    def made(self, signature: bytes) -> bool:
        """Whether one of the home's keys made this signature."""
        try:
            return pgp.parse_signature(signature).issued_by(self.own)
        except ValueError:
            return False

    def close(self) -> None:
        self.gpg.close()


def _key_file_fingerprint(gpg: GnuPG, path: Path) -> str:
    if not path.is_file():
        raise GpgError(f"sign_key_file {path} does not exist")
    keys = gpg.show_keys(path)
    secret = [k for k in keys if k.secret]
    if not secret:
        raise GpgError(f"sign_key_file {path} holds no secret key (export it with gpg "
                       "--export-secret-keys)")
    if len(secret) > 1:
        raise GpgError(f"sign_key_file {path} holds {len(secret)} secret keys; give it one")
    if not secret[0].can_sign:
        raise GpgError(f"sign_key_file {path}: the key {secret[0].fingerprint} cannot sign")
    return secret[0].fingerprint


def own_fingerprints(home: Path) -> set[str]:
    """The fingerprints of the secret keys a home holds (none when there is no home)."""
    if not home.is_dir():
        return set()
    gpg = GnuPG(home)
    try:
        return {k.fingerprint for k in gpg.secret_keys()}
    except GpgError as exc:
        log.warning("signatures: cannot read the keys in %s (%s): the package signatures "
                    "the server made stay", home, exc)
        return set()
    finally:
        gpg.close()


@contextlib.contextmanager
def package_signature(signer: Signer | None, upload: Path, uploaded: bytes | None,
                      tmp_dir: Path) -> Iterator[Path | None]:
    """The signature that goes with a package being published, as a temp file (removed
    afterwards): the uploaded one as it is, else the server's when it signs, else None."""
    if uploaded is None and signer is None:
        yield None
        return
    path = tmp_dir / f"sig-{uuid.uuid4().hex}"
    try:
        if uploaded is not None:
            path.write_bytes(uploaded)
        else:
            assert signer is not None
            signer.sign([(upload, path)])
        yield path
    finally:
        path.unlink(missing_ok=True)


class SignatureSync:
    """At start, on its own thread: makes the repos match `sign`. Signing on: the db
    archives of every arch-repo are rewritten with signatures, then every package without
    a signature is signed (files shared by several arch-repos once). Signing off: the db
    archives are rewritten without, and the package signatures the server's keys made are
    removed (those uploaded with a package stay). Progress goes to the log."""

    BATCH = 4  # gpg processes at once

    def __init__(self, store: RepoStore, signer: Signer | None, own: set[str],
                 report_every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.signer = signer
        self.own = own
        self.report_every = report_every
        self.clock = clock
        self.done = threading.Event()

    def run(self, stop: threading.Event) -> None:
        try:
            started = self.clock()
            rewritten = self._archives(stop)
            counts = self._packages(stop)
            if not stop.is_set():
                what = "signed" if self.signer is not None else "removed the signatures of"
                log.info("signatures: done in %.1f s: %s the db archives of %d arch-repos and "
                         "%d packages", self.clock() - started, what, rewritten, counts)
        finally:
            self.done.set()

    def _archives(self, stop: threading.Event) -> int:
        count = 0
        for repo, arch in self.store.db.arch_repos():
            if stop.is_set():
                break
            if self.store.write_archives(repo, arch):
                count += 1
        return count

    def _todo(self) -> list[tuple[str, str, str]]:
        """(repo, arch, filename) of the packages whose signature state is not the wanted
        one: unsigned ones (signing), server-signed ones (not signing)."""
        found = []
        for repo, arch in self.store.db.arch_repos():
            for filename in sorted(self.store.db.filenames(repo, arch)):
                sig = signature_path(self.store.package_file(repo, arch, filename))
                wrong = not sig.exists() if self.signer is not None \
                    else sig.exists() and self._made_here(sig)
                if wrong:
                    found.append((repo, arch, filename))
        return found

    def _made_here(self, sig: Path) -> bool:
        try:
            return pgp.parse_signature(sig.read_bytes()).issued_by(self.own)
        except (OSError, ValueError):
            return False

    def _packages(self, stop: threading.Event) -> int:
        todo = self._todo()
        if not todo:
            return 0
        verb = "signing" if self.signer is not None else "removing the signatures of"
        log.info("signatures: %s %d packages", verb, len(todo))
        done = 0
        next_report = self.clock() + self.report_every
        with tempfile.TemporaryDirectory(dir=self.store.tmp_dir) as scratch:
            signed: dict[tuple[int, int], Path] = {}
            for start in range(0, len(todo), self.BATCH):
                if stop.is_set():
                    log.info("signatures: stopped after %d of %d packages", done, len(todo))
                    break
                batch = todo[start:start + self.BATCH]
                if self.signer is not None:
                    done += self._sign_batch(batch, Path(scratch), signed)
                else:
                    done += sum(self.store.detach_signature(*item, self.own) for item in batch)
                if self.clock() >= next_report:
                    log.info("signatures: %d of %d packages", start + len(batch), len(todo))
                    next_report = self.clock() + self.report_every
        return done

    def _sign_batch(self, batch: list[tuple[str, str, str]], scratch: Path,
                    signed: dict[tuple[int, int], Path]) -> int:
        assert self.signer is not None
        files: dict[tuple[str, str, str], tuple[int, int]] = {}
        wanted: dict[tuple[int, int], Path] = {}
        for item in batch:
            path = self.store.package_file(*item)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue  # removed meanwhile
            inode = (info.st_dev, info.st_ino)
            files[item] = inode
            if inode not in signed and inode not in wanted:
                wanted[inode] = path
        if wanted:
            pairs = [(path, scratch / f"{inode[0]}-{inode[1]}{SIG}")
                     for inode, path in wanted.items()]
            try:
                self.signer.sign(pairs)
            except GpgError as exc:
                log.warning("signatures: could not sign %s: %s",
                            ", ".join(p.name for p, _ in pairs), exc)
                return 0
            signed.update({inode: out for inode, (_, out) in zip(wanted, pairs, strict=True)})
        return sum(self.store.attach_signature(*item, signed[inode])
                   for item, inode in files.items())
