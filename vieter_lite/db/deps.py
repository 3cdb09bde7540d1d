"""SQL for builds in dependency order: each target's .SRCINFO per arch, the edges of each
repo's dependency graph, and which builds wait for which."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vieter_lite.db.base import Base
from vieter_lite.models import DEP_CYCLE as CYCLE
from vieter_lite.models import DEP_NEEDS as NEEDS
from vieter_lite.models import DepEdge as Edge

# A queued build `b` may be handed out: no build of a target it depends on (same arch) is
# queued or running; within a cycle only the cycle's builds with a lower id count (they go
# in id order). Part of the claim's WHERE clause (db/builds.py claim_builds).
DEPENDENCIES_DONE = (
    "NOT EXISTS (SELECT 1 FROM target_deps d JOIN builds x ON x.target_id = d.dep_id "
    "AND x.arch = d.arch AND x.status IN ('queued', 'running') "
    "WHERE d.target_id = b.target_id AND d.arch = b.arch "
    f"AND (d.kind != '{CYCLE}' OR x.id < b.id))")


class DepQueries(Base):
    """.SRCINFOs, graph edges, blockers."""

    def put_srcinfo(self, target_id: int, arch: str, build_id: int, pkgbase: str, text: str,
                    now: int) -> None:
        """What the latest build that read the target's PKGBUILD for `arch` said of it."""
        self._run("INSERT OR REPLACE INTO target_srcinfo (target_id, arch, build_id, pkgbase, "
                  "srcinfo, read_at) VALUES (?, ?, ?, ?, ?, ?)", target_id, arch, build_id,
                  pkgbase, text, now)

    def repo_srcinfos(self, repo: str) -> dict[tuple[int, str], str]:
        """{(target id, arch): .SRCINFO text} of the repo's targets."""
        return {(r["target_id"], r["arch"]): r["srcinfo"] for r in self._all(
            "SELECT s.target_id, s.arch, s.srcinfo FROM target_srcinfo s "
            "JOIN targets t ON t.id = s.target_id WHERE t.repo = ?", repo)}

    def target_srcinfos(self, target_id: int) -> dict[str, tuple[int, str, int]]:
        """{arch: (build id, pkgbase, read at)} of one target."""
        return {r["arch"]: (r["build_id"], r["pkgbase"], r["read_at"]) for r in self._all(
            "SELECT arch, build_id, pkgbase, read_at FROM target_srcinfo WHERE target_id = ? "
            "ORDER BY arch", target_id)}

    def srcinfo_text(self, target_id: int, arch: str) -> str | None:
        row = self._one("SELECT srcinfo FROM target_srcinfo WHERE target_id = ? AND arch = ?",
                        target_id, arch)
        return None if row is None else str(row["srcinfo"])

    def owned_names(self, repo: str) -> dict[int, tuple[str, ...]]:
        """{target id: the package names it owns in the repo}."""
        owned: dict[int, list[str]] = {}
        for r in self._all("SELECT target_id, name FROM package_owners WHERE repo = ? "
                           "AND target_id IS NOT NULL ORDER BY name", repo):
            owned.setdefault(r["target_id"], []).append(r["name"])
        return {k: tuple(v) for k, v in owned.items()}

    def replace_edges(self, repo: str, edges: Mapping[str, Iterable[Edge]]) -> None:
        """The repo's graph, {arch: edges}, in place of what it was."""
        with self.transaction():
            self._run("DELETE FROM target_deps WHERE target_id IN "
                      "(SELECT id FROM targets WHERE repo = ?)", repo)
            for arch, found in edges.items():
                for e in found:
                    self._run("INSERT OR REPLACE INTO target_deps (target_id, arch, dep_id, "
                              "kind, via) VALUES (?, ?, ?, ?, ?)", e.target, arch, e.dep,
                              e.kind, e.via)

    def target_edges(self, target_id: int) -> list[tuple[str, Edge]]:
        """(arch, edge) of what a target depends on, by arch and dependency id."""
        return [(r["arch"], Edge(target_id, r["dep_id"], r["kind"], r["via"])) for r in self._all(
            "SELECT arch, dep_id, kind, via FROM target_deps WHERE target_id = ? "
            "ORDER BY arch, dep_id", target_id)]

    def dependents(self, target_id: int, arch: str, kinds: Iterable[str] = (NEEDS,)
                   ) -> list[Edge]:
        """The edges of targets that depend on this one for `arch`, of the given kinds."""
        kinds = list(kinds)
        return [Edge(r["target_id"], target_id, r["kind"], r["via"]) for r in self._all(
            f"SELECT target_id, kind, via FROM target_deps WHERE dep_id = ? AND arch = ? "
            f"AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY target_id",
            target_id, arch, *kinds)]

    def blockers(self, build_ids: Iterable[int]) -> dict[int, list[tuple[int, Edge]]]:
        """{build id: [(id of a build it waits for, the edge)]} for the given builds: the
        queued or running builds of targets they depend on (DEPENDENCIES_DONE's rule)."""
        ids = list(build_ids)
        found: dict[int, list[tuple[int, Edge]]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for r in self._all(
                    "SELECT b.id AS build_id, b.target_id, x.id AS blocker, d.dep_id, d.kind, "
                    "d.via FROM builds b JOIN target_deps d ON d.target_id = b.target_id "
                    "AND d.arch = b.arch JOIN builds x ON x.target_id = d.dep_id "
                    "AND x.arch = d.arch AND x.status IN ('queued', 'running') "
                    f"AND (d.kind != '{CYCLE}' OR x.id < b.id) "
                    f"WHERE b.id IN ({', '.join('?' * len(chunk))}) ORDER BY b.id, x.id",
                    *chunk):
                found.setdefault(r["build_id"], []).append(
                    (r["blocker"], Edge(r["target_id"], r["dep_id"], r["kind"], r["via"])))
        return found

    def active_build(self, target_id: int, arch: str, other_than: int = 0) -> int | None:
        """A queued or running build of target/arch (the oldest), besides `other_than`."""
        row = self._one("SELECT id FROM builds WHERE target_id = ? AND arch = ? AND id != ? "
                        "AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
                        target_id, arch, other_than)
        return None if row is None else int(row["id"])

    def queued_build(self, target_id: int, arch: str) -> int | None:
        row = self._one("SELECT id FROM builds WHERE target_id = ? AND arch = ? "
                        "AND status = 'queued' ORDER BY id LIMIT 1", target_id, arch)
        return None if row is None else int(row["id"])

    def previous_packages(self, build_id: int) -> list[tuple[str, str]]:
        """(name, version) published by the latest earlier successful build of the same
        target and arch that published anything."""
        return [(r["name"], r["version"]) for r in self._all(
            "SELECT p.name, p.version FROM build_packages p WHERE p.build_id = ("
            "SELECT o.id FROM builds me JOIN builds o ON o.target_id = me.target_id "
            "AND o.arch = me.arch AND o.id < me.id AND o.status = 'success' "
            "WHERE me.id = ? AND EXISTS (SELECT 1 FROM build_packages q "
            "WHERE q.build_id = o.id) ORDER BY o.id DESC LIMIT 1) ORDER BY p.name", build_id)]
