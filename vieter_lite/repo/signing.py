"""The server's signing key and what it signs. With `sign = true` the key lives in a
private GnuPG home under the data dir (found there, imported from sign_key_file, or
generated on first start); every published package and every db archive written gets a
detached binary signature next to it (`<file>.sig`). A package that arrives with its own
signature keeps it. repo/signature_sync.py brings an existing repo in line at start."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from vieter_lite import pgp
from vieter_lite.errors import BadRequest, full_disk
from vieter_lite.gpg import GnuPG, GpgError, GpgNoSpace, Key

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
            except GpgNoSpace:
                raise  # the disk is full: the key is not the problem
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
                      tmp_dir: Path, what: str = "the package") -> Iterator[Path | None]:
    """The signature that goes with a package being published (`what`: its name and
    version), as a temp file (removed afterwards): the uploaded one as it is, else the
    server's when it signs, else None. A full disk is InsufficientStorage, before anything
    of the publish is done."""
    if uploaded is None and signer is None:
        yield None
        return
    path = tmp_dir / f"sig-{uuid.uuid4().hex}"
    try:
        try:
            if uploaded is not None:
                path.write_bytes(uploaded)
            else:
                assert signer is not None
                signer.sign([(upload, path)])
        except Exception as exc:
            full = full_disk(exc, f"writing the signature of {what}")
            if full is not None:
                raise full from exc
            raise
        yield path
    finally:
        path.unlink(missing_ok=True)
