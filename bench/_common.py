"""Helpers shared by the benches: a server launcher, synthetic arch-repos, small stats.

Nothing here imports pytest or the test fixtures; the package factory (tests/pkgfactory.py)
is plain Python and is reused for real package files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pkgfactory import make_synthetic_package  # noqa: E402
from vieter_lite import config as vconfig  # noqa: E402
from vieter_lite.models import Package, PkgInfo, RepoPackage  # noqa: E402
from vieter_lite.repo import database, desc  # noqa: E402

API_KEY = "bench-secret"
ARCH = "x86_64"
PACKAGER = "Vieter Bench <bench@example.invalid>"
BUILDDATE = 1_700_000_000


# -- configuration and server process -------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, data_dir: Path, port: int, log_level: str = "WARN") -> Path:
    """A TOML config used both in-process (to pre-populate) and by the server process, so
    both see exactly the same data_dir/pkg_dir layout."""
    path.write_text(f'api_key = "{API_KEY}"\n'
                    f'data_dir = "{data_dir}"\n'
                    f'host = "127.0.0.1"\n'
                    f'port = {port}\n'
                    f'default_arch = "{ARCH}"\n'
                    f'log_level = "{log_level}"\n')
    return path


def load_config(path: Path) -> vconfig.ServerConfig:
    return vconfig.load_server(str(path), environ={})


@dataclass
class Server:
    """`python -m vieter_lite server -f CONFIG` as a child process (like tests/conftest.py)."""

    config_path: Path
    port: int
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
        env["PYTHONPATH"] = str(ROOT)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vieter_lite", "server", "-f", str(self.config_path)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.log_path.parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = request(self.port, "GET", "/health", timeout=1)
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not come up:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict[str, str]:
        """/proc/<pid>/status as {key: value}."""
        assert self.proc is not None
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
        return out


def kib(value: str) -> int:
    """'12345 kB' -> 12345."""
    return int(value.split()[0])


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 600) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# -- synthetic packages ----------------------------------------------------------------

PREFIXES = ("", "", "", "lib", "python-", "perl-", "ruby-", "r-", "haskell-", "xorg-",
            "kde-", "gnome-", "ttf-", "nodejs-", "go-")
SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ter", "vox", "zen", "qui", "bar", "dor", "fel",
             "gri", "hap", "jun", "lux", "mor", "nix", "pra", "sol", "tri", "vel", "wyn", "xo")
LICENSES = ("MIT", "GPL-2.0-or-later", "GPL-3.0-only", "Apache-2.0", "BSD-3-Clause",
            "LGPL-2.1-or-later", "MPL-2.0", "custom")
BASE_DEPS = ("glibc", "gcc-libs", "zlib", "openssl", "python", "bash", "curl", "libffi",
             "ncurses", "readline", "xz", "zstd", "sqlite", "expat", "libxml2")


def synthetic_package(rng: random.Random, name: str, version: str,
                      dep_pool: list[str]) -> Package:
    """A Package record that looks like a real x86_64 package (desc fields and file list)."""
    isize = rng.randint(20_000, 50_000_000)
    csize = max(4_096, isize // rng.randint(2, 5))
    depends = sorted(set(rng.sample(BASE_DEPS, rng.randint(0, 3))
                         + rng.sample(dep_pool, min(len(dep_pool), rng.randint(0, 3)))))
    stem = name.split("-", 1)[-1]
    files = ["usr/", "usr/bin/", f"usr/bin/{name}", "usr/lib/", f"usr/lib/{stem}/"]
    files += [f"usr/lib/{stem}/lib{stem}{i}.so.{i}" for i in range(rng.randint(1, 12))]
    files += ["usr/share/", "usr/share/doc/", f"usr/share/doc/{name}/",
              f"usr/share/doc/{name}/README.md", "usr/share/licenses/",
              f"usr/share/licenses/{name}/", f"usr/share/licenses/{name}/LICENSE",
              "usr/share/man/", "usr/share/man/man1/", f"usr/share/man/man1/{name}.1.gz"]
    files += [f"usr/share/{stem}/data{i}.dat" for i in range(rng.randint(0, 8))]
    info = PkgInfo(
        name=name, version=version, arch=ARCH, base=name,
        desc=f"Synthetic {stem} library and tools for benchmarking repository "
             f"database rewrites ({rng.randint(1, 999)})",
        url=f"https://example.org/projects/{stem}",
        builddate=str(BUILDDATE + rng.randint(0, 30_000_000)), packager=PACKAGER,
        isize=str(isize), licenses=(rng.choice(LICENSES),), depends=tuple(depends))
    sha = hashlib.sha256(f"{name}-{version}".encode()).hexdigest()
    return Package(info=info, extension=".pkg.tar.zst", csize=csize, sha256=sha,
                   files=tuple(sorted(files)))


def synthetic_packages(n: int, seed: int = 1) -> list[Package]:
    rng = random.Random(seed)
    out: list[Package] = []
    names: list[str] = []
    for i in range(n):
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        name = f"{rng.choice(PREFIXES)}{word}{i}"
        epoch = "1:" if rng.random() < 0.05 else ""
        version = f"{epoch}{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}" \
                  f"-{rng.randint(1, 3)}"
        out.append(synthetic_package(rng, name, version, names[-200:]))
        names.append(name)
    return out


def populate(db, store, repo: str, arch: str, packages: list[Package]) -> None:
    """Put `packages` into repo/arch with the store's own rendering, in one transaction,
    then let the store write the db archives. No package files are written."""
    now = int(time.time())
    with db.transaction():
        db.add_arch_repo(repo, arch)
        for pkg in packages:
            desc_text = desc.render_desc(pkg)
            members = database.entry_members(database.Entry(
                pkg.info.entry, desc_text, desc.render_files(pkg.files),
                int(pkg.info.builddate or 0)))
            db.put_package(RepoPackage(repo=repo, arch=arch, name=pkg.info.name,
                                       version=pkg.info.version, filename=pkg.filename,
                                       pkg_arch=pkg.info.arch, desc=desc_text,
                                       published_at=now), *members)
        db.bump_generation(repo, arch)
    store.write_archives(repo, arch)


def real_package(path: Path, name: str, version: str, nfiles: int = 20) -> Path:
    """A real .pkg.tar.zst (synthetic contents, built by tests/pkgfactory.py)."""
    files = {f"usr/bin/{name}": f"#!/bin/sh\necho {name} {version}\n".encode()}
    files.update({f"usr/share/{name}/file{i:02d}.txt": (f"{name} {version} {i}\n" * 20).encode()
                  for i in range(nfiles - 1)})
    pkginfo = {"pkgname": name, "pkgbase": name, "pkgver": version,
               "pkgdesc": "vieter-lite bench package", "url": "https://example.org/bench",
               "builddate": str(int(time.time())), "packager": PACKAGER,
               "size": str(sum(len(v) for v in files.values())), "arch": ARCH,
               "license": ["MIT"], "depend": ["glibc", "bash"]}
    return make_synthetic_package(path, pkginfo, files)


# -- small stats -----------------------------------------------------------------------

def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def unwind_on_signals() -> None:
    """SIGTERM (and SIGINT even when a shell started us with it ignored) unwind through the
    finally blocks, so servers, agents and scratch dirs are cleaned up."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupted)
