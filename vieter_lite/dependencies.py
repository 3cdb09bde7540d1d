"""Builds in dependency order: what agents read of each target's PKGBUILD (its .SRCINFO),
the dependency graph of each repo kept in step with it (depgraph.py), and the rules that
follow from the graph: a build that waits goes back to the queue, a failed dependency
fails the builds that wait for it, a new version of a dependency queues the targets that
ask to be built again. The claim itself skips waiting builds (db/deps.py
DEPENDENCIES_DONE)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from vieter_lite import depgraph
from vieter_lite.db import Database
from vieter_lite.errors import Invalid
from vieter_lite.models import FINAL_STATES, Build, TargetDependencies
from vieter_lite.queue import BuildQueue
from vieter_lite.repo import srcinfo
from vieter_lite.repo.srcinfo import SrcinfoError

log = logging.getLogger(__name__)

FAILED = tuple(s for s in FINAL_STATES if s != "success")


def dep_name(via: str) -> str:
    """The name in a dependency ('foo>=1.2' -> 'foo')."""
    return srcinfo.parse_dep(via).name


class Dependencies:
    """The dependency rules over the queue; told of target changes and of builds' ends."""

    def __init__(self, db: Database, queue: BuildQueue,
                 clock: Callable[[], float] = time.time):
        self.db = db
        self.queue = queue
        self.clock = clock

    def attach(self) -> Dependencies:
        """Listen to the queue (ends and claims)."""
        self.queue.listen(on_end=self.ended, on_claim=self.claimed)
        return self

    # -- the graph -----------------------------------------------------------------------

    def refresh(self, repo: str) -> None:
        """Work out the repo's graph again, for every arch of its targets (in one
        transaction: two refreshes at once must not leave the older one's graph)."""
        with self.db.transaction():
            self._refresh(repo)

    def _refresh(self, repo: str) -> None:
        targets = self.db.targets(repo=repo)
        texts = self.db.repo_srcinfos(repo)
        owned = self.db.owned_names(repo)
        parsed: dict[tuple[int, str], srcinfo.Srcinfo] = {}
        for key, text in texts.items():
            try:
                parsed[key] = srcinfo.parse(text)
            except SrcinfoError:  # it was read once; a rule changed since
                log.warning("the .SRCINFO of target %d (%s) cannot be read", *key)
        archs = sorted({a.value for t in targets for a in t.arch})
        graph = {}
        for arch in archs:
            nodes = []
            for target in targets:
                if not any(a.value == arch for a in target.arch):
                    continue
                info = parsed.get((target.id, arch))
                nodes.append(depgraph.Node(target.id,
                                           None if info is None else info.for_arch(arch),
                                           owned.get(target.id, ())))
            graph[arch] = depgraph.edges(nodes)
        self.db.replace_edges(repo, graph)

    def of_target(self, target_id: int) -> TargetDependencies:
        """What a target's PKGBUILD said per arch, and what it depends on."""
        return TargetDependencies(
            read=self.db.target_srcinfos(target_id),
            edges=tuple((arch, e.dep, e.kind, e.via)
                        for arch, e in self.db.target_edges(target_id)))

    # -- an agent read a build's PKGBUILD ------------------------------------------------

    def read(self, build_id: int, text: str) -> dict[str, Any]:
        """What `makepkg --printsrcinfo` said in a running build: kept as its target's for
        the build's arch, the graph worked out again; then, when the build depends on a
        build that is queued or running, it goes back to the queue to wait for it
        ({"action": "wait", "blocked_by": [ids]}), else {"action": "build"}."""
        build = self.queue.running(build_id)
        try:
            info = srcinfo.parse(text)
        except SrcinfoError as exc:
            raise Invalid("srcinfo", "invalid", f"not makepkg's .SRCINFO: {exc}") from None
        target = self.db.target(build.target_id) if build.has_target else None
        if target is None:  # a manifest's build, or its target is gone: no graph
            return {"action": "build"}
        with self.db.transaction():  # what it waits for, as the graph is with it
            self.db.put_srcinfo(target.id, build.arch, build.id, info.pkgbase, text,
                                int(self.clock()))
            self.refresh(target.repo)
            blockers = self.db.blockers([build.id]).get(build.id, [])
        if blockers:
            waits = "; ".join(f"build {x} of target {e.dep} ({e.via})" for x, e in blockers)
            self.queue.send_back(build.id, f"vieter-lite: build {build.id} waits for {waits}: "
                                           "it goes back to the queue until they have ended")
            return {"action": "wait", "blocked_by": list(dict.fromkeys(x for x, _ in blockers))}
        self._warn_cycles(build)
        return {"action": "build"}

    # -- what the queue tells --------------------------------------------------------------

    def claimed(self, builds: list[Build]) -> None:
        for build in builds:
            if build.has_target:
                self._warn_cycles(build)

    def _warn_cycles(self, build: Build) -> None:
        mates = [(e.dep, e.via) for arch, e in self.db.target_edges(build.target_id)
                 if arch == build.arch and e.kind == depgraph.CYCLE]
        if mates:
            names = ", ".join(f"target {dep} ({via})" for dep, via in mates)
            self.queue.logs.note(build.id, f"vieter-lite: warning: a dependency cycle: target "
                                           f"{build.target_id} and {names} depend on each "
                                           "other; their builds go in id order")

    def ended(self, build: Build) -> None:
        """A build ended: a failure fails what waits for it; a success that published a
        new version queues the dependents that ask for it."""
        if not build.has_target:
            return
        if build.status in FAILED:
            self._fail_dependents(build)
        elif build.status == "success":
            if build.arch not in self.db.target_srcinfos(build.target_id):
                target = self.db.target(build.target_id)  # unread: its owned names changed
                if target is not None:
                    self.refresh(target.repo)
            self._rebuild_dependents(build)

    def _fail_dependents(self, build: Build) -> None:
        if self.db.active_build(build.target_id, build.arch, other_than=build.id) is not None:
            return  # another build of the dependency is on its way: they wait for it
        for edge in self.db.dependents(build.target_id, build.arch):
            waiting = self.db.queued_build(edge.target, build.arch)
            if waiting is not None:
                self.queue.fail_waiting(waiting, f"vieter-lite: dependency {dep_name(edge.via)} "
                                                 f"failed in build {build.id}")

    def _rebuild_dependents(self, build: Build) -> None:
        published = sorted((name, version) for name, version, _, _ in
                           self.db.build_packages(build.id))
        if not published or published == self.db.previous_packages(build.id):
            return
        for edge in self.db.dependents(build.target_id, build.arch):
            target = self.db.target(edge.target)
            if target is None or not target.rebuild_on_dependency:
                continue
            queued = self.db.queued_build(target.id, build.arch)
            build_id = self.queue.queue(target.id, build.arch, force=True)
            if queued is None:
                versions = ", ".join(f"{n} {v}" for n, v in published)
                self.queue.logs.note(build_id, f"vieter-lite: queued because dependency "
                                               f"{dep_name(edge.via)} published a new version "
                                               f"in build {build.id} ({versions})")
