#!/usr/bin/env python3
"""Start-up time of the zipapp: `python3 -I vieter-lite.pyz server` until GET /health
answers 200, median of N runs on a fresh data dir each, and the same for
`python3 -m vieter_lite server` from the source tree for reference.

    python3 bench/startup.py [--pyz dist/vieter-lite.pyz] [--repeat 5]

Without --pyz the zipapp is built first (packaging/build_zipapp.py, needs pip and PyPI).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_startup(argv: list[str], cwd: Path, extra_env: dict[str, str],
                 timeout: float = 20) -> float:
    with tempfile.TemporaryDirectory(prefix="vieter-startup-") as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
        env.update({"VIETER_API_KEY": "bench", "VIETER_DATA_DIR": str(Path(tmp) / "data"),
                    "VIETER_PORT": str(port), "VIETER_HOST": "127.0.0.1",
                    "VIETER_DEFAULT_ARCH": "x86_64", **extra_env})
        url = f"http://127.0.0.1:{port}/health"
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{argv} exited {proc.returncode}: {proc.stderr.read()!r}")
                if time.perf_counter() - t0 > timeout:
                    raise SystemExit(f"{argv}: no /health within {timeout} s")
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:
                        if resp.status == 200:
                            return time.perf_counter() - t0
                except OSError:
                    time.sleep(0.005)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                print(f"  (no exit 10 s after SIGTERM: killed) {shlex.join(argv)}", file=sys.stderr)
                proc.kill()
                proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyz", help="an existing zipapp (default: build one)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vieter-startup-pyz-") as tmp:
        pyz = Path(args.pyz) if args.pyz else Path(tmp) / "vieter-lite.pyz"
        if not args.pyz:
            subprocess.run([sys.executable, str(ROOT / "packaging" / "build_zipapp.py"),
                            "-o", str(pyz)], check=True, stdout=subprocess.DEVNULL)
        cases = [
            ("zipapp", [sys.executable, "-I", str(pyz.resolve()), "server"], Path("/"), {}),
            ("source tree", [sys.executable, "-m", "vieter_lite", "server"], ROOT,
             {"PYTHONPATH": str(ROOT)}),
        ]
        print(f"python: {sys.executable} {sys.version.split()[0]}; median of {args.repeat}, "
              "process start to the first 200 from GET /health")
        for label, argv, cwd, extra in cases:
            times = [time_startup(argv, cwd, extra) for _ in range(args.repeat)]
            print(f"{label:12} {statistics.median(times) * 1000:7.0f} ms  "
                  f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})  "
                  f"{shlex.join(argv)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
