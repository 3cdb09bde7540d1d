"""vieter_lite.gpg: the real gpg on a private home: keys, detached signatures checked by
gpgv, a long home path, the agent ended by close()."""

from __future__ import annotations

import os
import time

import pytest

from gpgkeys import agent_pid, gpg_available, verify
from vieter_lite import pgp
from vieter_lite.gpg import GnuPG, GpgError, Key, parse_keys

pytestmark = pytest.mark.skipif(not gpg_available(), reason="gpg, gpgv or gpg-agent missing")

# `gpg --with-colons` lines as GnuPG 2.2 prints them (fields cut after the ones read)
COLONS = {
    "an Ed25519 secret key": (
        "sec:u:255:22:C0EEA94574A86BE9:1796373851:::u:::scSC:::+::ed25519:::0:\n"
        "fpr:::::::::e7cebaea9230ba685fa80cd0c0eea94574a86be9:\n"
        "grp:::::::::7284121B5B6B035E76CA578DBB698E6ACCB5B088:\n"
        "uid:u::::1796373851::531F::Test <t@example.invalid>::::::::::0:\n",
        [Key("E7CEBAEA9230BA685FA80CD0C0EEA94574A86BE9", 1796373851,
             "Test <t@example.invalid>", True, True)]),
    "a public key that only certifies, with a signing subkey": (
        "pub:-:3072:1:AAAABBBBCCCCDDDD:1700000000:::-:::cSC:::::::\n"
        "fpr:::::::::1111111111111111111111111111111111111111:\n"
        "uid:-::::1700000000::AB::Two <two@example.invalid>:::\n"
        "sub:-:3072:1:EEEEFFFF00001111:1700000000::::::s::::::\n"
        "fpr:::::::::2222222222222222222222222222222222222222:\n",
        [Key("1111111111111111111111111111111111111111", 1700000000,
             "Two <two@example.invalid>", True, False)]),
    "a revoked key and an encryption-only key": (
        "pub:r:255:22:AAAA:1700000000:::-:::sc:::::::\n"
        "fpr:::::::::3333333333333333333333333333333333333333:\n"
        "pub:-:255:18:BBBB:1700000001:::-:::eE:::::::\n"
        "fpr:::::::::4444444444444444444444444444444444444444:\n",
        [Key("3333333333333333333333333333333333333333", 1700000000, "", False, False),
         Key("4444444444444444444444444444444444444444", 1700000001, "", False, False)]),
    "nothing": ("", []),
}


@pytest.mark.parametrize("case", COLONS)
def test_parse_keys(case):
    text, keys = COLONS[case]
    assert parse_keys(text) == keys


@pytest.fixture
def home(tmp_path):
    gpg = GnuPG(tmp_path / "gnupg")
    gpg.prepare()
    yield gpg
    gpg.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_new_key_signs_files_gpgv_accepts(home, tmp_path):
    assert oct(home.home.stat().st_mode & 0o777) == "0o700"
    fpr = home.generate("Repo <repo@example.invalid>")
    [key] = home.secret_keys()
    assert (key.fingerprint, key.uid, key.can_sign) == (fpr, "Repo <repo@example.invalid>",
                                                        True)
    public = home.export_public(fpr)
    assert public.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert b"PRIVATE" not in public and pgp.key_fingerprint(public) == fpr
    files = []
    for i in range(5):
        path = tmp_path / f"file{i}"
        path.write_bytes(os.urandom(1000 + i))
        files.append((path, tmp_path / f"file{i}.sig"))
    home.sign(fpr, files)
    for path, sig in files:
        ok, status = verify(public, sig.read_bytes(), path.read_bytes())
        assert ok and f"VALIDSIG {fpr}" in status
        # binary, v4, a document's signature: what pacman reads
        parsed = pgp.parse_signature(sig.read_bytes())
        assert (parsed.version, parsed.sig_type, parsed.issuer_fpr) == (4, 0, fpr)


def test_the_new_key_has_no_passphrase_and_never_expires(home):
    fpr = home.generate("Repo <repo@example.invalid>")
    listed = home.run("--with-colons", "--list-secret-keys", fpr).decode()
    sec = next(line for line in listed.splitlines() if line.startswith("sec:"))
    assert sec.split(":")[6] == ""  # no expiry date
    # a key with a passphrase would fail here: the passphrase given is empty
    home.run("--yes", "--local-user", fpr, "--clearsign", "--output", "-",
             input=b"hello\n")


def test_a_failing_call_says_why(home, tmp_path):
    with pytest.raises(GpgError, match="detach-sign failed: missing"):
        home.sign("0" * 40, [(tmp_path / "missing", tmp_path / "missing.sig")])
    with pytest.raises(GpgError, match="not installed"):
        GnuPG(tmp_path / "other", program="gpg-that-is-not-there").prepare()


def test_a_long_home_goes_through_a_short_alias_and_close_ends_the_agent(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 30) / "gnupg"
    assert len(str(deep)) > 86
    gpg = GnuPG(deep)
    gpg.prepare()
    try:
        fpr = gpg.generate("Long <long@example.invalid>")
        path = tmp_path / "f"
        path.write_bytes(b"x")
        gpg.sign(fpr, [(path, tmp_path / "f.sig")])
        alias = gpg.home_for_gpg()
        assert alias != deep and len(str(alias)) <= 86 and alias.resolve() == deep.resolve()
        pid = agent_pid(alias)
        assert pid is not None and alive(pid)
    finally:
        gpg.close()
    assert not alias.exists()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
