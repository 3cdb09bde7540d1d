"""Pure: the little of OpenPGP (RFC 4880) that pacman's signatures need read: a detached
signature's packet (version, type, issuer), an armored key's fingerprint."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

# pacman downloads a .sig with a 16 KiB cap, and repo-add refuses larger ones
MAX_SIGNATURE = 16384
TAG_SIGNATURE = 2
TAG_PUBLIC_KEY = 6
SUBPACKET_ISSUER = 16
SUBPACKET_ISSUER_FPR = 33
# signature types a detached signature of a file may have: binary or text document
DOCUMENT_TYPES = (0x00, 0x01)
ARMOR_BEGIN = b"-----BEGIN PGP "


@dataclass(frozen=True)
class Signature:
    """What a signature packet says about itself."""

    version: int
    sig_type: int
    pubkey_algo: int
    hash_algo: int
    issuer: str | None       # the 16 hex digits of the issuer's key id, upper case
    issuer_fpr: str | None   # the issuer's v4 fingerprint (40 hex digits), when it is given

    def issued_by(self, fingerprints: set[str]) -> bool:
        """Whether one of these (upper-case, 40 hex digit) fingerprints made it."""
        if self.issuer_fpr is not None:
            return self.issuer_fpr in fingerprints
        return self.issuer is not None and any(f.endswith(self.issuer) for f in fingerprints)


def packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each packet; ValueError for a truncated or partial-length packet."""
    pos = 0
    while pos < len(data):
        ctb = data[pos]
        if not ctb & 0x80:
            raise ValueError("not an OpenPGP packet")
        if ctb & 0x40:  # new format
            tag = ctb & 0x3F
            if pos + 1 >= len(data):
                raise ValueError("truncated packet header")
            first = data[pos + 1]
            if first < 192:
                length, header = first, 2
            elif first < 224:
                if pos + 2 >= len(data):
                    raise ValueError("truncated packet header")
                length, header = ((first - 192) << 8) + data[pos + 2] + 192, 3
            elif first == 255:
                length, header = int.from_bytes(data[pos + 2:pos + 6], "big"), 6
                if pos + 6 > len(data):
                    raise ValueError("truncated packet header")
            else:
                raise ValueError("partial-length packets are not expected here")
        else:  # old format
            tag = (ctb >> 2) & 0x0F
            size = (1, 2, 4, 0)[ctb & 0x03]
            if size == 0:
                raise ValueError("indeterminate-length packets are not expected here")
            if pos + 1 + size > len(data):
                raise ValueError("truncated packet header")
            length, header = int.from_bytes(data[pos + 1:pos + 1 + size], "big"), 1 + size
        start = pos + header
        if start + length > len(data):
            raise ValueError("truncated packet")
        yield tag, data[start:start + length]
        pos = start + length


def _subpackets(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(data):
        first = data[pos]
        if first < 192:
            length, header = first, 1
        elif first < 255:
            if pos + 1 >= len(data):
                raise ValueError("truncated signature subpacket")
            length, header = ((first - 192) << 8) + data[pos + 1] + 192, 2
        else:
            length, header = int.from_bytes(data[pos + 1:pos + 5], "big"), 5
        start = pos + header
        if length < 1 or start + length > len(data):
            raise ValueError("truncated signature subpacket")
        yield data[start] & 0x7F, data[start + 1:start + length]
        pos = start + length


def _parse_v4(body: bytes) -> Signature:
    if len(body) < 6:
        raise ValueError("truncated signature")
    hashed_len = int.from_bytes(body[4:6], "big")
    hashed = body[6:6 + hashed_len]
    rest = body[6 + hashed_len:]
    if len(hashed) != hashed_len or len(rest) < 2:
        raise ValueError("truncated signature")
    unhashed_len = int.from_bytes(rest[0:2], "big")
    unhashed = rest[2:2 + unhashed_len]
    if len(unhashed) != unhashed_len or len(rest) < 2 + unhashed_len + 2 + 2:
        raise ValueError("truncated signature")
    issuer = issuer_fpr = None
    for kind, value in (*_subpackets(hashed), *_subpackets(unhashed)):
        if kind == SUBPACKET_ISSUER and len(value) == 8 and issuer is None:
            issuer = value.hex().upper()
        elif kind == SUBPACKET_ISSUER_FPR and len(value) == 21 and value[0] == 4 \
                and issuer_fpr is None:
            issuer_fpr = value[1:].hex().upper()
    if issuer is None and issuer_fpr is not None:
        issuer = issuer_fpr[-16:]
    return Signature(4, body[1], body[2], body[3], issuer, issuer_fpr)


def parse_signature(data: bytes) -> Signature:
    """A detached signature as pacman reads it: binary (not armored), one v3 or v4
    signature packet of a document, at most MAX_SIGNATURE bytes. ValueError says why not."""
    if not data:
        raise ValueError("the signature is empty")
    if len(data) > MAX_SIGNATURE:
        raise ValueError(f"the signature is larger than {MAX_SIGNATURE} bytes")
    if data.lstrip().startswith(ARMOR_BEGIN):
        raise ValueError("the signature is ASCII-armored: pacman needs the binary form "
                         "(gpg --detach-sign without --armor)")
    found = list(packets(data))
    if len(found) != 1 or found[0][0] != TAG_SIGNATURE:
        raise ValueError("not one OpenPGP signature packet")
    body = found[0][1]
    if not body:
        raise ValueError("truncated signature")
    if body[0] == 4:
        sig = _parse_v4(body)
    elif body[0] == 3 and len(body) >= 19 and body[1] == 5:
        sig = Signature(3, body[2], body[15], body[16], body[7:15].hex().upper(), None)
    else:
        raise ValueError(f"signature version {body[0]} is not one pacman reads (3 or 4)")
    if sig.sig_type not in DOCUMENT_TYPES:
        raise ValueError(f"signature type 0x{sig.sig_type:02x} is not a document's")
    return sig


def dearmor(text: str | bytes) -> bytes:
    """The bytes of an ASCII-armored block (its CRC checked when present)."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    lines = [line.strip() for line in raw.strip().splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP "))
        end = next(i for i, line in enumerate(lines) if line.startswith("-----END PGP "))
    except StopIteration:
        raise ValueError("not an ASCII-armored OpenPGP block") from None
    body = lines[start + 1:end]
    if "" in body:  # headers end at the first empty line
        body = body[body.index("") + 1:]
    checksum = None
    if body and body[-1].startswith("="):
        checksum = body.pop()[1:]
    try:
        data = base64.b64decode("".join(body), validate=True)
    except binascii.Error:
        raise ValueError("the armored block is not valid base64") from None
    if checksum is not None and base64.b64encode(crc24(data).to_bytes(3, "big")).decode() \
            != checksum:
        raise ValueError("the armored block's checksum does not match")
    return data


def crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def key_fingerprint(key: bytes) -> str:
    """The v4 fingerprint of the first public key in a (binary or armored) key block."""
    data = dearmor(key) if key.lstrip().startswith(ARMOR_BEGIN) else key
    for tag, body in packets(data):
        if tag == TAG_PUBLIC_KEY:
            if not body or body[0] != 4:
                raise ValueError("only v4 keys are read")
            return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest() \
                .upper()
    raise ValueError("no public key in the key block")
