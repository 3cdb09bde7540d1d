"""Tests for vieter_lite.manifest: build manifests (YAML) and submission bodies as
builds.sr.ht takes them; every rule with good and bad cases, hostile YAML, and hypothesis
for "anything else ends in Invalid"."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vieter_lite import manifest as mf
from vieter_lite.errors import Invalid
from vieter_lite.manifest import Manifest, Source, manifest_of, parse_manifest, parse_submission
from vieter_lite.models import Build

ARCH = "x86_64"
GIT = "source: {git: 'https://aur.archlinux.org/foo.git'}\n"


def invalid(call: Any, *args: Any) -> Invalid:
    with pytest.raises(Invalid) as info:
        call(*args)
    return info.value


# -- manifests that are read ---------------------------------------------------------------

MANIFEST_OK = [
    ("repo: bur\n" + GIT,
     {"repo": "bur", "arch": ARCH, "source": Source("git", url="https://aur.archlinux.org/foo.git"),
      "image": "", "force": False, "timeout": None, "environment": {}, "review": "changes"}),
    ("repo: bur\narch: aarch64\nsource:\n  git: https://e.org/x.git\n  branch: release/1.x\n"
     "  path: pkgs/foo\nimage: archlinux:base-devel\nforce: true\ntimeout: 86400\n"
     "environment: {CFLAGS: -O2, _X1: '', EMPTY: ''}\nreview: always\n",
     {"arch": "aarch64", "source": Source("git", url="https://e.org/x.git", branch="release/1.x",
                                          path="pkgs/foo"),
      "image": "archlinux:base-devel", "force": True, "timeout": 86400,
      "environment": {"CFLAGS": "-O2", "_X1": "", "EMPTY": ""}, "review": "always"}),
    ("repo: bur\nsource: {git: 'git://e.org/x'}\nreview: never\n",
     {"source": Source("git", url="git://e.org/x"), "review": "never"}),
    ("repo: bur\nsource: {git: 'ssh://git@e.org:2222/x.git'}\n",
     {"source": Source("git", url="ssh://git@e.org:2222/x.git")}),
    ("repo: bur\nsource: {url: 'https://e.org/PKGBUILD'}\ntimeout: 1\n",
     {"source": Source("url", url="https://e.org/PKGBUILD"), "timeout": 1, "review": "changes"}),
    ("repo: bur\nsource:\n  pkgbuild: |\n    pkgname=x\n    pkgver=1\n",
     {"source": Source("pkgbuild", pkgbuild="pkgname=x\npkgver=1\n"), "review": "never"}),
    # JSON is YAML
    (json.dumps({"repo": "bur", "source": {"url": "http://e.org/P"}, "force": False}),
     {"repo": "bur", "source": Source("url", url="http://e.org/P"), "force": False}),
    # anchors, aliases and merge keys within the bounds
    ("repo: &r bur\nsource: {git: 'https://e.org/x', branch: *r}\n",
     {"source": Source("git", url="https://e.org/x", branch="bur")}),
    ("repo: bur\nsource:\n  <<: {git: 'https://e.org/x', branch: main}\n  path: sub\n",
     {"source": Source("git", url="https://e.org/x", branch="main", path="sub")}),
    ("# a comment\nrepo: bur  # where\n" + GIT + "...\n", {"repo": "bur"}),
]


@pytest.mark.parametrize("text, expected", MANIFEST_OK, ids=range(len(MANIFEST_OK)))
def test_a_manifest_is_read(text, expected):
    got = parse_manifest(text, ARCH)
    assert isinstance(got, Manifest) and got.text == text
    for name, value in expected.items():
        assert getattr(got, name) == value, name


def test_an_inline_pkgbuild_of_256_kib_is_read_and_one_byte_more_is_not():
    line = "echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n"  # 64 bytes
    pkgbuild = line * (mf.MAX_PKGBUILD // 64)
    assert len(pkgbuild.encode()) == mf.MAX_PKGBUILD
    body = {"repo": "bur", "source": {"pkgbuild": pkgbuild}}
    assert parse_manifest(json.dumps(body), ARCH).source.pkgbuild == pkgbuild
    body["source"]["pkgbuild"] = pkgbuild[:-1] + "\u00e9"  # one character, two bytes
    err = invalid(parse_manifest, json.dumps(body), ARCH)
    assert (err.field, err.code) == ("manifest.source.pkgbuild", "too_long")


# -- manifests that are refused ----------------------------------------------------------------

def _m(**fields: Any) -> str:
    doc: dict[str, Any] = {"repo": "bur", "source": {"git": "https://e.org/x.git"}}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


MANIFEST_BAD = [
    # the document
    ("", "manifest", "missing"),
    ("# only a comment\n", "manifest", "missing"),
    ("- repo: bur", "manifest", "invalid"),
    ("bur", "manifest", "invalid"),
    ("repo: bur\n---\nrepo: other\n", "manifest", "yaml"),
    ("repo: [bur", "manifest", "yaml"),
    ("repo:\tbur\n\tsource: x", "manifest", "yaml"),
    ("repo: bur\nrepo: other\n" + GIT, "manifest.repo", "duplicate"),
    (_m(extra=1), "manifest.extra", "unknown"),
    (_m(triggers=[]), "manifest.triggers", "unknown"),
    ("1: x\nrepo: bur\n" + GIT, "manifest", "unknown"),
    # repo and arch
    (_m(repo=None), "manifest.repo", "missing"),
    (_m(repo="../etc"), "manifest.repo", "invalid"),
    (_m(repo="api"), "manifest.repo", "invalid"),
    (_m(repo=5), "manifest.repo", "invalid"),
    (_m(repo=""), "manifest.repo", "invalid"),
    (_m(arch="any"), "manifest.arch", "invalid"),
    (_m(arch="x86-64"), "manifest.arch", "invalid"),
    (_m(arch=["x86_64"]), "manifest.arch", "invalid"),
    # source
    (_m(source=None), "manifest.source", "missing"),
    (_m(source="https://e.org/x.git"), "manifest.source", "invalid"),
    (_m(source={}), "manifest.source", "missing"),
    (_m(source={"git": "https://e/x", "url": "https://e/P"}), "manifest.source", "invalid"),
    (_m(source={"git": "https://e/x", "pkgbuild": "x"}), "manifest.source", "invalid"),
    (_m(source={"git": "https://e/x", "svn": "x"}), "manifest.source.svn", "unknown"),
    (_m(source={"git": "/srv/x.git"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "file:///srv/x.git"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "ext::sh -c touch% /tmp/x"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "-uhttps://e/x"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "https://e/x y"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "https://e/x\n.git"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "https://[::1"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "https://e:99999/x"}), "manifest.source.git", "invalid"),
    (_m(source={"git": "https://e/" + "x" * 2048}), "manifest.source.git", "invalid"),
    (_m(source={"git": ["https://e/x"]}), "manifest.source.git", "invalid"),
    (_m(source={"url": "ssh://e/PKGBUILD"}), "manifest.source.url", "invalid"),
    (_m(source={"url": "https:///PKGBUILD"}), "manifest.source.url", "invalid"),
    (_m(source={"url": "https://e/P", "branch": "main"}), "manifest.source.branch", "invalid"),
    (_m(source={"pkgbuild": "x", "path": "a"}), "manifest.source.path", "invalid"),
    (_m(source={"git": "https://e/x", "branch": "-f"}), "manifest.source.branch", "invalid"),
    (_m(source={"git": "https://e/x", "branch": "a..b"}), "manifest.source.branch", "invalid"),
    (_m(source={"git": "https://e/x", "branch": "a b"}), "manifest.source.branch", "invalid"),
    (_m(source={"git": "https://e/x", "branch": ""}), "manifest.source.branch", "missing"),
    (_m(source={"git": "https://e/x", "branch": 1}), "manifest.source.branch", "invalid"),
    (_m(source={"git": "https://e/x", "path": "../x"}), "manifest.source.path", "invalid"),
    (_m(source={"git": "https://e/x", "path": "a/../../x"}), "manifest.source.path", "invalid"),
    (_m(source={"git": "https://e/x", "path": "/etc"}), "manifest.source.path", "invalid"),
    (_m(source={"git": "https://e/x", "path": "a\nb"}), "manifest.source.path", "invalid"),
    (_m(source={"pkgbuild": ""}), "manifest.source.pkgbuild", "missing"),
    (_m(source={"pkgbuild": "a\u0000b"}), "manifest.source.pkgbuild", "invalid"),  # JSON escape
    (_m(source={"pkgbuild": 5}), "manifest.source.pkgbuild", "invalid"),
    # image, force, timeout
    (_m(image="-v /:/host"), "manifest.image", "invalid"),
    (_m(image="arch linux"), "manifest.image", "invalid"),
    (_m(image=""), "manifest.image", "missing"),
    (_m(force="yes"), "manifest.force", "invalid"),
    (_m(force=1), "manifest.force", "invalid"),
    (_m(timeout=0), "manifest.timeout", "out_of_range"),
    (_m(timeout=86401), "manifest.timeout", "out_of_range"),
    (_m(timeout=-5), "manifest.timeout", "out_of_range"),
    (_m(timeout=1.5), "manifest.timeout", "invalid"),
    (_m(timeout=True), "manifest.timeout", "invalid"),
    (_m(timeout="60"), "manifest.timeout", "invalid"),
    ("repo: bur\n" + GIT + "timeout: 2001-12-14\n", "manifest.timeout", "invalid"),
    # environment
    (_m(environment=["A=b"]), "manifest.environment", "invalid"),
    (_m(environment={"lower": "x"}), "manifest.environment", "invalid"),
    (_m(environment={"1A": "x"}), "manifest.environment", "invalid"),
    (_m(environment={"A-B": "x"}), "manifest.environment", "invalid"),
    (_m(environment={"": "x"}), "manifest.environment", "invalid"),
    (_m(environment={"A" * 129: "x"}), "manifest.environment", "invalid"),
    (_m(environment={"VL_URL": "x"}), "manifest.environment.VL_URL", "reserved"),
    (_m(environment={"VL_": "x"}), "manifest.environment.VL_", "reserved"),
    (_m(environment={"LD_PRELOAD": "/x.so"}), "manifest.environment.LD_PRELOAD", "reserved"),
    (_m(environment={"BASH_ENV": "/x"}), "manifest.environment.BASH_ENV", "reserved"),
    (_m(environment={"PATH": "/x"}), "manifest.environment.PATH", "reserved"),
    (_m(environment={"A": 1}), "manifest.environment.A", "invalid"),
    (_m(environment={"A": None}), "manifest.environment.A", "invalid"),
    (_m(environment={"A": ["x"]}), "manifest.environment.A", "invalid"),
    (_m(environment={"A": "x" * 4097}), "manifest.environment.A", "too_long"),
    (_m(environment={f"V{i}": "x" for i in range(65)}), "manifest.environment", "too_many"),
    (_m(environment={f"V{i}": "x" * 4000 for i in range(9)}), "manifest.environment",
     "too_large"),
    ("repo: bur\n" + GIT + "environment: {A: 1, A: 2}\n", "manifest.environment.A", "duplicate"),
    ("repo: bur\n" + GIT + "environment: {A: yes}\n", "manifest.environment.A", "invalid"),
    # review
    (_m(review="sometimes"), "manifest.review", "invalid"),
    (_m(review=True), "manifest.review", "invalid"),
    (_m(source={"pkgbuild": "pkgname=x"}, review="never"), "manifest.review", "invalid"),
    (_m(source={"pkgbuild": "pkgname=x"}, review="always"), "manifest.review", "invalid"),
]


@pytest.mark.parametrize("text, field, code", MANIFEST_BAD,
                         ids=[f"{i}-{f}" for i, (_, f, _c) in enumerate(MANIFEST_BAD)])
def test_an_invalid_manifest_names_its_field(text, field, code):
    err = invalid(parse_manifest, text, ARCH)
    assert (err.field, err.code) == (field, code), err.message
    assert err.message


# -- hostile YAML ------------------------------------------------------------------------------

def _laughs(levels: int, width: int) -> str:
    """The billion laughs: each level a list of `width` aliases of the one before."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _merges(levels: int, width: int, pairs: int) -> str:
    """Merge keys: each level merges `width` aliases of the one before, and PyYAML copies
    the merged pairs (pairs * width ** levels of them)."""
    lines = ["m0: &m0 {" + ", ".join(f"k{i}: {i}" for i in range(pairs)) + "}"]
    lines += [f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * width) + "]}"
              for i in range(1, levels)]
    return "\n".join(lines) + "\n"


