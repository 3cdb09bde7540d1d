"""The access log: one line per request, client text escaped so it cannot forge a line."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("vieter_lite.access")

# C0 controls, DEL and C1 controls: a %0a in a URL must not start a new log line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\\\\]")


def escape(text: str) -> str:
    """Client text for a log line: control characters (and the backslash) as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class AccessLog:
    """WSGI middleware: logs method, path, status, bytes, ms and client of each request at
    INFO; refusals of auth (401, 403) at WARNING."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def recording_start_response(status: str, headers: list[tuple[str, str]],
                                     *args: Any) -> Any:
            seen["status"] = status
            seen["length"] = next((v for k, v in headers if k.lower() == "content-length"),
                                  "-")
            return start_response(status, headers, *args)

        try:
            return self.app(environ, recording_start_response)
        finally:
            self._log(environ, seen, started)

    @staticmethod
    def _log(environ: dict[str, Any], seen: dict[str, Any], started: float) -> None:
        status = str(seen.get("status", "500")).split(" ", 1)[0]
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        level = logging.WARNING if status in ("401", "403") else logging.INFO
        if not log.isEnabledFor(level):
            return
        # PATH_INFO is the latin-1 decoding of the raw bytes (PEP 3333)
        log.log(level, "%s %s %s %s %.1fms %s", escape(environ.get("REQUEST_METHOD", "")),
                escape(path), status, seen.get("length", "-"),
                (time.monotonic() - started) * 1000, escape(environ.get("REMOTE_ADDR", "-")))
