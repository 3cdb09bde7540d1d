"""Debian's pacman tools (vercmp, repo-add, bsdtar) used as test oracles."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

_ENV = {**os.environ, "LANG": "C", "LC_ALL": "C"}


def vercmp(a: str, b: str) -> int:
    out = subprocess.run(["/usr/bin/vercmp", a, b], capture_output=True, text=True, check=True).stdout
    value = int(out.strip())
    return (value > 0) - (value < 0)


def repo_add_entries(pkg_paths: list[Path], workdir: Path) -> dict[str, dict[str, str]]:
    """Run repo-add on copies of the packages; return {entry dir: {"desc": ..., "files": ...}}."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    copies = [shutil.copy(p, workdir / Path(p).name) for p in pkg_paths]
    proc = subprocess.run(["repo-add", "-q", str(workdir / "oracle.db.tar.gz"), *map(str, copies)],
                          capture_output=True, text=True, env=_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"repo-add failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    entries: dict[str, dict[str, str]] = {}
    with tarfile.open(workdir / "oracle.files.tar.gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                path = PurePosixPath(member.name)
                entries.setdefault(str(path.parent), {})[path.name] = tar.extractfile(member).read().decode()
    return entries


def strip_md5(desc_text: str) -> str:
    """Drop the %MD5SUM% block that repo-add < 6.1 writes."""
    return re.sub(r"%MD5SUM%\n[^\n]*\n\n", "", desc_text)


def bsdtar_list(pkg_path: Path) -> list[str]:
    out = subprocess.run(["bsdtar", "-tf", str(pkg_path)], capture_output=True, text=True,
                         check=True, env=_ENV).stdout
    return out.splitlines()


def printsrcinfo(pkgbuild: str) -> str:
    """What Debian's `makepkg --printsrcinfo` prints for a PKGBUILD text (as the build user
    VIETER_TEST_USER when run as root; makepkg refuses root)."""
    import pwd
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="vieter-srcinfo-"))
    try:
        (work / "PKGBUILD").write_text(pkgbuild)
        prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(os.environ.get("VIETER_TEST_USER", "vieter-test"))
            os.chown(work, user.pw_uid, user.pw_gid)
            prefix = ["runuser", "-u", user.pw_name, "--"]
        proc = subprocess.run([*prefix, "env", "-i", "HOME=/tmp", "PATH=/usr/bin:/bin",
                               "LANG=C.UTF-8", "makepkg", "--printsrcinfo"], cwd=work,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"makepkg --printsrcinfo failed: {proc.stderr}\n{pkgbuild}")
        return proc.stdout
    finally:
        shutil.rmtree(work)
