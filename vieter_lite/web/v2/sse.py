"""Server-sent events (the WHATWG EventSource format) of a followed build log: pure
functions from follower updates to the bytes on the wire."""

from __future__ import annotations

import re

from vieter_lite.buildlogs import Chunk, Done, Idle, Reset, Update

CONTENT_TYPE = "text/event-stream; charset=utf-8"
# the first bytes of every stream: how long a disconnected EventSource waits (ms)
RETRY = b"retry: 3000\n\n"
KEEPALIVE = b": keepalive\n\n"
# EventSource ends a line at CR LF, LF or a lone CR alike
_LINE_END = re.compile("\r\n|\r|\n")


def event(data: bytes, event_id: int, name: str = "") -> bytes:
    """One event: a `data:` field per line of `data` (so the client's joined data is the
    text, each line end a LF), and `id:` the log offset after it. SSE is UTF-8 text:
    bytes that are not UTF-8 arrive as U+FFFD; the offsets count the log's own bytes."""
    lines = _LINE_END.split(data.decode("utf-8", "replace"))
    fields = ([f"event: {name}"] if name else []) + [f"data: {line}" for line in lines]
    fields.append(f"id: {event_id}")
    return ("\n".join(fields) + "\n\n").encode()


def render(update: Update) -> bytes:
    if isinstance(update, Chunk):
        return event(update.data, update.end)
    if isinstance(update, Done):
        return event(b"", update.end, "done")
    if isinstance(update, Reset):
        return event(b"", 0, "reset")
    assert isinstance(update, Idle)
    return KEEPALIVE
