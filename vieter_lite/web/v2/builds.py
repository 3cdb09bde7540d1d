"""/api/v2/builds: builds.sr.ht's jobs as a Cloud Foundry list, one build, submission,
start, cancel, delete and the manifest; the access lists apply to named tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle
from bottle import HTTPResponse

from vieter_lite import lists
from vieter_lite.models import Build, BuildDetails
from vieter_lite.web.auth import LARGE_API_BODY
from vieter_lite.web.http import base_url, json_body, path_id
from vieter_lite.web.v2.common import (
    DASHBOARD,
    V2,
    created,
    for_caller,
    list_response,
    no_content,
    parse_list,
    principal,
)
from vieter_lite.web.v2.shapes import build_json

if TYPE_CHECKING:
    from vieter_lite.services import Services



def register(app: bottle.Bottle, services: Services) -> None:
    queue, jobs = services.queue, services.jobs

    def shape(build: Build, details: BuildDetails) -> dict[str, Any]:
        return for_caller(build_json(build, base_url(), details.tags, details.labels,
                                     details.packages, details.blocked_by))

    def one(build: Build) -> dict[str, Any]:
        return shape(build, queue.details(build))

    @app.get("/api/v2/builds", scope="builds:read", **DASHBOARD)
    def list_builds() -> Any:
        who = principal()
        query = parse_list(lists.BUILDS)
        if not who.is_admin:
            query = lists.readable_by(query, who.user)
        found, total = queue.page(query)
        details = queue.details_of(found)
        return list_response(query, found, total, lambda b: shape(b, details[b.id]))

    @app.post("/api/v2/builds", scope="builds:write", **V2)
    def submit_build() -> HTTPResponse:
        build = jobs.submit(principal(), json_body(LARGE_API_BODY))
        return created(one(build), f"{base_url()}/api/v2/builds/{build.id}")

    @app.get("/api/v2/builds/<build_id>", scope="builds:read", **DASHBOARD)
    def get_build(build_id: str) -> Any:
        return one(jobs.readable(principal(), path_id(build_id)))

    @app.get("/api/v2/builds/<build_id>/manifest", scope="builds:read", **V2)
    def get_manifest(build_id: str) -> HTTPResponse:
        text = jobs.manifest(principal(), path_id(build_id))
        return HTTPResponse(text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"})

    @app.post("/api/v2/builds/<build_id>/start", scope="builds:write", **V2)
    def start_build(build_id: str) -> Any:
        return one(jobs.start(principal(), path_id(build_id)))

    @app.post("/api/v2/builds/<build_id>/cancel", scope="builds:write", **V2)
    def cancel_build(build_id: str) -> Any:
        return one(jobs.cancel(principal(), path_id(build_id)))

    @app.delete("/api/v2/builds/<build_id>", scope="builds:write", **V2)
    def delete_build(build_id: str) -> HTTPResponse:
        jobs.delete(principal(), path_id(build_id))
        return no_content()
