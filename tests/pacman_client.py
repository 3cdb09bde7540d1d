"""A real pacman client with a private root directory and pacman.conf, for integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def pacman_available() -> bool:
    return shutil.which("pacman") is not None and os.geteuid() == 0


class PacmanClient:
    """pacman confined to `root`; `repos` maps repo name -> Server URL (may use $repo/$arch)."""

    def __init__(self, root: Path, repos: dict[str, str], arch: str = "x86_64") -> None:
        self.root = Path(root)
        self.repos = dict(repos)
        for sub in ("var/lib/pacman", "var/cache/pacman/pkg", "var/log",
                    "etc/pacman.d/gnupg", "etc/pacman.d/hooks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        lines = [
            "[options]",
            f"RootDir = {r}",
            f"DBPath = {r}/var/lib/pacman/",
            f"CacheDir = {r}/var/cache/pacman/pkg/",
            f"LogFile = {r}/var/log/pacman.log",
            f"GPGDir = {r}/etc/pacman.d/gnupg/",
            f"HookDir = {r}/etc/pacman.d/hooks/",
            f"Architecture = {arch}",
            "SigLevel = Never",
        ]
        for name, url in self.repos.items():
            lines += ["", f"[{name}]", f"Server = {url}"]
        self.conf = self.root / "pacman.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["pacman", "--config", str(self.conf), "--noconfirm", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env={**os.environ, "LANG": "C", "LC_ALL": "C"})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def sync_db(self) -> subprocess.CompletedProcess:
        return self.run("-Syy")

    def install(self, *pkgs: str) -> subprocess.CompletedProcess:
        return self.run("-S", "--noscriptlet", "-dd", *pkgs)

    def upgrade(self) -> subprocess.CompletedProcess:
        return self.run("-Syyu", "--noscriptlet", "-dd")

    def files_sync(self) -> subprocess.CompletedProcess:
        return self.run("-Fyy")

    def list_files(self, pkg: str) -> list[str]:
        """Paths of `pkg` from the .files db (`pacman -Fl`), directories with a trailing /."""
        return [line.split(" ", 1)[1] for line in self.run("-Fl", pkg).stdout.splitlines()]

    def installed(self) -> dict[str, str]:
        proc = self.run("-Q", check=False)
        # pacman -Q exits 1 with no output when nothing is installed.
        if proc.returncode != 0 and (proc.stdout or "error:" in proc.stderr):
            raise AssertionError(f"pacman -Q exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return dict(line.split(" ", 1) for line in proc.stdout.splitlines())

    def search_sync(self, repo: str | None = None) -> dict[str, str]:
        """{name: version} of the sync db of `repo` (`pacman -Sl`), or of all repos."""
        proc = self.run("-Sl", *([repo] if repo else []))
        return {fields[1]: fields[2] for fields in (line.split() for line in proc.stdout.splitlines())}
