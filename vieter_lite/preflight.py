"""Start-up checks that create nothing: the data dirs are usable, the address can be bound."""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path

from vieter_lite.config import ServerConfig
from vieter_lite.errors import StartupError

# What the server writes inside data_dir (store.py, logs.py, db.py, repo/signing.py): each
# must stay writable.
DATA_ENTRIES = ("vieter.sqlite", "vieter.sqlite-wal", "vieter.sqlite-shm", "repos", "tmp",
                "logs", "gnupg", "server.lock")


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _hint(key: str) -> str:
    return f"(set {key} or VIETER_{key.upper()})"


def dir_problem(path: Path) -> str | None:
    """Why `path` cannot be used or made as a writable directory (None: it can), found
    without creating anything: the first existing path up from it must be a directory this
    process may write into."""
    path = Path(os.path.abspath(path))
    existing = path
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == path else f"cannot be created: {existing} is"
        return f"{path} {where} not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            return f"{path} is not writable by {_user()}"
        return f"{path} cannot be created: {existing} is not writable by {_user()}"
    return None


def check_dirs(config: ServerConfig) -> None:
    """data_dir and pkg_dir can be written (or created), and so can what a previous run
    left in data_dir (a server once run as another user)."""
    for label, key, path in (("data dir", "data_dir", config.data_dir),
                             ("package dir", "pkg_dir", config.pkg_dir)):
        problem = dir_problem(path)
        if problem:
            raise StartupError(f"{label} {problem} {_hint(key)}")
    for name in DATA_ENTRIES:
        entry = config.data_dir / name
        if os.path.lexists(entry) and not os.access(entry, os.W_OK):
            raise StartupError(f"data dir {Path(os.path.abspath(config.data_dir))}: {name} is "
                               f"not writable by {_user()} (was the server run as another "
                               f"user?) {_hint('data_dir')}")


def listen_error(exc: Exception, host: str, port: int) -> StartupError:
    """The one line for an address the HTTP server could not bind."""
    where = f"cannot listen on {host}:{port}"
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return StartupError(f"{where}: address already in use {_hint('port')}")
    if code == errno.EACCES:
        return StartupError(f"{where}: permission denied (ports below 1024 need root or "
                            f"CAP_NET_BIND_SERVICE) {_hint('port')}")
    if code == errno.EADDRNOTAVAIL:
        return StartupError(f"{where}: no such address on this machine {_hint('host')}")
    if isinstance(exc, OSError) and exc.strerror:
        return StartupError(f"{where}: {exc.strerror[:1].lower()}{exc.strerror[1:]}")
    return StartupError(f"{where}: cannot resolve host {host!r} {_hint('host')}")
