"""GET /badge/<target id or repo>.svg: an SVG status badge, no key needed (vieter_lite/
badge.py draws it). Digits name a target: "build | passing" (failing, running, unknown);
anything else a repo: "<repo> | N packages". An unknown target or repo is a 404 whose
body is still a badge ("unknown"), as shields.io answers. Cache-Control: no-cache and an
ETag: a client asks again each time and gets a 304 while nothing changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse, request

from vieter_lite import badge
from vieter_lite.errors import NotFound
from vieter_lite.web.http import etag_matches

if TYPE_CHECKING:
    from vieter_lite.services import Services

REPO = {"api": "repo"}


def badge_response(svg: str, status: int, if_none_match: str) -> HTTPResponse:
    tag = badge.etag(svg)
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if status == 200 and if_none_match and etag_matches(if_none_match, tag):
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(svg.encode(), status=status,
                        headers={**headers, "Content-Type": badge.CONTENT_TYPE})


def register(app: bottle.Bottle, services: Services) -> None:
    targets, store = services.targets, services.store

    def target_badge(target_id: int) -> tuple[str, int]:
        try:
            status = targets.badge_status(target_id)
        except NotFound:
            return badge.render("build", badge.UNKNOWN, badge.COLOURS[badge.UNKNOWN]), 404
        return badge.render("build", status, badge.COLOURS[status]), 200

    def repo_badge(repo: str) -> tuple[str, int]:
        try:
            count = store.package_count(repo)
        except NotFound:
            return badge.render("repo", badge.UNKNOWN, badge.COLOURS[badge.UNKNOWN]), 404
        return badge.render(repo, badge.packages_text(count), badge.INFO_COLOUR), 200

    # before the repository routes: /<repo>/<arch> would take /badge/x.svg ("badge" is a
    # reserved repo name)
    @app.get("/badge/<name>.svg", scope="public", **REPO)
    def get_badge(name: str) -> HTTPResponse:
        is_target = name.isascii() and name.isdecimal() and len(name) <= 18
        svg, status = target_badge(int(name)) if is_target else repo_badge(name)
        return badge_response(svg, status, request.get_header("If-None-Match", ""))
