"""Builds in dependency order, on the server's real services (sqlite on a fresh data dir):
what agents read of PKGBUILDs (.SRCINFO) makes the graph; the claim skips builds whose
dependencies' builds are queued or running; a build that learns of a dependency goes back
to the queue; a failed dependency fails what waits for it; cycles build in id order; a new
version of a dependency rebuilds the targets that ask for it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pkgfactory import make_synthetic_package
from vieter_lite.errors import Invalid
from vieter_lite.models import BuildSpec
from vieter_lite.targets import TargetSpec

ARCH = "x86_64"


def srcinfo(base: str, depends=(), makedepends=(), provides=(), version="1.0-1",
            names=None) -> str:
    pkgver, pkgrel = version.split("-")
    lines = [f"pkgbase = {base}", f"\tpkgver = {pkgver}", f"\tpkgrel = {pkgrel}",
             f"\tarch = {ARCH}", *(f"\tmakedepends = {d}" for d in makedepends),
             *(f"\tdepends = {d}" for d in depends), *(f"\tprovides = {p}" for p in provides)]
    for name in names or [base]:
        lines += ["", f"pkgname = {name}"]
    return "\n".join(lines) + "\n"


class World:
    """Targets with the .SRCINFO their agent will read, builds claimed, read and ended
    through the real services."""

    def __init__(self, services, tmp_path: Path):
        self.s = services
        self.tmp_path = tmp_path
        self.texts: dict[int, str] = {}

    def target(self, text: str, repo: str = "bur", rebuild: bool = False) -> int:
        target_id = self.s.targets.add(TargetSpec(
            kind="git", url=f"https://example.invalid/{len(self.texts)}.git", repo=repo,
            archs=(ARCH,), rebuild_on_dependency=rebuild or None))
        self.texts[target_id] = text
        return target_id

    def queue(self, target_id: int) -> int:
        return self.s.queue.queue(target_id, ARCH)

    def claim(self, n: int = 10, plain: bool = False) -> list[int]:
        return [c.build.id for c in self.s.queue.poll(ARCH, n, "agent", plain_only=plain)]

    def read(self, build_id: int, text: str | None = None) -> dict:
        build = self.s.queue.get(build_id)
        return self.s.dependencies.read(build_id, self.texts[build.target_id] if text is None else text)

    def built(self, target_id: int) -> int:
        """A build of the target that reads its PKGBUILD and succeeds (it is claimed
        alone)."""
        build_id = self.queue(target_id)
        assert self.claim(1) == [build_id]
        assert self.read(build_id) == {"action": "build"}
        self.finish(build_id)
        return build_id

    def finish(self, build_id: int, code: int = 0) -> str:
        return self.s.queue.finish(build_id, code).status

    def publish(self, build_id: int, name: str, version: str) -> None:
        build = self.s.queue.get(build_id)
        path = make_synthetic_package(self.tmp_path / f"{name}-{version}-{ARCH}.pkg.tar.gz",
                                      {"pkgname": name, "pkgver": version, "arch": ARCH},
                                      compression="gz")
        self.s.store.publish(build.repo, path, build=build)

    def status(self, build_id: int) -> str:
        return self.s.queue.get(build_id).status

    def blocked_by(self, build_id: int) -> tuple[int, ...]:
        build = self.s.queue.get(build_id)
        return self.s.queue.details(build).blocked_by

    def log(self, build_id: int) -> str:
        path = self.s.logs.path(build_id)
        return path.read_text() if path.exists() else ""


@pytest.fixture
def w(services, tmp_path) -> World:
    return World(services, tmp_path)


def test_a_build_waits_while_a_build_of_its_dependency_is_queued_or_running(w):
    a = w.target(srcinfo("a"))
    b = w.target(srcinfo("b", makedepends=["a>=1"]))
    w.built(a), w.built(b)   # both PKGBUILDs read once
    build_b = w.queue(b)     # queued first, yet it waits for a's build
    build_a = w.queue(a)
    assert w.blocked_by(build_b) == (build_a,)
    assert w.claim() == [build_a]
    assert w.claim() == [] and w.status(build_b) == "queued"
    assert w.blocked_by(build_b) == (build_a,)   # running counts too
    assert w.claim(plain=True) == []             # Vieter's agents wait as well
    w.finish(build_a)
    assert w.blocked_by(build_b) == ()
    assert w.claim() == [build_b]


def test_independent_builds_and_other_archs_do_not_wait(w, services):
    a = w.target(srcinfo("a"))
    b = w.target(srcinfo("b", depends=["a"]))
    c = w.target(srcinfo("c", depends=["zlib"]))
    w.built(a), w.built(b), w.built(c)
    builds = [w.queue(t) for t in (a, b, c)]
    assert w.claim() == [builds[0], builds[2]]
    other = services.queue.queue(b, "aarch64")    # no .SRCINFO of b for aarch64: no edge
    assert [c.build.id for c in services.queue.poll("aarch64", 5)] == [other]


def test_a_running_build_that_learns_of_a_dependency_goes_back_to_the_queue(w):
    a = w.target(srcinfo("a", version="1.0-1"))
    b = w.target(srcinfo("b"))
    w.built(a), w.built(b)
    w.texts[b] = srcinfo("b", depends=["a>=1.0"])  # b's PKGBUILD now depends on a
    build_b = w.queue(b)
    assert w.claim() == [build_b]
    build_a = w.queue(a)
    assert w.read(build_b) == {"action": "wait", "blocked_by": [build_a]}
    build = w.s.queue.get(build_b)
    assert (build.status, build.runner, build.releases, build.expiries) == ("queued", "", 0, 0)
    assert f"waits for build {build_a} of target {a} (a>=1.0)" in w.log(build_b)
    assert w.claim() == [build_a]
    w.finish(build_a)
    assert w.claim() == [build_b]
    assert w.read(build_b) == {"action": "build"}


def test_new_targets_are_read_before_what_may_need_them_builds(w):
    """Neither PKGBUILD was read: b's build, claimed first, learns it needs something no
    read target offers while a (never read, nothing published) is being built: it waits;
    once a is read, b waits for a's build by name."""
    b = w.target(srcinfo("b", makedepends=["a"]))
    a = w.target(srcinfo("a"))
    build_b, build_a = w.queue(b), w.queue(a)
    assert w.claim() == [build_b, build_a]      # nothing is known yet
    assert w.read(build_b) == {"action": "wait", "blocked_by": [build_a]}
    assert "(its PKGBUILD was not read yet)" in w.log(build_b)
    assert w.read(build_a) == {"action": "build"}
    assert w.blocked_by(build_b) == (build_a,)  # now by name: a meets b's makedepends
    assert w.s.dependencies.of_target(b).edges == ((ARCH, a, "needs", "a"),)
    assert w.claim() == []
    w.finish(build_a)
    assert w.claim() == [build_b] and w.read(build_b) == {"action": "build"}


