"""The real pacman with SigLevel = Required against a real signing server: `vieter-lite
client setup` (and GET /setup's script) trust the key in a private keyring, then pacman
syncs and installs an any, an arch and a split package; tampered files, a db replaced by
an unsigned one and signatures from another key are refused with pacman's own errors."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, ServerProcess
from gpgkeys import gpg_available, stop_agents
from pacman_client import PacmanClient, pacman_available
from pkgfactory import build_with_makepkg, makepkg_available

REPO = "signed"
ARCH = "x86_64"


def _missing() -> str | None:
    if not makepkg_available():
        return "makepkg/bsdtar/fakeroot (or the VIETER_TEST_USER build user) missing"
    if not pacman_available() or not shutil.which("pacman-key"):
        return "pacman/pacman-key missing, or not running as root"
    if not gpg_available() or not shutil.which("repo-add"):
        return "gpg, gpgv, gpg-agent or repo-add missing"
    return None


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@dataclass(frozen=True)
class Built:
    any: Path
    arch: Path
    split: tuple[Path, Path]

    @property
    def all(self) -> list[Path]:
        return [self.any, self.arch, *self.split]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    work = tmp_path_factory.mktemp("signed-pkgs")
    specs = {"any": dict(pkgname="sig-any", pkgver="1.0"),
             "arch": dict(pkgname="sig-arch", pkgver="2.0", arch=ARCH),
             "split": dict(pkgname=["sig-split-a", "sig-split-b"], pkgver="3.0", arch=ARCH)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        paths = {k: f.result() for k, f in
                 {k: pool.submit(build_with_makepkg, work, **s) for k, s in specs.items()}.items()}
    return Built(paths["any"][0], paths["arch"][0], (paths["split"][0], paths["split"][1]))


def publish(server: ServerProcess, path: Path, query: str = "") -> None:
    body = path.read_bytes()
    req = urllib.request.Request(f"{server.url}/{REPO}/publish{query}", data=body,
                                 method="POST", headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200


@pytest.fixture
def server(tmp_path, built) -> Iterator[ServerProcess]:
    """A signing server holding the built packages."""
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_SIGN": "true"}).start()
    for path in built.all:
        publish(proc, path)
    yield proc
    if proc.proc.poll() is None:
        assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def keyring_template() -> Iterator[Path]:
    """An initialised pacman keyring (pacman-key --init takes seconds: done once, copied
    for each client), which looks keys up on loopback only."""
    home = Path(tempfile.mkdtemp(prefix="vlk", dir="/tmp"))
    conf = home / "pacman.conf"
    conf.write_text("[options]\n")
    gpgdir = home / "gnupg"
    try:
        run(["pacman-key", "--config", str(conf), "--gpgdir", str(gpgdir), "--init"])
        # an unknown key's lookup goes to an address that refuses at once, not the network
        (gpgdir / "dirmngr.conf").write_text("keyserver hkp://127.0.0.1:1\n")
        with open(gpgdir / "gpg.conf", "a") as out:
            out.write("auto-key-locate local\n")
        stop_agents(gpgdir)
        yield gpgdir
    finally:
        stop_agents(gpgdir)
        shutil.rmtree(home, ignore_errors=True)


def run(cmd: list[str], check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**(os.environ if env is None else env), "LC_ALL": "C",
                               "LANG": "C"}, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


@pytest.fixture
def make_client(keyring_template) -> Iterator:
    """make_client() -> a PacmanClient in a short private root with a copy of the keyring
    and no repo stanza yet (`client setup` adds it); its agents end afterwards."""
    roots: list[Path] = []

    def make() -> PacmanClient:
        root = Path(tempfile.mkdtemp(prefix="vlp", dir="/tmp"))
        roots.append(root)
        client = PacmanClient(root, {}, ARCH)
        gpgdir = root / "etc/pacman.d/gnupg"
        shutil.rmtree(gpgdir)
        shutil.copytree(keyring_template, gpgdir, ignore=shutil.ignore_patterns("S.*"))
        client.gpgdir = gpgdir
        return client

    yield make
    for root in roots:
        stop_agents(root / "etc/pacman.d/gnupg")
        shutil.rmtree(root, ignore_errors=True)


def client_setup(server: ServerProcess, client: PacmanClient) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
    return run([sys.executable, "-m", "vieter_lite", "client", "setup", server.url, REPO,
                "--pacman-conf", str(client.conf), "--gpgdir", str(client.gpgdir)],
               env={**env, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def client(server, make_client) -> PacmanClient:
    """A client set up with `vieter-lite client setup` that has synced the db once."""
    pacman = make_client()
    client_setup(server, pacman)
    pacman.sync_db()
    return pacman


def pacman_fails(client: PacmanClient, *args: str) -> str:
    proc = client.run(*args, check=False)
    assert proc.returncode == 1, proc
    return proc.stdout + proc.stderr


def server_file(server: ServerProcess, name: str) -> Path:
    """A file as the server serves it (db names follow .current to the live generation)."""
    if ".pkg" in name:
        return server.data_dir / "pkgs" / REPO / ARCH / name
    return server.data_dir / "repos" / REPO / ARCH / name


def fingerprint(server: ServerProcess) -> str:
    with urllib.request.urlopen(server.url + "/health") as resp:
        return json.loads(resp.read())["data"]["fingerprint"]


# -- it works --------------------------------------------------------------------------------

def test_client_setup_then_pacman_installs_with_signatures_required(server, make_client,
                                                                     built):
    pacman = make_client()
    done = client_setup(server, pacman)
    fpr = fingerprint(server)
    assert f"--lsign-key {fpr}" in done.stdout
    conf = pacman.conf.read_text()
    assert f"[{REPO}]\nSigLevel = Required\nServer = {server.url}/$repo/$arch\n" in conf
    assert "SigLevel = Never" in conf  # the global default stays: the repo's line rules
    keys = run(["pacman-key", "--config", str(pacman.conf), "--gpgdir", str(pacman.gpgdir),
                "--list-keys", fpr]).stdout
    assert fpr in keys.replace(" ", "")

    sync = pacman.run("-Syy", "--debug")
    debug = sync.stdout + sync.stderr
    assert f"checking signature for {pacman.root}/var/lib/pacman/sync/{REPO}.db" in debug
    assert "signature is valid" in debug and "signature is fully trusted" in debug
    installed = pacman.install("sig-any", "sig-arch", "sig-split-a", "sig-split-b")
    assert "checking keyring" in installed.stdout
    assert "checking package integrity" in installed.stdout
    assert pacman.installed() == {"sig-any": "1.0-1", "sig-arch": "2.0-1",
                                  "sig-split-a": "3.0-1", "sig-split-b": "3.0-1"}
    pacman.files_sync()  # the .files db and its signature
    assert "usr/share/sig-arch/README" in pacman.list_files("sig-arch")

    again = client_setup(server, pacman)  # idempotent
    assert "is set up already" in again.stdout and pacman.conf.read_text() == conf
    pacman.sync_db()


def test_the_setup_script_does_the_same(server, make_client):
    pacman = make_client()
    with urllib.request.urlopen(f"{server.url}/setup?repo={REPO}") as resp:
        script = resp.read()
    env = {**os.environ, "PACMAN_CONF": str(pacman.conf), "PACMAN_GPGDIR": str(pacman.gpgdir)}
    proc = subprocess.run(["sh"], input=script, capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"[{REPO}]\nSigLevel = Required\n" in pacman.conf.read_text()
    pacman.sync_db()
    pacman.install("sig-any")
    assert pacman.installed() == {"sig-any": "1.0-1"}


def test_an_uploaded_signature_is_the_one_pacman_checks(server, make_client, built,
                                                        scratch_gpg):
    other = scratch_gpg.new_key("Packager <packager@example.invalid>")
    theirs = scratch_gpg.sign(other, built.arch.read_bytes())
    query = "?force=true&sig=" + base64.urlsafe_b64encode(theirs).decode()
    publish(server, built.arch, query)
    pacman = make_client()
    client_setup(server, pacman)
    pacman.sync_db()
    out = pacman_fails(pacman, "-S", "--noscriptlet", "sig-arch")
    assert "error: required key missing from keyring" in out
    key = scratch_gpg.home / "other.asc"
    key.write_bytes(scratch_gpg.export(other))
    for step in (["--add", str(key)], ["--lsign-key", other]):
        run(["pacman-key", "--config", str(pacman.conf), "--gpgdir", str(pacman.gpgdir), *step])
    pacman.install("sig-arch")
    assert pacman.installed() == {"sig-arch": "2.0-1"}


# -- tampering ------------------------------------------------------------------------------

def test_a_package_changed_after_signing_is_refused(server, client, built):
    path = server_file(server, built.any.name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    out = pacman_fails(client, "-S", "--noscriptlet", "sig-any")
    assert f"{built.any.name} is corrupted (invalid or corrupted package (checksum))" in out
    assert "error: failed to commit transaction (invalid or corrupted package" in out


def test_a_db_replaced_by_an_unsigned_one_is_refused(server, client, built, tmp_path):
    # repo-add's own db of the same packages: valid, but not what the signature signs
    other = tmp_path / "unsigned"
    other.mkdir()
    run(["repo-add", "-q", str(other / f"{REPO}.db.tar.gz"), str(built.any)])
    server_file(server, f"{REPO}.db.tar.gz").write_bytes(
        (other / f"{REPO}.db.tar.gz").read_bytes())
    out = pacman_fails(client, "-Syy")
    assert f'error: {REPO}: signature from "' in out and '" is invalid' in out
    assert "error: failed to synchronize all databases (invalid or corrupted database " \
        "(PGP signature))" in out


def test_a_db_without_its_signature_is_refused(server, client):
    Path(os.path.realpath(server_file(server, f"{REPO}.db.tar.gz.sig"))).unlink()
    out = pacman_fails(client, "-Syy")
    assert f"error: failed retrieving file '{REPO}.db.sig' from 127.0.0.1:{server.port}" in out
    assert "The requested URL returned error: 404" in out


def test_a_package_signature_from_another_key_is_refused(server, client, built,
                                                         scratch_gpg):
    other = scratch_gpg.new_key("Mallory <mallory@example.invalid>")
    path = server_file(server, built.arch.name)
    Path(str(path) + ".sig").write_bytes(scratch_gpg.sign(other, path.read_bytes()))
    out = pacman_fails(client, "-S", "--noscriptlet", "sig-arch")
    assert f'error: key "{other[-16:]}" could not be looked up remotely' in out
    assert "error: required key missing from keyring" in out


def test_a_db_signed_by_another_key_is_refused(server, client, scratch_gpg):
    other = scratch_gpg.new_key("Mallory <mallory@example.invalid>")
    db = server_file(server, f"{REPO}.db.tar.gz")
    sig = Path(os.path.realpath(server_file(server, f"{REPO}.db.tar.gz.sig")))
    sig.write_bytes(scratch_gpg.sign(other, db.read_bytes()))
    out = pacman_fails(client, "-Syy")
    assert f'error: {REPO}: key "{other}" is unknown' in out
    assert "error: failed to synchronize all databases (invalid or corrupted database " \
        "(PGP signature))" in out
