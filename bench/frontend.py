#!/usr/bin/env python3
"""The HTTP front end under clients without a key: /health and an authenticated publish,
idle and then while 50 slow readers, 100 trickling connections and 10 unauthenticated
large uploads run at once, side by side in the same run.

    python3 bench/frontend.py [--readers 50] [--reader-addresses 1] [--tricklers 100]
                              [--uploads 10] [--health 40] [--publishes 8]
                              [--package-mb 40] [--settle 3] [--tmpdir DIR]

The attack runs in its own process (a non-blocking socket loop), so it does not share the
measuring process's interpreter lock. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    API_KEY,
    Server,
    free_port,
    kib,
    make_synthetic_package,
    median,
    real_package,
    unwind_on_signals,
    write_config,
)

REPO = "bench"
BIG = "frontend-big"
UPLOAD_SIZE = 300 << 20  # what each unauthenticated upload announces


# -- the attack (its own process) ------------------------------------------------------

class _Conn:
    def __init__(self, kind: str, port: int, request: bytes, rcvbuf: int = 0,
                 source: str = ""):
        self.kind = kind
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.request = request
        self.sent = 0
        self.received = 0
        self.next_at = 0.0


def attack(port: int, path: str, readers: int, reader_addresses: int, tricklers: int,
           uploads: int, stop: multiprocessing.synchronize.Event, stats: dict) -> None:
    """Runs until `stop`; a connection the server closes is opened again, and counted.
    Readers connect from `reader_addresses` loopback addresses in turn (127.0.1.x, ...);
    the measuring client's 127.0.0.1 is none of them."""
    trickle = (b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Trickle: " + b"t" * 1_000_000)
    download = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    upload = (f"POST /{REPO}/publish HTTP/1.1\r\nHost: bench\r\n"
              f"Content-Length: {UPLOAD_SIZE}\r\n\r\n").encode()
    zeros = bytes(256 << 10)
    counts = {"reader_reopened": 0, "trickler_reopened": 0, "upload_reopened": 0,
              "upload_401": 0, "upload_other": 0, "upload_body_bytes_sent": 0,
              "reader_bytes": 0, "reader_not_200": 0, "connect_errors": 0}

    def open_conn(kind: str, index: int) -> _Conn | None:
        try:
            if kind == "reader":
                n = index % reader_addresses
                source = f"127.0.{1 + n // 250}.{1 + n % 250}" if reader_addresses > 1 else ""
                conn = _Conn(kind, port, download, rcvbuf=4096, source=source)
            elif kind == "trickler":
                conn = _Conn(kind, port, trickle)
            else:
                conn = _Conn(kind, port, upload)
        except OSError:
            counts["connect_errors"] += 1
            return None
        if kind != "trickler":
            try:
                conn.sent = conn.sock.send(conn.request)
            except OSError:
                pass
        return conn

    wanted = ["reader"] * readers + ["trickler"] * tricklers + ["upload"] * uploads
    conns: list[_Conn | None] = [open_conn(kind, i) for i, kind in enumerate(wanted)]
    while not stop.is_set():
        now = time.monotonic()
        for index, conn in enumerate(conns):
            kind = wanted[index]
            if conn is None:
                conns[index] = open_conn(kind, index)
                continue
            closed = False
            try:
                if kind == "trickler" and now >= conn.next_at:
                    conn.sock.send(conn.request[conn.sent:conn.sent + 1])
                    conn.sent += 1
                    conn.next_at = now + 1.0
                    data = conn.sock.recv(4096, socket.MSG_PEEK)
                    closed = data == b""
                elif kind == "reader" and now >= conn.next_at:
                    data = conn.sock.recv(1024)  # 1 KiB a second
                    closed = data == b""
                    if conn.received == 0 and data and not data.startswith(b"HTTP/1.1 200"):
                        counts["reader_not_200"] += 1
                    conn.received += len(data)
                    counts["reader_bytes"] += len(data)
                    conn.next_at = now + 1.0
                elif kind == "upload":
                    if conn.sent < len(conn.request):
                        conn.sent += conn.sock.send(conn.request[conn.sent:])
                    else:
                        sent = conn.sock.send(zeros)
                        counts["upload_body_bytes_sent"] += sent
                    data = conn.sock.recv(4096, socket.MSG_PEEK)
                    if data:
                        counts["upload_401" if data.startswith(b"HTTP/1.1 401")
                               else "upload_other"] += 1
                        closed = True
                    elif data == b"":
                        closed = True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed = True
            if closed:
                conn.sock.close()
                counts[f"{kind}_reopened"] += 1
                conns[index] = open_conn(kind, index)
        time.sleep(0.02)
    for conn in conns:
        if conn is not None:
            conn.sock.close()
    stats.update(counts)


# -- measuring -------------------------------------------------------------------------

def timed(port: int, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[float | None, str]:
    """(seconds, "") for a 2xx on a new connection; (None, why) otherwise."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        if resp.status // 100 != 2:
            return None, f"HTTP {resp.status}"
        return time.perf_counter() - start, ""
    except OSError as exc:
        return None, type(exc).__name__
    finally:
        conn.close()


def measure(server: Server, packages: list[Path], health: int) -> dict[str, list]:
    out: dict[str, list] = {"health": [], "publish": [], "errors": []}
    for _ in range(health):
        seconds, why = timed(server.port, "GET", "/health")
        out["health"].append(seconds)
        if why:
            out["errors"].append(f"/health: {why}")
        time.sleep(0.05)
    for pkg in packages:
        seconds, why = timed(server.port, "POST", f"/{REPO}/publish", pkg.read_bytes(),
                             {"X-Api-Key": API_KEY})
        out["publish"].append(seconds)
        if why:
            out["errors"].append(f"publish: {why}")
    return out


def summary(values: list[float | None]) -> str:
    ok = sorted(v * 1000 for v in values if v is not None)
    if not ok:
        return f"{'-':>8} {'-':>8} {'-':>8} {0:>3}/{len(values)}"
    p95 = ok[min(len(ok) - 1, int(round(0.95 * (len(ok) - 1))))]
    return f"{median(ok):8.1f} {p95:8.1f} {ok[-1]:8.1f} {len(ok):>3}/{len(values)}"


def ratio(idle: list[float | None], busy: list[float | None]) -> str:
    a = [v for v in idle if v is not None]
    b = [v for v in busy if v is not None]
    return f"{median(b) / median(a):6.2f}x" if a and b else "     -"


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--reader-addresses", type=int, default=1,
                        help="loopback addresses the readers connect from, in turn "
                             "(at most 2500)")
    parser.add_argument("--tricklers", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--health", type=int, default=40, help="/health requests per phase")
    parser.add_argument("--publishes", type=int, default=8, help="publishes per phase")
    parser.add_argument("--package-mb", type=int, default=40,
                        help="size of the package the slow readers download")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds the attack runs before measuring")
    parser.add_argument("--tmpdir", help="where the scratch data dir goes")
    args = parser.parse_args()
    if not 1 <= args.reader_addresses <= 2500:
        parser.error("--reader-addresses must be 1 to 2500")
    unwind_on_signals()
    print("$", shlex.join([sys.executable, *sys.argv]))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    scratch = Path(tempfile.mkdtemp(prefix="vieter-bench-frontend-", dir=args.tmpdir))
    server = None
    stop = multiprocessing.Event()
    attacker = None
    try:
        data_dir = scratch / "data"
        port = free_port()
        config = write_config(scratch / "server.toml", data_dir, port)
        server = Server(config, port, scratch / "server.log").start()
        print(f"server: defaults (threads 8, connection_limit 100, header_timeout 10 s, "
              f"channel_timeout 60 s) on port {port}", file=sys.stderr)
        big = make_synthetic_package(
            scratch / f"{BIG}.pkg.tar.gz",
            {"pkgname": BIG, "pkgver": "1.0-1", "arch": "x86_64"},
            {f"usr/share/{BIG}/blob": os.urandom(args.package_mb << 20)}, compression="gz")
        seconds, why = timed(port, "POST", f"/{REPO}/publish", big.read_bytes(),
                             {"X-Api-Key": API_KEY})
        if seconds is None:
            raise SystemExit(f"publishing the big package failed: {why}\n{server.log()}")
        packages = [real_package(scratch / f"p{i}.pkg.tar.zst", "frontend-small", f"1.0-{i}")
                    for i in range(1, 2 * args.publishes + 1)]

        print("idle run ...", file=sys.stderr)
        idle = measure(server, packages[:args.publishes], args.health)
        idle_rss = kib(server.status()["VmRSS"])

        manager = multiprocessing.Manager()
        stats = manager.dict()
        attacker = multiprocessing.Process(
            target=attack, args=(port, f"/{REPO}/x86_64/{BIG}-1.0-1-x86_64.pkg.tar.gz",
                                 args.readers, args.reader_addresses, args.tricklers,
                                 args.uploads, stop, stats),
            daemon=True)
        attacker.start()
        time.sleep(args.settle)
        print("under attack ...", file=sys.stderr)
        tmp_before = dir_bytes(data_dir / "tmp") if (data_dir / "tmp").exists() else 0
        busy = measure(server, packages[args.publishes:], args.health)
        tmp_peak = max(tmp_before,
                       dir_bytes(data_dir / "tmp") if (data_dir / "tmp").exists() else 0)
        status = server.status()
        stop.set()
        attacker.join(30)
        attack_stats = dict(stats)

        print()
        print(f"attack: {args.readers} slow readers (1 KiB/s of a {args.package_mb} MB "
              f"package, from {args.reader_addresses} address(es)), {args.tricklers} "
              "trickling connections (a header byte a second), "
              f"{args.uploads} unauthenticated uploads of {UPLOAD_SIZE >> 20} MB; "
              f"{args.health} /health requests and {args.publishes} publishes per phase, "
              "each on a new connection")
        print()
        print(f"{'':10} {'idle: median':>12} {'p95':>8} {'max':>8} {'ok':>7}   "
              f"{'attack: median':>14} {'p95':>8} {'max':>8} {'ok':>7}   {'ratio':>7}")
        for name in ("health", "publish"):
            label = "/health" if name == "health" else "publish"
            print(f"{label:10} {summary(idle[name]):>38}   {summary(busy[name]):>40}   "
                  f"{ratio(idle[name], busy[name])}")
        print()
        print("latencies in ms; ratio = attack median / idle median")
        errors = idle["errors"] + busy["errors"]
        listed = f" ({', '.join(errors[:10])})" if errors else ""
        print(f"failed requests: {len(errors)}{listed}")
        print("attacker: " + ", ".join(f"{k} {v}" for k, v in sorted(attack_stats.items())))
        print(f"server: RSS {idle_rss / 1024:.0f} MB after the idle run, "
              f"{kib(status['VmRSS']) / 1024:.0f} MB under attack, peak "
              f"{kib(status['VmHWM']) / 1024:.0f} MB; request bodies on disk during the "
              f"attack {tmp_peak} bytes")
        return 0
    finally:
        stop.set()
        if attacker is not None and attacker.is_alive():
            attacker.terminate()
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
