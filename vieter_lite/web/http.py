"""Reading a request (key, body, query values) and Vieter's {message, data} envelope: the
helpers every API's routes share."""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Callable
from typing import Any

from bottle import HTTPResponse, request

from vieter_lite.errors import BadRequest, LengthRequired, Malformed, PayloadTooLarge

JSON = "application/json"
INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}", re.ASCII)  # what int() may read from a client


def key_of(x_api_key: str, authorization: str) -> str:
    """The key a request carries: X-Api-Key, or Authorization: Bearer."""
    if not x_api_key and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key


def given_key() -> str:
    """The key of the request being served."""
    return key_of(str(request.environ.get("HTTP_X_API_KEY", "")),
                  str(request.environ.get("HTTP_AUTHORIZATION", "")))


def envelope(data: Any = "", message: str = "", status: int = 200) -> HTTPResponse:
    """Vieter's {"message", "data"} JSON body (/api/v1 and the repository routes)."""
    body = json.dumps({"message": message, "data": data}, separators=(",", ":"))
    return HTTPResponse(body=body, status=status, headers={"Content-Type": JSON})


def request_body() -> tuple[Callable[[int], bytes], int]:
    """(read, length) of the request body; 411 when it has no length."""
    if "CONTENT_LENGTH" not in request.environ or request.content_length < 0:
        raise LengthRequired("Content-Length is required.")
    return request.environ["wsgi.input"].read, int(request.content_length)


def query_flag(name: str) -> bool:
    """?name, ?name=true -> True; absent, ?name=false -> False; anything else -> 400."""
    if name not in request.query:
        return False
    value = request.query.getunicode(name, default="") or ""
    if value.lower() in ("", "true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest(f"invalid value for '{name}': expected true or false")


def text_param(name: str) -> str | None:
    """A query value as text; 400 for bytes that are not UTF-8 or hold a NUL (a value a
    target would store and hand to a build's shell and git)."""
    if name not in request.query:
        return None
    value = request.query.getunicode(name)
    if value is None:
        raise BadRequest(f"invalid value for '{name}': not UTF-8")
    if "\0" in value:
        raise BadRequest(f"invalid value for '{name}': contains a NUL character")
    return str(value)


# the last second of year 9999: a time past it cannot be shown as a date
MAX_TIME = 253402300799


def int_param(name: str, default: int | None = None, minimum: int | None = 0,
              missing: str | None = None, maximum: int | None = None) -> int | None:
    """An integer query value; 400 for anything that is not one (Vieter read garbage as 0)."""
    raw = text_param(name)
    if raw is None or raw == "":
        if missing is not None:
            raise BadRequest(missing)
        return default
    if not INTEGER_TEXT.fullmatch(raw.strip()):
        raise BadRequest(f"invalid value for '{name}': expected an integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise BadRequest(f"invalid value for '{name}': must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise BadRequest(f"invalid value for '{name}': must be at most {maximum}")
    return value


def path_id(value: str) -> int:
    """A numeric id from the path; 400 for anything else."""
    if not value.isascii() or not value.isdecimal() or len(value) > 18:
        raise BadRequest(f"invalid id '{value}'")
    return int(value)


_SLASHES = re.compile("/{2,}")


def normalise_path(path: str) -> str:
    """'//a///b/' is '/a/b', as in Vieter (pacman URLs may carry '//')."""
    path = _SLASHES.sub("/", path)
    return path.rstrip("/") if len(path) > 1 else path


def json_body(limit: int) -> dict[str, Any]:
    """The request's JSON object: 400 (Malformed) for a body that is not JSON or not an
    object, 413 past `limit` (read from the headers before the body)."""
    if request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than this route's limit of {limit} bytes")
    raw = request.environ["wsgi.input"].read(max(0, request.content_length)) \
        if request.content_length > 0 else b""
    try:
        value = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Malformed("the body must be a JSON object")
    return value


def base_url() -> str:
    """The scheme and host the client used, for links."""
    parts = request.urlparts
    return f"{parts.scheme}://{parts.netloc}"


def is_v2_path(path: str) -> bool:
    """Whether a (normalised) path is under /api/v2, where errors use v2's envelope."""
    return path == "/api/v2" or path.startswith("/api/v2/")


def etag_matches(if_none_match: str, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (or is '*'); weak tags compare by
    their value, as If-None-Match asks."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def not_modified_since(mtime: int) -> bool:
    """Whether the request's If-Modified-Since is at or after `mtime` (an unreadable date:
    no)."""
    header = request.environ.get("HTTP_IF_MODIFIED_SINCE")
    if not header:
        return False
    try:
        since = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    return since is not None and mtime <= since.timestamp()
