"""vieter_lite.pgp: reading detached signatures and key fingerprints, checked against
what the real gpg makes and says about it."""

from __future__ import annotations

import re

import pytest

from gpgkeys import gpg_available
from vieter_lite import pgp

pytestmark = pytest.mark.skipif(not gpg_available(), reason="gpg, gpgv or gpg-agent missing")

DATA = b"some package bytes\n" * 100


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """{algo: (gpg, fingerprint)} of an Ed25519 and an RSA key in one scratch home."""
    from gpgkeys import ScratchGpg

    gpg = ScratchGpg()
    try:
        yield gpg, {"ed25519": gpg.new_key("Ed <ed@example.invalid>"),
                    "rsa2048": gpg.new_key("Rsa <rsa@example.invalid>", "rsa2048")}
    finally:
        gpg.close()


def gpg_says(gpg, signature: bytes) -> dict[str, str]:
    """What `gpg --list-packets` reads from a signature: version, class, algos, issuer."""
    path = gpg.home / "listed.sig"
    path.write_bytes(signature)
    text = gpg.run("--list-packets", str(path)).stdout.decode()
    return {"version": re.search(r"version (\d+)", text).group(1),
            "class": re.search(r"sigclass 0x([0-9a-f]{2})", text).group(1),
            "algo": re.search(r"algo (\d+), keyid", text).group(1),
            "digest": re.search(r"digest algo (\d+)", text).group(1),
            "keyid": re.search(r"keyid ([0-9A-F]{16})", text).group(1),
            "fpr": re.search(r"issuer fpr v4 ([0-9A-F]{40})", text).group(1)}


@pytest.mark.parametrize("algo", ["ed25519", "rsa2048"])
@pytest.mark.parametrize("text", [False, True])
def test_a_signature_reads_as_gpg_lists_it(keys, algo, text):
    gpg, fprs = keys
    raw = gpg.sign(fprs[algo], DATA, text=text)
    sig = pgp.parse_signature(raw)
    said = gpg_says(gpg, raw)
    assert (sig.version, sig.sig_type, sig.pubkey_algo, sig.hash_algo) == (
        int(said["version"]), int(said["class"], 16), int(said["algo"]), int(said["digest"]))
    assert sig.issuer == said["keyid"] and sig.issuer_fpr == said["fpr"] == fprs[algo]
    assert sig.issued_by({fprs[algo]}) and not sig.issued_by({fprs[algo][:-1] + "0"}
                                                             - {fprs[algo]})


def test_what_pacman_cannot_read_is_refused_with_the_reason(keys):
    gpg, fprs = keys
    good = gpg.sign(fprs["ed25519"], DATA)
    armored = gpg.sign(fprs["ed25519"], DATA, armor=True)
    inline = gpg.run("--local-user", fprs["ed25519"], "--sign", "--output", "-",
                     input=DATA).stdout
    key = gpg.export(fprs["ed25519"], armor=False)
    cases = {
        b"": "empty",
        armored: "ASCII-armored",
        good[:-5]: "truncated",
        good + good: "not one OpenPGP signature packet",
        inline: "not one OpenPGP signature packet|indeterminate-length",
        key: "not one OpenPGP signature packet",
        b"\x00" * 50: "not an OpenPGP packet",
        good[:2] + b"\x05" + good[3:]: "version 5",
        good[:3] + b"\x13" + good[4:]: "type 0x13",
        good[:1] + b"\xff" * 20000: "larger than 16384",
    }
    for data, reason in cases.items():
        with pytest.raises(ValueError, match=reason):
            pgp.parse_signature(data)


def test_a_key_id_alone_names_the_issuer_by_the_fingerprint_it_ends():
    fpr = "61A3D7E4B1C2A9F05E4D3C2B1A0987654321FEDC"
    by_id = pgp.Signature(4, 0, 22, 8, fpr[-16:], None)
    assert by_id.issued_by({fpr}) and not by_id.issued_by({"0" * 40})
    assert not pgp.Signature(4, 0, 22, 8, None, None).issued_by({fpr})


@pytest.mark.parametrize("armor", [True, False])
def test_key_fingerprint_is_gpgs(keys, armor):
    gpg, fprs = keys
    for fpr in fprs.values():
        assert pgp.key_fingerprint(gpg.export(fpr, armor=armor)) == fpr


def test_dearmor_gives_the_binary_export_and_checks_the_crc(keys):
    gpg, fprs = keys
    armored = gpg.export(fprs["ed25519"]).decode()
    assert pgp.dearmor(armored) == gpg.export(fprs["ed25519"], armor=False)
    lines = armored.splitlines()
    crc_line = next(i for i, line in enumerate(lines) if line.startswith("="))
    lines[crc_line] = "=AAAA"
    with pytest.raises(ValueError, match="checksum"):
        pgp.dearmor("\n".join(lines))
    with pytest.raises(ValueError, match="not an ASCII-armored"):
        pgp.dearmor("hello")
