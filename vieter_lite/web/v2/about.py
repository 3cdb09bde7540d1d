"""GET /api/v2/info (no key: what the server is and whether its dashboard is public) and
GET /api/v2/whoami (any valid key: who it is and what it may do)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import __version__
from vieter_lite.tokens import SCOPES, Principal
from vieter_lite.web.auth import ANY, PUBLIC
from vieter_lite.web.v2.common import V2, principal

if TYPE_CHECKING:
    from vieter_lite.services import Services


def info_json(version: str, public_dashboard: bool, fingerprint: str | None,
              public_url: str) -> dict[str, Any]:
    return {"version": version, "public_dashboard": public_dashboard,
            "signing": None if fingerprint is None else {"fingerprint": fingerprint},
            "public_url": public_url or None}


def whoami_json(who: Principal) -> dict[str, Any]:
    """A caller as the dashboard needs it: its scopes (every scope for the admin, in
    tokens.SCOPES order), and the repos and archs it is limited to (empty: all)."""
    return {"name": who.name, "scopes": [s for s in SCOPES if who.allows(s)],
            "admin": who.is_admin, "repos": list(who.repos), "archs": list(who.archs)}


def register(app: bottle.Bottle, services: Services) -> None:
    config = services.config

    @app.get("/api/v2/info", scope=PUBLIC, **V2)
    def info() -> Any:
        signer = services.signer
        return info_json(__version__, config.public_dashboard,
                         signer.fingerprint if signer is not None else None, config.public_url)

    @app.get("/api/v2/whoami", scope=ANY, **V2)
    def whoami() -> Any:
        return whoami_json(principal())
