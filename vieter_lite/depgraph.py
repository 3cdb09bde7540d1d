"""Pure: the dependency graph of one repo's targets for one arch.

A target whose PKGBUILD was read (its .SRCINFO for the arch) needs what its packages
depend on and what it makedepends and checkdepends on. Another target of the repo meets a
dependency when one of its packages does by name or provision, versions compared with
vercmp (repo.srcinfo.meets). The edges:

- `needs`: T depends on S. A build of T waits while a build of S is queued or running,
  fails when S's build fails, and is queued again when S publishes a new version (with
  rebuild_on_dependency).
- `cycle`: T and S depend on each other, through any number of targets (one strongly
  connected component). Its builds go in id order: a build waits only for the builds of
  the cycle with a lower id. Nothing fails or rebuilds along it.
- `unread`: T has a dependency that no target of the repo meets, and U is a target whose
  PKGBUILD was never read and that has published nothing, so it might be what meets it.
  T's builds wait for U's builds until U has been read (a few seconds into its build).

A target not read yet but that has published packages in the repo offers the names it
owns (any version): what an older server, or Vieter's own agents, leave behind."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vieter_lite.models import DEP_CYCLE as CYCLE
from vieter_lite.models import DEP_NEEDS as NEEDS
from vieter_lite.models import DEP_UNREAD as UNREAD
from vieter_lite.models import DepEdge as Edge
from vieter_lite.repo.srcinfo import Dep, ForArch

KINDS = (NEEDS, CYCLE, UNREAD)
UNREAD_VIA = "(its PKGBUILD was not read yet)"


@dataclass(frozen=True)
class Node:
    """A target: what its PKGBUILD says for the arch (None: not read), and the package
    names it owns in the repo."""

    id: int
    read: ForArch | None = None
    owned: tuple[str, ...] = ()

    def meets(self, dep: Dep) -> bool:
        if self.read is not None:
            return self.read.meets(dep)
        return dep.name in self.owned


def edges(nodes: Iterable[Node]) -> list[Edge]:
    """Every edge among the targets, sorted."""
    nodes = sorted(nodes, key=lambda n: n.id)
    offers: dict[str, dict[int, Node]] = {}  # name -> the targets with a package of it
    for node in nodes:
        names = node.owned if node.read is None else \
            [n for p in node.read.packages for n in (p.name, *(d.name for d in p.provides))]
        for name in names:
            offers.setdefault(name, {})[node.id] = node
    found: dict[tuple[int, int], str] = {}
    unmet: set[int] = set()
    for node in nodes:
        if node.read is None:
            continue
        for dep in node.read.needs:
            if node.read.meets(dep):
                continue  # one of its own packages (a split package's parts)
            providers = [other.id for other in offers.get(dep.name, {}).values()
                         if other.id != node.id and other.meets(dep)]
            if not providers:
                unmet.add(node.id)
            for other in providers:
                found.setdefault((node.id, other), str(dep))
    comp_of = {member: i for i, component in enumerate(components(found, [n.id for n in nodes]))
               for member in component}
    result = [Edge(a, b, CYCLE if comp_of[a] == comp_of[b] else NEEDS, via)
              for (a, b), via in found.items()]
    unknown = [n.id for n in nodes if n.read is None and not n.owned]
    for target in sorted(unmet):
        result += [Edge(target, u, UNREAD, UNREAD_VIA) for u in unknown
                   if (target, u) not in found]
    return sorted(result)


def components(pairs: Iterable[tuple[int, int]], ids: Sequence[int]) -> list[set[int]]:
    """The strongly connected components of the graph (Tarjan, iteratively), each a set;
    every id is in exactly one."""
    succ: dict[int, list[int]] = {i: [] for i in ids}
    for a, b in pairs:
        succ.setdefault(a, []).append(b)
        succ.setdefault(b, [])
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    result: list[set[int]] = []
    counter = 0
    for root in sorted(succ):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(succ[node])):
                nxt = succ[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def levels(ids: Iterable[int], graph: Iterable[Edge]) -> list[list[int]]:
    """The targets in build order: each level needs only targets of earlier levels (the
    members of a cycle share a level); ids ascending within a level. `unread` edges are
    not followed (they are not dependencies)."""
    ids = sorted(set(ids))
    pairs = [(e.target, e.dep) for e in graph if e.kind != UNREAD
             and e.target in ids and e.dep in ids]
    comps = components(pairs, ids)
    comp_of = {member: i for i, comp in enumerate(comps) for member in comp}
    after: dict[int, set[int]] = {i: set() for i in range(len(comps))}
    for a, b in pairs:
        if comp_of[a] != comp_of[b]:
            after[comp_of[a]].add(comp_of[b])
    level: dict[int, int] = {}

    def depth(c: int) -> int:
        # iterative: the condensation is a DAG
        todo = [c]
        while todo:
            top = todo[-1]
            pending = [d for d in after[top] if d not in level]
            if pending:
                todo += pending
                continue
            todo.pop()
            level[top] = 1 + max((level[d] for d in after[top]), default=-1)
        return level[c]

    out: dict[int, list[int]] = {}
    for i, comp in enumerate(comps):
        out.setdefault(depth(i), []).extend(comp)
    return [sorted(out[k]) for k in sorted(out)]


def cycles(graph: Iterable[Edge]) -> list[list[int]]:
    """The cycles (targets that depend on each other), each sorted, by first id."""
    pairs = [(e.target, e.dep) for e in graph if e.kind == CYCLE]
    ids = sorted({i for pair in pairs for i in pair})
    return sorted(sorted(c) for c in components(pairs, ids) if len(c) > 1)