HOSTILE = [
    ("too long", "repo: " + "x" * mf.MAX_TEXT, "manifest", "too_large"),
    ("laughs, wide", _laughs(3, 60), "manifest", "too_large"),
    ("laughs, deep", _laughs(12, 3), "manifest", "too_deep"),
    ("merge keys, wide", _merges(3, 10, 60), "manifest", "too_large"),
    ("merge keys, deep", _merges(30, 2, 2), "manifest", "too_deep"),
    ("recursive alias", "a: &a [*a]\n", "manifest", "too_deep"),
    ("recursive mapping", "a: &a {b: *a}\n", "manifest", "too_deep"),
    ("brackets", "[" * 100000, "manifest", "yaml"),
    ("braces", "{a: " * 50000, "manifest", "yaml"),
    ("deep flow within the scanner's bound", "a: " + "[" * 16 + "]" * 16, "manifest",
     "too_deep"),
    ("deep block lists", "- " * 20000 + "x", "manifest", "too_deep"),
    ("deep block mappings", "".join(" " * i + "a:\n" for i in range(600)), "manifest",
     "too_deep"),
    ("python tag", "!!python/object/apply:os.system ['true']", "manifest", "yaml"),
    ("python name", "repo: !!python/name:os.system\n", "manifest", "yaml"),
    ("unknown tag", "repo: !vault x\n", "manifest", "yaml"),
    ("digits past int's limit", "repo: bur\n" + GIT + "timeout: " + "9" * 5000, "manifest",
     "yaml"),
    ("a 13th month", "repo: bur\n" + GIT + "timeout: 2001-13-01\n", "manifest", "yaml"),
    ("binary", "repo: !!binary aGVsbG8=\n" + GIT, "manifest.repo", "invalid"),
    ("set", "repo: !!set {a, b}\n" + GIT, "manifest.repo", "invalid"),
    ("unhashable key", "? [a]\n: b\n", "manifest", "yaml"),
    ("NUL", "repo: a\x00b\n", "manifest", "yaml"),
    ("lone surrogate", "repo: a\ud800\n", "manifest", "yaml"),
    ("huge float", "repo: bur\n" + GIT + "timeout: 1e999\n", "manifest.timeout", "invalid"),
    ("hex", "repo: bur\n" + GIT + "timeout: 0x" + "f" * 3000, "manifest.timeout",
     "out_of_range"),
    ("not text", b"repo: bur", "manifest", "invalid"),
]


