"""Bench: what the agent's watch of a running build costs the server, against a renewal.

    python3 bench/agent_watch.py [--builds 4] [--calls 300] [--tmpdir DIR]

The agent asks every few seconds whether the server still runs each of its builds, so it
can kill a cancelled build's container at once. It asks with a read of the build
(GET /api/v1/builds/:id, the build token); renewing the lease (POST
/api/v1/builds/:id/lease) would answer the same question with a write. A real server
process on loopback, `--builds` running builds (claimed through /api/v1/jobs/poll), and,
over one kept-alive connection per build token, in the same run:

- reference: GET /health, a request that touches no table;
- watch: GET /api/v1/builds/:id, what the agent sends every 3 s per build;
- renew: POST /api/v1/builds/:id/lease, an UPDATE and a commit (the database's one writer).

Prints the median and 90th percentile per call in milliseconds and each median as a ratio
to the reference; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, ARCH, Server, free_port, write_config  # noqa: E402


def call(conn: http.client.HTTPConnection, method: str, path: str, key: str) -> bytes:
    conn.request(method, path, headers={"X-Api-Key": key, "Content-Length": "0"})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise SystemExit(f"{method} {path}: {resp.status} {body[:200]!r}")
    return body


def timed(conn: http.client.HTTPConnection, calls: int, method: str, paths: list[str],
          keys: list[str]) -> list[float]:
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        call(conn, method, paths[i % len(paths)], keys[i % len(keys)])
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    print("command:", " ".join(sys.argv))
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        base = Path(tmp)
        port = free_port()
        config = write_config(base / "config.toml", base / "data", port)
        server = Server(config, port, base / "server.log").start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ids, tokens = [], []
            for n in range(args.builds):
                target = json.loads(call(conn, "POST", f"/api/v1/targets?kind=git&repo=bench"
                                         f"&url=https://example.com/{n}.git&arch={ARCH}",
                                         API_KEY))["data"]
                build = json.loads(call(conn, "POST",
                                        f"/api/v1/jobs/queue?target={target}&arch={ARCH}",
                                        API_KEY))["data"]
                ids.append(build)
            jobs = json.loads(call(conn, "GET", f"/api/v1/jobs/poll?arch={ARCH}"
                                   f"&max={args.builds}", API_KEY))["data"]
            tokens = [next(j["token"] for j in jobs if j["build_id"] == b) for b in ids]
            watch_paths = [f"/api/v1/builds/{b}" for b in ids]
            lease_paths = [f"/api/v1/builds/{b}/lease" for b in ids]
            timed(conn, 30, "GET", watch_paths, tokens)  # warm up
            rows = [("reference GET /health", timed(conn, args.calls, "GET", ["/health"],
                                                    [API_KEY])),
                    ("watch GET /api/v1/builds/:id", timed(conn, args.calls, "GET",
                                                          watch_paths, tokens)),
                    ("renew POST /api/v1/builds/:id/lease", timed(conn, args.calls, "POST",
                                                                 lease_paths, tokens))]
        finally:
            server.stop()
    reference = statistics.median(rows[0][1])
    print(f"{args.builds} running builds, {args.calls} calls each, one connection")
    print(f"{'request':40} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    for name, samples in rows:
        median = statistics.median(samples)
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"{name:40} {median:10.2f} {p90:8.2f} {median / reference:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
