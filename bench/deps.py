"""Bench: builds in dependency order with two agent slots, against the same builds with
their dependencies ignored.

    python3 bench/deps.py [--build-seconds 1.0] [--slots 2] [--tmpdir DIR]

A real server process on loopback and a fake agent in this process: it polls
/api/v1/jobs/poll over HTTP for its free slots (at once when a slot frees up, else every
0.1 s), and runs each build it claims in a thread: PUT the target's .SRCINFO to
/api/v2/builds/:id/srcinfo as the real agent does, then, unless the server sent the build
back to wait, sleep --build-seconds (the build) and finish it. No container runs: the
bench times the scheduling, not makepkg.

Ten targets: a chain of five (c2 depends on c1, ..., c5 on c4; added in reverse, so the
chain's last target has the lowest id) and five that depend on nothing (i1..i5). Three
phases, each on a repo of its own:

- deps: every PKGBUILD was read once before (each target built once, alone); all ten are
  queued at once;
- ignored: the same targets with no dependencies in their .SRCINFO (the reference);
- new: as deps, but nothing was read before: builds of targets that may need a target
  never read go back to the queue until it has been read.

Prints per phase the total time from queueing to the last finish, the order the builds ran
in (the successful runs, by start), how busy the slots were (build time / (slots x total)),
how often a build was sent back, and whether the order is valid (each chain target started
after its dependency finished); asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, ARCH, Server, free_port, write_config  # noqa: E402

CHAIN = [f"c{i}" for i in range(1, 6)]
FREE = [f"i{i}" for i in range(1, 6)]
POLL_EVERY = 0.1


def srcinfo(name: str, depends: list[str]) -> str:
    return "\n".join([f"pkgbase = {name}", "\tpkgver = 1.0", "\tpkgrel = 1", f"\tarch = {ARCH}",
                      *(f"\tdepends = {d}" for d in depends), "", f"pkgname = {name}", ""])


def needs(name: str, with_deps: bool) -> list[str]:
    if with_deps and name in CHAIN and name != CHAIN[0]:
        return [CHAIN[CHAIN.index(name) - 1]]
    return []


class Api:
    def __init__(self, port: int):
        self.port = port

    def call(self, method: str, path: str, key: str = API_KEY, body: bytes = b"") -> object:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"X-Api-Key": key,
                                                           "Content-Length": str(len(body))})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise SystemExit(f"{method} {path}: {resp.status} {data[:300]!r}")
        answer = json.loads(data)
        return answer["data"] if isinstance(answer, dict) and "data" in answer else answer


@dataclass
class Run:
    """What the fake agent saw: per build id its target name, start and end of each run."""

    names: dict[int, str]
    runs: list[tuple[str, float, float]] = field(default_factory=list)  # name, start, end
    sent_back: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def fake_agent(api: Api, run: Run, texts: dict[str, str], slots: int, seconds: float,
               expected: int) -> None:
    """Poll and build until `expected` builds have finished."""
    busy = threading.Semaphore(slots)
    freed = threading.Event()
    finished: list[int] = []

    def build(job: dict) -> None:
        build_id, token = job["build_id"], job["token"]
        name = run.names[build_id]
        start = time.monotonic()
        try:
            answer = api.call("PUT", f"/api/v2/builds/{build_id}/srcinfo", token,
                              texts[name].encode())
            if isinstance(answer, dict) and answer.get("action") == "wait":
                with run.lock:
                    run.sent_back += 1
                return
            time.sleep(seconds)
            api.call("POST", f"/api/v1/builds/{build_id}/finish?exitCode=0", token)
            with run.lock:
                run.runs.append((name, start, time.monotonic()))
                finished.append(build_id)
        finally:
            busy.release()
            freed.set()

    while len(finished) < expected:
        free = 0
        while busy.acquire(blocking=False):
            free += 1
        jobs = api.call("GET", f"/api/v1/jobs/poll?arch={ARCH}&max={free}&jobs=v2") \
            if free else []
        assert isinstance(jobs, list)
        for _ in range(free - len(jobs)):
            busy.release()
        for job in jobs:
            threading.Thread(target=build, args=(job,), daemon=True).start()
        freed.wait(POLL_EVERY)
        freed.clear()


def phase(api: Api, repo: str, with_deps: bool, read_first: bool, slots: int,
          seconds: float) -> tuple[Run, float]:
    names = CHAIN[::-1] + FREE
    ids: dict[str, int] = {}
    for name in names:
        ids[name] = api.call("POST", f"/api/v1/targets?kind=git&repo={repo}"
                                     f"&url=https://example.invalid/{repo}/{name}.git"
                                     f"&arch={ARCH}")  # type: ignore[assignment]
    texts = {n: srcinfo(n, needs(n, with_deps)) for n in names}
    if read_first:  # each PKGBUILD read once, by a build of its own
        warm = Run({})
        for name in names:
            build_id = api.call("POST", f"/api/v1/jobs/queue?target={ids[name]}&arch={ARCH}")
            warm.names[build_id] = name  # type: ignore[index]
            fake_agent(api, warm, texts, 1, 0.0, 1)
    run = Run({})
    start = time.monotonic()
    for name in names:
        build_id = api.call("POST", f"/api/v1/jobs/queue?target={ids[name]}&arch={ARCH}")
        run.names[build_id] = name  # type: ignore[index]
    fake_agent(api, run, texts, slots, seconds, len(names))
    return run, time.monotonic() - start


def report(title: str, run: Run, total: float, slots: int) -> None:
    runs = sorted(run.runs, key=lambda r: r[1])
    ended = {name: end for name, _, end in runs}
    started = {name: begin for name, begin, _ in runs}
    valid = all(started[CHAIN[i]] >= ended[CHAIN[i - 1]] for i in range(1, len(CHAIN)))
    busy = sum(end - begin for _, begin, end in runs) / (slots * total)
    print(f"{title:8} {total:7.2f} s  slots busy {busy:4.0%}  sent back {run.sent_back:2}  "
          f"order valid: {'yes' if valid else 'no '}  ran: {' '.join(n for n, _, _ in runs)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-seconds", type=float, default=1.0)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    print("command:", " ".join(sys.argv))
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        base = Path(tmp)
        port = free_port()
        config = write_config(base / "config.toml", base / "data", port)
        server = Server(config, port, base / "server.log").start()
        try:
            api = Api(port)
            results = [(title, *phase(api, title, deps, read, args.slots, args.build_seconds))
                       for title, deps, read in (("ignored", False, True), ("deps", True, True),
                                                 ("new", True, False))]
        finally:
            server.stop()
    ideal = len(CHAIN + FREE) * args.build_seconds / args.slots
    print(f"{len(CHAIN)} chained + {len(FREE)} free targets, {args.slots} slots, "
          f"{args.build_seconds:.2f} s per build (both graphs allow {ideal:.2f} s)")
    reference = results[0][2]
    for title, run, total in results:
        report(title, run, total, args.slots)
    for title, _, total in results[1:]:
        print(f"{title} / ignored: {total / reference:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
