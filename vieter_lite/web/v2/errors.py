"""How /api/v2 answers an error: Cloud Foundry's {"errors": [{code, title, detail}]}."""

from __future__ import annotations

import json

from bottle import HTTPResponse

from vieter_lite import errors
from vieter_lite.web.http import JSON

CONTENT_TYPE = JSON
# status -> (code, title), as api-v2.md's table
BY_STATUS: dict[int, tuple[int, str]] = {
    400: (10004, "CF-InvalidRequest"),
    401: (10002, "CF-NotAuthenticated"),
    403: (10003, "CF-NotAuthorized"),
    404: (10010, "CF-ResourceNotFound"),
    405: (10000, "CF-MethodNotAllowed"),
    409: (10009, "CF-Conflict"),
    411: (10004, "CF-InvalidRequest"),
    413: (10012, "CF-PayloadTooLarge"),
    416: (10004, "CF-InvalidRequest"),
    422: (10008, "CF-UnprocessableEntity"),
    500: (10001, "UnknownError"),
    503: (10015, "CF-ServiceUnavailable"),
    507: (10016, "CF-InsufficientStorage"),
}
BAD_QUERY = (10005, "CF-BadQueryParameter")


def body(status: int, detail: str, code: tuple[int, str] | None = None) -> str:
    """The one error body of /api/v2."""
    number, title = code or BY_STATUS.get(status, BY_STATUS[400 if status < 500 else 500])
    return json.dumps({"errors": [{"code": number, "title": title, "detail": detail}]},
                      separators=(",", ":"))


def status_and_code(exc: errors.VieterError) -> tuple[int, tuple[int, str] | None]:
    """An invalid value is a 422 naming its field; a bad query parameter a 400 of its own."""
    if isinstance(exc, errors.Invalid):
        return 422, None
    if isinstance(exc, errors.BadQueryParameter):
        return 400, BAD_QUERY
    return exc.status, None


def render(exc: errors.VieterError) -> HTTPResponse:
    status, code = status_and_code(exc)
    detail = exc.message
    if isinstance(exc, errors.Invalid) and not detail.startswith(exc.field):
        detail = f"{exc.field}: {detail}"
    headers = {"Content-Type": CONTENT_TYPE}
    if isinstance(exc, errors.ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return HTTPResponse(body(status, detail, code), status=status, headers=headers)


def render_crash() -> HTTPResponse:
    return HTTPResponse(body(500, "An unknown error occurred."), status=500,
                        headers={"Content-Type": CONTENT_TYPE})


def routing_body(status: int, text: str) -> str:
    """bottle's own errors and the HTTP server's refusals under /api/v2/."""
    detail = {404: "Unknown request", 405: "Method not allowed"}.get(status, text)
    return body(status, detail)
