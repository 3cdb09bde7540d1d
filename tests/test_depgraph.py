"""vieter_lite.depgraph: a repo's targets' edges (needs, cycle, unread), cycles and build
order, from what their PKGBUILDs say (as .SRCINFO text)."""

from __future__ import annotations

import itertools
import random

import pytest

from vieter_lite import depgraph
from vieter_lite.depgraph import CYCLE, NEEDS, UNREAD, UNREAD_VIA, Edge, Node
from vieter_lite.repo.srcinfo import parse


def srcinfo(base: str, names=None, depends=(), makedepends=(), provides=(), version="1-1",
            arch="x86_64") -> str:
    pkgver, pkgrel = version.split("-")
    lines = [f"pkgbase = {base}", f"\tpkgver = {pkgver}", f"\tpkgrel = {pkgrel}",
             f"\tarch = {arch}"]
    lines += [f"\tmakedepends = {d}" for d in makedepends]
    lines += [f"\tdepends = {d}" for d in depends]
    lines += [f"\tprovides = {p}" for p in provides]
    for name in names or [base]:
        lines += ["", f"pkgname = {name}"]
    return "\n".join(lines) + "\n"


def node(target_id: int, text: str | None = None, owned=(), arch="x86_64") -> Node:
    return Node(target_id, None if text is None else parse(text).for_arch(arch), tuple(owned))


# name: (nodes, expected edges as (target, dep, kind, via))
GRAPHS = {
    "a chain": (
        [node(1, srcinfo("a")), node(2, srcinfo("b", depends=["a"])),
         node(3, srcinfo("c", makedepends=["b>=1"]))],
        [(2, 1, NEEDS, "a"), (3, 2, NEEDS, "b>=1")]),
    "a version the target does not have is no edge, and waits for nobody": (
        [node(1, srcinfo("a", version="1.0-1")), node(2, srcinfo("b", depends=["a>=2"]))],
        []),
    "met through a versioned provision": (
        [node(1, srcinfo("libfoo", provides=["foo.so=2-64", "foo=2.5"])),
         node(2, srcinfo("app", depends=["foo>=2", "foo.so=2-64"]))],
        [(2, 1, NEEDS, "foo>=2")]),
    "a bare provision meets no versioned dependency": (
        [node(1, srcinfo("libfoo", provides=["foo"])), node(2, srcinfo("app", depends=["foo>=2"]))],
        []),
    "a split package's parts need each other: no edge to itself": (
        [node(1, srcinfo("x", names=["x-core", "x-gui"], depends=["x-core"]))],
        []),
    "two targets in a cycle, a third needs one of them": (
        [node(1, srcinfo("a", depends=["b"])), node(2, srcinfo("b", depends=["a"])),
         node(3, srcinfo("c", depends=["a"]))],
        [(1, 2, CYCLE, "b"), (2, 1, CYCLE, "a"), (3, 1, NEEDS, "a")]),
    "a cycle of three through makedepends": (
        [node(1, srcinfo("a", makedepends=["c"])), node(2, srcinfo("b", depends=["a"])),
         node(3, srcinfo("c", depends=["b"])), node(4, srcinfo("d", depends=["c"]))],
        [(1, 3, CYCLE, "c"), (2, 1, CYCLE, "a"), (3, 2, CYCLE, "b"), (4, 3, NEEDS, "c")]),
    "a dependency outside the repo waits for the targets never read": (
        [node(1, srcinfo("a", depends=["glibc"])), node(2), node(3, owned=["old"]),
         node(4, srcinfo("d", depends=["a"]))],
        [(1, 2, UNREAD, UNREAD_VIA), (4, 1, NEEDS, "a")]),
    "a target never read offers the names it owns, any version": (
        [node(1, owned=["old-lib"]), node(2, srcinfo("b", depends=["old-lib>=9"]))],
        [(2, 1, NEEDS, "old-lib>=9")]),
    "two targets offer the same package: both are waited for": (
        [node(1, srcinfo("a", provides=["x=1"])), node(2, srcinfo("b", names=["x"])),
         node(3, srcinfo("c", depends=["x"]))],
        [(3, 1, NEEDS, "x"), (3, 2, NEEDS, "x")]),
}