def test_a_failed_dependency_fails_what_waits_for_it_at_once(w):
    a = w.target(srcinfo("a"))
    b = w.target(srcinfo("b", depends=["a"]))
    c = w.target(srcinfo("c", makedepends=["b"]))
    d = w.target(srcinfo("d"))
    for t in (a, b, c, d):
        w.built(t)
    build_a, build_b, build_c, build_d = (w.queue(t) for t in (a, b, c, d))
    assert w.claim() == [build_a, build_d]
    assert w.finish(build_a, 2) == "failed"
    for build_id, line in ((build_b, f"vieter-lite: dependency a failed in build {build_a}"),
                           (build_c, f"vieter-lite: dependency b failed in build {build_b}")):
        build = w.s.queue.get(build_id)
        assert (build.status, build.exit_code, build.runner) == ("failed", -1, "")
        assert dict(build.tasks) == dict.fromkeys(("setup", "source", "build", "publish"),
                                                  "skipped")
        assert line in w.log(build_id)
    assert w.status(build_d) == "running"


def test_a_failed_build_fails_nothing_while_another_build_of_it_is_queued(w):
    a = w.target(srcinfo("a"))
    b = w.target(srcinfo("b", depends=["a"]))
    w.built(a), w.built(b)
    first = w.queue(a)
    assert w.claim() == [first]
    second, build_b = w.queue(a), w.queue(b)
    w.s.queue.cancel(first, "admin")
    assert w.status(build_b) == "queued" and w.blocked_by(build_b) == (second,)


