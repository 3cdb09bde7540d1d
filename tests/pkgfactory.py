"""Build real pacman packages with Debian's makepkg, or synthetic ones in pure Python."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import pwd
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

try:
    from compression import zstd as _zstd
except ImportError:
    import pyzstd as _zstd

PKGINFO_ORDER = [
    "pkgname", "pkgbase", "xdata", "pkgver", "pkgdesc", "url", "builddate", "packager",
    "size", "arch", "license", "replaces", "group", "conflict", "provides", "backup",
    "depend", "optdepend", "makedepend", "checkdepend",
]
_COMPRESSORS = {
    "zst": _zstd.compress,
    "gz": lambda data: gzip.compress(data, mtime=0),
    "xz": lzma.compress,
    "none": lambda data: data,
}
_MAKEPKG_TOOLS = ("makepkg", "bsdtar", "fakeroot")


def _build_user() -> str | None:
    """The user to run makepkg as: VIETER_TEST_USER when root, None (= ourselves) otherwise."""
    return os.environ.get("VIETER_TEST_USER", "vieter-test") if os.geteuid() == 0 else None


def makepkg_available() -> bool:
    if not all(shutil.which(tool) for tool in _MAKEPKG_TOOLS):
        return False
    user = _build_user()
    if user is None:
        return True
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return shutil.which("runuser") is not None


def _install_lines(files: dict[str, str]) -> list[str]:
    lines = []
    for dest, content in files.items():
        target = f'"$pkgdir"/{shlex.quote(dest)}'
        lines.append(f'  install -d "$(dirname {target})"')
        lines.append(f"  printf '%s' {shlex.quote(content)} > {target}")
    return lines


def _quoted(items: list[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)


def _pkgbuild(names: list[str], pkgver: str, pkgrel: str, epoch: str | None, arch: str,
              files: dict[str, str] | None, depends: list[str] | None, pkgdesc: str | None,
              extra: str) -> str:
    head = [
        f"pkgname=({_quoted(names)})",
        f"pkgbase={shlex.quote(names[0])}",
        f"pkgver={pkgver}",
        f"pkgrel={pkgrel}",
        *([f"epoch={epoch}"] if epoch is not None else []),
        f"pkgdesc={shlex.quote(pkgdesc or 'vieter_lite test package')}",
        f"arch=({shlex.quote(arch)})",
        "license=('MIT')",
        f"depends=({_quoted(depends or [])})",
        "options=(!debug !strip)",
    ]
    funcs = []
    for name in names:
        pkg_files = {}
        if arch != "any":
            pkg_files[f"usr/bin/{name}"] = f"#!/bin/sh\necho {name} {pkgver}\n"
        pkg_files.update(files if files is not None else
                         {f"usr/share/{name}/README": f"{name} {pkgver}-{pkgrel}: built by vieter_lite tests\n"})
        body = _install_lines(pkg_files)
        if arch != "any":
            body.append(f'  chmod 755 "$pkgdir"/usr/bin/{shlex.quote(name)}')
        func = "package" if len(names) == 1 else f"package_{name}"
        funcs.append(f"{func}() {{\n" + "\n".join(body) + "\n}\n")
    # extra comes last so it can override options=() or the package functions
    return "\n".join(head) + "\n\n" + "\n".join(funcs) + "\n" + extra + "\n"


def build_with_makepkg(workdir: Path, pkgname: str | list[str], pkgver: str, pkgrel: str = "1",
                       epoch: str | None = None, arch: str = "any", pkgext: str = ".pkg.tar.zst",
                       files: dict[str, str] | None = None, depends: list[str] | None = None,
                       pkgdesc: str | None = None, extra: str = "") -> list[Path]:
    """Run makepkg on a generated PKGBUILD; return the produced packages, copied into a fresh
    subdirectory of workdir (sorted). A list pkgname is a split package; `files` then goes
    into every split package, otherwise each gets its own usr/share/<name>/README."""
    names = [pkgname] if isinstance(pkgname, str) else list(pkgname)
    pkgbuild = _pkgbuild(names, pkgver, pkgrel, epoch, arch, files, depends, pkgdesc, extra)
    outdir = Path(tempfile.mkdtemp(prefix=f"{names[0]}-", dir=workdir))
    (outdir / "PKGBUILD").write_text(pkgbuild)

    user = _build_user()
    # workdir's parents (e.g. pytest's 0700 /tmp/pytest-of-root) may be closed to the build
    # user, so makepkg runs in its own temp dir and the results are copied back.
    builddir = Path(tempfile.mkdtemp(prefix="vieter-makepkg-"))
    try:
        shutil.copy(outdir / "PKGBUILD", builddir / "PKGBUILD")
        home = os.environ.get("HOME", "/tmp")
        prefix: list[str] = []
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(builddir, entry.pw_uid, entry.pw_gid)
            os.chown(builddir / "PKGBUILD", entry.pw_uid, entry.pw_gid)
            home, prefix = entry.pw_dir, ["runuser", "-u", user, "--"]
        env = ["env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin",
               "LANG=C.UTF-8", f"PKGEXT={pkgext}", f"PKGDEST={builddir}"]
        proc = subprocess.run([*prefix, *env, "makepkg", "--nodeps", "--noconfirm", "-f"],
                              cwd=builddir, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        built = sorted(builddir.glob(f"*{pkgext}"))
        if proc.returncode != 0 or not built:
            raise RuntimeError(f"makepkg failed (exit {proc.returncode}) for {names}:\n"
                               f"{proc.stdout}\n{proc.stderr}\nPKGBUILD:\n{pkgbuild}")
        return [Path(shutil.copy(p, outdir / p.name)) for p in built]
    finally:
        shutil.rmtree(builddir, ignore_errors=True)


def _pkginfo_text(pkginfo: dict[str, str | list[str]]) -> str:
    keys = [k for k in PKGINFO_ORDER if k in pkginfo] + [k for k in pkginfo if k not in PKGINFO_ORDER]
    lines = []
    for key in keys:
        values = pkginfo[key]
        for value in [values] if isinstance(values, str) else values:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def make_synthetic_package(path: Path, pkginfo: dict[str, str | list[str]] | str,
                           files: dict[str, bytes] | None = None, compression: str = "zst") -> Path:
    """Write a package archive at `path` without makepkg: .PKGINFO, parent dirs, then files."""
    files = files or {}
    text = pkginfo if isinstance(pkginfo, str) else _pkginfo_text(pkginfo)
    mtime = int(time.time())
    dirs = sorted({str(p) for name in files for p in PurePosixPath(name).parents if str(p) != "."})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes | None, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uname, info.gname = mtime, mode, "root", "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        add(".PKGINFO", text.encode(), 0o644)
        for d in dirs:
            add(d, None, 0o755)
        for name, data in files.items():
            add(name, data, 0o644)
    path = Path(path)
    path.write_bytes(_COMPRESSORS[compression](buf.getvalue()))
    return path
