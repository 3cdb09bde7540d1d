"""Configuration as data: defaults < TOML file < VIETER_* environment (or VIETER_*_FILE)."""

from __future__ import annotations

import dataclasses
import os
import platform
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vieter_lite.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/vieter-lite/vieter-lite.toml")
USER_CONFIG = Path("~/.vieterrc")

LOG_LEVELS = ("FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG")

def machine_arch() -> str:
    machine = platform.machine() or "x86_64"
    return {"armv7l": "armv7h", "armv6l": "armv6h", "arm64": "aarch64", "amd64": "x86_64"}.get(
        machine.lower(), machine.lower())


def _check_port(value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")


def check_positive(value: int) -> None:
    if value <= 0:
        raise ValueError("must be greater than 0")


def _check_not_negative(value: int) -> None:
    if value < 0:
        raise ValueError("must not be negative")


def _check_arch(value: str) -> None:
    from vieter_lite.names import check_arch
    check_arch(value)
    if value == "any":
        raise ValueError("'any' cannot be the default architecture")


def _check_build_arch(value: str) -> None:
    from vieter_lite.names import check_arch
    check_arch(value)
    if value == "any":
        raise ValueError("'any' is not an architecture to build on")


def _check_agent_name(value: str) -> None:
    import re
    if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value, re.ASCII):
        raise ValueError("1 to 64 letters, digits, '.', '_' and '-'")


def _check_agent_labels(value: str) -> None:
    from vieter_lite.agents import parse_labels
    parse_labels(value)


def _check_log_level(value: str) -> None:
    if value.upper() not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))


def _check_schedule(value: str) -> None:
    from vieter_lite import cron
    cron.parse(value)


# Podman's network modes a build container may use (podman-py passes them as `nsmode`).
BUILD_NETWORKS = ("private", "slirp4netns", "pasta", "bridge", "none", "host")


def _check_build_network(value: str) -> None:
    if value not in BUILD_NETWORKS:
        raise ValueError("must be one of " + ", ".join(BUILD_NETWORKS))


def _check_public_url(value: str) -> None:
    if value:
        _check_http_url(value)


def _check_delays(value: str) -> None:
    from vieter_lite.triggers import parse_delays
    parse_delays(value)


