"""make_app(): one bottle app for every API. Plugins read what each route declares
(route.config): `scope` for the auth plugin, `api` for the error plugin, which renders a
domain error in that API's envelope (and a crash as a 500, logged)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bottle
from bottle import HTTPError, HTTPResponse, request

from vieter_lite.errors import VieterError, full_disk
from vieter_lite.web import agent, badges, keys, repo, ui, v1, v2
from vieter_lite.web.access_log import AccessLog, escape
from vieter_lite.web.auth import AuthPlugin
from vieter_lite.web.http import envelope, is_v2_path, normalise_path
from vieter_lite.web.metrics import UNMATCHED, Metrics
from vieter_lite.web.v1 import errors as v1_errors
from vieter_lite.web.v2 import errors as v2_errors

if TYPE_CHECKING:
    from vieter_lite.services import Services

log = logging.getLogger(__name__)


class Renderer:
    """How one API answers an error."""

    def __init__(self, render: Callable[[VieterError], HTTPResponse],
                 crash: Callable[[], HTTPResponse], routing_body: Callable[[int, str], str],
                 content_type: str):
        self.render = render
        self.crash = crash
        self.routing_body = routing_body
        self.content_type = content_type


VIETER = Renderer(v1_errors.render, v1_errors.render_crash, v1_errors.routing_body,
                  v1_errors.CONTENT_TYPE)
CF = Renderer(v2_errors.render, v2_errors.render_crash, v2_errors.routing_body,
              v2_errors.CONTENT_TYPE)
RENDERERS: dict[str, Renderer] = {"v1": VIETER, "repo": VIETER, "v2": CF}


def renderer_for_path(path: str) -> Renderer:
    """Which renderer answers for a path no route matched."""
    return CF if is_v2_path(path) else VIETER


class ErrorPlugin:
    """Domain errors and crashes become responses in the route's own API envelope."""

    name = "errors"
    api = 2

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        declared = RENDERERS[route.config.get("api", "v1")]

        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # a catch-all route (a pacman file path) may see /api/v2/...: v2's envelope
            renderer = CF if is_v2_path(request.path) else declared
            try:
                return callback(*args, **kwargs)
            except (HTTPResponse, HTTPError):
                raise
            except VieterError as exc:
                return renderer.render(exc)
            except Exception as exc:
                full = full_disk(exc)
                if full is not None:  # the disk filled up: 507, not a crash
                    log.error("%s %s: %s (%s)", escape(request.method), escape(request.path),
                              full.message, exc)
                    return renderer.render(full)
                log.exception("error handling %s %s", escape(request.method),
                              escape(request.path))
                return renderer.crash()

        return wrapper


def _default_error(res: HTTPError) -> str:
    """bottle's own errors (no route, wrong method) in the envelope of the path's API."""
    renderer = renderer_for_path(request.path)
    bottle.response.content_type = renderer.content_type
    metrics = getattr(request.app, "metrics", None)
    if metrics is not None and res.status_code in (404, 405):
        metrics.observe(request.method, UNMATCHED, res.status_code, 0.0)
    return renderer.routing_body(res.status_code, str(res.body or res.status_line))


class _NormalisePath:
    """WSGI middleware: '//a///b/' is '/a/b', as in Vieter (pacman URLs may carry '//')."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["PATH_INFO"] = normalise_path(environ.get("PATH_INFO", "/"))
        return self.app(environ, start_response)


def build_app(services: Services) -> bottle.Bottle:
    """The bottle app with every route (make_app wraps it for WSGI)."""
    app = bottle.Bottle(catchall=True)
    app.default_error_handler = _default_error
    metrics = Metrics()
    app.metrics = metrics
    app.install(metrics.plugin)  # first installed = outermost: sees final statuses
    app.install(ErrorPlugin())
    app.install(AuthPlugin(services))

    @app.get("/health", scope="public", api="repo")
    def health() -> HTTPResponse:
        """With sign = true, data names the signing key (what `client setup` checks)."""
        signer = services.signer
        return envelope({"fingerprint": signer.fingerprint} if signer else "",
                        message="Healthy.")

    v1.register(app, services)
    keys.register(app, services)
    agent.register(app, services)
    v2.register(app, services)
    badges.register(app, services)   # before the repository routes' catch-alls
    ui.register(app, services)  # before the repository routes
    repo.register(app, services)
    app.services = services
    return app


def make_app(services: Services) -> Callable[..., Any]:
    """The WSGI application."""
    return AccessLog(_NormalisePath(build_app(services)))
