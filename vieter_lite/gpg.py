"""GnuPG as a subprocess on a private home directory (never the user's keyring): the keys
it holds, new and imported keys, detached binary signatures, and the end of its agent."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GPG = "gpg"
GPGCONF = "gpgconf"
# gpg-agent keeps its sockets in the home directory (S.gpg-agent.browser is the longest
# name) and a Unix socket path holds 107 bytes: a longer home is reached through a short
# symlink instead (see GnuPG.home_for_gpg).
MAX_HOME = 86
TIMEOUT = 120
# every call: no terminal, no trust database upkeep, an empty passphrase given up front so
# a protected key fails at once instead of waiting for a pinentry nobody answers
BATCH = ("--batch", "--no-tty", "--quiet", "--no-auto-check-trustdb", "--pinentry-mode",
         "loopback", "--passphrase", "")


class GpgError(Exception):
    """gpg is missing, or a call of it failed: the message says which and why."""


class GpgNoSpace(GpgError, OSError):
    """A call of gpg failed for lack of space (writing its output, e.g. a signature):
    also an OSError with ENOSPC or EDQUOT, so errors.full_disk() takes it for a full disk
    like any other write that did not fit."""

    def __init__(self, code: int, message: str):
        OSError.__init__(self, code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# what gpg's stderr says (LC_ALL=C: strerror's text) when a write found no room
NO_SPACE_TEXTS = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
}


def no_space(stderr: bytes) -> int | None:
    """The errno (ENOSPC, EDQUOT) of a gpg failure whose stderr says a write found no
    room, None for any other failure."""
    text = stderr.decode("utf-8", "replace").lower()
    for words, code in NO_SPACE_TEXTS.items():
        if words in text:
            return code
    return None


def failure(text: str, *stderr: bytes) -> GpgError:
    """The error for a failed gpg call, saying `text`: GpgNoSpace when what one of its
    processes wrote on stderr says it ran out of room, else GpgError."""
    codes = [code for code in map(no_space, stderr) if code is not None]
    return GpgNoSpace(codes[0], text) if codes else GpgError(text)


@dataclass(frozen=True)
class Key:
    """A key as `gpg --with-colons` lists it."""

    fingerprint: str   # the primary key's, 40 hex digits upper case
    created: int
    uid: str
    can_sign: bool     # the key or one of its subkeys may sign (and is usable)
    secret: bool


def parse_keys(text: str) -> list[Key]:
    """The keys of `gpg --with-colons --list-keys|--list-secret-keys|--show-keys`."""
    keys: list[Key] = []
    current: dict[str, object] | None = None
    expect_fpr = False

    def flush() -> None:
        if current is not None and current.get("fingerprint"):
            keys.append(Key(str(current["fingerprint"]), int(str(current["created"]) or 0),
                            str(current.get("uid", "")), bool(current["can_sign"]),
                            bool(current["secret"])))

    for line in text.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind in ("pub", "sec"):
            flush()
            capabilities = fields[11] if len(fields) > 11 else ""
            current = {"created": fields[5] if len(fields) > 5 else "0",
                       "can_sign": "S" in capabilities and fields[1] not in ("r", "e", "d"),
                       "secret": kind == "sec", "fingerprint": None}
            expect_fpr = True
        elif kind == "fpr" and current is not None and expect_fpr:
            current["fingerprint"] = fields[9].upper()
            expect_fpr = False
        elif kind in ("sub", "ssb"):
            expect_fpr = False
        elif kind == "uid" and current is not None and "uid" not in current:
            current["uid"] = fields[9] if len(fields) > 9 else ""
    flush()
    return keys


class GnuPG:
    """gpg on one home directory, created mode 0700. close() ends the gpg-agent that
    secret-key operations start there (it outlives the gpg call that started it)."""

    def __init__(self, home: Path, program: str = GPG):
        self.home = Path(os.path.abspath(home))
        self.program = program
        self._alias: Path | None = None

    # -- the home directory ------------------------------------------------------------

    def prepare(self) -> None:
        """Create the home (0700) and check that gpg is there."""
        if shutil.which(self.program) is None:
            raise GpgError(f"'{self.program}' is not installed (Arch: gnupg, Debian: gpg and "
                           "gpg-agent)")
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)

    def home_for_gpg(self) -> Path:
        """The home as gpg is given it: itself, or for a long path a symlink to it in a
        private directory under /tmp (the agent's sockets need a short path)."""
        if len(str(self.home)) <= MAX_HOME:
            return self.home
        if self._alias is None:
            alias_dir = Path(tempfile.mkdtemp(prefix="vieter-gpg-", dir="/tmp"))
            (alias_dir / "h").symlink_to(self.home)
            self._alias = alias_dir / "h"
        return self._alias

    def close(self) -> None:
        """End the agent of this home (if any runs) and drop the short alias."""
        if shutil.which(GPGCONF) is not None and self.home.is_dir():
            try:
                subprocess.run([GPGCONF, "--homedir", str(self.home_for_gpg()), "--kill",
                                "gpg-agent"], capture_output=True, timeout=30,
                               stdin=subprocess.DEVNULL, env=self._env())
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("could not stop the gpg-agent of %s: %s", self.home, exc)
        if self._alias is not None:
            shutil.rmtree(self._alias.parent, ignore_errors=True)
            self._alias = None

    # -- running gpg -------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPG")}
        env.update({"GNUPGHOME": str(self.home_for_gpg()), "LC_ALL": "C", "LANG": "C"})
        return env

    def command(self, *args: str) -> list[str]:
        return [self.program, "--homedir", str(self.home_for_gpg()), *BATCH, *args]

    def run(self, *args: str, input: bytes | None = None) -> bytes:
        """Run gpg; its standard output, or GpgError with the last lines it wrote."""
        cmd = self.command(*args)
        try:
            proc = subprocess.run(cmd, input=input, capture_output=True, timeout=TIMEOUT,
                                  env=self._env(),
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise GpgError(f"'{self.program}' is not installed") from None
        except subprocess.TimeoutExpired:
            raise GpgError(f"gpg {' '.join(args[:2])} took over {TIMEOUT} s") from None
        if proc.returncode != 0:
            raise failure(f"gpg {args[0]} failed: {stderr_text(proc.stderr)}", proc.stderr)
        return proc.stdout

    # -- keys --------------------------------------------------------------------------

    def secret_keys(self) -> list[Key]:
        return parse_keys(self.run("--with-colons", "--list-secret-keys").decode())

    def public_keys(self) -> list[Key]:
        return parse_keys(self.run("--with-colons", "--list-keys").decode())

    def show_keys(self, path: Path) -> list[Key]:
        """The keys in a key file, without importing them."""
        return parse_keys(self.run("--with-colons", "--show-keys", "--", str(path)).decode())

    def generate(self, uid: str) -> str:
        """A new Ed25519 signing key without a passphrase, which never expires: its
        fingerprint."""
        before = {k.fingerprint for k in self.secret_keys()}
        self.run("--quick-gen-key", uid, "ed25519", "sign", "never")
        new = [k for k in self.secret_keys() if k.fingerprint not in before]
        if len(new) != 1:
            raise GpgError("gpg --quick-gen-key made no new key")
        return new[0].fingerprint

    def import_keys(self, path: Path) -> None:
        self.run("--import", "--", str(path))

    def export_public(self, fingerprint: str) -> bytes:
        """The ASCII-armored public key (and its subkeys), nothing secret."""
        out = self.run("--armor", "--export", "--export-options", "export-minimal",
                       fingerprint)
        if not out.strip():
            raise GpgError(f"gpg exported nothing for {fingerprint}")
        return out

    # -- signatures --------------------------------------------------------------------

    def sign_command(self, fingerprint: str, path: Path, out: Path) -> list[str]:
        return self.command("--yes", "--local-user", fingerprint, "--digest-algo", "SHA256",
                            "--detach-sign", "--no-armor", "--output", str(out), "--",
                            str(path))

    def sign(self, fingerprint: str, files: Sequence[tuple[Path, Path]]) -> None:
        """Detached binary signatures, each (file, signature path) by its own gpg process,
        all running at once. When one fails, GpgError (GpgNoSpace for lack of room) and
        none of the signature paths is left (gpg leaves an empty or partial file)."""
        running = []
        failures: list[tuple[Path, bytes]] = []
        try:
            for path, out in files:
                running.append((path, subprocess.Popen(
                    self.sign_command(fingerprint, path, out), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self._env())))
        except FileNotFoundError:
            raise GpgError(f"'{self.program}' is not installed") from None
        finally:
            for path, proc in running:
                try:
                    _, err = proc.communicate(timeout=TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, err = proc.communicate()
                if proc.returncode != 0:
                    failures.append((path, err))
        if failures:
            for _, out in files:
                out.unlink(missing_ok=True)
            raise failure("gpg --detach-sign failed: " + "; ".join(
                f"{path.name}: {stderr_text(err)}" for path, err in failures),
                *(err for _, err in failures))


def stderr_text(raw: bytes) -> str:
    """The last lines gpg wrote, on one line (no key material is ever among them)."""
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines()
             if line.strip()]
    return " / ".join(lines[-3:]) or "no message"
