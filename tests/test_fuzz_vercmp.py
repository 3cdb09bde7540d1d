"""Fuzzing vercmp: on generated versions it agrees with Debian's `/usr/bin/vercmp` (libalpm's
own, many pairs per oracle call), and on well-formed versions it is a total order
(reflexive, antisymmetric, transitive, its equality an equivalence)."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest
from hypothesis import strategies as st

from fuzzing import fuzz
from vieter_lite import names
from vieter_lite.repo.vercmp import vercmp

pytestmark = pytest.mark.skipif(shutil.which("vercmp") is None, reason="needs pacman's vercmp")

SEGMENT = st.one_of(st.from_regex(r"[0-9]{1,4}", fullmatch=True),
                    st.from_regex(r"[a-z]{1,3}", fullmatch=True),
                    st.sampled_from(["0", "00", "1", "01", "10", "a", "alpha", "beta", "rc",
                                     "pre", "r", "g"]))
SEP = st.sampled_from([".", "_", "+", "~", "-", ":", "..", "", "é", "+."])
# anything: versions glued from segments and separators of all kinds, and plain text
ANY_VERSION = st.one_of(
    st.lists(st.tuples(SEP, SEGMENT), max_size=5).map(
        lambda parts: "".join(s + g for s, g in parts)),
    st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=8),
    st.text(st.sampled_from("01a9Z.-:_+~"), max_size=8))
# well-formed: [epoch:]segments joined by single dots[-pkgrel], as makepkg writes them
PKGVER = st.lists(SEGMENT, min_size=1, max_size=4).map(".".join)
WELL_FORMED = st.builds(lambda epoch, ver, rel: f"{epoch}{ver}-{rel}",
                        st.sampled_from(["", "1:", "2:", "0:"]), PKGVER,
                        st.from_regex(r"[0-9]{1,2}(\.[0-9])?", fullmatch=True))


def oracle(pairs: list[tuple[str, str]]) -> list[int]:
    """/usr/bin/vercmp on every pair, in one xargs call: the sign of each answer."""
    data = b"".join(a.encode() + b"\0" + b.encode() + b"\0" for a, b in pairs)
    out = subprocess.run(["xargs", "-0", "-n", "2", "/usr/bin/vercmp"], input=data,
                         capture_output=True, check=True).stdout.decode().split()
    assert len(out) == len(pairs), (pairs, out)
    return [(int(v) > 0) - (int(v) < 0) for v in out]


@fuzz(cost=4, versions=st.lists(st.one_of(ANY_VERSION, WELL_FORMED), min_size=2, max_size=8))
def test_vercmp_agrees_with_libalpm(versions):
    pairs = list(itertools.product(versions, repeat=2))
    assert [vercmp(a, b) for a, b in pairs] == oracle(pairs)


@fuzz(versions=st.lists(WELL_FORMED, min_size=1, max_size=6))
def test_vercmp_is_a_total_order_on_well_formed_versions(versions):
    for v in versions:
        names.check_version(v)  # the strategy makes what the repo accepts
        assert vercmp(v, v) == 0
    for a, b in itertools.product(versions, repeat=2):
        assert vercmp(a, b) == -vercmp(b, a), (a, b)
    for a, b, c in itertools.product(versions, repeat=3):
        ab, bc, ac = vercmp(a, b), vercmp(b, c), vercmp(a, c)
        if ab <= 0 and bc <= 0:
            assert ac <= 0, (a, b, c)
        if ab == 0:  # equal versions compare alike with everything else
            assert ac == bc, (a, b, c)
    ordered = sorted(versions, key=lambda v: [vercmp(v, w) for w in versions].count(1))
    assert all(vercmp(x, y) <= 0 for x, y in itertools.pairwise(ordered))


@fuzz(a=ANY_VERSION, b=ANY_VERSION, tail=st.text(max_size=4))
def test_vercmp_is_antisymmetric_and_ends_at_a_nul(a, b, tail):
    assert vercmp(a, b) == -vercmp(b, a)
    assert vercmp(a + "\0" + tail, b) == vercmp(a, b)
