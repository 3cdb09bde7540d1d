"""Bench: publishing one package into an arch-repo of N packages, vieter-lite vs repo-add.

    python3 bench/publish.py [--sizes 1000,5000,20000] [--repeat 5] [--tmpdir DIR]
                             [--repo-add-tmpdir DIR] [--profile] [--top 15]

For each N: pre-populate bench/x86_64 with N synthetic entries in-process (vieter_lite's own
Database and desc/tar rendering, one transaction, then RepoStore.write_archives), start a
real server process on that data dir, time POST /bench/publish of one real package
(a new pkgrel each run, so every run replaces an entry) until the response arrives, then
time Debian's `repo-add -q bench.db.tar.gz PKG` on fresh copies of the same archives
(its TMPDIR on a tmpfs by default, as on Arch; see bench/README.md).
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

REPO = "bench"
TARGET = "vieter-bench-target"
TARGET_VER = "1.0.0"
RSS_TARGET_MB = 60
RATIO_TARGET = 5.0


def prepare(workdir: Path, n: int) -> tuple[Path, Path]:
    """Data dir with bench/x86_64 holding n entries (one of them TARGET 1.0.0-1); returns
    (config path, data dir)."""
    from vieter_lite.services import build_services

    data_dir = workdir / "data"
    config_path = c.write_config(workdir / "vieter-lite.toml", data_dir, c.free_port())
    services = build_services(c.load_config(config_path))
    try:
        packages = c.synthetic_packages(n - 1)
        packages.append(c.synthetic_package(random.Random(0), TARGET, f"{TARGET_VER}-1", []))
        c.populate(services.db, services.store, REPO, c.ARCH, packages)
    finally:
        services.db.close()
    return config_path, data_dir


def time_publishes(server: c.Server, packages: list[Path]) -> list[float]:
    times = []
    for path in packages:
        body = path.read_bytes()
        headers = {"X-Api-Key": c.API_KEY, "Content-Type": "application/octet-stream",
                   "Content-Length": str(len(body))}
        start = time.perf_counter()
        status, reply = c.request(server.port, "POST", f"/{REPO}/publish", body, headers)
        elapsed = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"publish of {path.name} failed: {status} {reply[:500]!r}")
        version = json.loads(reply)["data"]["version"]
        if not path.name.startswith(f"{TARGET}-{version}-"):
            raise RuntimeError(f"server published {version} for {path.name}")
        times.append(elapsed)
    return times


def default_repo_add_tmpdir() -> str | None:
    """repo-add extracts both archives into $TMPDIR and deletes them again. Arch (what
    repo-add is written for) has /tmp on tmpfs; Debian 12 has it on disk, where this
    metadata churn can cost far more than repo-add's own work and gets slower from run
    to run. Default to tmpfs so the baseline is the tool, not the disk."""
    for path in ("/dev/shm", f"/run/user/{os.getuid()}"):
        try:
            with open("/proc/mounts") as mounts:
                tmpfs = any(line.split()[1] == path and line.split()[2] == "tmpfs"
                            for line in mounts)
        except OSError:
            return None
        if tmpfs and os.access(path, os.W_OK):
            return path
    return None


def time_repo_add(archives: dict[str, Path], packages: list[Path], scratch: Path,
                  tmpdir: str | None) -> list[float]:
    env = dict(os.environ)
    if tmpdir:
        env["TMPDIR"] = tmpdir
    times = []
    for i, path in enumerate(packages):
        run_dir = scratch / f"repo-add-{i}"
        run_dir.mkdir()
        for name, source in archives.items():
            shutil.copyfile(source, run_dir / name)
        cmd = ["repo-add", "-q", str(run_dir / f"{REPO}.db.tar.gz"), str(path)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=env)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        times.append(elapsed)
        shutil.rmtree(run_dir)
    return times


def profile_publish(config_path: Path, package: Path, top: int) -> str:
    """One publish in-process under cProfile (the server's code path minus HTTP)."""
    from vieter_lite.services import build_services

    services = build_services(c.load_config(config_path))
    try:
        upload = services.store.tmp_dir / "profile-upload"
        shutil.copyfile(package, upload)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        services.store.publish(REPO, upload)
        profiler.disable()
        elapsed = time.perf_counter() - start
        upload.unlink(missing_ok=True)
    finally:
        services.db.close()
    out = io.StringIO()
    out.write(f"in-process publish: {elapsed * 1000:.1f} ms (under cProfile)\n")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    return out.getvalue()


def run_size(n: int, repeat: int, base_tmp: str | None, repo_add_tmp: str | None,
             profile: bool, top: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"vieter-bench-publish-{n}-", dir=base_tmp))
    server: c.Server | None = None
    try:
        t0 = time.perf_counter()
        config_path, data_dir = prepare(workdir, n)
        prep_s = time.perf_counter() - t0
        cfg = c.load_config(config_path)
        repo_dir = cfg.data_dir / "repos" / REPO / c.ARCH
        # repo-add's inputs: the archives the server itself wrote, under repo-add's names
        baseline = workdir / "baseline"
        baseline.mkdir()
        archives = {}
        for kind in ("db", "files"):
            name = f"{REPO}.{kind}.tar.gz"
            shutil.copyfile(repo_dir / name, baseline / name)
            archives[name] = baseline / name
        db_size = archives[f"{REPO}.db.tar.gz"].stat().st_size
        files_size = archives[f"{REPO}.files.tar.gz"].stat().st_size

        pkgs_dir = workdir / "pkgs-in"
        pkgs_dir.mkdir()
        packages = [c.real_package(pkgs_dir / f"{TARGET}-{TARGET_VER}-{rel}-{c.ARCH}.pkg.tar.zst",
                                   TARGET, f"{TARGET_VER}-{rel}") for rel in range(2, repeat + 2)]

        server = c.Server(config_path, cfg.port, workdir / "server.log").start()
        rss_before = c.kib(server.status()["VmRSS"])
        ours = time_publishes(server, packages)
        status = server.status()
        rss, hwm = c.kib(status["VmRSS"]), c.kib(status["VmHWM"])
        server.stop()
        theirs = time_repo_add(archives, packages, workdir, repo_add_tmp)

        profile_text = ""
        if profile:
            extra = c.real_package(
                pkgs_dir / f"{TARGET}-{TARGET_VER}-{repeat + 2}-{c.ARCH}.pkg.tar.zst",
                TARGET, f"{TARGET_VER}-{repeat + 2}")
            profile_text = profile_publish(config_path, extra, top)
        return {"n": n, "ours": ours, "theirs": theirs, "rss_kib": rss, "hwm_kib": hwm,
                "rss_idle_kib": rss_before, "prep_s": prep_s, "db_size": db_size,
                "files_size": files_size, "profile": profile_text}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)



