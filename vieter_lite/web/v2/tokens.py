"""/api/v2/tokens: named tokens with scopes (admin only); the secret is shown once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists
from vieter_lite.errors import Invalid
from vieter_lite.tokens import TokenSpec, parse_time
from vieter_lite.web.http import base_url, json_body, path_id
from vieter_lite.web.v2.common import V2, created, list_response, no_content, page_of, parse_list
from vieter_lite.web.v2.shapes import token_json

if TYPE_CHECKING:
    from vieter_lite.services import Services

TOKENS = lists.ListSpec(order_fields=("id", "created_at"), timestamp_fields=())
FIELDS = ("name", "user", "scopes", "repos", "archs", "expires_at")


def spec_of(body: dict[str, Any]) -> TokenSpec:
    """A TokenSpec from a JSON body; unknown keys are named (the domain checks the rest)."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise Invalid(unknown[0], "unknown", f"unknown field; the fields are {', '.join(FIELDS)}")
    return TokenSpec(name=body.get("name"), user=body.get("user") or "",  # type: ignore[arg-type]
                     scopes=body.get("scopes"),  # type: ignore[arg-type]
                     repos=body.get("repos") or (), archs=body.get("archs") or (),
                     expires_at=parse_time(body.get("expires_at")))


def register(app: bottle.Bottle, services: Services) -> None:
    tokens, config = services.tokens, services.config

    @app.post("/api/v2/tokens", scope="admin", **V2)
    def add_token() -> Any:
        token, secret = tokens.add(spec_of(json_body(config.max_api_body)), int(time.time()))
        return created(token_json(token, secret), f"{base_url()}/api/v2/tokens/{token.id}")

    @app.get("/api/v2/tokens", scope="admin", **V2)
    def list_tokens() -> Any:
        query = parse_list(TOKENS)
        page, total = page_of(query, tokens.list(),
                              key=lambda t: (getattr(t, query.order_by), t.id))
        return list_response(query, page, total, token_json)

    @app.get("/api/v2/tokens/<token_id>", scope="admin", **V2)
    def get_token(token_id: str) -> Any:
        return token_json(tokens.get(path_id(token_id)))

    @app.delete("/api/v2/tokens/<token_id>", scope="admin", **V2)
    def remove_token(token_id: str) -> Any:
        tokens.remove(path_id(token_id), int(time.time()))
        return no_content()
