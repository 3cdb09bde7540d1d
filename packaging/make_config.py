#!/usr/bin/env python3
"""Write packaging/vieter-lite.toml, the commented default /etc/vieter-lite/vieter-lite.toml,
from the key tables (config.SERVER_KEYS, config.AGENT_KEYS): every key, its default and
meaning. `python3 packaging/make_config.py` rewrites it; `--check` exits 1 when it is stale."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vieter_lite.config import AGENT_KEYS, SERVER_KEYS  # noqa: E402
from vieter_lite.config_text import MACHINE_DEPENDENT, note, toml_value  # noqa: E402

OUTPUT = ROOT / "packaging" / "vieter-lite.toml"
HEADER = """\
# /etc/vieter-lite/vieter-lite.toml: read by `vieter-lite server` and `vieter-lite agent`
# (vieter-lite.service and vieter-lite-agent.service). Every key is shown commented out
# with its default; uncomment to change it. VIETER_<KEY> environment variables (or
# VIETER_<KEY>_FILE=path) override this file. Keys of one section that the other command
# does not know are ignored by it; api_key, data_dir and log_level are read by both.
# The units run as the `vieter` user in /var/lib/vieter-lite, so relative paths are
# relative to that directory (server data: /var/lib/vieter-lite/data, agent:
# /var/lib/vieter-lite/agent-data). This file is readable by root and the vieter group only.
"""


def _entry(key) -> list[str]:
    value = "x86_64" if key.name in MACHINE_DEPENDENT else key.default
    return [f"# {note(key)}", f"#{key.name} = {toml_value(value)}", ""]


def render() -> str:
    lines = [HEADER, "# --- server (vieter-lite server) " + "-" * 55, ""]
    for key in SERVER_KEYS:
        lines += _entry(key)
    lines += ["# --- build agent (vieter-lite agent) " + "-" * 51, ""]
    for key in AGENT_KEYS:
        lines += _entry(key)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    text = render()
    if sys.argv[1:] == ["--check"]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python3 packaging/make_config.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(OUTPUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
