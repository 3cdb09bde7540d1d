"""The appliance: the zipapp (no compiled modules, runs with `python3 -I`), the Arch package
built from PKGBUILD with Debian's makepkg and installed with the real pacman, the default
config and the systemd units (`systemd-analyze verify`)."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import API_KEY, ServerProcess
from pacman_client import PacmanClient, pacman_available
from pkgfactory import _build_user, make_synthetic_package, makepkg_available

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
REPO = "appliance"
ARCH = "x86_64"
UNITS = ("vieter-lite.service", "vieter-lite-agent.service")

pytestmark = pytest.mark.integration


def _version() -> str:
    text = (ROOT / "vieter_lite" / "__init__.py").read_text()
    return re.search(r'^__version__ = "(.*)"$', text, re.M).group(1)


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zipapp") / "vieter-lite.pyz"
    proc = subprocess.run([PY, str(ROOT / "packaging" / "build_zipapp.py"), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"build_zipapp failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def zipapp_server(data_dir: Path, zipapp: Path) -> ServerProcess:
    """`python3 -I vieter-lite.pyz server`, run from the data dir's parent like any server."""
    return ServerProcess(data_dir, command=[PY, "-I", str(zipapp)])


def publish(server: ServerProcess, path: Path) -> dict:
    body = path.read_bytes()
    req = urllib.request.Request(
        f"{server.url}/{REPO}/publish", data=body, method="POST",
        headers={"X-Api-Key": API_KEY, "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"publish {path.name}: HTTP {exc.code}: {exc.read()!r}\n"
                             f"{server.log()}") from None


def _pacman_client(root: Path, server: ServerProcess) -> PacmanClient:
    return PacmanClient(root, {REPO: f"{server.url}/$repo/$arch"}, arch=ARCH)


# -- the zipapp ----------------------------------------------------------------------------

def test_zipapp_holds_no_compiled_module_nor_pyzstd(zipapp: Path):
    with zipfile.ZipFile(zipapp) as zf:
        names = zf.namelist()
    assert "__main__.py" in names and "vieter_lite/cli.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib")) or ".so." in n]
    assert not [n for n in names if n.startswith("pyzstd")]
    tops = {n.split("/")[0] for n in names}
    for dep in ("bottle.py", "waitress", "croniter", "podman", "requests", "charset_normalizer",
                "yaml"):
        assert dep in tops
    assert zipapp.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert os.access(zipapp, os.X_OK)


def test_zipapp_cli_runs_without_site_packages(zipapp: Path, tmp_path: Path):
    """-I -S: no site-packages at all, so every import comes from the file."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-I", "-S", str(zipapp), *args], capture_output=True,
                              text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"vieter-lite {_version()}"
    proc = run("schedule", "0", "3", "-n", "2")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    for command in ("server", "agent", "targets", "logs", "repos", "aur"):
        proc = run(command, "--help")
        assert proc.returncode == 0, (command, proc.stderr)
    # the agent's imports (podman-py, requests) resolve from inside the zipapp
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import podman, requests, "
            "vieter_lite.agent.podman, vieter_lite.supervisor; print(podman.__file__)")
    proc = subprocess.run([PY, "-I", "-S", "-c", code, str(zipapp)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(zipapp))
    # a server that cannot start says why in one line
    proc = run("server")
    assert proc.returncode != 0 and "api_key" in proc.stderr


def test_zipapp_reads_manifests_with_pure_python_pyyaml(zipapp: Path):
    """PyYAML has no pure wheel: the zipapp carries its Python code without the C extension
    (and without the `_yaml` shim), and reads a manifest (hostile ones too) with it."""
    with zipfile.ZipFile(zipapp) as zf:
        names = zf.namelist()
    assert "yaml/__init__.py" in names and "yaml/scanner.py" in names
    assert not [n for n in names if n.startswith(("_yaml/", "yaml/_yaml"))], names
    code = """\
import json, sys
sys.path.insert(0, sys.argv[1])
import yaml
from vieter_lite.errors import Invalid
from vieter_lite.manifest import parse_manifest
m = parse_manifest(sys.argv[2], "x86_64")
try:
    parse_manifest("a: &a [*a]", "x86_64")
except Invalid as exc:
    hostile = exc.code
