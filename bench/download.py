"""Bench: downloading one large package file, vieter-lite vs nginx (sendfile on), same file.

    python3 bench/download.py [--size-mb 200] [--clients 8] [--repeat 21] [--tmpdir DIR]
                              [--nginx PATH]

Publishes one real, uncompressed package (.pkg.tar) of about --size-mb MB with a random
payload to a real server process, starts nginx on loopback with `sendfile on;` and its
root at the server's pkg_dir (so both serve the very same file from the same path), then
alternates between the two: one download alone, then --clients downloads at once (total
bytes / wall time). Prints the medians in GB/s and vieter-lite / nginx. Exits 2 when nginx
is not installed. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import multiprocessing
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

REPO = "bench"
NAME = "vieter-bench-big"
VERSION = "1.0-1"
RATIO_TARGET = 0.9
RECV_BUFFER = 4 << 20


# -- the client ------------------------------------------------------------------------

def download(port: int, path: str) -> tuple[float, float, int]:
    """GET path over a fresh connection, reading the body into a preallocated buffer and
    discarding it. Returns (start, end, body bytes) on the machine-wide monotonic clock."""
    buf = bytearray(RECV_BUFFER)
    view = memoryview(buf)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                     .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(view)
            if not n:
                raise RuntimeError(f"connection closed in the headers: {head[:200]!r}")
            head += bytes(view[:n])
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise RuntimeError(f"GET {path}: {lines[0]}")
        length = next(int(line.split(":", 1)[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        got = len(rest)
        while got < length:
            n = sock.recv_into(view)
            if not n:
                break
            got += n
    end = time.monotonic()
    if got != length:
        raise RuntimeError(f"GET {path}: {got} of {length} bytes")
    return start, end, got


def _download_args(args: tuple[int, str]) -> tuple[float, float, int]:
    return download(*args)


def _client_init() -> None:
    """Pool workers: die on SIGTERM/SIGINT like plain processes (the parent's handlers
    unwind its finally blocks, which a worker has none of)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def throughput(pool, port: int, path: str, clients: int) -> float:
    """GB/s of `clients` simultaneous downloads: all bytes / (last end - first start)."""
    results = pool.map(_download_args, [(port, path)] * clients, chunksize=1)
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    return sum(r[2] for r in results) / (end - start) / 1e9


def sha256_of_download(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}")
        digest = hashlib.sha256()
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        conn.close()


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- the package and the servers -------------------------------------------------------

def build_package(path: Path, size_mb: int) -> Path:
    """An uncompressed .pkg.tar whose one file is size_mb MB of random bytes."""
    pkginfo = {"pkgname": NAME, "pkgbase": NAME, "pkgver": VERSION,
               "pkgdesc": "vieter-lite download bench package", "url": "https://example.org",
               "builddate": str(int(time.time())), "packager": c.PACKAGER,
               "size": str(size_mb << 20), "arch": c.ARCH, "license": ["MIT"]}
    payload = os.urandom(size_mb * 1_000_000)
    return c.make_synthetic_package(path, pkginfo, {f"usr/share/{NAME}/blob": payload},
                                    compression="none")


def publish(server: c.Server, package: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    try:
        with open(package, "rb") as body:
            conn.request("POST", f"/{REPO}/publish", body=body,
                         headers={"X-Api-Key": c.API_KEY,
                                  "Content-Length": str(package.stat().st_size)})
        resp = conn.getresponse()
        reply = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"publish failed: {resp.status} {reply[:500]!r}")
    finally:
        conn.close()


