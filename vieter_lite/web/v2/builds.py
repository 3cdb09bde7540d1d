"""/api/v2/builds, the read side: a Cloud Foundry list of builds and one build."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists
from vieter_lite.models import Build, BuildDetails
from vieter_lite.web.http import base_url, path_id
from vieter_lite.web.v2.common import V2, list_response, parse_list
from vieter_lite.web.v2.shapes import build_json

if TYPE_CHECKING:
    from vieter_lite.services import Services


def register(app: bottle.Bottle, services: Services) -> None:
    queue = services.queue

    def shape(build: Build, details: BuildDetails) -> dict[str, Any]:
        return build_json(build, base_url(), details.tags, details.labels, details.packages)

    @app.get("/api/v2/builds", scope="builds:read", **V2)
    def list_builds() -> Any:
        query = parse_list(lists.BUILDS)
        found, total = queue.page(query)
        details = queue.details_of(found)
        return list_response(query, found, total, lambda b: shape(b, details[b.id]))

    @app.get("/api/v2/builds/<build_id>", scope="builds:read", **V2)
    def get_build(build_id: str) -> Any:
        build = queue.get(path_id(build_id))
        return shape(build, queue.details(build))
