"""Scratch GnuPG homes for tests: keys made by the real gpg on short paths (the agent's
sockets need one), signatures checked by the real gpgv, agents ended afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BATCH = ["--batch", "--no-tty", "--pinentry-mode", "loopback"]


def gpg_available() -> bool:
    return all(shutil.which(p) for p in ("gpg", "gpgv", "gpgconf", "gpg-agent"))


def stop_agents(home: Path) -> None:
    """End the gpg-agent and dirmngr of one home (by its sockets, nothing else)."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True,
                   timeout=30, stdin=subprocess.DEVNULL)


class ScratchGpg:
    """A throw-away GnuPG home under /tmp."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="vlg", dir="/tmp"))
        os.chmod(self.home, 0o700)

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            passphrase: str = "") -> subprocess.CompletedProcess:
        proc = subprocess.run(["gpg", "--homedir", str(self.home), *BATCH, "--passphrase",
                               passphrase, *args], input=input, capture_output=True,
                              timeout=120, stdin=None if input else subprocess.DEVNULL,
                              env={**os.environ, "LC_ALL": "C"})
        if check and proc.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed:\n{proc.stderr.decode()}")
        return proc

    def new_key(self, uid: str, algo: str = "ed25519", passphrase: str = "") -> str:
        self.run("--quick-gen-key", uid, algo, "sign", "never", passphrase=passphrase)
        out = self.run("--with-colons", "--list-secret-keys", uid).stdout.decode()
        return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")][0]

    def export(self, fpr: str, secret: bool = False, armor: bool = True,
               passphrase: str = "") -> bytes:
        args = ["--armor"] if armor else []
        return self.run(*args, "--export-secret-keys" if secret else "--export", fpr,
                        passphrase=passphrase).stdout

    def sign(self, fpr: str, data: bytes, armor: bool = False, text: bool = False) -> bytes:
        path = self.home / "to-sign"
        path.write_bytes(data)
        args = ["--armor"] if armor else ["--no-armor"]
        if text:
            args.append("--textmode")
        self.run("--yes", "--local-user", fpr, *args, "--detach-sign", "--output",
                 str(path) + ".sig", str(path))
        return Path(str(path) + ".sig").read_bytes()

    def close(self) -> None:
        stop_agents(self.home)
        shutil.rmtree(self.home, ignore_errors=True)


def verify(key: bytes, signature: bytes, data: bytes) -> tuple[bool, str]:
    """(valid, gpgv's status lines): does `signature` sign `data` by the (armored or
    binary) `key`? gpgv on a keyring of that key alone."""
    with tempfile.TemporaryDirectory(prefix="vlv", dir="/tmp") as scratch:
        home = Path(scratch)
        keyring = home / "key.gpg"
        if key.lstrip().startswith(b"-----BEGIN"):
            proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--dearmor"],
                                  input=key, capture_output=True, check=True)
            keyring.write_bytes(proc.stdout)
        else:
            keyring.write_bytes(key)
        (home / "data").write_bytes(data)
        (home / "data.sig").write_bytes(signature)
        proc = subprocess.run(["gpgv", "--homedir", str(home), "--status-fd", "1", "--keyring",
                               str(keyring), str(home / "data.sig"), str(home / "data")],
                              capture_output=True, timeout=60)
        return proc.returncode == 0, proc.stdout.decode(errors="replace")


def agent_pid(home: Path) -> int | None:
    """The pid of the gpg-agent serving `home`, None when none runs (a long home is asked
    through a short symlink, as vieter_lite.gpg does)."""
    with tempfile.TemporaryDirectory(prefix="vla", dir="/tmp") as scratch:
        short = Path(scratch) / "h"
        short.symlink_to(home)
        proc = subprocess.run(["gpg-connect-agent", "--homedir", str(short), "--no-autostart",
                               "getinfo pid", "/bye"], capture_output=True, text=True,
                              timeout=30)
    found = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("D ")]
    return int(found[0]) if found else None