NGINX_CONF = """\
{user}worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def start_nginx(nginx: str, tmp: Path, root: Path) -> tuple[subprocess.Popen, int]:
    tmp.mkdir()
    port = c.free_port()
    conf = tmp / "nginx.conf"
    # as root, the workers would drop to `nobody`, who cannot read a private temp dir
    conf.write_text(NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "",
                                      tmp=tmp, port=port, root=root))
    with open(tmp / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}:\n"
                               f"{(tmp / 'stderr.log').read_text(errors='replace')}")
        try:
            status, _ = c.request(port, "GET", "/nonexistent", timeout=1)
            if status == 404:
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not come up")


def stop_nginx(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nginx_version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True)
    return (out.stderr or out.stdout).strip().replace("nginx version: ", "")


# -- main ------------------------------------------------------------------------------

def run(args: argparse.Namespace, nginx: str) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="vieter-bench-download-", dir=args.tmpdir))
    server: c.Server | None = None
    ngx: subprocess.Popen | None = None
    pool = None
    try:
        config_path = c.write_config(workdir / "vieter-lite.toml", workdir / "data",
                                     c.free_port())
        cfg = c.load_config(config_path)
        t0 = time.perf_counter()
        package = build_package(workdir / f"{NAME}-{VERSION}-{c.ARCH}.pkg.tar", args.size_mb)
        server = c.Server(config_path, cfg.port, workdir / "server.log").start()
        publish(server, package)
        served = Path(cfg.pkg_dir) / REPO / c.ARCH / package.name
        if not served.is_file():
            raise RuntimeError(f"published package not found at {served}")
        expected = sha256_of_file(package)
        package.unlink()  # only the published copy stays
        size = served.stat().st_size
        path = f"/{REPO}/{c.ARCH}/{package.name}"
        ngx, ngx_port = start_nginx(nginx, workdir / "nginx", Path(cfg.pkg_dir))
        print(f"# {size / 1e6:.1f} MB package {path} published and nginx started in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        ports = {"vieter-lite": server.port, "nginx": ngx_port}
        for name, port in ports.items():  # correctness, and a warm page cache
            if sha256_of_download(port, path) != expected:
                raise RuntimeError(f"{name} served other bytes than the package")

        pool = multiprocessing.get_context("fork").Pool(args.clients, initializer=_client_init)
        samples: dict[tuple[str, int], list[float]] = {
            (name, n): [] for name in ports for n in (1, args.clients)}
        for port in ports.values():  # untimed warm-up of clients and servers
            throughput(pool, port, path, args.clients)
        for rep in range(args.repeat):
            order = list(ports) if rep % 2 == 0 else list(ports)[::-1]
            for name in order:
                for n in (1, args.clients):
                    gbps = throughput(pool, ports[name], path, n)
                    samples[(name, n)].append(gbps)
                    print(f"#   run {rep + 1}: {name:<11} {n} at once {gbps:6.2f} GB/s",
                          file=sys.stderr, flush=True)

        header = (f"{'downloads':<12} {'vieter-lite GB/s':>17} {'nginx GB/s':>11} "
                  f"{'ratio':>7} {'paired':>7}")
        print(header)
        print("-" * len(header))
        for n in (1, args.clients):
            ours, theirs = samples[("vieter-lite", n)], samples[("nginx", n)]
            paired = c.median([a / b for a, b in zip(ours, theirs, strict=True)])
            label = "1" if n == 1 else f"{n} at once"
            print(f"{label:<12} {c.median(ours):>17.2f} {c.median(theirs):>11.2f} "
                  f"{c.median(ours) / c.median(theirs):>6.2f}x {paired:>6.2f}x")
        print(f"# GB/s = 10^9 bytes/s, median of {args.repeat} runs; for N at once: all bytes "
              f"/ (last end - first start); ratio = vieter-lite / nginx of the medians; "
              f"paired = the median of each round's vieter-lite / nginx (the two measured "
              f"back to back) (target >= {RATIO_TARGET:g}x)")
        return 0
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if ngx is not None:
            stop_nginx(ngx)
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200,
                        help="payload of the package, MB (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8,
                        help="simultaneous downloads in the second case (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=21,
                        help="timed runs per server and case; the median is shown "
                             "(default: %(default)s)")
    parser.add_argument("--tmpdir", default=None,
                        help="where the scratch data dir goes (default: the system temp dir)")
    parser.add_argument("--nginx", default=None,
                        help="the nginx binary (default: nginx on PATH or /usr/sbin/nginx)")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.clients < 2 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1, --clients at least 2")
    if args.nginx:
        nginx = shutil.which(args.nginx)
    else:
        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not nginx:
        print(f"bench/download.py: {args.nginx or 'nginx'} is not installed; nginx is the "
              f"reference (Debian: apt-get install nginx)", file=sys.stderr)
        return 2

    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    print(f"# python {sys.version.split()[0]}, nginx {nginx_version(nginx)}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"{args.size_mb} MB payload, {args.clients} clients, repeat={args.repeat}",
          flush=True)
    return run(args, nginx)


if __name__ == "__main__":
    sys.exit(main())
