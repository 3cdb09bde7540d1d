"""Bench: what keep_versions costs a publish, and what a rollback costs, in an arch-repo of
N packages.

    python3 bench/keep.py [--size 5000] [--repeat 9] [--keep 3] [--tmpdir DIR]

Two data dirs are filled alike (bench/publish.py's prepare) and served by two real server
processes at once: keep_versions = 0 (the reference) and keep_versions = K. The same R
upgrades of one package go to each over HTTP, taking turns, so both see the same load on a
shared machine. Then the second server takes R rollbacks
(POST /api/v2/repos/bench/x86_64/packages/<name>/rollback, each back to the version the
previous one replaced), taking turns with R more upgrades of the reference. Prints medians
and their ratios to the reference's; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from publish import REPO, TARGET, TARGET_VER, prepare, time_publishes  # noqa: E402


def server_for(workdir: Path, n: int, keep: int) -> tuple[c.Server, Path]:
    workdir.mkdir()
    config_path, _data = prepare(workdir, n)
    with open(config_path, "a") as config:
        config.write(f"keep_versions = {keep}\n")
    cfg = c.load_config(config_path)
    return c.Server(config_path, cfg.port, workdir / "server.log").start(), config_path


def time_rollbacks(server: c.Server, versions: list[str]) -> list[float]:
    """Roll back to each version in turn (each one kept when its turn comes)."""
    path = f"/api/v2/repos/{REPO}/{c.ARCH}/packages/{TARGET}/rollback"
    times = []
    for version in versions:
        body = json.dumps({"version": version}).encode()
        headers = {"X-Api-Key": c.API_KEY, "Content-Type": "application/json",
                   "Content-Length": str(len(body))}
        start = time.perf_counter()
        status, reply = c.request(server.port, "POST", path, body, headers)
        elapsed = time.perf_counter() - start
        if status != 200 or json.loads(reply)["version"] != version:
            raise RuntimeError(f"rollback to {version} failed: {status} {reply[:500]!r}")
        times.append(elapsed)
    return times


def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=5000, help="packages in the arch-repo")
    parser.add_argument("--repeat", type=int, default=9, help="publishes and rollbacks timed")
    parser.add_argument("--keep", type=int, default=3, help="keep_versions of the second run")
    parser.add_argument("--tmpdir", default=None, help="where the data dirs go")
    args = parser.parse_args(argv)
    if args.keep < 2:
        parser.error("--keep must be at least 2 (a rollback goes back two versions)")
    base = Path(tempfile.mkdtemp(prefix="vieter-bench-keep-", dir=args.tmpdir))
    servers: list[c.Server] = []
    try:
        pkgs_dir = base / "pkgs-in"
        pkgs_dir.mkdir()
        packages = [c.real_package(pkgs_dir / f"{TARGET}-{TARGET_VER}-{rel}-{c.ARCH}"
                                   ".pkg.tar.zst", TARGET, f"{TARGET_VER}-{rel}")
                    for rel in range(2, 2 * args.repeat + 2)]
        upgrades, more = packages[:args.repeat], packages[args.repeat:]
        reference, _ = server_for(base / "keep0", args.size, 0)
        servers.append(reference)
        keeping, _ = server_for(base / "keepK", args.size, args.keep)
        servers.append(keeping)
        plain: list[float] = []
        kept: list[float] = []
        for package in upgrades:
            plain += time_publishes(reference, [package])
            kept += time_publishes(keeping, [package])
        # current: the last upgrade; roll back to the one before it, then to the one before
        # that (the first rollback made the last one a kept one), and so on back and forth
        last = args.repeat + 1
        order = [f"{TARGET_VER}-{last - 1 - (i % 2)}" for i in range(args.repeat)]
        beside: list[float] = []
        rollbacks: list[float] = []
        for version, package in zip(order, more, strict=True):
            beside += time_publishes(reference, [package])
            rollbacks += time_rollbacks(keeping, [version])
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    ref, ref2 = c.median(plain), c.median(beside)
    print(f"N = {args.size}, {args.repeat} of each, medians:")
    print(f"  publish, keep_versions = 0:  {ref * 1000:8.1f} ms  (reference)")
    print(f"  publish, keep_versions = {args.keep}:  {c.median(kept) * 1000:8.1f} ms  "
          f"ratio {c.median(kept) / ref:.2f}")
    print(f"  publish, keep_versions = 0:  {ref2 * 1000:8.1f} ms  (reference, beside the "
          "rollbacks)")
    print(f"  rollback, keep_versions = {args.keep}: {c.median(rollbacks) * 1000:8.1f} ms  "
          f"ratio {c.median(rollbacks) / ref2:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