def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,20000",
                        help="comma-separated arch-repo sizes (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs per size and tool; the median is shown (default: 5)")
    parser.add_argument("--tmpdir", default=None,
                        help="where scratch data dirs go (default: the system temp dir)")
    parser.add_argument("--repo-add-tmpdir", default=None, metavar="DIR",
                        help="TMPDIR for repo-add's scratch extraction (default: a tmpfs such "
                             "as /dev/shm when there is one; pass /tmp for Debian's default)")
    parser.add_argument("--profile", action="store_true",
                        help="also run one publish in-process under cProfile per size")
    parser.add_argument("--top", type=int, default=15, help="functions shown by --profile")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.repeat < 1 or any(n < 1 for n in sizes):
        parser.error("--repeat and sizes must be at least 1")
    if shutil.which("repo-add") is None:
        parser.error("repo-add is not installed (Debian: apt-get install pacman-package-manager)")

    repo_add_tmp = args.repo_add_tmpdir or default_repo_add_tmpdir()
    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    version = subprocess.run(["repo-add", "--version"], capture_output=True, text=True)
    print(f"# python {sys.version.split()[0]}, {version.stdout.splitlines()[0].strip()}, "
          f"repeat={args.repeat}, repo-add times are medians", flush=True)
    print(f"# server data dir under {args.tmpdir or tempfile.gettempdir()}; repo-add "
          f"TMPDIR={repo_add_tmp or os.environ.get('TMPDIR', '/tmp')}; {os.cpu_count()} CPUs",
          flush=True)

    results = []
    for n in sizes:
        print(f"# N={n}: preparing, publishing, running repo-add ...", file=sys.stderr,
              flush=True)
        r = run_size(n, args.repeat, args.tmpdir, repo_add_tmp, args.profile, args.top)
        print(f"#   prepared in {r['prep_s']:.1f} s; db {r['db_size'] / 1e6:.2f} MB, files "
              f"{r['files_size'] / 1e6:.2f} MB; publish ms "
              f"{[round(t * 1000, 1) for t in r['ours']]}; repo-add ms "
              f"{[round(t * 1000) for t in r['theirs']]}; idle RSS "
              f"{r['rss_idle_kib'] / 1024:.1f} MB", file=sys.stderr, flush=True)
        results.append(r)

    header = f"{'N':>7} {'publish ms':>11} {'repo-add ms':>12} {'ratio':>8} " \
             f"{'first ms':>9} {'ratio':>8} {'RSS MB':>8} {'peak MB':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        first = r["ours"][0] * 1000
        ours = c.median(r["ours"][1:] or r["ours"]) * 1000
        theirs = c.median(r["theirs"]) * 1000
        print(f"{r['n']:>7} {ours:>11.1f} {theirs:>12.1f} {ours / theirs * 100:>7.2f}% "
              f"{first:>9.1f} {first / theirs * 100:>7.2f}% "
              f"{r['rss_kib'] / 1024:>8.1f} {r['hwm_kib'] / 1024:>8.1f}")
    print("# publish ms = median of the publishes after the first; first ms = the first publish "
          "after the server started, which also compresses every bucket of the arch-repo once")
    print(f"# ratio = vieter-lite publish / repo-add (target < {RATIO_TARGET:g}% at N=5000); "
          f"RSS = server VmRSS after the publishes, peak = VmHWM "
          f"(target < {RSS_TARGET_MB} MB at N=5000)")
    for r in results:
        if r["profile"]:
            print(f"\n## cProfile, N={r['n']}\n{r['profile']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
