"""Bench: how soon an idle agent claims a queued build, with a poll that waits (wait=N),
next to an agent that polls every second and to the bare round trip, in the same run; and
what waiting polls cost everyone else.

    python3 bench/poll_wait.py [--trials 20] [--wait 20] [--interval 1] [--agents 20]
                               [--health 1000] [--idle 10] [--tmpdir DIR]

Starts a real server process (8 threads). For each of `--trials` builds, an agent loops
on `GET /api/v1/jobs/poll` while the bench queues a build at a random moment (0.2-1.2 s
after the previous claim) and times from just before `POST /api/v1/jobs/queue` to the
agent holding the claimed job:

- waiting: the agent polls with `wait=--wait`, again at once after each answer;
- interval: the agent polls without waiting, every `--interval` s (an agent would need
  that to start a queued build within 2 s without waiting polls);
- round trip: the build is queued first, then one poll claims it (the floor).

Then it counts the requests an idle agent makes in `--idle` s each way, and times
`--health` `GET /health` with and without `--agents` agents waiting at once. Prints
median and p95 and the ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

KEY = {"X-Api-Key": c.API_KEY}


def call(port: int, method: str, path: str) -> object:
    status, raw = c.request(port, method, path, None, KEY, timeout=60)
    assert status == 200, (status, raw[:300])
    return json.loads(raw)["data"]


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


class PollingAgent:
    """An agent's poll loop in a thread: `wait` > 0 polls with wait=N back to back; else it
    polls every `interval` s. Notes the time each claimed build arrives and every request."""

    def __init__(self, port: int, wait: int, interval: float):
        self.port, self.wait, self.interval = port, wait, interval
        self.claimed: dict[int, float] = {}
        self.requests = 0
        self.arrived = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        query = "arch=x86_64&max=1&jobs=v2" + (f"&wait={self.wait}" if self.wait else "")
        while not self.stop.is_set():
            started = time.monotonic()
            self.requests += 1
            jobs = call(self.port, "GET", f"/api/v1/jobs/poll?{query}")
            now = time.monotonic()
            for job in jobs:  # type: ignore[attr-defined]
                with self.arrived:
                    self.claimed[job["build_id"]] = now
                    self.arrived.notify_all()
                call(self.port, "POST", f"/api/v1/builds/{job['build_id']}/finish?exitCode=0")
            if not self.wait:
                self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def wait_for(self, build_id: int) -> float:
        with self.arrived:
            self.arrived.wait_for(lambda: build_id in self.claimed, 120)
            return self.claimed[build_id]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)


def latencies(port: int, target: int, trials: int, rng: random.Random,
              agent: PollingAgent | None) -> list[float]:
    """Seconds from queueing each build to its claim (agent None: queue, then one poll)."""
    out = []
    for _ in range(trials):
        time.sleep(rng.uniform(0.2, 1.2))
        start = time.monotonic()
        build = int(call(port, "POST", f"/api/v1/jobs/queue?target={target}&arch=x86_64"))
        if agent is None:
            (job,) = call(port, "GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2")  # type: ignore[misc]
            end = time.monotonic()
            call(port, "POST", f"/api/v1/builds/{job['build_id']}/finish?exitCode=0")
        else:
            end = agent.wait_for(build)
        out.append(end - start)
    return out


def timed(fn: Callable[[], None], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(server: c.Server, args: argparse.Namespace) -> None:
    port = server.port
    rng = random.Random(1)
    target = int(call(port, "POST", "/api/v1/targets?kind=git&url=https://e.invalid/p.git"  # type: ignore[arg-type]
                                    "&repo=bench&arch=x86_64&schedule=0+3+1+1"))
    found: dict[str, list[float]] = {}
    found["round trip"] = latencies(port, target, args.trials, rng, None)
    for name, wait, interval in (("waiting", args.wait, 0.0),
                                 ("interval", 0, args.interval)):
        agent = PollingAgent(port, wait, interval)
        try:
            found[name] = latencies(port, target, args.trials, rng, agent)
        finally:
            agent.close()

    idle: dict[str, int] = {}
    for name, wait, interval in (("waiting", args.wait, 0.0), ("interval", 0, args.interval)):
        agent = PollingAgent(port, wait, interval)
        time.sleep(args.idle)
        idle[name] = agent.requests
        agent.close()

    def health() -> None:
        status, _ = c.request(port, "GET", "/health", timeout=60)
        assert status == 200

    alone = timed(health, args.health)
    agents = [PollingAgent(port, args.wait, 0.0) for _ in range(args.agents)]
    time.sleep(1.0)
    crowded = timed(health, args.health)
    for agent in agents:
        agent.stop.set()
    call(port, "POST", f"/api/v1/jobs/queue?target={target}&arch=x86_64")  # wakes them all
    for agent in agents:
        agent.close()

    print(f"queued-to-claimed, {args.trials} builds each (threads = 8, wait = {args.wait} s, "
          f"interval = {args.interval} s)")
    print(f"{'':28s}{'median ms':>10s}{'p95 ms':>10s}")
    medians = {}
    for name in ("waiting", "interval", "round trip"):
        median, p95 = summary([v * 1000 for v in found[name]])
        medians[name] = median
        print(f"{name:28s}{median:10.1f}{p95:10.1f}")
    print(f"waiting / round trip: {medians['waiting'] / medians['round trip']:.2f}   "
          f"waiting / interval: {medians['waiting'] / medians['interval']:.3f}")
    print(f"\nrequests of an idle agent in {args.idle} s: waiting {idle['waiting']}, "
          f"interval {idle['interval']} (ratio {idle['waiting'] / max(1, idle['interval']):.2f})")
    base, loaded = summary(alone), summary(crowded)
    print(f"\nGET /health, {args.health} times: median {base[0]:.2f} ms (p95 {base[1]:.2f}) "
          f"alone, {loaded[0]:.2f} ms (p95 {loaded[1]:.2f}) with {args.agents} agents "
          f"waiting: ratio {loaded[0] / base[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--wait", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--health", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        work = Path(tmp)
        port = c.free_port()
        config = c.write_config(work / "vieter-lite.toml", work / "data", port)
        server = c.Server(config, port, work / "server.log").start()
        try:
            run(server, args)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
