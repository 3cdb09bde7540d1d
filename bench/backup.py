"""Bench: what backup, restore and check cost on a data dir of N real package files,
against a plain copy of the same files measured in the same run.

    python3 bench/backup.py [--size 300] [--tmpdir DIR] [--copy-dir DIR]

The data dir is filled in-process (real .pkg.tar.zst files published through the store).
Timed: `cp -a` of the data dir (the reference: what an offline copy costs), backup hard-
linked (DEST on the same filesystem), backup copied (DEST under --copy-dir, another
filesystem such as /dev/shm, when given), restore into a fresh data dir, check (sha256 of
every file) and check --no-signatures on a stopped data dir. Prints seconds and ratios to
the reference; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

REPO = "bench"


def fill(workdir: Path, n: int) -> Path:
    from vieter_lite.services import build_services

    config_path = c.write_config(workdir / "vieter-lite.toml", workdir / "data", c.free_port())
    services = build_services(c.load_config(config_path))
    try:
        for i in range(n):
            path = c.real_package(workdir / f"up{i}.pkg.tar.zst", f"bench{i}", "1.0-1")
            services.store.publish(REPO, path)
            path.unlink()
    finally:
        services.db.close()
    return config_path


def timed(label: str, argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{label}: exit {done.returncode}: {done.stdout}{done.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=300, help="package files")
    parser.add_argument("--tmpdir", help="where the data dir goes (default: the system's)")
    parser.add_argument("--copy-dir", help="a directory on another filesystem for a copied "
                        "backup (e.g. /dev/shm)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="vl-bench-backup-", dir=args.tmpdir))
    other = Path(tempfile.mkdtemp(prefix="vl-bench-backup-", dir=args.copy_dir)) \
        if args.copy_dir else None
    try:
        config = fill(workdir, args.size)
        size = sum(p.stat().st_size for p in (workdir / "data").rglob("*") if p.is_file())
        cli = [sys.executable, "-m", "vieter_lite"]
        results = {"cp -a (reference)": timed("cp", ["cp", "-a", str(workdir / "data"),
                                                      str(workdir / "plain-copy")])}
        results["backup, hard-linked"] = timed(
            "backup", [*cli, "backup", "-f", str(config), str(workdir / "linked")])
        if other is not None:
            results["backup, copied"] = timed(
                "backup", [*cli, "backup", "-f", str(config), str(other / "copied")])
        results["check"] = timed("check", [*cli, "check", "-f", str(config)])
        results["check --no-signatures"] = timed(
            "check", [*cli, "check", "-f", str(config), "--no-signatures"])
        results["restore"] = timed("restore", [*cli, "restore", "-f", str(config),
                                               "--data-dir", str(workdir / "restored"),
                                               str(workdir / "linked")])
        reference = results["cp -a (reference)"]
        print(f"{args.size} packages, data dir {size / 2 ** 20:.1f} MiB")
        for label, seconds in results.items():
            print(f"{label:24s} {seconds:7.3f} s  {seconds / reference:5.2f}x cp -a")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if other is not None:
            shutil.rmtree(other, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
