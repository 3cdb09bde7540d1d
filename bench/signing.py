"""Bench: what sign = true costs a publish burst into an arch-repo of N packages, next to
sign = false and Debian's repo-add (with and without --sign), all in the same run.

    python3 bench/signing.py [--n 5000] [--burst 20] [--clients 4] [--repeat 3]
                             [--tmpdir DIR] [--repo-add-tmpdir DIR]

Prepares bench/x86_64 with N synthetic entries in-process, copies that data dir, and
starts one real server on each copy: sign = false and sign = true (its key generated at
the first start, its db signed before timing). Each round publishes the same `burst`
package names in a new pkgrel from `clients` HTTP clients at once and times the whole
burst; the db rewrites of each burst are counted from the server's DEBUG log lines. Then
`repo-add -q` and `repo-add -q --sign` add the same packages, all in one call, to copies
of the same archives. Finally, signing one rewrite (the .db and .files archives, two gpg
processes at once) and one package are timed in-process on the server's key.
Prints figures and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from publish import default_repo_add_tmpdir  # noqa: E402

REPO = "bench"
BURST_NAME = "vieter-bench-burst"
REWRITE = f"wrote {REPO}/{c.ARCH} db"
SIGN_TARGET_MS = 50


def prepare(workdir: Path, n: int) -> Path:
    """A data dir holding bench/x86_64 with n entries (unsigned); returns it."""
    from vieter_lite.services import build_services

    data_dir = workdir / "data"
    config_path = c.write_config(workdir / "prepare.toml", data_dir, c.free_port())
    services = build_services(c.load_config(config_path))
    try:
        c.populate(services.db, services.store, REPO, c.ARCH, c.synthetic_packages(n))
    finally:
        services.db.close()
    return data_dir


def start_server(workdir: Path, data_dir: Path, sign: bool) -> c.Server:
    port = c.free_port()
    config_path = c.write_config(workdir / f"sign-{sign}.toml", data_dir, port, "DEBUG")
    with open(config_path, "a") as out:
        out.write(f"sign = {'true' if sign else 'false'}\n")
    server = c.Server(config_path, port, workdir / f"server-sign-{sign}.log").start()
    deadline = time.monotonic() + 600
    while "signatures: done" not in server.log():  # signing the existing db at start
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not finish its start-up signing:\n{server.log()}")
        time.sleep(0.1)
    return server


def burst(server: c.Server, packages: list[Path], clients: int) -> tuple[float, int]:
    """Publish all at once from `clients` clients: (seconds, db rewrites)."""
    before = server.log().count(REWRITE)

    def send(path: Path) -> None:
        body = path.read_bytes()
        status, reply = c.request(server.port, "POST", f"/{REPO}/publish", body,
                                  {"X-Api-Key": c.API_KEY, "Content-Length": str(len(body))})
        if status != 200:
            raise RuntimeError(f"publish of {path.name}: {status} {reply[:300]!r}")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(send, packages))
    elapsed = time.perf_counter() - start
    time.sleep(0.2)  # the log lines of the last rewrite
    return elapsed, server.log().count(REWRITE) - before


def repo_add(archives: dict[str, Path], packages: list[Path], scratch: Path,
             tmpdir: str | None, sign_home: Path | None, fingerprint: str) -> float:
    run_dir = Path(tempfile.mkdtemp(prefix="repo-add-", dir=scratch))
    for name, source in archives.items():
        shutil.copyfile(source, run_dir / name)
    env = dict(os.environ)
    if tmpdir:
        env["TMPDIR"] = tmpdir
    cmd = ["repo-add", "-q"]
    if sign_home is not None:
        env["GNUPGHOME"] = str(sign_home)
        cmd += ["--sign", "--key", fingerprint]
    cmd += [str(run_dir / f"{REPO}.db.tar.gz"), *map(str, packages)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    shutil.rmtree(run_dir)
    return elapsed


def time_signing(home: Path, archives: dict[str, Path], package: Path, scratch: Path,
                 repeat: int) -> tuple[float, float]:
    """Medians (s) of signing one rewrite's two archives and one package, on the key the
    server made (gpg-agent already running, as in the server)."""
    from vieter_lite.gpg import GnuPG
    from vieter_lite.repo.signing import choose_key

    gpg = GnuPG(home)
    try:
        fpr = choose_key(gpg.secret_keys(), None)
        assert fpr is not None
        pairs = [(path, scratch / f"{path.name}.sig") for path in archives.values()]
        gpg.sign(fpr, pairs)  # warm
        rewrite, one = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            gpg.sign(fpr, pairs)
            rewrite.append(time.perf_counter() - start)
            start = time.perf_counter()
            gpg.sign(fpr, [(package, scratch / "package.sig")])
            one.append(time.perf_counter() - start)
        return c.median(rewrite), c.median(one)
    finally:
        gpg.close()


def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="arch-repo size (default 5000)")
    parser.add_argument("--burst", type=int, default=20, help="publishes per burst (20)")
    parser.add_argument("--clients", type=int, default=4, help="clients at once (4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed bursts (3)")
    parser.add_argument("--tmpdir", default=None, help="where scratch data dirs go")
    parser.add_argument("--repo-add-tmpdir", default=None, metavar="DIR",
                        help="TMPDIR for repo-add (default: a tmpfs such as /dev/shm)")
    args = parser.parse_args(argv)
    for tool in ("repo-add", "gpg"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    repo_add_tmp = args.repo_add_tmpdir or default_repo_add_tmpdir()
    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    gpg_version = subprocess.run(["gpg", "--version"], capture_output=True, text=True)
    print(f"# python {sys.version.split()[0]}, {gpg_version.stdout.splitlines()[0]}, "
          f"{os.cpu_count()} CPUs; N={args.n}, bursts of {args.burst} publishes from "
          f"{args.clients} clients, medians of {args.repeat}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="vieter-bench-signing-", dir=args.tmpdir))
    servers: list[c.Server] = []
    try:
        print("# preparing ...", file=sys.stderr, flush=True)
        base = prepare(workdir, args.n)
        data = {False: workdir / "off", True: workdir / "on"}
        for copy in data.values():
            shutil.copytree(base, copy, symlinks=True)
        archives = {}
        baseline = workdir / "baseline"
        baseline.mkdir()
        for kind in ("db", "files"):
            name = f"{REPO}.{kind}.tar.gz"
            archives[name] = Path(shutil.copyfile(base / "repos" / REPO / c.ARCH / name,
                                                  baseline / name))
        sizes = [path.stat().st_size for path in archives.values()]
        pkgs_dir = workdir / "pkgs-in"
        pkgs_dir.mkdir()
        rounds = [[c.real_package(pkgs_dir / f"{BURST_NAME}{i}-1.0-{r}-{c.ARCH}.pkg.tar.zst",
                                  f"{BURST_NAME}{i}", f"1.0-{r}") for i in range(args.burst)]
                  for r in range(1, args.repeat + 2)]

        results: dict[bool, list[tuple[float, int]]] = {}
        for sign in (False, True):
            print(f"# sign = {str(sign).lower()}: starting, bursts ...", file=sys.stderr,
                  flush=True)
            server = start_server(workdir, data[sign], sign)
            servers.append(server)
            burst(server, rounds[0], args.clients)  # warm: compresses every bucket once
            results[sign] = [burst(server, packages, args.clients) for packages in rounds[1:]]
            server.stop()

        print("# repo-add ...", file=sys.stderr, flush=True)
        home = data[True] / "gnupg"
        key_home = Path(tempfile.mkdtemp(prefix="vbk", dir="/tmp"))  # repo-add's own keyring
        try:
            shutil.copytree(home, key_home, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("S.*"))
            from vieter_lite.gpg import GnuPG
            from vieter_lite.repo.signing import choose_key
            fpr = choose_key(GnuPG(key_home).secret_keys(), None) or ""
            plain = [repo_add(archives, p, workdir, repo_add_tmp, None, "") for p in rounds[1:]]
            signed = [repo_add(archives, p, workdir, repo_add_tmp, key_home, fpr)
                      for p in rounds[1:]]
        finally:
            subprocess.run(["gpgconf", "--homedir", str(key_home), "--kill", "all"],
                           capture_output=True)
            shutil.rmtree(key_home, ignore_errors=True)
        sign_rewrite, sign_one = time_signing(home, archives, rounds[0][0], workdir,
                                              max(5, args.repeat * 3))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    off = c.median([t for t, _ in results[False]])
    on = c.median([t for t, _ in results[True]])
    ra, ra_signed = c.median(plain), c.median(signed)
    rewrites = {s: c.median([float(n) for _, n in results[s]]) for s in (False, True)}
    header = f"{'':<28} {'burst ms':>9} {'rewrites':>9} {'vs off':>8} {'vs repo-add':>12}"
    print(header)
    print("-" * len(header))
    rows = [("vieter-lite sign = false", off, rewrites[False]),
            ("vieter-lite sign = true", on, rewrites[True]),
            ("repo-add (one call)", ra, None), ("repo-add --sign (one call)", ra_signed, None)]
    for label, value, count in rows:
        shown = "" if count is None else f"{count:g}"
        print(f"{label:<28} {value * 1000:>9.1f} {shown:>9} {value / off:>7.2f}x "
              f"{value / ra * 100:>11.1f}%")
    extra = (on - off) / max(rewrites[True], 1) * 1000
    print(f"# signing adds {(on - off) * 1000:.1f} ms to a burst of {args.burst} "
          f"({(on - off) / args.burst * 1000:.1f} ms a package, {extra:.1f} ms a rewrite if "
          f"all of it were the db's)")
    print(f"# signing one rewrite in-process (db {sizes[0] / 1e6:.2f} MB + files "
          f"{sizes[1] / 1e6:.2f} MB, two gpg at once): {sign_rewrite * 1000:.1f} ms (target "
          f"< {SIGN_TARGET_MS} ms); one package: {sign_one * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
