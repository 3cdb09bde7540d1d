"""Reading server-sent events (the WHATWG EventSource format) as a client: a pure parser
from the lines of a stream to its events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One block of fields up to a blank line. `data`: the data fields joined by LF (None
    when the block had none); `id` and `retry` (milliseconds) None when not given."""

    name: str = ""
    data: str | None = None
    id: str | None = None
    retry: int | None = None


def parse(lines: Iterable[bytes]) -> Iterator[Event]:
    """The events of a stream, from its lines (each with or without its line end). Comment
    lines (':') are skipped, unknown fields ignored; a block without any known field
    yields nothing; an unfinished last block (no blank line after it) is dropped, as an
    EventSource drops it."""
    name, event_id, retry = "", None, None
    data: list[str] | None = None
    seen = False
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if seen:
                yield Event(name, None if data is None else "\n".join(data), event_id, retry)
            name, data, event_id, retry, seen = "", None, None, None, False
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data = [] if data is None else data
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            if "\0" in value:
                continue
            event_id = value
        elif field == "retry":
            if not value.isascii() or not value.isdigit():
                continue
            retry = int(value)
        else:
            continue
        seen = True
