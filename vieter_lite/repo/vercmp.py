"""pacman's vercmp: compare full package versions ([epoch:]pkgver[-pkgrel])."""

# A faithful port of libalpm's lib/libalpm/version.c (pacman 6.x):
# ``rpmvercmp`` (segment comparison), ``parseEVR`` (here ``split_evr``) and
# ``alpm_pkg_vercmp`` (here ``vercmp``).
#
# Porting notes, where Python and C differ:
#
# * C works on bytes in the "C" locale. ``isalnum``/``isdigit``/``isalpha``
#   are ASCII-only, so every other byte (including each byte of a non-ASCII
#   UTF-8 character) is a separator. We therefore compare the UTF-8 encoding
#   of the strings and use explicit ASCII tables, never ``str.isalnum`` or
#   ``str.isdigit`` (which accept Unicode letters and digits).
# * A C string ends at its first NUL, so everything from a NUL on is ignored.
# * The result is the sign only: -1, 0 or 1.
#
# Caveat for sorting: because a missing release is ignored, the relation is not
# transitive ("1.0-1" == "1.0" == "1.0-2" but "1.0-1" < "1.0-2"), and separator
# runs make odd pairs too. ``version_key`` is fine for versions of one package,
# which always carry a pkgrel, but it is not a total order over all strings.

from __future__ import annotations

from functools import cmp_to_key

__all__ = ["rpmvercmp", "split_evr", "vercmp", "version_key"]

_DIGITS = frozenset(b"0123456789")
_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _DIGITS | _ALPHA


def _c_str(s: str) -> str:
    """Cut ``s`` at its first NUL, as a C string would end there."""
    nul = s.find("\0")
    return s if nul < 0 else s[:nul]


def _to_bytes(s: str) -> bytes:
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates outside the escape range
        return s.encode("utf-8", "surrogatepass")


def _rpmvercmp_bytes(a: bytes, b: bytes) -> int:
    """libalpm's rpmvercmp() on byte strings (no NULs)."""
    if a == b:
        return 0

    n1, n2 = len(a), len(b)
    # one/two: start of the current segment; ptr1/ptr2: end of the previous one.
    one = ptr1 = 0
    two = ptr2 = 0

    while one < n1 and two < n2:
        while one < n1 and a[one] not in _ALNUM:
            one += 1
        while two < n2 and b[two] not in _ALNUM:
            two += 1

        # Ran off the end of either string: leave the loop.
        if not (one < n1 and two < n2):
            break

        # Different separator lengths: the longer run is newer.
        sep1, sep2 = one - ptr1, two - ptr2
        if sep1 != sep2:
            return -1 if sep1 < sep2 else 1

        ptr1, ptr2 = one, two

        # The segment kind is decided by the first string only.
        if a[ptr1] in _DIGITS:
            while ptr1 < n1 and a[ptr1] in _DIGITS:
                ptr1 += 1
            while ptr2 < n2 and b[ptr2] in _DIGITS:
                ptr2 += 1
            isnum = True
        else:
            while ptr1 < n1 and a[ptr1] in _ALPHA:
                ptr1 += 1
            while ptr2 < n2 and b[ptr2] in _ALPHA:
                ptr2 += 1
            isnum = False

        # Cannot happen: ``one`` sits on an alphanumeric byte.
        if one == ptr1:  # pragma: no cover
            return -1

        # Segments of different kinds: numeric beats alpha.
        if two == ptr2:
            return 1 if isnum else -1

        seg1 = a[one:ptr1]
        seg2 = b[two:ptr2]
        if isnum:
            seg1 = seg1.lstrip(b"0")
            seg2 = seg2.lstrip(b"0")
            # More digits wins (no integer conversion: numbers may be huge).
            if len(seg1) != len(seg2):
                return 1 if len(seg1) > len(seg2) else -1

        # Same-length numbers, or alpha segments: byte-wise strcmp.
        if seg1 != seg2:
            return -1 if seg1 < seg2 else 1

        one, two = ptr1, ptr2

    # All segments compared equal; only separators may have differed.
    one_end = one >= n1
    two_end = two >= n2
    if one_end and two_end:
        return 0

    # The final showdown: a remaining alpha part never beats an empty string
    # (so "1.0a" < "1.0"), otherwise whoever has more left is newer.
    if (one_end and b[two] not in _ALPHA) or (not one_end and a[one] in _ALPHA):
        return -1
    return 1


def rpmvercmp(a: str, b: str) -> int:
    """Compare two version fragments segment by segment; return -1, 0 or 1.

    This is libalpm's ``rpmvercmp``: it knows nothing about epochs or
    releases (``vercmp`` splits those off first).
    """
    return _rpmvercmp_bytes(_to_bytes(_c_str(a)), _to_bytes(_c_str(b)))


def split_evr(version: str) -> tuple[str, str, str | None]:
    """Split ``[epoch:]version[-release]`` like libalpm's ``parseEVR``.

    * epoch: the leading run of ASCII digits when it is directly followed by
      ``:``; ``"0"`` when there is no such prefix or the run is empty
      (``":1.0"`` has epoch ``"0"``).
    * release: everything after the last ``-``, or ``None`` without a ``-``
      (it may be ``""``: ``"1.0-"``).
    * version: the rest (may be empty).

    >>> split_evr("2:1.0-3")
    ('2', '1.0', '3')
    >>> split_evr("1.0")
    ('0', '1.0', None)
    """
    evr = _c_str(version)
    s = 0
    while s < len(evr) and evr[s] in "0123456789":
        s += 1
    # libalpm searches for the last '-' from ``s`` on; the digits before ``s``
    # contain none, so this is simply the last '-' of the string.
    dash = evr.rfind("-", s)
    if dash >= 0:
        release: str | None = evr[dash + 1 :]
        rest = evr[:dash]
    else:
        release = None
        rest = evr
    if s < len(evr) and evr[s] == ":":
        # The ':' lies before the last '-', as s only walked over digits.
        epoch = evr[:s] or "0"
        ver = rest[s + 1 :]
    else:
        epoch = "0"
        ver = rest
    return epoch, ver, release


def vercmp(a: str, b: str) -> int:
    """Compare two full package versions like ``alpm_pkg_vercmp``.

    Returns -1 if ``a`` is older than ``b``, 0 if they are equal and 1 if
    ``a`` is newer. Identical strings are equal; otherwise the epochs are
    compared, then the versions, then the releases, but only when both sides
    have a release.
    """
    a = _c_str(a)
    b = _c_str(b)
    if a == b:
        return 0
    epoch1, ver1, rel1 = split_evr(a)
    epoch2, ver2, rel2 = split_evr(b)
    ret = _rpmvercmp_bytes(_to_bytes(epoch1), _to_bytes(epoch2))
    if ret == 0:
        ret = _rpmvercmp_bytes(_to_bytes(ver1), _to_bytes(ver2))
        if ret == 0 and rel1 is not None and rel2 is not None:
            ret = _rpmvercmp_bytes(_to_bytes(rel1), _to_bytes(rel2))
    return ret


#: Sort key for ``sorted(versions, key=version_key)``; see the transitivity
#: caveat at the top of this module.
version_key = cmp_to_key(vercmp)
