"""Tests for vieter_lite.repo.vercmp, checked against pacman's own vercmp binary."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from vieter_lite.repo.vercmp import rpmvercmp, split_evr, vercmp, version_key

VERCMP = shutil.which("vercmp")
needs_oracle = pytest.mark.skipif(
    VERCMP is None, reason="pacman's vercmp binary is not installed"
)

# (a, b, expected vercmp(a, b)). Every row is also confirmed by the oracle test.
CASES: list[tuple[str, str, int]] = [
    # identical / trivial
    ("1.0", "1.0", 0),
    ("", "", 0),
    ("", "1", -1),
    ("", "a", 1),  # an empty string beats a trailing alpha part
    ("1", "2", -1),
    ("1.0", "2.0", -1),
    ("1.0", "1.0.1", -1),
    ("1.0.0", "1.0", 1),
    ("1.2.3", "1.2.10", -1),
    ("10", "9", 1),
    # epochs
    ("1:1.0", "2.0", 1),
    ("1:1.0-1", "2.0-1", 1),
    ("0:1.0", "1.0", 0),
    ("00:1.0", "0:1.0", 0),
    (":1.0", "1.0", 0),  # empty epoch means 0
    ("1:1.0", "1:2.0", -1),
    ("2:0.1", "1:9.9", 1),
    ("10:1", "9:1", 1),
    ("1:", "1:0", -1),
    ("a:1.0", "1.0", -1),  # not an epoch: version "a:1.0", alpha loses to numeric
    ("1a:1.0", "1.0", -1),  # not an epoch; then "a" (no separator) < ".0"
    ("1:2:3", "1:2", 1),  # only the first ':' ends the epoch
    # pkgrel
    ("1.0-2", "1.0-10", -1),
    ("1.0-1", "1.0-1", 0),
    ("1.0", "1.0-1", 0),  # release ignored when one side lacks it
    ("1.0-5", "1.0", 0),
    ("1.0-1", "1.1", -1),
    ("1.0-1.1", "1.0-1", 1),
    ("1.0-1", "1.0-1.1", -1),
    ("1.0-", "1.0-1", -1),  # empty release
    ("1.0-", "1.0", 0),
    ("1-2-3", "1-2-4", -1),  # release is after the *last* '-'
    ("1-2-3", "1-3-1", -1),
    ("1:1.0-2", "1:1.0-1", 1),
    # alpha vs numeric segments, pre-releases
    ("1.0a", "1.0", -1),
    ("1.0alpha", "1.0", -1),
    ("1.0alpha", "1.0beta", -1),
    ("1.0rc1", "1.0", -1),
    ("1.0rc1", "1.0rc2", -1),
    ("1.0rc", "1.0rc1", -1),
    ("1.0", "1.0.a", -1),  # unlike "1.0a": a separator before the letters makes it newer
    ("1.0.a", "1.0.1", -1),
    ("1.0a", "1.0.1", -1),
    ("1.0a", "1.0b", -1),
    ("1a", "1b", -1),
    ("1.a", "1.1", -1),  # numeric segment beats alpha segment
    ("a", "1", -1),
    ("A", "a", -1),  # byte order: uppercase first
    ("abc", "abd", -1),
    ("1.0a1", "1.0a", 1),
    ("2.0a", "1.9", 1),
    # leading zeros
    ("1.01", "1.1", 0),
    ("1.001", "1.1", 0),
    ("1.010", "1.10", 0),
    ("1.0010", "1.9", 1),
    ("0", "00", 0),
    ("1.0", "1.00", 0),
    # separators
    ("1.0", "1_0", 0),
    ("1.0", "1+0", 0),
    ("1..0", "1.0", 1),  # longer separator run wins
    ("1.0", "1...0", -1),
    ("1.0.", "1.0", 1),
    ("1.0", "1.0..", -1),
    ("1.0.", "1.0_", 0),
    (".1.0", "1.0", 1),
    ("1.0", "1.0+", -1),
    ("1.0+", "1.0.1", -1),
    ("1_0_0", "1.0.0", 0),
    # tildes and unusual characters (just separators to pacman)
    ("1.0~rc1", "1.0", 1),
    ("1.0~rc1", "1.0rc1", 1),
    ("1~0", "1.0", 0),
    ("1.0 1", "1.0.1", 0),
    ("1.0é", "1.0", 1),  # non-ASCII bytes are separators
    ("1.0é1", "1.0..1", 0),  # 'é' is two UTF-8 bytes, a run of two
    ("1.0ä", "1.0ß", 0),
    # long numbers (beyond 64 bit)
    ("123456789012345678901234567890", "123456789012345678901234567891", -1),
    ("99999999999999999999", "100000000000000000000", -1),
    ("1.00000000000000000000000000001", "1.1", 0),
    ("18446744073709551616", "18446744073709551615", 1),
    # git-style versions
    ("r123.abcdef0", "r124.0000000", -1),
    ("r123.abcdef0", "r123.abcdef1", -1),
    ("r1234.abcdef0", "r999.fffffff", 1),
    ("1.0.r12.gabcdef-1", "1.0.r9.g1234567-1", 1),
    ("1.0.r12.gabcdef-1", "1.0-1", 1),
    ("0.1.r5.g1234567", "0.1", 1),
    ("1.2.3.r4.g5678", "1.2.4", -1),
]


def _oracle(a: str, b: str) -> int | None:
    """Ask pacman's vercmp; return None if its answer is unusable."""
    if a in ("-h", "--help"):
        return None  # vercmp treats these as options
    proc = subprocess.run(
        [VERCMP, a, b], capture_output=True, text=True, check=False, timeout=10
    )
    out = proc.stdout.strip()
    if proc.returncode != 0 or proc.stderr or out not in ("-1", "0", "1"):
        return None
    return int(out)


