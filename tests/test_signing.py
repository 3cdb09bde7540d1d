"""Signing (sign = true) in-process with the real gpg: the key at start, signatures of
packages and db archives (checked by gpgv), uploaded signatures, the db signed once per
rewrite, generations, and SignatureSync on an existing repo."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from conftest import make_config
from gpgkeys import gpg_available, verify
from pkgfactory import make_synthetic_package
from vieter_lite import config, pgp
from vieter_lite.errors import StartupError
from vieter_lite.gpg import GnuPG
from vieter_lite.repo import archives, signing
from vieter_lite.repo.signature_sync import SignatureSync
from vieter_lite.services import build_services

pytestmark = pytest.mark.skipif(not gpg_available(), reason="gpg, gpgv or gpg-agent missing")


@pytest.fixture
def start(tmp_path, monkeypatch):
    """start(**config) -> services on tmp_path/data; every one is closed afterwards."""
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-system.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "no-user.toml")
    started = []

    def make(**overrides: object):
        svc = build_services(make_config(tmp_path, **overrides))
        started.append(svc)
        return svc

    yield make
    for svc in started:
        if svc.signer is not None:
            svc.signer.close()
        svc.db.close()


def stop(svc) -> None:
    if svc.signer is not None:
        svc.signer.close()
    svc.db.close()


@pytest.fixture
def upload(tmp_path):
    directory = tmp_path / "uploads"
    directory.mkdir()
    counter = itertools.count()

    def make(name: str, version: str = "1.0-1", arch: str = "x86_64") -> Path:
        pkginfo = {"pkgname": name, "pkgver": version, "arch": arch, "size": "10"}
        return make_synthetic_package(directory / f"{next(counter)}.pkg", pkginfo,
                                      {f"usr/share/{name}/README": f"{name} {version}".encode()})
    return make


def pkg_path(svc, name: str, version: str = "1.0-1", arch: str = "x86_64",
             pkg_arch: str | None = None) -> Path:
    return svc.store.pkg_dir / "core" / arch / \
        f"{name}-{version}-{pkg_arch or arch}.pkg.tar.zst"


def assert_signed_by(key: bytes, path: Path, fingerprint: str) -> None:
    ok, status = verify(key, signing.signature_path(path).read_bytes(), path.read_bytes())
    assert ok and f"VALIDSIG {fingerprint}" in status, status


def db_pair(svc, arch: str = "x86_64", kind: str = "db") -> tuple[bytes, bytes]:
    """The archive and its signature, as the server serves them."""
    store = svc.store
    return (store.db_file("core", arch, f"core.{kind}").read_bytes(),
            store.db_file("core", arch, f"core.{kind}.sig").read_bytes())


# -- the key ----------------------------------------------------------------------------------

def test_first_start_makes_a_key_and_later_starts_keep_it(start, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    svc = start(sign="true", sign_key_name="Pi Repo", sign_key_email="repo@pi.invalid")
    home = tmp_path / "data" / "gnupg"
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    fpr = svc.signer.fingerprint
    assert pgp.key_fingerprint(svc.signer.public_key) == fpr
    assert b"PRIVATE" not in svc.signer.public_key
    [key] = GnuPG(home).secret_keys()
    assert key.uid == "Pi Repo <repo@pi.invalid>" and key.fingerprint == fpr
    assert f"generated the signing key {fpr}" in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    stop(svc)

    again = start(sign="true")
    assert again.signer.fingerprint == fpr


def test_the_generated_key_is_named_after_the_machine(start, tmp_path, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "pi")
    svc = start(sign="true")
    [key] = GnuPG(tmp_path / "data" / "gnupg").secret_keys()
    assert key.uid == "vieter-lite on pi <vieter-lite@pi>" == signing.key_uid("", "", "pi")
    assert svc.signer.fingerprint == key.fingerprint


def test_sign_key_file_is_imported_and_used(start, tmp_path, scratch_gpg):
    fpr = scratch_gpg.new_key("Imported <imported@example.invalid>")
    key_file = tmp_path / "secret.asc"
    key_file.write_bytes(scratch_gpg.export(fpr, secret=True))
    svc = start(sign="true")  # a key of its own first
    own = svc.signer.fingerprint
    stop(svc)

    svc = start(sign="true", sign_key_file=key_file)
    assert svc.signer.fingerprint == fpr != own
    assert svc.signer.own == {fpr, own}
    stop(svc)
    assert start(sign="true", sign_key_file=key_file).signer.fingerprint == fpr


@pytest.mark.parametrize("case, reason", [
    ("passphrase", "cannot sign without a passphrase"),
    ("public", "holds no secret key"),
    ("missing", "does not exist"),
])
def test_an_unusable_sign_key_file_stops_start_up(start, tmp_path, scratch_gpg, case, reason):
    key_file = tmp_path / "key.asc"
    if case != "missing":
        fpr = scratch_gpg.new_key("Locked <locked@example.invalid>",
                                  passphrase="secret" if case == "passphrase" else "")
        key_file.write_bytes(scratch_gpg.export(fpr, secret=case == "passphrase",
                                                passphrase="secret"))
    with pytest.raises(StartupError, match=reason):
        start(sign="true", sign_key_file=key_file)


# -- what gets signed ---------------------------------------------------------------------

def test_a_publish_signs_the_package_and_both_archives(start, upload):
    svc = start(sign="true")
    signer = svc.signer
    svc.store.publish("core", upload("foo"))
    assert_signed_by(signer.public_key, pkg_path(svc, "foo"), signer.fingerprint)
    for kind in archives.KINDS:
        data, sig = db_pair(svc, kind=kind)
        ok, status = verify(signer.public_key, sig, data)
        assert ok and f"VALIDSIG {signer.fingerprint}" in status
        parsed = pgp.parse_signature(sig)
        assert (parsed.version, parsed.sig_type, parsed.issuer_fpr) == (4, 0,
                                                                          signer.fingerprint)
    directory = svc.store.repos_dir / "core" / "x86_64"
    # the names repo-add gives them, for tools and static servers
    for name in ("core.db.sig", "core.db.tar.gz.sig", "core.files.sig"):
        assert (directory / name).read_bytes() == \
            svc.store.db_file("core", "x86_64", name).read_bytes()
    [listed] = svc.store.listed_packages("core")
    assert listed.signed


def test_an_uploaded_signature_is_kept_as_it_is(start, upload, scratch_gpg):
    other = scratch_gpg.new_key("Packager <packager@example.invalid>")
    for sign in ("true", "false"):
        svc = start(sign=sign)
        path = upload("own", f"{1 if sign == 'true' else 2}.0-1")
        theirs = scratch_gpg.sign(other, path.read_bytes())
        result = svc.store.publish("core", path, signature=theirs)
        published = pkg_path(svc, "own", result.version)
        assert signing.signature_path(published).read_bytes() == theirs
        assert_signed_by(scratch_gpg.export(other), published, other)
        stop(svc)


def test_a_republish_without_a_signature_drops_the_old_one(start, upload, scratch_gpg):
    other = scratch_gpg.new_key("Packager <packager@example.invalid>")
    svc = start()
    path = upload("same")
    svc.store.publish("core", path, signature=scratch_gpg.sign(other, path.read_bytes()))
    assert signing.signature_path(pkg_path(svc, "same")).exists()
    svc.store.publish("core", upload("same"))  # the same file name, no signature now
    assert not signing.signature_path(pkg_path(svc, "same")).exists()
    assert not svc.store.listed_packages("core")[0].signed


def test_an_any_package_is_signed_in_every_arch_repo(start, upload):
    svc = start(sign="true")
    signer = svc.signer
    svc.store.publish("core", upload("common", arch="any"))
    svc.store.publish("core", upload("tool", arch="aarch64"))  # a new arch-repo: backfilled
    for arch in ("x86_64", "aarch64"):
        assert_signed_by(signer.public_key, pkg_path(svc, "common", arch=arch, pkg_arch="any"),
                         signer.fingerprint)
        data, sig = db_pair(svc, arch)
        assert verify(signer.public_key, sig, data)[0]


def test_upgrade_removal_and_recovery_keep_signatures_with_their_packages(start, upload):
    svc = start(sign="true")
    store = svc.store
    store.publish("core", upload("a"))
    store.publish("core", upload("a", "2.0-1"))
    assert not signing.signature_path(pkg_path(svc, "a")).exists()
    assert signing.signature_path(pkg_path(svc, "a", "2.0-1")).exists()
    store.publish("core", upload("b"))
    store.remove_package("core", "x86_64", "b")
    assert not signing.signature_path(pkg_path(svc, "b")).exists()
    orphan = store.pkg_dir / "core" / "x86_64" / "gone-1-1-x86_64.pkg.tar.zst.sig"
    orphan.write_bytes(b"left over")
    stop(svc)

    svc = start(sign="true")
    assert not orphan.exists()
    assert_signed_by(svc.signer.public_key, pkg_path(svc, "a", "2.0-1"), svc.signer.fingerprint)


def test_a_burst_of_publishes_signs_the_db_once(start, upload, monkeypatch):
    svc = start(sign="true")
    store = svc.store
    store.publish("core", upload("first"))
    signed: list[list[str]] = []
    real_sign = svc.signer.sign
    monkeypatch.setattr(svc.signer, "sign", lambda files: signed.append(
        [p.name for p, _ in files]) or real_sign(files))
    uploads = [upload(f"p{i}") for i in range(10)]
    threads = [threading.Thread(target=store.publish, args=("core", p)) for p in uploads]
    with store._lock(("archives", "core", "x86_64")):  # the writer is busy...
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(svc.db.packages("core", "x86_64")) < 11:  # ...while all ten commit
            assert time.monotonic() < deadline, "publishes did not commit"
            time.sleep(0.01)
    for thread in threads:
        thread.join(60)
    archive_calls = [names for names in signed if "core.db.tar.gz" in names]
    assert archive_calls == [["core.db.tar.gz", "core.files.tar.gz"]]  # one gpg run per archive
    assert len([names for names in signed if names not in archive_calls]) == 10  # the packages
    data, sig = db_pair(svc)
    assert verify(svc.signer.public_key, sig, data)[0]


def test_only_the_newest_generations_stay(start, upload):
    svc = start(sign="true")
    for i in range(6):
        svc.store.publish("core", upload(f"g{i}"))
    directory = svc.store.repos_dir / "core" / "x86_64"
    generations = [p for p in directory.iterdir() if p.name.startswith(archives.GENERATION)]
    current = os.readlink(directory / archives.CURRENT)
    assert len(generations) == 1 + archives.KEEP_OLD and current in {p.name for p in generations}


def test_a_reader_never_sees_a_db_with_another_rewrites_signature(start, upload):
    """Read db, its signature, and db again while publishes rewrite them: whenever both db
    reads are the same, the signature read between them must be that db's."""
    svc = start(sign="true")
    store = svc.store
    store.publish("core", upload("seed"))
    uploads = [upload(f"burst{i}") for i in range(24)]
    stop_reading = threading.Event()
    pairs: dict[tuple[bytes, bytes], None] = {}

    def read() -> None:
        while not stop_reading.is_set():
            first = store.db_file("core", "x86_64", "core.db").read_bytes()
            sig = store.db_file("core", "x86_64", "core.db.sig").read_bytes()
            if store.db_file("core", "x86_64", "core.db").read_bytes() == first:
                pairs[(first, sig)] = None

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    publishers = [threading.Thread(target=store.publish, args=("core", p)) for p in uploads]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join(120)
    stop_reading.set()
    for reader in readers:
        reader.join(30)
    dbs = {db for db, _ in pairs}
    assert len(dbs) >= 3, "the readers saw too few rewrites to tell anything"
    bad = [db for db, sig in pairs if not verify(svc.signer.public_key, sig, db)[0]]
    assert bad == []