def check_not_empty(value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty")


def _check_uid_part(value: str) -> None:
    if any(c in value for c in "<>:") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain '<', '>', ':' or control characters")


def _check_http_url(value: str) -> None:
    from urllib.parse import urlsplit
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError("must be an http:// or https:// URL")


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default and check."""

    name: str
    type: type
    default: Any
    check: Callable[[Any], None] | None = None
    doc: str = ""


SERVER_KEYS: tuple[Key, ...] = (
    Key("api_key", str, None, check_not_empty,
        "secret expected in the X-Api-Key header (required)"),
    Key("data_dir", str, "data", check_not_empty, "where the database, repos and logs live"),
    Key("pkg_dir", str, "", None, "where package files live (default: <data_dir>/pkgs)"),
    Key("host", str, "0.0.0.0", check_not_empty, "address to listen on"),
    Key("port", int, 8000, _check_port, "port to listen on"),
    Key("default_arch", str, machine_arch(), _check_arch,
        "arch-repo that receives 'any' packages, and targets without an arch"),
    Key("log_level", str, "INFO", _check_log_level, "FATAL, ERROR, WARN, INFO or DEBUG"),
    Key("max_upload_size", int, 2 * 1024 ** 3, check_positive, "largest package upload in bytes"),
    Key("min_free_space", int, 64 * 1024 ** 2, _check_not_negative,
        "bytes a package upload must leave free on the data disk (it is held there twice "
        "while it is published), else it is refused up front with 507; 0: no check"),
    Key("keep_versions", int, 0, _check_not_negative,
        "replaced versions of each package kept on disk (out of the db) for rollbacks; "
        "0: the old file is removed after an upgrade"),
    Key("threads", int, 8, check_positive, "HTTP worker threads"),
    Key("connection_limit", int, 100, check_positive,
        "most open HTTP connections; when full, the one waiting longest on its client is "
        "closed to make room"),
    Key("channel_timeout", int, 60, check_positive,
        "seconds a connection may sit without traffic while no request of it runs (idle "
        "keep-alive, a client that stopped reading) before it is closed"),
    Key("header_timeout", int, 10, check_positive,
        "seconds a client has to send a request's headers from their first byte"),
    Key("min_send_rate", int, 4096, _check_not_negative,
        "bytes a second below which a download's client counts as a slow reader (measured "
        "over 10 s while output waits for it); at connection_limit, slow readers are cut, "
        "slowest first, to make room; 0: downloads are never cut for speed"),
    Key("max_log_chunk", int, 1024 ** 2, check_positive,
        "largest build-log chunk an agent may send in one request, bytes (413 above it)"),
    Key("max_api_body", int, 64 * 1024, check_positive,
        "largest body of any other API request, bytes (413 above it)"),
    Key("max_log_followers", int, 32, check_positive,
        "most clients following build logs at once (each holds an HTTP thread of its own); "
        "503 above it"),
    Key("max_poll_wait", int, 20, _check_not_negative,
        "most seconds an agent's poll waits for a build to come (wait=N) before it answers "
        "with none; each waiting poll holds an HTTP thread of its own (0: polls never wait)"),
    Key("global_schedule", str, "0 3", _check_schedule, "cron schedule for targets without one"),
    Key("base_image", str, "archlinux:base-devel", check_not_empty, "image builds start from"),
    Key("max_log_age", int, 0, _check_not_negative, "days to keep build logs (0 = keep)"),
    Key("log_removal_schedule", str, "0 0", _check_schedule, "cron schedule of log removal"),
    Key("collect_metrics", bool, False, None, "serve Prometheus metrics"),
    Key("default_build_timeout", int, 3600, check_positive, "build timeout in seconds"),
    Key("public_url", str, "", _check_public_url,
        "the server's URL in what it sends out (webhook bodies, emails); empty: "
        "http://<host>:<port>, with this machine's name for host 0.0.0.0 or ::"),
    Key("smtp_host", str, "", None,
        "SMTP server that email triggers go through; empty: email triggers fail "
        "('email is not configured')"),
    Key("smtp_port", int, 587, _check_port, "the SMTP server's port"),
    Key("smtp_user", str, "", None, "SMTP login name (empty: no login)"),
    Key("smtp_password", str, "", None, "SMTP password"),
    Key("smtp_from", str, "", None,
        "From address of emails; empty: vieter-lite@<this machine's name>"),
    Key("smtp_starttls", bool, True, None,
        "STARTTLS (the server's certificate checked) before logging in and sending"),
    Key("trigger_retry_delays", str, "10,60,300", _check_delays,
        "seconds before each new attempt of a webhook or email that got no answer, an "
        "HTTP 5xx or an SMTP 4xx; after the last, the delivery fails"),
    Key("sign", bool, False, None,
        "sign every published package and every db archive with a key of the server's "
        "own (GnuPG, in <data_dir>/gnupg), so pacman can use SigLevel = Required"),
    Key("sign_key_name", str, "", _check_uid_part,
        "name of the key generated at the first start with sign = true; empty: "
        "vieter-lite on <this machine's name>"),
    Key("sign_key_email", str, "", _check_uid_part,
        "email of that key; empty: vieter-lite@<this machine's name>"),
    Key("sign_key_file", str, "", None,
        "a secret key to sign with instead (gpg --export-secret-keys, no passphrase), "
        "imported into <data_dir>/gnupg at start; empty: generate one"),
    Key("public_dashboard", bool, False, None,
        "let callers without a key read what the dashboard shows: builds whose access:read "
        "holds '*' (and their logs and deliveries), targets, repos, agents and build "
        "statistics; never tokens, never a write (a wrong key is still refused)"),
)


@dataclass(frozen=True)
class ServerConfig:
    api_key: str
    data_dir: Path
    pkg_dir: Path
    host: str
    port: int
    default_arch: str
    log_level: str
    max_upload_size: int
    min_free_space: int
    keep_versions: int
    threads: int
    connection_limit: int
    channel_timeout: int
    header_timeout: int
    min_send_rate: int
    max_log_chunk: int
    max_api_body: int
    max_log_followers: int
    max_poll_wait: int
    global_schedule: str
    base_image: str
    max_log_age: int
    log_removal_schedule: str
    collect_metrics: bool
    default_build_timeout: int
    public_url: str
    smtp_host: str
    smtp_port: int
    smtp_user: str
    smtp_password: str
    smtp_from: str
    smtp_starttls: bool
    trigger_retry_delays: str
    sign: bool
    sign_key_name: str
    sign_key_email: str
    sign_key_file: str
    public_dashboard: bool

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


# The client commands (targets, logs, repos, aur): what `vieter-lite` on a laptop needs.
CLIENT_KEYS: tuple[Key, ...] = (
    Key("address", str, "http://localhost:8000", _check_http_url, "base URL of the server"),
    Key("api_key", str, "", None, "the server's api_key (needed by all but aur search)"),
    Key("aur_url", str, "https://aur.archlinux.org", _check_http_url,
        "the AUR: its RPC (/rpc) and the base of the git URLs aur add uses"),
)


# `vieter-lite agent` (and local builds).
AGENT_KEYS: tuple[Key, ...] = (
    Key("address", str, None, check_not_empty,
        "the server's URL, for the agent and as build containers reach it (see build_network)"),
    Key("api_key", str, None, check_not_empty, "the server's api_key"),
    Key("arch", str, machine_arch(), _check_build_arch,
        "the arch this agent builds for; another than this machine's builds under qemu-user "
        "emulation (binfmt_misc, checked at start) and labels the agent emulated=true"),
    Key("agent_name", str, "", _check_agent_name,
        "the name the agent registers with (empty: <this machine's name>-<arch>)"),
    Key("agent_labels", str, "", _check_agent_labels,
        "the agent's labels, key=value,...: builds that ask for labels (a target's or "
        "manifest's agent_labels) go only to agents that have them"),
    Key("data_dir", str, "agent-data", check_not_empty, "the agent's own files"),
    Key("log_level", str, "INFO", _check_log_level, "FATAL, ERROR, WARN, INFO or DEBUG"),
    Key("max_concurrent_builds", int, 1, check_positive, "builds run at once"),
    Key("polling_frequency", int, 30, check_positive, "seconds between polls"),
    Key("image_rebuild_frequency", int, 1440, check_positive,
        "minutes before a builder image is prepared again"),
    Key("podman_url", str, "", None,
        "Podman API socket (unix:///...); empty: start a private rootless service"),
    Key("prepare_script", str, "", None,
        "file with the shell script that prepares a builder image (default: Arch's)"),
    Key("build_user", str, "build", check_not_empty, "the unprivileged user makepkg runs as"),
    Key("makepkg_args", str, "--syncdeps --needed", None, "extra makepkg arguments"),
    Key("build_network", str, "private", _check_build_network,
        "network mode of build containers: private (a network namespace of their own, "
        "Podman's rootless default: slirp4netns, pasta on Podman 5), slirp4netns, pasta, "
        "bridge, none, or host (the host's network, its loopback services included)"),
)


# ~/.vieterrc is shared by every command, as in Vieter: a file may hold any command's keys.
ALL_KEY_NAMES = frozenset(k.name for k in SERVER_KEYS + CLIENT_KEYS + AGENT_KEYS)


@dataclass(frozen=True)
class ClientConfig:
    address: str
    api_key: str
    aur_url: str


def _coerce(key: Key, raw: Any, source: str) -> Any:
    """Turn a TOML or environment value into the key's type, or raise ConfigError."""
    value: bool | int | str
    try:
        if key.type is bool:
            if isinstance(raw, bool):
                value = raw
            elif isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
                value = raw.strip().lower() == "true"
            else:
                raise ValueError("must be true or false")
        elif key.type is int:
            if isinstance(raw, bool):
                raise ValueError("must be an integer")
            if isinstance(raw, int):
                value = raw
            elif isinstance(raw, str) and raw.strip().lstrip("-").isdecimal():
                value = int(raw.strip())
            else:
                raise ValueError("must be an integer")
        else:
            if not isinstance(raw, str):
                raise ValueError("must be a string")
            value = raw
        if key.check is not None:
            key.check(value)
    except ValueError as exc:
        raise ConfigError(f"config key '{key.name}' ({source}): {exc}") from None
    return value


def read_file_values(path: Path, known: frozenset[str]) -> dict[str, Any]:
    """Read one TOML file; a key no vieter-lite command knows stops start-up."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for name in data:
        if name not in known and name not in ALL_KEY_NAMES:
            raise ConfigError(f"unknown config key '{name}' in {path}")
    return data


def env_var(name: str) -> str:
    """The environment variable of a key: VIETER_<KEY> (VIETER_<KEY>_FILE reads a file)."""
    return "VIETER_" + name.upper()


def env_values(keys: tuple[Key, ...], environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """VIETER_<KEY> and VIETER_<KEY>_FILE values as {name: (value, source)}."""
    values: dict[str, tuple[str, str]] = {}
    for key in keys:
        var = env_var(key.name)
        direct, file_var = environ.get(var), environ.get(var + "_FILE")
        if direct is not None and file_var is not None:
            raise ConfigError(f"config key '{key.name}': set {var} or {var}_FILE, not both")
        if file_var is not None:
            try:
                text = Path(file_var).read_text()
            except OSError as exc:
                raise ConfigError(f"config key '{key.name}': cannot read {var}_FILE "
                                  f"{file_var}: {exc.strerror}") from None
            values[key.name] = (text[:-1] if text.endswith("\n") else text, f"{var}_FILE")
        elif direct is not None:
            values[key.name] = (direct, var)
    return values


def config_files(explicit: str | None, system: bool = True) -> list[Path]:
    """The files to read: the one given with -f, else the system (unless not `system`)
    and user files present."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return [path]
    defaults = (SYSTEM_CONFIG, USER_CONFIG.expanduser()) if system else (USER_CONFIG.expanduser(),)
    return [p for p in defaults if p.is_file()]


def load_values(keys: tuple[Key, ...], config_file: str | None,
                environ: Mapping[str, str], system: bool = True) -> dict[str, Any]:
    """Merge defaults, files and environment for a key table; check every value."""
    known = frozenset(k.name for k in keys)
    raw: dict[str, tuple[Any, str]] = {}
    for path in config_files(config_file, system):
        file_values = read_file_values(path, known)
        raw.update({n: (v, str(path)) for n, v in file_values.items() if n in known})
    raw.update(env_values(keys, environ))
    values: dict[str, Any] = {}
    for key in keys:
        if key.name in raw:
            values[key.name] = _coerce(key, *raw[key.name])
        elif key.default is None:
            raise ConfigError(f"config key '{key.name}' is required: set it in the config "
                              f"file or as {env_var(key.name)}")
        else:
            values[key.name] = key.default
    return values


def _check_pkg_dir(data_dir: Path, pkg_dir: Path) -> None:
    """pkg_dir may sit inside data_dir, but must not overlap what the server keeps there."""
    data, pkgs = data_dir.resolve(), pkg_dir.resolve()
    reserved = [data / "repos", data / "tmp", data / "logs", data / "gnupg"]
    if pkgs == data or data.is_relative_to(pkgs) \
            or any(pkgs.is_relative_to(r) or r.is_relative_to(pkgs) for r in reserved):
        raise ConfigError(f"config key 'pkg_dir': {pkg_dir} overlaps data_dir {data_dir}; "
                          "use a directory of its own (default: <data_dir>/pkgs)")


def load_server(config_file: str | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, str] | None = None) -> ServerConfig:
    """defaults < files < VIETER_* < command-line `overrides` ({key: value})."""
    values = load_values(SERVER_KEYS, config_file, os.environ if environ is None else environ)
    keys = {k.name: k for k in SERVER_KEYS}
    for name, value in (overrides or {}).items():
        values[name] = _coerce(keys[name], value, "--" + name.replace("_", "-"))
    data_dir = Path(values["data_dir"]).expanduser()
    values["data_dir"] = data_dir
    values["pkg_dir"] = (Path(values["pkg_dir"]).expanduser() if values["pkg_dir"]
                         else data_dir / "pkgs")
    _check_pkg_dir(data_dir, values["pkg_dir"])
    values["log_level"] = values["log_level"].upper()
    return ServerConfig(**values)


def load_client(config_file: str | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, str] | None = None) -> ClientConfig:
    """The client commands' settings: defaults < ~/.vieterrc (or -f FILE) < VIETER_* <
    command-line `overrides` ({key: value}), as in Vieter (no /etc file)."""
    values = load_values(CLIENT_KEYS, config_file, os.environ if environ is None else environ,
                         system=False)
    keys = {k.name: k for k in CLIENT_KEYS}
    for name, value in (overrides or {}).items():
        values[name] = _coerce(keys[name], value, "--" + name.replace("_", "-"))
    values["address"] = values["address"].rstrip("/")
    values["aur_url"] = values["aur_url"].rstrip("/")
    return ClientConfig(**values)