@pytest.mark.parametrize("name, text, field, code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_yaml_ends_in_invalid(name, text, field, code):
    err = invalid(parse_manifest, text, ARCH)
    assert (err.field, err.code) == (field, code), err.message
    assert len(err.message) <= 600


def test_the_node_bound_counts_an_alias_each_time_it_is_used():
    """Under the bound, the same aliases are read (and then refused by name); with enough
    uses they are not read at all."""
    anchor = "l: &l [" + ", ".join(["a"] * 10) + "]\n"  # 11 nodes a use
    few = anchor + "x: [" + ", ".join(["*l"] * 10) + "]\n"
    err = invalid(parse_manifest, few, ARCH)
    assert (err.field, err.code) == ("manifest.l", "unknown")
    many = anchor + "x: [" + ", ".join(["*l"] * (mf.MAX_NODES // 11 + 1)) + "]\n"
    err = invalid(parse_manifest, many, ARCH)
    assert (err.field, err.code) == ("manifest", "too_large")


# -- hypothesis: nothing but a Manifest or Invalid -----------------------------------------------

YAML_ALPHABET = st.sampled_from(list("abAZ09_-:.,[]{}&*!|>'\"#%@`?\n \t\\/=~^$<") +
                                ["repo", "source", "git", "url", "pkgbuild", "arch", "timeout",
                                 "environment", "review", "<<", "!!", "&a", "*a", "---", "...",
                                 "https://e.org/x", "\u00e9", "\x00", "\ud800", "\ufeff",
                                 "\x85", "\u2028", "9" * 30, "0x", "1e9", "2001-01-01"])
KEYS = st.sampled_from(list(mf.MANIFEST_KEYS) + list(mf.SOURCE_KEYS) + ["x", "VL_X", "A"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["https://e.org/x.git", "bur",
                                                           ARCH, "any", "never", "changes"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(KEYS, st.text(max_size=5)), inner,
                                                 max_size=5)), max_leaves=25)
FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _manifest_or_invalid(text: Any) -> None:
    try:
        got = parse_manifest(text, ARCH)
    except Invalid as exc:
        assert exc.field.startswith("manifest") and exc.message
    else:
        assert isinstance(got, Manifest)


@settings(FAST, max_examples=1000)
@given(st.lists(YAML_ALPHABET, max_size=60).map("".join))
def test_any_text_is_a_manifest_or_invalid(text):
    _manifest_or_invalid(text)


@FAST
@given(st.dictionaries(KEYS, VALUES, max_size=8), st.booleans())
def test_any_structure_is_a_manifest_or_invalid(doc, as_json):
    text = json.dumps(doc) if as_json else yaml.safe_dump(doc)
    _manifest_or_invalid(text)


@FAST
@given(st.fixed_dictionaries({"repo": st.just("bur"),
                              "source": st.dictionaries(st.sampled_from(mf.SOURCE_KEYS),
                                                        SCALARS, min_size=1, max_size=3)},
                             optional={k: VALUES for k in ("arch", "image", "force", "timeout",
                                                           "environment", "review")}))
def test_near_valid_manifests_are_read_or_invalid(doc):
    _manifest_or_invalid(yaml.safe_dump(doc))


# -- submissions ------------------------------------------------------------------------------

MANIFEST = "repo: bur\n" + GIT

SUBMISSION_OK = [
    ({"manifest": MANIFEST},
     {"target_id": None, "arch": None, "force": False, "note": "", "tags": (), "labels": {},
      "access_read": ("*",), "access_write": (), "triggers": [], "execute": True}),
    ({"manifest": MANIFEST, "note": "# Nightly\n\n<b>not html</b>\tok\r\n", "tags":
      ["nightly", "a-b_c.d:e", "0"], "access:read": ["alice", "*", "alice"],
      "access:write": ["bob@home", "c.d-e_f"], "execute": False,
      "metadata": {"labels": {"env": "home", "example.com/team": ""}},
      "triggers": [{"action": "webhook", "condition": "failure", "url": "https://e/h",
                    "secret": "s"},
                   {"action": "email", "condition": "always", "to": "a@b", "cc": ["c@d"]}]},
     {"note": "# Nightly\n\n<b>not html</b>\tok\r\n", "tags": ("nightly", "a-b_c.d:e", "0"),
      "access_read": ("alice", "*"), "access_write": ("bob@home", "c.d-e_f"), "execute": False,
      "labels": {"env": "home", "example.com/team": ""}}),
    ({"target_id": 3}, {"manifest": None, "target_id": 3, "arch": None, "force": False}),
    ({"target_id": 3, "arch": "aarch64", "force": True, "note": "x" * 4096},
     {"target_id": 3, "arch": "aarch64", "force": True}),
    ({"target_id": 3, "arch": None}, {"arch": None}),
    ({"manifest": MANIFEST, "tags": [], "access:read": [], "triggers": [], "metadata": {}},
     {"tags": (), "access_read": (), "triggers": [], "labels": {}}),
    ({"manifest": MANIFEST, "tags": ["t" * 64] + [f"t{i}" for i in range(9)]},
     {"tags": ("t" * 64, *[f"t{i}" for i in range(9)])}),
]


@pytest.mark.parametrize("body, expected", SUBMISSION_OK, ids=range(len(SUBMISSION_OK)))
def test_a_submission_is_read(body, expected):
    got = parse_submission(body, ARCH)
    for name, value in expected.items():
        assert getattr(got, name) == value, name
    if "manifest" in body:
        assert got.manifest == parse_manifest(body["manifest"], ARCH)


SUBMISSION_BAD = [
    ({}, "manifest", "missing"),
    ({"note": "x"}, "manifest", "missing"),
    ({"manifest": MANIFEST, "target_id": 3}, "manifest", "invalid"),
    ({"manifest": MANIFEST, "secrets": True}, "secrets", "unknown"),
    ({"manifest": MANIFEST, "arch": ARCH}, "arch", "invalid"),
    ({"manifest": MANIFEST, "force": True}, "force", "invalid"),
    ({"manifest": 5}, "manifest", "invalid"),
    ({"manifest": None}, "manifest", "invalid"),
    ({"manifest": {"repo": "bur"}}, "manifest", "invalid"),
    ({"manifest": "repo: bur\n"}, "manifest.source", "missing"),
    ({"target_id": "3"}, "target_id", "invalid"),
    ({"target_id": True}, "target_id", "invalid"),
    ({"target_id": 3.0}, "target_id", "invalid"),
    ({"target_id": 0}, "target_id", "out_of_range"),
    ({"target_id": 2**63}, "target_id", "out_of_range"),
    ({"target_id": 3, "arch": "any"}, "arch", "invalid"),
    ({"target_id": 3, "arch": "x/y"}, "arch", "invalid"),
    ({"target_id": 3, "arch": 5}, "arch", "invalid"),
    ({"target_id": 3, "force": "true"}, "force", "invalid"),
    ({"target_id": 3, "execute": 1}, "execute", "invalid"),
    ({"target_id": 3, "execute": None}, "execute", "invalid"),
    # note
    ({"target_id": 3, "note": "x" * 4097}, "note", "too_long"),
    ({"target_id": 3, "note": 5}, "note", "invalid"),
    ({"target_id": 3, "note": "a\x1b[31mred"}, "note", "invalid"),
    ({"target_id": 3, "note": "a\x00b"}, "note", "invalid"),
    # tags
    ({"target_id": 3, "tags": "nightly"}, "tags", "invalid"),
    ({"target_id": 3, "tags": [f"t{i}" for i in range(11)]}, "tags", "too_many"),
    ({"target_id": 3, "tags": ["ok", "Nightly"]}, "tags[1]", "invalid"),
    ({"target_id": 3, "tags": ["ok", "ok", "a b"]}, "tags[1]", "duplicate"),
    ({"target_id": 3, "tags": ["ok", "x", "a/b"]}, "tags[2]", "invalid"),
    ({"target_id": 3, "tags": [""]}, "tags[0]", "missing"),
    ({"target_id": 3, "tags": ["t" * 65]}, "tags[0]", "too_long"),
    ({"target_id": 3, "tags": [5]}, "tags[0]", "invalid"),
    ({"target_id": 3, "tags": ["caf\u00e9"]}, "tags[0]", "invalid"),
    # access lists
    ({"target_id": 3, "access:read": "*"}, "access:read", "invalid"),
    ({"target_id": 3, "access:read": ["alice", "a b"]}, "access:read[1]", "invalid"),
    ({"target_id": 3, "access:read": [None]}, "access:read[0]", "invalid"),
    ({"target_id": 3, "access:read": ["x" * 65]}, "access:read[0]", "invalid"),
    ({"target_id": 3, "access:read": [f"u{i}" for i in range(101)]}, "access:read",
     "too_many"),
    ({"target_id": 3, "access:write": ["*"]}, "access:write[0]", "invalid"),
    ({"target_id": 3, "access:write": ["ok", "../x"]}, "access:write[1]", "invalid"),
    # triggers (the target rules)
    ({"target_id": 3, "triggers": {}}, "triggers", "invalid"),
    ({"target_id": 3, "triggers": ["x"]}, "triggers[0]", "invalid"),
    ({"target_id": 3, "triggers": [{"action": "sms", "condition": "always"}]},
     "triggers[0].action", "invalid"),
    ({"target_id": 3, "triggers": [{"action": ["webhook"], "condition": "always"}]},
     "triggers[0].action", "invalid"),
    ({"target_id": 3, "triggers": [{"action": "webhook", "condition": "always",
                                    "url": "http://[::1"}]}, "triggers[0].url", "invalid"),
    ({"target_id": 3, "triggers": [{"action": "webhook", "condition": "always",
                                    "url": "http://e/a\tb"}]}, "triggers[0].url", "invalid"),
    ({"target_id": 3, "triggers": [{"action": "email", "condition": "always", "to": "a@b",
                                    "cc": 5}]}, "triggers[0].cc", "invalid"),
    ({"target_id": 3, "triggers": [{"action": "email", "condition": "always", "to": "a@b",
                                    "cc": ["c@d", "e@f\rBcc: x@y"]}]}, "triggers[0].cc[1]",
     "invalid"),
    ({"target_id": 3, "triggers": [{"action": "email", "condition": "always", "to": "a@b"}] * 11},
     "triggers", "too_many"),
    # labels
    ({"target_id": 3, "metadata": []}, "metadata", "invalid"),
    ({"target_id": 3, "metadata": {"annotations": {}}}, "metadata.annotations", "unknown"),
    ({"target_id": 3, "metadata": {"labels": []}}, "metadata.labels", "invalid"),
    ({"target_id": 3, "metadata": {"labels": {"bad key!": "v"}}}, "metadata.labels", "invalid"),
    ({"target_id": 3, "metadata": {"labels": {"k": 5}}}, "metadata.labels.k", "invalid"),
]


@pytest.mark.parametrize("body, field, code", SUBMISSION_BAD,
                         ids=[f"{i}-{f}" for i, (_, f, _c) in enumerate(SUBMISSION_BAD)])
def test_an_invalid_submission_names_its_field(body, field, code):
    err = invalid(parse_submission, body, ARCH)
    assert (err.field, err.code) == (field, code), err.message


BODY_KEYS = st.sampled_from(list(mf.BODY_KEYS) + ["x", "labels"])
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                              st.text(max_size=10), st.sampled_from(["*", "alice", MANIFEST,
                                                                     "webhook", "email",
                                                                     "always", "a@b"])),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.one_of(BODY_KEYS, st.sampled_from(
                                                ["action", "condition", "url", "to", "cc",
                                                 "labels"]), st.text(max_size=5)),
                                                inner, max_size=5)), max_leaves=25)


