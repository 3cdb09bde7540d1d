"""/api/v2's JSON: pure functions of records (and the base URL for links); times are
RFC 3339 UTC with second precision."""

from __future__ import annotations

import time
from typing import Any

from vieter_lite.buildlogs import LogView
from vieter_lite.models import Token


def rfc3339(seconds: int | None) -> str | None:
    return None if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      time.gmtime(seconds))


def token_json(token: Token, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": token.id, "name": token.name, "user": token.user,
                           "scopes": list(token.scopes), "repos": list(token.repos),
                           "archs": list(token.archs), "created_at": rfc3339(token.created_at),
                           "expires_at": rfc3339(token.expires_at),
                           "last_used_at": rfc3339(token.last_used_at)}
    if secret is not None:
        out["secret"] = secret
    return out


def link(base: str, path: str) -> dict[str, str]:
    return {"href": f"{base}{path}"}


def log_json(view: LogView) -> dict[str, Any]:
    """A build log (Calyptia's pipeline log): `logs` from the requested offset,
    `next_offset` the byte offset to ask for next."""
    return {"id": view.id, "build_id": view.build_id,
            "logs": view.text.decode("utf-8", "replace"), "lines": view.lines,
            "status": view.status, "created_at": rfc3339(view.created_at),
            "updated_at": rfc3339(view.updated_at),
            "offset": view.offset, "next_offset": view.offset + len(view.text)}