def test_a_cycle_builds_in_id_order_with_a_warning_and_never_deadlocks(w):
    a = w.target(srcinfo("a", depends=["b"]))
    b = w.target(srcinfo("b", makedepends=["a"]))
    w.built(a), w.built(b)
    first, second = w.queue(b), w.queue(a)   # b's build has the lower id: it goes first
    assert w.blocked_by(first) == () and w.blocked_by(second) == (first,)
    assert w.claim() == [first]
    assert f"warning: a dependency cycle: target {b} and target {a} (a) depend on each " \
        "other; their builds go in id order" in w.log(first)
    assert w.claim() == []
    assert w.finish(first, 1) == "failed"   # nothing fails along a cycle
    assert w.claim() == [second]
    assert "warning: a dependency cycle" in w.log(second)
    assert w.s.dependencies.of_target(a).edges == ((ARCH, b, "cycle", "b"),)


def test_a_new_version_of_a_dependency_queues_the_targets_that_ask_once(w):
    a = w.target(srcinfo("a"))
    z = w.target(srcinfo("z"))
    b = w.target(srcinfo("b", depends=["a", "z"]), rebuild=True)
    c = w.target(srcinfo("c", depends=["a"]))  # does not ask
    for t in (a, z, b, c):
        w.built(t)
    build_a, build_z = w.queue(a), w.queue(z)
    assert w.claim() == [build_a, build_z]
    w.publish(build_a, "a", "1.0-1")
    w.finish(build_a)
    [rebuild] = w.s.queue.list(["queued"], b)
    assert rebuild.force and rebuild.id > build_z
    assert w.blocked_by(rebuild.id) == (build_z,)      # z is part of the same burst
    assert f"dependency a published a new version in build {build_a} (a 1.0-1)" \
        in w.log(rebuild.id)
    w.publish(build_z, "z", "2.0-1")
    w.finish(build_z)
    assert [x.id for x in w.s.queue.list(["queued"], b)] == [rebuild.id]  # once
    assert w.s.queue.list(["queued"], c) == []
    assert w.claim() == [rebuild.id]
    w.finish(rebuild.id)
    again = w.queue(a)                 # the same version again (forced): nothing new
    assert w.claim() == [again]
    w.publish(again, "a", "1.0-1")
    w.finish(again)
    assert w.s.queue.list(["queued"], b) == []


def test_removing_or_moving_a_target_changes_the_graph(w):
    a = w.target(srcinfo("a"))
    b = w.target(srcinfo("b", depends=["a"]))
    w.built(a), w.built(b)
    build_a, build_b = w.queue(a), w.queue(b)
    assert w.blocked_by(build_b) == (build_a,)
    w.s.targets.edit(a, TargetSpec(repo="elsewhere"))
    assert w.blocked_by(build_b) == ()
    w.s.targets.edit(a, TargetSpec(repo="bur"))
    assert w.blocked_by(build_b) == (w.queue(a),)
    w.s.targets.remove(a)
    assert w.blocked_by(build_b) == ()
    assert w.claim() == [build_b]