print(json.dumps([yaml.__file__, yaml.__with_libyaml__, m.repo, m.source.url, hostile]))
"""
    text = "repo: bur\nsource:\n  git: https://aur.archlinux.org/foo.git\n"
    proc = subprocess.run([PY, "-I", "-S", "-c", code, str(zipapp), text], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    where, libyaml, repo, url, hostile = json.loads(proc.stdout)
    assert where.startswith(str(zipapp)) and libyaml is False
    assert (repo, url, hostile) == ("bur", "https://aur.archlinux.org/foo.git", "too_deep")


def test_zipapp_reads_zstd_through_each_backend_and_names_them_without_any(zipapp: Path, tmp_path: Path):
    info = {"pkgname": "nozstd", "pkgver": "1.0-1", "arch": ARCH, "size": "1"}
    gz = make_synthetic_package(tmp_path / "nozstd-1.0-1-x86_64.pkg.tar.gz", info,
                                {"usr/share/nozstd/a": b"a"}, compression="gz")
    zst = make_synthetic_package(tmp_path / "nozstd-1.0-1-x86_64.pkg.tar.zst", info,
                                 {"usr/share/nozstd/a": b"a"}, compression="zst")
    code = """\
import os, sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[4:]:
    sys.modules[name] = None
from vieter_lite.errors import InvalidPackage
from vieter_lite.repo import package, zstd
print(zstd.backend())
print(package.read_package(sys.argv[2]).info.name)
try:
    print(package.read_package(sys.argv[3]).info.name)
except InvalidPackage as exc:
    print("ERROR", exc)
"""
    def run(blocked: list[str], path: str) -> list[str]:
        # -S: no site-packages, as on a system whose pip is blocked
        proc = subprocess.run([PY, "-I", "-S", "-c", code, str(zipapp), str(gz), str(zst), *blocked],
                              capture_output=True, text=True, env={"PATH": path})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    modules = ["compression.zstd", "pyzstd", "zstandard"]
    # only the zstd program: read as a streaming subprocess
    assert run(modules, os.environ["PATH"]) == ["zstd", "nozstd", "nozstd"]
    # nothing at all: gz still reads, zst gets a message naming every way to get zstd
    lines = run(modules, "")
    assert lines[:2] == ["None", "nozstd"]
    assert lines[2].startswith("ERROR") and "python3-zstandard" in lines[2] and "3.14" in lines[2]


DEBIAN_PY = "/usr/bin/python3"


@pytest.mark.skipif(subprocess.run([DEBIAN_PY, "-I", "-c", "import zstandard"],
                                   capture_output=True).returncode != 0,
                    reason="Debian's python3 with python3-zstandard is missing")
def test_zipapp_on_debian_python_reads_zstd_through_python3_zstandard(zipapp: Path, tmp_path: Path):
    zst = make_synthetic_package(tmp_path / "deb-1.0-1-x86_64.pkg.tar.zst",
                                 {"pkgname": "deb", "pkgver": "1.0-1", "arch": ARCH},
                                 {"usr/share/deb/a": b"a"}, compression="zst")
    code = """\