def _ids() -> list[str]:
    return [f"{a!r}~{b!r}" for a, b, _ in CASES]


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({(a, b) for a, b, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("a", "b", "expected"), CASES, ids=_ids())
def test_vercmp_table(a: str, b: str, expected: int) -> None:
    assert vercmp(a, b) == expected


@pytest.mark.parametrize(("a", "b", "expected"), CASES, ids=_ids())
def test_vercmp_antisymmetric(a: str, b: str, expected: int) -> None:
    assert vercmp(b, a) == -vercmp(a, b)
    assert vercmp(a, a) == 0


@needs_oracle
def test_table_matches_oracle() -> None:
    mismatches = []
    for a, b, expected in CASES:
        for x, y, want in ((a, b, expected), (b, a, -expected)):
            got = _oracle(x, y)
            if got != want:
                mismatches.append((x, y, want, got))
    assert mismatches == []


_ALPHABET = "0123456789" "abrxzAZ" ".-_:+"


def _random_version(rng: random.Random) -> str:
    n = rng.randint(0, 8)
    return "".join(rng.choice(_ALPHABET) for _ in range(n))


def _mutate(rng: random.Random, s: str) -> str:
    chars = list(s)
    for _ in range(rng.randint(1, 2)):
        op = rng.randrange(3)
        pos = rng.randint(0, len(chars))
        if op == 0 or not chars:
            chars.insert(pos, rng.choice(_ALPHABET))
        elif op == 1:
            del chars[min(pos, len(chars) - 1)]
        else:
            chars[min(pos, len(chars) - 1)] = rng.choice(_ALPHABET)
    return "".join(chars)


def _random_pairs(count: int, seed: int = 20240607) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        a = _random_version(rng)
        # Near-identical pairs reach the interesting tail of the algorithm.
        b = _mutate(rng, a) if rng.random() < 0.6 else _random_version(rng)
        pairs.append((a, b))
    return pairs


@needs_oracle
def test_random_pairs_match_oracle() -> None:
    mismatches = []
    checked = 0
    for a, b in _random_pairs(300):
        want = _oracle(a, b)
        if want is None:
            continue
        checked += 1
        got = vercmp(a, b)
        if got != want:
            mismatches.append((a, b, want, got))
    assert checked >= 290
    assert mismatches == []


def test_random_pairs_antisymmetric() -> None:
    for a, b in _random_pairs(300, seed=7):
        assert vercmp(a, b) == -vercmp(b, a), (a, b)


# --- direct tests of the helpers ---------------------------------------------


@pytest.mark.parametrize(
    ("evr", "expected"),
    [
        ("1.0", ("0", "1.0", None)),
        ("1.0-1", ("0", "1.0", "1")),
        ("2:1.0-1", ("2", "1.0", "1")),
        (":1.0", ("0", "1.0", None)),
        ("00:1.0", ("00", "1.0", None)),
        ("1:2:3-4", ("1", "2:3", "4")),
        ("a:1.0", ("0", "a:1.0", None)),
        ("1-2-3", ("0", "1-2", "3")),
        ("1.0-", ("0", "1.0", "")),
        ("1:", ("1", "", None)),
        ("1:-2", ("1", "", "2")),
        ("-", ("0", "", "")),
        ("", ("0", "", None)),
        ("١:1.0", ("0", "١:1.0", None)),  # Arabic-Indic digit is not a digit to C
    ],
)
def test_split_evr(evr: str, expected: tuple[str, str, str | None]) -> None:
    assert split_evr(evr) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.0", "1.0", 0),
        ("1.0-1", "1.0", 1),  # no release handling: '-' is a separator here
        ("1:0", "1", 1),  # no epoch handling either
        ("1.0a", "1.0", -1),
        ("1..0", "1.0", 1),
    ],
)
def test_rpmvercmp(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


def test_nul_ends_the_string_like_c() -> None:
    assert vercmp("1.0\0garbage", "1.0") == 0
    assert rpmvercmp("1.0\0x", "1.0\0y") == 0


def test_version_key_sorts() -> None:
    versions = ["1.0-1", "1:0.1-1", "1.0a-1", "1.0.1-1", "0.9-1", "1.0-10", "1.0-2"]
    assert sorted(versions, key=version_key) == [
        "0.9-1",
        "1.0a-1",
        "1.0-1",
        "1.0-2",
        "1.0-10",
        "1.0.1-1",
        "1:0.1-1",
    ]