def test_a_target_never_read_offers_the_names_it_published(w, services):
    """An older server's target (nothing read) that published 'old' is what 'old' needs."""
    old = w.target(srcinfo("old"))
    first = w.queue(old)
    assert w.claim() == [first]
    w.publish(first, "old", "1.0-1")   # built by an agent that reads nothing
    w.finish(first)
    b = w.target(srcinfo("b", depends=["old"]))
    build_old, build_b = w.queue(old), w.queue(b)
    assert w.claim() == [build_old, build_b]
    assert w.read(build_b) == {"action": "wait", "blocked_by": [build_old]}
    assert w.s.dependencies.of_target(b).edges == ((ARCH, old, "needs", "old"),)


def test_a_manifest_build_has_no_place_in_the_graph(w, services):
    build = services.queue.submit(BuildSpec(target_id=0, arch=ARCH, repo="bur", kind="url",
                                            url="https://example.invalid/PKGBUILD"))
    assert w.claim() == [build.id]
    assert w.read(build.id, srcinfo("m", depends=["a"])) == {"action": "build"}
    assert services.db.repo_srcinfos("bur") == {}


@pytest.mark.parametrize("text", ["", "not a srcinfo\n", "pkgbase = x\n"])
def test_what_is_not_a_srcinfo_is_refused_and_changes_nothing(w, text):
    a = w.target(srcinfo("a"))
    build_id = w.queue(a)
    w.claim()
    with pytest.raises(Invalid) as exc:
        w.read(build_id, text)
    assert exc.value.field == "srcinfo"
    assert w.s.dependencies.of_target(a).read == {} and w.status(build_id) == "running"


def test_reads_at_the_same_time_leave_the_graph_of_all_of_them(w, services):
    """Agents report .SRCINFOs at once (one server thread each): every build that depends on
    another's running build waits, and the graph kept is the one of every PKGBUILD read."""

    n = 8
    chain = [w.target(srcinfo(f"p{i}", depends=[f"p{i - 1}"] if i else [])) for i in range(n)]
    for attempt in range(60):
        builds = [w.queue(t) for t in chain]
        assert sorted(w.claim(n)) == sorted(builds)
        start = threading.Barrier(n)
        answers: dict[int, dict] = {}

        def read(build_id: int, start: threading.Barrier, answers: dict[int, dict]) -> None:
            start.wait()
            answers[build_id] = w.read(build_id)

        threads = [threading.Thread(target=read, args=(b, start, answers)) for b in builds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        built = [b for b in builds if answers[b]["action"] == "build"]
        assert built == [builds[0]], (attempt, answers)
        kept = services.db.target_edges(chain[1])
        services.dependencies.refresh("bur")
        assert services.db.target_edges(chain[1]) == kept
        for b in builds:
            if w.status(b) == "running":
                w.finish(b)
            elif w.status(b) == "queued":  # the rest fail with it (a cancelled dependency)
                services.queue.cancel(b, "test")
        for t in chain:  # the next attempt starts with nothing read
            services.db._run("DELETE FROM target_srcinfo WHERE target_id = ?", t)
        services.dependencies.refresh("bur")


def test_no_claim_comes_between_a_failure_and_what_it_fails(w, services):
    """The end of a build and the failure of what waited for it are one change: an agent
    polling at that moment never gets the waiting build."""

    a = w.target(srcinfo("a"))
    b = w.target(srcinfo("b", depends=["a"]))
    w.built(a), w.built(b)
    for attempt in range(100):
        build_a, build_b = w.queue(a), w.queue(b)
        assert w.claim(1) == [build_a]
        start = threading.Barrier(2)
        claimed: list[int] = []

        def poll(start: threading.Barrier, claimed: list[int]) -> None:
            start.wait()
            for _ in range(20):
                claimed.extend(w.claim(1))

        poller = threading.Thread(target=poll, args=(start, claimed))
        poller.start()
        start.wait()
        w.finish(build_a, 1)
        poller.join()
        assert claimed == [] and w.status(build_b) == "failed", attempt
