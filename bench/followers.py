"""Bench: what log followers cost everyone else: /health and publish latency with 0 and
with N followers of one running build, side by side, in the same run.

    python3 bench/followers.py [--followers 20] [--threads 8] [--health 3000]
                               [--publishes 100] [--append-every 0.1] [--tmpdir DIR]

Starts a real server process, queues and claims one build, then measures twice:
without followers, and with N clients following that build's log as server-sent events
(`Accept: text/event-stream`) while an agent appends a line to it every `--append-every`
seconds (so every follower wakes and writes all the time). Each phase times `--health`
GET /health and `--publishes` POST /bench/publish of a real package (a new pkgrel each),
one at a time. Prints median and p95 in ms and the ratio with/without; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

KEY = {"X-Api-Key": c.API_KEY}


def timed(fn, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


class Follower:
    """A raw EventSource that reads and discards; counts bytes."""

    def __init__(self, port: int, build_id: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET /api/v2/builds/{build_id}/log/content HTTP/1.1\r\n"
                          f"Host: bench\r\nX-Api-Key: {c.API_KEY}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.received = 0
        self.first = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                self.received += len(data)
                self.first.set()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--health", type=int, default=3000)
    parser.add_argument("--publishes", type=int, default=100)
    parser.add_argument("--append-every", type=float, default=0.1)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        work = Path(tmp)
        port = c.free_port()
        config = c.write_config(work / "vieter-lite.toml", work / "data", port)
        with open(config, "a") as fh:
            fh.write(f"threads = {args.threads}\nmax_log_followers = {args.followers + 8}\n")
        server = c.Server(config, port, work / "server.log").start()
        try:
            run(server, work, args)
        finally:
            server.stop()


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None):
    status, raw = c.request(port, method, path, body, {**KEY, **(headers or {})}, timeout=60)
    assert status == 200, (status, raw[:300])
    return json.loads(raw)["data"]


def run(server: c.Server, work: Path, args: argparse.Namespace) -> None:
    port = server.port
    target = call(port, "POST", "/api/v1/targets?kind=git&url=https://e.invalid/p.git"
                                "&repo=bench&arch=x86_64&schedule=0+3+1+1")
    call(port, "POST", f"/api/v1/jobs/queue?target={target}&arch=x86_64")
    (job,) = call(port, "GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2")
    build_id, token = job["build_id"], job["token"]
    pkgrel = iter(range(1, 10_000))

    def publish() -> None:
        info = {"pkgname": "bench-follow", "pkgbase": "bench-follow",
                "pkgver": f"1.0-{next(pkgrel)}", "arch": "x86_64", "pkgdesc": "bench",
                "builddate": "1700000000", "size": "1", "packager": c.PACKAGER}
        path = c.make_synthetic_package(work / "p.pkg.tar.zst", info,
                                        {"usr/share/bench/README": b"x" * 4096})
        call(port, "POST", "/bench/publish", path.read_bytes())

    def health() -> None:
        status, _ = c.request(port, "GET", "/health", timeout=60)
        assert status == 200

    results = {}
    for count in (0, args.followers):
        followers = [Follower(port, build_id) for _ in range(count)]
        for follower in followers:
            follower.first.wait(30)
        stop = threading.Event()

        def append(stop: threading.Event = stop) -> None:
            line = 0
            while not stop.wait(args.append_every):
                line += 1
                c.request(port, "POST", f"/api/v1/builds/{build_id}/log",
                          f"line {line}: {'=' * 60}\n".encode(), {"X-Api-Key": token})

        appender = threading.Thread(target=append, daemon=True)
        appender.start()
        try:
            results[count] = (timed(health, args.health), timed(publish, args.publishes))
        finally:
            stop.set()
            appender.join()
            received = sum(f.received for f in followers)
            for follower in followers:
                follower.close()
        print(f"{count:3d} followers: {received} bytes of events received")

    print(f"\nthreads = {args.threads}; a line appended every {args.append_every} s "
          f"in both phases")
    print(f"{'':24s}{'median ms':>10s}{'p95 ms':>10s}")
    for name, index in (("GET /health", 0), ("POST publish", 1)):
        base = summary(results[0][index])
        loaded = summary(results[args.followers][index])
        print(f"{name + ', 0 followers':24s}{base[0]:10.2f}{base[1]:10.2f}")
        print(f"{name + f', {args.followers} followers':24s}{loaded[0]:10.2f}{loaded[1]:10.2f}"
              f"   ratio {loaded[0] / base[0]:.2f} (median)")


if __name__ == "__main__":
    main()
