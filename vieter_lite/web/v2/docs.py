"""GET /api/v2/openapi.json: the OpenAPI 3.1 document of every route of the app, built
from its route table and the per-API tables (web/v1/openapi.py, web/v2/openapi.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse

from vieter_lite.web import openapi
from vieter_lite.web.http import JSON, base_url
from vieter_lite.web.v1.openapi import DOC as V1_DOC
from vieter_lite.web.v2.common import V2
from vieter_lite.web.v2.openapi import DOC as V2_DOC

if TYPE_CHECKING:
    from vieter_lite.services import Services

DOCS = (V1_DOC, V2_DOC)


def app_document(app: bottle.Bottle, base: str = "") -> dict[str, object]:
    """The document of every route `app` has."""
    return openapi.document(openapi.route_infos(app.routes), DOCS, base)


def register(app: bottle.Bottle, services: Services) -> None:
    built: list[dict[str, object]] = []  # the document, built on the first request (when
    # every route is registered) and kept: a client without a key asks for it at will

    @app.get("/api/v2/openapi.json", scope="public", **V2)
    def openapi_document() -> HTTPResponse:
        if not built:
            built.append(app_document(app))
        body = json.dumps({**built[0], "servers": [{"url": base_url()}]},
                          separators=(",", ":"))
        return HTTPResponse(body, headers={"Content-Type": JSON})
