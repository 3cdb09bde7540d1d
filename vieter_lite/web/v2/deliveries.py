"""/api/v2/builds/:id/deliveries: the attempts to deliver a build's notifications; and the
webhook body the notifications worker sends (the build's /api/v2 JSON)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists
from vieter_lite.models import Build, BuildDetails
from vieter_lite.web.http import base_url, path_id
from vieter_lite.web.v2.common import DASHBOARD, for_caller, list_response, parse_list, principal
from vieter_lite.web.v2.shapes import attempt_json, build_json

if TYPE_CHECKING:
    from vieter_lite.deliveries import Render
    from vieter_lite.services import Services


def webhook_renderer(base: str) -> Render:
    """A webhook's body: the build as GET /api/v2/builds/:id shows it, links under `base`."""
    def render(build: Build, details: BuildDetails) -> bytes:
        shown = build_json(build, base, details.tags, details.labels, details.packages)
        return json.dumps(shown, separators=(",", ":")).encode()
    return render


def register(app: bottle.Bottle, services: Services) -> None:
    deliveries, jobs = services.deliveries, services.jobs

    @app.get("/api/v2/builds/<build_id>/deliveries", scope="builds:read", **DASHBOARD)
    def list_deliveries(build_id: str) -> Any:
        build = jobs.readable(principal(), path_id(build_id))   # its access:read list
        query = parse_list(lists.DELIVERIES)
        found, total = deliveries.attempts(build.id, query)
        base = base_url()
        return list_response(query, found, total, lambda a: for_caller(attempt_json(a, base)))
