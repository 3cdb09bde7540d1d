"""vieter-lite client setup URL REPO: this machine's pacman trusts the server's signing
key (pacman-key --add, --lsign-key) and has the repo's stanza with SigLevel = Required
(clientsetup.py's steps, run here). Run it again and nothing changes."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from vieter_lite import clientsetup, names, pgp
from vieter_lite.client import Client, ClientError
from vieter_lite.errors import ConfigError


def fetch_key(client: Client) -> tuple[str, bytes] | None:
    """(fingerprint, armored key) of the server's signing key; None when it does not sign.
    The key must be the one /health names."""
    _, _, raw = client.request("GET", "/health")
    data = client_data(raw)
    fingerprint = data.get("fingerprint") if isinstance(data, dict) else None
    if not fingerprint:
        return None
    _, _, key = client.request("GET", "/key")
    try:
        found = pgp.key_fingerprint(key)
    except ValueError as exc:
        raise ClientError(f"{client.address}/key is not an OpenPGP key: {exc}") from None
    if found != str(fingerprint).upper():
        raise ClientError(f"{client.address}/key holds the key {found}, but /health names "
                          f"{fingerprint}")
    return found, key


def client_data(raw: bytes) -> object:
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise ClientError("the server's /health is not JSON: is it a vieter-lite server?") \
            from None
    return decoded.get("data") if isinstance(decoded, dict) else None


def _run(cmd: list[str]) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    try:
        code = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
    except FileNotFoundError:
        raise ClientError(f"{cmd[0]} is not installed (it comes with pacman)") from None
    if code != 0:
        raise ClientError(f"{cmd[0]} {cmd[-2]} failed (exit status {code}); pacman-key needs "
                          "root and an initialised keyring (pacman-key --init)")


def write_conf(path: Path, text: str) -> None:
    """Replace the file's text in one rename, keeping its mode and owner (and a symlink
    pointing at it)."""
    real = Path(os.path.realpath(path))
    info = real.stat()
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, info.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, info.st_uid, info.st_gid)
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_setup(args: argparse.Namespace) -> int:
    try:
        base = clientsetup.check_base_url(args.url)
        repo = names.check_repo(args.repo)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    conf = Path(args.pacman_conf)
    try:
        text = conf.read_text()
    except OSError as exc:
        raise ClientError(f"cannot read {conf}: {exc.strerror}") from None
    found = fetch_key(Client(base))
    new_text = clientsetup.with_repo(text, repo, base, signed=found is not None)
    dry = args.dry_run
    if found is None:
        print(f"{base} does not sign its repos (sign = false): no key to add; "
              f"SigLevel = {clientsetup.UNSIGNED}")
    else:
        fingerprint, key = found
        print(f"the signing key of {base}: {fingerprint}")
        with tempfile.TemporaryDirectory() as scratch:
            key_file = Path(scratch) / "key.asc"
            key_file.write_bytes(key)
            steps = [clientsetup.pacman_key(["--add", str(key_file)], str(conf), args.gpgdir),
                     clientsetup.pacman_key(["--lsign-key", fingerprint], str(conf),
                                            args.gpgdir)]
            for step in steps:
                if dry:
                    print("would run: " + shlex.join(step).replace(
                        str(key_file), f"<the key from {base}/key>"))
                else:
                    _run(step)
    if new_text == text:
        print(f"{conf}: [{repo}] is set up already")
        return 0
    if dry:
        print(f"would change {conf}:")
        sys.stdout.writelines(difflib.unified_diff(
            text.splitlines(keepends=True), new_text.splitlines(keepends=True),
            str(conf), f"{conf} (new)"))
        return 0
    try:
        write_conf(conf, new_text)
    except OSError as exc:
        raise ClientError(f"cannot write {conf}: {exc.strerror}") from None
    print(f"{conf}: [{repo}] set up; pacman -Sy reads it")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("client", help="set up this machine's pacman for a repo")
    sub = group.add_subparsers(dest="client_command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "setup", help="trust a server's signing key and add (or update) a repo's stanza",
        description="Fetch the server's signing key (GET URL/key, checked against the "
        "fingerprint GET URL/health names), add it to pacman's keyring and sign it locally "
        "(pacman-key --add, --lsign-key), then add the [REPO] stanza to pacman.conf with "
        "SigLevel = Required and Server = URL/$repo/$arch, or update those two lines of an "
        "existing one. Running it again changes nothing. Needs root, like pacman-key.")
    p.add_argument("url", metavar="URL", help="the server, e.g. http://pi:8000")
    p.add_argument("repo", metavar="REPO", help="the repository")
    p.add_argument("--pacman-conf", default="/etc/pacman.conf", metavar="PATH",
                   help="the pacman.conf to edit, whose keyring pacman-key uses "
                   "(default: /etc/pacman.conf)")
    p.add_argument("--gpgdir", metavar="DIR",
                   help="pacman's keyring (default: the GPGDir of that pacman.conf)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be done (the key is fetched), change nothing")
    p.set_defaults(func=cmd_setup)
