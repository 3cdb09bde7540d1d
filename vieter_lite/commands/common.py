"""What every client command shares: its flags, config, the client, and output helpers."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from vieter_lite.aur import Aur
from vieter_lite.client import Client
from vieter_lite.config import ClientConfig, load_client
from vieter_lite.errors import ConfigError, Invalid
from vieter_lite.tokens import parse_time

PROG = "vieter-lite"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CODE = re.compile(r"!?-?[0-9]{1,9}", re.ASCII)
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069]")


def add_client_flags(parser: argparse.ArgumentParser, config_file: bool = True) -> None:
    """-f, --json, --address, --api-key: accepted before or after the subcommand."""
    group = parser.add_argument_group("client options")
    if config_file:
        group.add_argument("-f", "--config-file", metavar="FILE", default=argparse.SUPPRESS,
                           help="TOML file with address, api_key, aur_url "
                           "(default: ~/.vieterrc)")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print the API's data as JSON, for scripts")
    group.add_argument("--address", metavar="URL", default=argparse.SUPPRESS,
                       help="the server (overrides address / VIETER_ADDRESS)")
    group.add_argument("--api-key", metavar="KEY", default=argparse.SUPPRESS,
                       help="the server's key (overrides api_key / VIETER_API_KEY)")


def client_flags() -> argparse.ArgumentParser:
    """A parent parser with the client options."""
    flags = argparse.ArgumentParser(add_help=False)
    add_client_flags(flags)
    return flags


@dataclass
class Context:
    """One client command's run: its arguments and settings."""

    args: argparse.Namespace
    config: ClientConfig

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def client(self) -> Client:
        if not self.config.api_key:
            raise ConfigError("config key 'api_key' is required: set it in ~/.vieterrc (or the "
                              "file given with -f), as VIETER_API_KEY, or with --api-key")
        return Client(self.config.address, self.config.api_key)

    def aur(self) -> Aur:
        return Aur(self.config.aur_url)


def load_context(args: argparse.Namespace) -> Context:
    overrides = {name: value for name in ("address", "api_key")
                 if (value := getattr(args, name, None)) is not None}
    return Context(args, load_client(getattr(args, "config_file", None),
                                     overrides=overrides))


Handler = Callable[[Context], int]


def runs(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """The argparse func of a client command: load the settings, then run it."""

    def run(args: argparse.Namespace) -> int:
        return handler(load_context(args))

    run.__name__ = handler.__name__
    return run


# -- argument types ----------------------------------------------------------------------

def positive_id(text: str) -> int:
    if not text.isascii() or not text.isdecimal() or int(text) < 1 or len(text) > 18:
        raise argparse.ArgumentTypeError(f"'{text}' is not an id (a positive integer)")
    return int(text)


def count(text: str) -> int:
    if not text.isascii() or not text.isdecimal() or len(text) > 18:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number (0 or more)")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds (0 < S <= 3600)")
    return value


def local_time(text: str) -> int:
    """'YYYY-MM-DD HH:MM:SS' (or without seconds, or a bare date) in local time -> epoch."""
    for fmt in (TIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(text.strip(), fmt).timestamp())
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"'{text}' is not a local time like '2024-05-01 13:00:00'")


def day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date like 2024-05-01") from None


def exit_code(text: str) -> str:
    if not _CODE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"'{text}' is not an exit code (N, or !N for not N)")
    return text.strip()


def arch_list(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']; empty items dropped."""
    return [a for a in (part.strip() for part in text.split(",")) if a]


# -- output ------------------------------------------------------------------------------

def local(epoch: int | None) -> str:
    """An epoch as local time, '-' for none."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(int(epoch)).strftime(TIME_FORMAT)


def shown_time(value: Any, empty: str = "-") -> str:
    """An /api/v2 time (RFC 3339 UTC) in local time; `empty` for null; as sent if
    unreadable."""
    if value is None:
        return empty
    try:
        return local(parse_time(value))
    except Invalid:
        return str(value)


def duration(start: int | None, end: int | None) -> str:
    if start is None or end is None:
        return "-"
    total = max(0, int(end) - int(start))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def visible(text: str) -> str:
    """Text from the server as plain text for a terminal: control characters (but tab and
    line feed) and bidirectional overrides shown escaped (`\\x1b`, `\\u202e`), so a
    note or a diff under review cannot move the cursor, recolour, reorder or hide what
    it shows."""
    return _HIDDEN.sub(lambda m: (f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                  else f"\\u{ord(m.group()):04x}"), text)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    return " ".join(str(value).split())  # a cell is one line


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Left-aligned columns, two spaces apart, an upper-case header line."""
    text_rows = [[cell(v) for v in row] for row in rows]
    head = [h.upper() for h in headers]
    widths = [max([len(head[i])] + [len(r[i]) for r in text_rows]) for i in range(len(head))]
    for row in [head] + text_rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """'key: value' lines."""
    for key, value in pairs:
        print(f"{key}: {'' if value is None else value}".rstrip())


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def warn(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def refuse(message: str) -> int:
    """A request this CLI will not send as given: one line, exit status 2."""
    warn(message)
    return 2
