"""What an agent asks of a claimed build beyond /api/v1's job: its details, its source
bundle (fetched by the server's copy, or sent for review), and what makepkg read of its
PKGBUILD (.SRCINFO). Build token or agent scope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle
from bottle import HTTPResponse

from vieter_lite.errors import PayloadTooLarge
from vieter_lite.review import MAX_BUNDLE
from vieter_lite.web.auth import own_build
from vieter_lite.web.http import request_body
from vieter_lite.web.v2.common import V2

if TYPE_CHECKING:
    from vieter_lite.services import Services

TAR = "application/x-tar"


def register(app: bottle.Bottle, services: Services) -> None:
    queue, jobs = services.queue, services.jobs

    @app.get("/api/v2/builds/<build_id>/job", scope="build", **V2)
    def get_job(build_id: str) -> Any:
        return jobs.job(own_build(queue, build_id))

    @app.get("/api/v2/builds/<build_id>/source", scope="build", **V2)
    def get_source(build_id: str) -> HTTPResponse:
        data = jobs.source(own_build(queue, build_id))
        return HTTPResponse(data, headers={"Content-Type": TAR})

    @app.put("/api/v2/builds/<build_id>/source", scope="build", **V2)
    def put_source(build_id: str) -> Any:
        number = own_build(queue, build_id)
        read, length = request_body()
        if length > MAX_BUNDLE:
            raise PayloadTooLarge(f"a source bundle is at most {MAX_BUNDLE} bytes")
        return jobs.put_source(number, read(length))

    @app.put("/api/v2/builds/<build_id>/srcinfo", scope="build", **V2)
    def put_srcinfo(build_id: str) -> Any:
        number = own_build(queue, build_id)
        read, length = request_body()
        return services.dependencies.read(number, read(length).decode("utf-8", "replace"))