@FAST
@given(st.dictionaries(BODY_KEYS, JSON, max_size=6))
def test_any_body_is_a_submission_or_invalid(body):
    try:
        got = parse_submission(body, ARCH)
    except Invalid as exc:
        assert exc.field and exc.message
    else:
        assert (got.manifest is None) != (got.target_id is None)


# -- the manifest of a build ------------------------------------------------------------------

BUILD = Build(id=7, target_id=3, arch="aarch64", status="queued", force=True, created_at=0,
              repo="bur", kind="git", url="https://e.org/x.git", branch="main", path="sub/dir",
              base_image="archlinux:base-devel", timeout=3600, review="changes",
              environment='{"CFLAGS": "-O2", "YES": "yes", "N": "1"}')


@pytest.mark.parametrize("build", [
    BUILD,
    replace(BUILD, kind="url", url="https://e.org/PKGBUILD", branch="", path="", force=False,
            environment="{}", review="never"),
    replace(BUILD, branch="", path="", base_image="", timeout=0, review="always"),
    replace(BUILD, repo="off", url="https://e.org/x.git#yes:no", branch="'quoted'"),
], ids=["git", "url", "defaults", "quoting"])
def test_the_manifest_of_a_build_reads_back_to_the_build(build):
    text = manifest_of(build)
    got = parse_manifest(text, "riscv64")
    assert (got.repo, got.arch, got.source.kind, got.source.url, got.source.branch,
            got.source.path) == (build.repo, build.arch, build.kind, build.url, build.branch,
                                 build.path)
    assert (got.image, got.force, got.review) == (build.base_image, build.force, build.review)
    assert got.timeout == (build.timeout or None)
    assert got.environment == json.loads(build.environment)