import sys
sys.path.insert(0, sys.argv[1])
sys.modules["compression.zstd"] = sys.modules["pyzstd"] = None
from vieter_lite.repo import package, zstd
print(zstd.backend(), package.read_package(sys.argv[2]).info.name)
"""
    proc = subprocess.run([DEBIAN_PY, "-I", "-c", code, str(zipapp), str(zst)],
                          capture_output=True, text=True, env={"PATH": ""})  # no zstd program
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["zstandard", "deb"]


def test_zipapp_carries_and_serves_the_dashboard(zipapp: Path, tmp_path: Path):
    """The dashboard's files are package data read with importlib.resources: inside the
    zipapp, and served from it byte for byte."""
    ui_dir = ROOT / "vieter_lite" / "ui"
    assets = sorted(p.name for p in ui_dir.iterdir() if p.suffix in (".html", ".js", ".css",
                                                                      ".svg"))
    assert "index.html" in assets and "app.js" in assets
    with zipfile.ZipFile(zipapp) as zf:
        names = set(zf.namelist())
    assert not [a for a in assets if f"vieter_lite/ui/{a}" not in names]
    server = zipapp_server(tmp_path / "data", zipapp).start()
    try:
        for name in assets:
            with urllib.request.urlopen(f"{server.url}/ui/{name}", timeout=10) as resp:
                assert resp.read() == (ui_dir / name).read_bytes(), name
        with urllib.request.urlopen(server.url + "/", timeout=10) as resp:  # redirected
            assert resp.url == server.url + "/ui/"
            assert resp.read() == (ui_dir / "index.html").read_bytes()
    finally:
        assert server.stop() == 0, server.log()


@pytest.mark.skipif(not pacman_available(), reason="pacman missing, or not running as root")
def test_zipapp_server_publishes_and_pacman_syncs(zipapp: Path, tmp_path: Path):
    server = zipapp_server(tmp_path / "data", zipapp).start()
    try:
        info = {"pkgname": "zipapp-hello", "pkgver": "1.2-1", "pkgdesc": "hello",
                "arch": ARCH, "size": "6"}
        pkg = make_synthetic_package(tmp_path / "zipapp-hello-1.2-1-x86_64.pkg.tar.gz", info,
                                     {"usr/share/zipapp-hello/hello": b"hello\n"}, compression="gz")
        data = publish(server, pkg)["data"]
        assert (data["name"], data["version"]) == ("zipapp-hello", "1.2-1")
        client = _pacman_client(tmp_path / "root", server)
        client.sync_db()
        assert client.search_sync(REPO) == {"zipapp-hello": "1.2-1"}
        client.install("zipapp-hello")
        assert (tmp_path / "root/usr/share/zipapp-hello/hello").read_bytes() == b"hello\n"
    finally:
        assert server.stop() == 0, server.log()


# -- config and units ------------------------------------------------------------------------

def test_default_config_documents_every_key():
    from vieter_lite.config import AGENT_KEYS, SERVER_KEYS

    text = (ROOT / "packaging" / "vieter-lite.toml").read_text()
    for key in SERVER_KEYS + AGENT_KEYS:
        assert re.search(rf"^#{key.name} = ", text, re.M), key.name
        assert key.doc in text, key.name
    proc = subprocess.run([PY, str(ROOT / "packaging" / "make_config.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # uncommented, every value is valid for the command that reads it
    import tomllib
    values = {}
    for line in text.splitlines():
        if re.match(r"^#\w+ = ", line):
            values.update(tomllib.loads(line[1:]))
    assert set(values) == {k.name for k in SERVER_KEYS + AGENT_KEYS}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_units_pass_systemd_analyze_verify(zipapp: Path, tmp_path: Path):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/systemd").mkdir(parents=True)
    shutil.copy(zipapp, root / "usr/bin/vieter-lite")
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        system_units = Path("/lib/systemd/system")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(ROOT / "systemd", root / "etc/systemd/system")
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                           *[str(root / "etc/systemd/system" / u) for u in UNITS]],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vieter-lite" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    server = (ROOT / "systemd/vieter-lite.service").read_text()
    agent = (ROOT / "systemd/vieter-lite-agent.service").read_text()
    for line in ("ProtectSystem=strict", "PrivateTmp=yes", "ReadWritePaths=/var/lib/vieter-lite",
                 "Restart=on-failure", "StandardOutput=journal", "NoNewPrivileges=yes"):
        assert line in server.splitlines()
    assert "User=vieter" in agent.splitlines()
    assert not [ln for ln in agent.splitlines() if ln.startswith("NoNewPrivileges")]


# -- the Arch package ---------------------------------------------------------------------

def test_pkgbuild_version_is_the_project_version():
    text = (ROOT / "PKGBUILD").read_text()
    assert re.search(r"^pkgver=(.*)$", text, re.M).group(1) == _version()
    assert re.search(r"^arch=\(any\)$", text, re.M)


def _makepkg(tmp_path: Path) -> Path:
    user = _build_user()
    builddir = Path(tempfile.mkdtemp(prefix="vieter-pkgbuild-"))
    try:
        for name in ("PKGBUILD", "pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, builddir / name)
        for name in ("vieter_lite", "packaging", "systemd"):
            shutil.copytree(ROOT / name, builddir / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyz"))
        home, prefix = os.environ.get("HOME", "/tmp"), []
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in [builddir, *builddir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            home, prefix = entry.pw_dir, ["runuser", "-u", user, "--"]
        env = ["env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin",
               "LANG=C.UTF-8", "PKGEXT=.pkg.tar.zst", f"PKGDEST={builddir}"]
        proc = subprocess.run([*prefix, *env, "makepkg", "--nodeps", "--noconfirm", "-f"],
                              cwd=builddir, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True)
        built = sorted(builddir.glob("*.pkg.tar.zst"))
        assert proc.returncode == 0 and len(built) == 1, \
            f"makepkg failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return Path(shutil.copy(built[0], tmp_path / built[0].name))
    finally:
        shutil.rmtree(builddir, ignore_errors=True)


@pytest.mark.skipif(not (makepkg_available() and pacman_available()),
                    reason="makepkg (and the build user) or pacman (as root) missing")
def test_pkgbuild_builds_publishes_and_installs_with_pacman(tmp_path: Path):
    pkg = _makepkg(tmp_path)
    assert pkg.name == f"vieter-lite-{_version()}-1-any.pkg.tar.zst"
    server = ServerProcess(tmp_path / "data").start()
    try:
        data = publish(server, pkg)["data"]
        assert (data["name"], data["version"]) == ("vieter-lite", f"{_version()}-1")
        root = tmp_path / "root"
        client = _pacman_client(root, server)
        client.sync_db()
        client.install("vieter-lite")
        assert client.installed() == {"vieter-lite": f"{_version()}-1"}
        info = client.run("-Qii", "vieter-lite").stdout
        assert re.search(r"^Backup Files\s*:\s*\n?UNMODIFIED\t\S*/etc/vieter-lite/vieter-lite\.toml$", info, re.M), info
        assert re.search(r"^Depends On\s*:\s*python\s*$", info, re.M), info
        assert "python-pyzstd" in info and "podman" in info
        files = {line.split(" ", 1)[1] for line in client.run("-Ql", "vieter-lite").stdout.splitlines()}
        for path in ("usr/bin/vieter-lite", "usr/lib/systemd/system/vieter-lite.service",
                     "usr/lib/systemd/system/vieter-lite-agent.service",
                     "usr/lib/sysusers.d/vieter-lite.conf", "usr/lib/tmpfiles.d/vieter-lite.conf",
                     "etc/vieter-lite/vieter-lite.toml"):
            assert f"{root}/{path}" in files, path
        installed = root / "usr/bin/vieter-lite"
        assert os.access(installed, os.X_OK)
        assert (root / "usr/lib/sysusers.d/vieter-lite.conf").read_text() \
            == (ROOT / "packaging/vieter-lite.sysusers").read_text()
        for cmd in ([PY, "-I", str(installed), "--version"], [str(installed), "--version"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
            assert proc.returncode == 0 and proc.stdout.strip() == f"vieter-lite {_version()}", \
                (cmd, proc.stdout, proc.stderr)
    finally:
        assert server.stop() == 0, server.log()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("usermod") is None,
                    reason="needs root and usermod (shadow) to add subordinate ids")
def test_install_script_gives_the_vieter_user_subordinate_ids():
    """packaging/vieter-lite.install (post_install, post_upgrade): a 65536-id subuid and
    subgid range for `vieter`, added once. Runs on this machine's /etc, then undoes it."""
    created = subprocess.run(["id", "-u", "vieter"], capture_output=True).returncode != 0
    saved = {f: Path(f).read_text() if Path(f).exists() else None
             for f in ("/etc/subuid", "/etc/subgid")}
    try:
        if created:
            subprocess.run(["useradd", "--system", "--no-create-home", "vieter"], check=True)
        for path in saved:  # start from no range for vieter
            lines = Path(path).read_text().splitlines() if Path(path).exists() else []
            Path(path).write_text("".join(f"{line}\n" for line in lines
                                          if not line.startswith("vieter:")))
        script = ROOT / "packaging" / "vieter-lite.install"
        for step in ("post_install", "post_upgrade"):  # the second adds nothing
            done = subprocess.run(["bash", "-c", f'source "{script}" && {step}'],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        for path in saved:
            ranges = [line.split(":") for line in Path(path).read_text().splitlines()
                      if line.startswith("vieter:")]
            assert len(ranges) == 1 and ranges[0][2] == "65536", (path, ranges)
    finally:
        for path, text in saved.items():
            if text is None:
                Path(path).unlink(missing_ok=True)
            else:
                Path(path).write_text(text)
        if created:
            subprocess.run(["userdel", "vieter"], check=False)