@pytest.mark.parametrize("name", GRAPHS)
def test_edges(name):
    nodes, expected = GRAPHS[name]
    assert depgraph.edges(nodes) == [Edge(*e) for e in expected]


def test_arch_specific_dependencies_make_edges_for_that_arch_only():
    text = srcinfo("b") + ""
    text = text.replace("\tarch = x86_64\n", "\tarch = x86_64\n\tarch = aarch64\n"
                                              "\tdepends_aarch64 = a\n")
    a = srcinfo("a")
    assert depgraph.edges([node(1, a), node(2, text)]) == []
    assert depgraph.edges([node(1, a, arch="aarch64"), node(2, text, arch="aarch64")]) == \
        [Edge(2, 1, NEEDS, "a")]


@pytest.mark.parametrize("pairs, ids, expected", [
    ([], [1, 2], [[1], [2]]),
    ([(1, 2), (2, 1)], [1, 2, 3], [[1, 2], [3]]),
    ([(1, 2), (2, 3), (3, 1), (4, 1)], [1, 2, 3, 4], [[1, 2, 3], [4]]),
    ([(1, 2), (2, 3), (3, 4)], [1, 2, 3, 4], [[1], [2], [3], [4]]),
    ([(1, 2), (2, 1), (3, 4), (4, 3), (2, 3)], [1, 2, 3, 4], [[1, 2], [3, 4]]),
])
def test_components(pairs, ids, expected):
    assert sorted(sorted(c) for c in depgraph.components(pairs, ids)) == expected


def test_components_of_a_long_chain_need_no_recursion():
    n = 5000
    pairs = [(i, i + 1) for i in range(1, n)] + [(n, 1)]
    assert [len(c) for c in depgraph.components(pairs, list(range(1, n + 1)))] == [n]


@pytest.mark.parametrize("ids, edges, expected", [
    ([1, 2, 3], [(3, 2, NEEDS), (2, 1, NEEDS)], [[1], [2], [3]]),
    ([1, 2, 3, 4], [(1, 2, CYCLE), (2, 1, CYCLE), (3, 1, NEEDS)], [[1, 2, 4], [3]]),
    ([5, 6], [(5, 6, UNREAD)], [[5, 6]]),           # unread edges are no dependency
    ([1, 2, 3], [(1, 3, NEEDS), (2, 3, NEEDS), (2, 1, NEEDS)], [[3], [1], [2]]),
    ([1, 2], [(1, 9, NEEDS)], [[1, 2]]),            # edges to targets not listed are left out
])
def test_levels(ids, edges, expected):
    assert depgraph.levels(ids, [Edge(a, b, k, "x") for a, b, k in edges]) == expected


def test_levels_put_every_target_after_what_it_needs_on_random_graphs():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 12)
        pairs = {(rng.randint(1, n), rng.randint(1, n)) for _ in range(rng.randint(0, 2 * n))}
        pairs = {(a, b) for a, b in pairs if a != b}
        comps = depgraph.components(pairs, range(1, n + 1))
        comp_of = {m: i for i, c in enumerate(comps) for m in c}
        graph = [Edge(a, b, CYCLE if comp_of[a] == comp_of[b] else NEEDS, "x") for a, b in pairs]
        order = depgraph.levels(range(1, n + 1), graph)
        level_of = {m: i for i, level in enumerate(order) for m in level}
        assert sorted(itertools.chain(*order)) == list(range(1, n + 1))
        for a, b in pairs:
            if comp_of[a] == comp_of[b]:
                assert level_of[a] == level_of[b]
            else:
                assert level_of[a] > level_of[b]


def test_cycles():
    nodes, _ = GRAPHS["a cycle of three through makedepends"]
    graph = depgraph.edges(nodes + [node(5, srcinfo("e", depends=["f"])),
                                    node(6, srcinfo("f", depends=["e"]))])
    assert depgraph.cycles(graph) == [[1, 2, 3], [5, 6]]
