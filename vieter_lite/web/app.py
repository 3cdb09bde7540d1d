"""make_app(): the bottle app, auth, and the one place errors become {message, data} responses."""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import bottle
from bottle import HTTPError, HTTPResponse, request

from vieter_lite.config import ServerConfig
from vieter_lite.db import Database
from vieter_lite.errors import BadRequest, LengthRequired, Unauthorized, VieterError
from vieter_lite.logs import BuildLogs
from vieter_lite.models import Build
from vieter_lite.queue import BuildQueue
from vieter_lite.repo.store import RepoStore
from vieter_lite.scheduler import Scheduler
from vieter_lite.web.access_log import AccessLog, escape
from vieter_lite.web.metrics import UNMATCHED, Metrics

log = logging.getLogger(__name__)

JSON = "application/json"


@dataclass
class Services:
    """What the routes work with; built once by the supervisor (or a test)."""

    config: ServerConfig
    db: Database
    store: RepoStore
    logs: BuildLogs
    queue: BuildQueue
    scheduler: Scheduler
    metrics: Metrics = field(default_factory=Metrics)


def envelope(data: Any = "", message: str = "", status: int = 200) -> HTTPResponse:
    """Vieter's {"message", "data"} JSON body."""
    body = json.dumps({"message": message, "data": data}, separators=(",", ":"))
    return HTTPResponse(body=body, status=status, headers={"Content-Type": JSON})


def _given_key() -> str:
    given = request.environ.get("HTTP_X_API_KEY", "")
    auth = request.environ.get("HTTP_AUTHORIZATION", "")
    if not given and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    return given


def require_api_key(config: ServerConfig) -> None:
    """Only the configured api_key (X-Api-Key, or Authorization: Bearer) passes."""
    if not hmac.compare_digest(_given_key().encode(), config.api_key.encode()):
        raise Unauthorized("Unauthorized.")


def caller(services: "Services") -> Build | None:
    """None for the api_key (admin); the build for a valid build token; else 401."""
    given = _given_key()
    if hmac.compare_digest(given.encode(), services.config.api_key.encode()):
        return None
    build = services.queue.token_build(given) if given else None
    if build is None:
        raise Unauthorized("Unauthorized.")
    return build


def known_key(services: "Services", key: str) -> bool:
    """Whether a key may send a request body at all: the api_key or a live build token
    (the route still checks what that key may do)."""
    if hmac.compare_digest(key.encode(), services.config.api_key.encode()):
        return True
    return bool(key) and services.queue.token_build(key) is not None


_LOG_CHUNK_ROUTE = re.compile(r"/api/v1/builds/[^/]+/log")


def body_limit(config: ServerConfig, path: str) -> int:
    """The largest body a route takes: a package or a whole finished log, one log chunk,
    or a small API body."""
    path = _NormalisePath.normalise(path)
    if path.endswith("/publish") or path == "/api/v1/logs":
        return config.max_upload_size
    if _LOG_CHUNK_ROUTE.fullmatch(path):
        return config.max_log_chunk
    return config.max_api_body


def body_refusal(services: "Services", path: str, key: str,
                 length: int | None) -> tuple[int, str] | None:
    """Why a request may not send its body, decided from its headers alone (before a byte
    of it is read): (401, ...) without a known key, (413, ...) over the route's limit,
    (411, ...) for a chunked body on a route with a small limit; None to read it."""
    if not known_key(services, key):
        return 401, "Unauthorized."
    limit = body_limit(services.config, path)
    if length is None and limit < services.config.max_upload_size:
        return 411, "Content-Length is required."
    if length is not None and length > limit:
        return 413, f"the body is larger than this route's limit of {limit} bytes"
    return None


def request_body() -> tuple[Callable[[int], bytes], int]:
    """(read, length) of the request body; 411 when it has no length."""
    if "CONTENT_LENGTH" not in request.environ or request.content_length < 0:
        raise LengthRequired("Content-Length is required.")
    return request.environ["wsgi.input"].read, request.content_length


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


def _error_plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors and crashes into enveloped responses (never an HTML page)."""

    @functools.wraps(callback)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except (HTTPResponse, HTTPError):
            raise
        except VieterError as exc:
            return envelope(message=exc.message, status=exc.status)
        except Exception:
            log.exception("error handling %s %s", escape(request.method), escape(request.path))
            return envelope(message="Internal server error.", status=500)

    return wrapper


def _default_error(res: HTTPError) -> str:
    """bottle's own errors (no route, wrong method) in the same envelope."""
    bottle.response.content_type = JSON
    metrics = getattr(request.app, "metrics", None)
    if metrics is not None and res.status_code in (404, 405):
        metrics.observe(request.method, UNMATCHED, res.status_code, 0.0)
    message = {404: "Not found.", 405: "Method not allowed."}.get(res.status_code)
    return json.dumps({"message": message or str(res.body or res.status_line), "data": ""},
                      separators=(",", ":"))


class _NormalisePath:
    """WSGI middleware: '//a///b/' is '/a/b', as in Vieter (pacman URLs may carry '//')."""

    _SLASHES = re.compile("/{2,}")

    def __init__(self, app: Callable[..., Any]):
        self.app = app

    @classmethod
    def normalise(cls, path: str) -> str:
        path = cls._SLASHES.sub("/", path)
        return path.rstrip("/") if len(path) > 1 else path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["PATH_INFO"] = self.normalise(environ.get("PATH_INFO", "/"))
        return self.app(environ, start_response)


def make_app(services: Services) -> Callable[..., Any]:
    """The WSGI application: every route, wrapped once for errors."""
    from vieter_lite.web import repo, v1  # routes import this module for helpers

    app = bottle.Bottle(catchall=True)
    app.default_error_handler = _default_error  # type: ignore[method-assign]
    app.metrics = services.metrics  # type: ignore[attr-defined]
    app.install(services.metrics.plugin)  # first installed = outermost: sees final statuses
    app.install(_error_plugin)

    @app.get("/health")
    def health() -> HTTPResponse:
        return envelope(message="Healthy.")

    v1.register(app, services)
    repo.register(app, services)
    app.services = services  # type: ignore[attr-defined]
    return AccessLog(_NormalisePath(app))
