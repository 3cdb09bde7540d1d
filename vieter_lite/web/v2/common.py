"""What every /api/v2 route module shares: the route options, list pages, bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bottle import HTTPResponse, request

from vieter_lite import lists
from vieter_lite.tokens import ADMIN, Principal
from vieter_lite.web.auth import caller
from vieter_lite.web.http import JSON, base_url
from vieter_lite.web.v2 import shapes

V2: dict[str, Any] = {"api": "v2"}
# a GET the dashboard reads: with public_dashboard = true a caller without a key may use it
# (web/auth.py AuthPlugin), as ANONYMOUS: public builds only, no triggers
DASHBOARD: dict[str, Any] = {**V2, "dashboard": True}
T = TypeVar("T")


def principal() -> Principal:
    """The named token or api_key calling a route of a token scope."""
    return caller().principal or ADMIN


def for_caller(shown: dict[str, Any]) -> dict[str, Any]:
    """A resource as the caller may see it: without a key (public dashboard) no trigger,
    no delivery destination or response (a webhook URL or an email address may be
    private) and no agent's token id shows."""
    if not principal().anonymous:
        return shown
    return shapes.without_private(shown)


def _utf8(text: str) -> str:
    """A query text as the client meant it: bottle holds it as latin-1, clients send UTF-8
    (bytes that are not become U+FFFD)."""
    return text.encode("latin-1").decode("utf-8", "replace")


def query_pairs() -> list[tuple[str, str]]:
    return [(_utf8(str(k)), _utf8(str(v))) for k, v in request.query.allitems()]


def parse_list(spec: lists.ListSpec) -> lists.ListQuery:
    return lists.parse(query_pairs(), spec)


def list_response(query: lists.ListQuery, resources: Sequence[T], total: int,
                  shape: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """The CF list body for one page of `resources` out of `total`."""
    return {"pagination": lists.pagination(base_url(), request.path, query, query_pairs(),
                                           total),
            "resources": [shape(r) for r in resources]}


def page_of(query: lists.ListQuery, records: Sequence[T], key: Callable[[T], Any]) \
        -> tuple[list[T], int]:
    """A page of a small collection held in memory (tokens): ordered by `key`, ties by
    the list order (ids)."""
    ordered = sorted(records, key=key, reverse=query.descending)
    return ordered[query.offset:query.offset + query.per_page], len(ordered)


def created(body: dict[str, Any], location: str) -> HTTPResponse:
    return HTTPResponse(json.dumps(body, separators=(",", ":")), status=201,
                        headers={"Content-Type": JSON, "Location": location})


def no_content() -> HTTPResponse:
    return HTTPResponse(status=204)
