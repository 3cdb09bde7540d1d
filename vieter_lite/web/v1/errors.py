"""How /api/v1 and the repository routes answer an error: Vieter's {message, data}."""

from __future__ import annotations

import json

from bottle import HTTPResponse

from vieter_lite.errors import VieterError
from vieter_lite.web.http import JSON, envelope

INTERNAL = "Internal server error."
ROUTING = {404: "Not found.", 405: "Method not allowed."}


def render(exc: VieterError) -> HTTPResponse:
    """A domain error: its message (for Invalid, the text Vieter's clients know) and status."""
    return envelope(message=exc.message, status=exc.status)


def render_crash() -> HTTPResponse:
    return envelope(message=INTERNAL, status=500)


def routing_body(status: int, text: str) -> str:
    """bottle's own errors (no route, wrong method) and the HTTP server's refusals."""
    return json.dumps({"message": ROUTING.get(status) or text, "data": ""},
                      separators=(",", ":"))


CONTENT_TYPE = JSON