# -- an existing repo ------------------------------------------------------------------------

def run_sync(svc, own: set[str] | None = None) -> None:
    signer = svc.signer
    SignatureSync(svc.store, signer, signer.own if signer else (own or set())).run(
        threading.Event())


def test_signing_an_existing_repo_then_turning_it_off(start, upload, scratch_gpg, caplog):
    caplog.set_level(logging.INFO)
    other = scratch_gpg.new_key("Packager <packager@example.invalid>")
    svc = start()
    store = svc.store
    store.publish("core", upload("common", arch="any"))
    store.publish("core", upload("tool", arch="aarch64"))
    store.publish("core", upload("plain"))
    theirs_path = upload("theirs")
    theirs = scratch_gpg.sign(other, theirs_path.read_bytes())
    store.publish("core", theirs_path, signature=theirs)
    assert not archives.is_signed(store.repos_dir / "core" / "x86_64", "core")
    stop(svc)

    svc = start(sign="true")
    store, signer = svc.store, svc.signer
    assert not archives.is_signed(store.repos_dir / "core" / "x86_64", "core")  # not at start
    run_sync(svc)
    for arch in ("x86_64", "aarch64"):
        data, sig = db_pair(svc, arch)
        assert verify(signer.public_key, sig, data)[0]
    for path in (pkg_path(svc, "common", arch="x86_64", pkg_arch="any"),
                 pkg_path(svc, "common", arch="aarch64", pkg_arch="any"),
                 pkg_path(svc, "tool", arch="aarch64"), pkg_path(svc, "plain")):
        assert_signed_by(signer.public_key, path, signer.fingerprint)
    # the any package's two files are one: signed once, the signature linked
    shared = [signing.signature_path(pkg_path(svc, "common", arch=a, pkg_arch="any")).stat()
              for a in ("x86_64", "aarch64")]
    assert shared[0].st_ino == shared[1].st_ino
    assert signing.signature_path(pkg_path(svc, "theirs")).read_bytes() == theirs
    assert "signatures: signing 4 packages" in caplog.text
    assert "signed the db archives of 2 arch-repos and 4 packages" in caplog.text
    own = signer.own
    stop(svc)

    svc = start()
    run_sync(svc, own)
    store = svc.store
    for arch in ("x86_64", "aarch64"):
        directory = store.repos_dir / "core" / arch
        assert not archives.is_signed(directory, "core")
        assert not store.db_file("core", arch, "core.db.sig").exists()
        assert not (directory / "core.db.sig").is_symlink()
    assert [p.name for p in store.pkg_dir.rglob("*.sig")] == [
        signing.signature_path(pkg_path(svc, "theirs")).name]
    assert "removed the signatures of the db archives of 2 arch-repos and 4 packages" \
        in caplog.text
