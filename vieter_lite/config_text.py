"""What the key tables tell people: `server --help`, the packaged config file's entries,
and warnings about VIETER_* variables that name no key."""

from __future__ import annotations

import difflib
import json
import textwrap
from collections.abc import Mapping
from typing import Any

from vieter_lite import config
from vieter_lite.config import Key, env_var

# Keys whose default is this machine's architecture.
MACHINE_DEPENDENT = frozenset({"default_arch", "arch"})


def toml_value(value: Any) -> str:
    """A default as TOML writes it ("" for a required key)."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def note(key: Key) -> str:
    """The key's meaning, with what its default cannot show."""
    text = key.doc
    if key.default is None and "required" not in text:
        text += " [required]"
    if key.name in MACHINE_DEPENDENT:
        text += " [default: this machine's architecture]"
    return text


def default_text(key: Key) -> str:
    return "(required)" if key.default is None else toml_value(key.default)


def key_help(keys: tuple[Key, ...] | None = None) -> str:
    """Every key (default: the server's) with its environment variable, default and
    meaning, for --help."""
    rows = [(k.name, env_var(k.name), default_text(k), note(k))
            for k in (config.SERVER_KEYS if keys is None else keys)]
    name_width = max(len(r[0]) for r in rows)
    env_width = max(len(r[1]) for r in rows)
    lines = ["settings (config file key, environment variable, default); VIETER_<KEY>_FILE=path",
             "reads a value from a file:"]
    for name, var, default, meaning in rows:
        lines.append(f"  {name:<{name_width}}  {var:<{env_width}}  {default}")
        lines += textwrap.wrap(meaning, 80, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def known_env_vars() -> frozenset[str]:
    """Every variable some vieter-lite command reads: VIETER_<KEY> and VIETER_<KEY>_FILE."""
    names = {k.name for k in config.SERVER_KEYS + config.CLIENT_KEYS + config.AGENT_KEYS}
    return frozenset(v for n in names for v in (env_var(n), env_var(n) + "_FILE"))


def unknown_env_warnings(environ: Mapping[str, str]) -> list[str]:
    """A line for each VIETER_* variable that names no key, with the closest one."""
    known = known_env_vars()
    lines = []
    for var in sorted(environ):
        if not var.startswith("VIETER_") or var in known:
            continue
        # compared without the prefix, which every name shares
        closest = difflib.get_close_matches(var[len("VIETER_"):],
                                            sorted(k[len("VIETER_"):] for k in known), n=1)
        hint = f"did you mean VIETER_{closest[0]}?" if closest else "see vieter-lite server --help"
        lines.append(f"warning: {var} names no setting; {hint}")
    return lines