@pytest.mark.parametrize("value", ["\x85", "a\x85", "\x85a", "é\x85\x85b", "x\n\x85"])
def test_a_value_with_a_yaml_line_break_reads_back_from_the_manifest(value):
    """PyYAML writes U+0085 (NEL) raw in a single-quoted scalar and reads it back as a
    line break folded into a space: the build's environment changed."""
    build = replace(BUILD, environment=json.dumps({"V": value}))
    assert parse_manifest(manifest_of(build), "x86_64").environment == {"V": value}


def test_an_inline_pkgbuild_build_has_no_manifest_to_generate():
    with pytest.raises(ValueError, match="pkgbuild"):
        manifest_of(replace(BUILD, kind="pkgbuild", url=""))


@FAST
@given(st.builds(
    Manifest, repo=st.from_regex(r"[a-z][a-z0-9._+-]{0,20}", fullmatch=True).filter(
        lambda r: r != "api"),
    arch=st.from_regex(r"[A-Za-z0-9_]{1,10}", fullmatch=True).filter(lambda a: a != "any"),
    source=st.one_of(
        st.builds(Source, kind=st.just("git"),
                  url=st.from_regex(r"https://[a-z]{1,8}\.org/[A-Za-z0-9._~/-]{0,20}",
                                    fullmatch=True),
                  branch=st.from_regex(r"([a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_]{0,8})?)?",
                                       fullmatch=True),
                  path=st.from_regex(r"([a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_]{0,8})?)?",
                                     fullmatch=True)),
        st.builds(Source, kind=st.just("url"),
                  url=st.from_regex(r"http://[a-z]{1,8}(:[1-9][0-9]{0,3})?/[A-Za-z0-9#?=&]*",
                                    fullmatch=True))),
    image=st.sampled_from(["", "archlinux:base-devel", "ghcr.io/a/b:1"]),
    force=st.booleans(), timeout=st.one_of(st.none(), st.integers(1, mf.MAX_TIMEOUT)),
    environment=st.dictionaries(st.from_regex(r"[A-UW-Z_][A-Z0-9_]{0,10}", fullmatch=True)
                                .filter(lambda n: n not in mf.RESERVED_ENV
                                        and not n.startswith("LD_")),
                                st.text(st.characters(codec="utf-8", exclude_categories=["Cs",
                                                                                         "Cc"]),
                                        max_size=20), max_size=5),
    review=st.sampled_from(["never", "changes", "always"]), text=st.just("")))
def test_any_manifest_survives_a_round_trip_through_a_build(m):
    build = Build(id=1, target_id=1, arch=m.arch, status="queued", force=m.force,
                  created_at=0, repo=m.repo, kind=m.source.kind, url=m.source.url,
                  branch=m.source.branch, path=m.source.path, base_image=m.image,
                  timeout=m.timeout or 0, environment=json.dumps(m.environment),
                  review=m.review)
    text = manifest_of(build)
    assert parse_manifest(text, "other") == replace(m, text=text)
