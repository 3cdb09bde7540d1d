"""Who is calling, and what a route lets them do. Every route declares a scope
(`@app.get(path, api="v1", scope="targets:read")`); one plugin resolves the caller from the
key and checks the scope before the route runs. Bodies are refused from the headers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bottle import request

from vieter_lite import diskspace
from vieter_lite.errors import Forbidden, Unauthorized
from vieter_lite.models import Build
from vieter_lite.tokens import ANONYMOUS, Principal
from vieter_lite.tokens import SCOPES as TOKEN_SCOPES
from vieter_lite.web.http import given_key, normalise_path, path_id

if TYPE_CHECKING:
    import bottle

    from vieter_lite.config import ServerConfig
    from vieter_lite.queue import BuildQueue
    from vieter_lite.services import Services

PUBLIC = "public"
# "any": every valid key (the api_key, any named token whatever its scopes; not a build's
# token), e.g. /api/v2/whoami
ANY = "any"
# "build": the build routes an agent reports through (the api_key, or that build's token)
SCOPES = (PUBLIC, "build", ANY, *TOKEN_SCOPES)
# what a build token may do, besides nothing
BUILD_TOKEN_SCOPES = ("build", "repos:publish")
CALLER = "vieter.caller"


@dataclass(frozen=True)
class Caller:
    """Who calls: a principal (the api_key's holder, or a named token with its scopes,
    repos and archs), or a running build through its build token."""

    principal: Principal | None = None
    build: Build | None = None

    @property
    def admin(self) -> bool:
        return self.principal is not None and self.principal.allows("admin")


def resolve(services: Services, scope: str, key: str, build_token: bool = False) -> Caller:
    """The caller a key stands for on a route of `scope`: 401 for no or an unknown key (or a
    build token off its routes), 403 for a token without the route's scope. A route that
    declares `build_token=True` also takes a running build's token (it then checks that
    the build is the token's own)."""
    if not key:
        raise Unauthorized("Unauthorized.")
    principal = services.tokens.resolve(key, int(time.time()))
    if principal is not None:
        if scope == "build":
            # the build's own token (below), an admin, or an agent's token (the route
            # checks the build's arch against the token's)
            if not principal.allows("agent"):
                raise Forbidden("Forbidden: only the build's own token, an agent's token or "
                                "an admin reports on a build.")
        elif scope != ANY and not principal.allows(scope):
            raise Forbidden(f"Forbidden: this token lacks the scope '{scope}'.")
        return Caller(principal=principal)
    if scope in BUILD_TOKEN_SCOPES or build_token:
        build = services.queue.token_build(key)
        if build is not None:
            return Caller(build=build)
    raise Unauthorized("Unauthorized.")


def no_key_at_all(environ: dict[str, Any]) -> bool:
    """Whether a request carries no key header at all (an empty or wrong one is a key,
    refused as such)."""
    return "HTTP_X_API_KEY" not in environ and "HTTP_AUTHORIZATION" not in environ


def own_build(queue: BuildQueue, build_id: str) -> int:
    """The api_key, the token of this very build, or an agent's token for its arch."""
    who = caller()
    number = path_id(build_id)
    if who.build is not None and who.build.id != number:
        raise Forbidden("This token belongs to another build.")
    principal = who.principal
    if principal is not None and not principal.allows("admin") \
            and not principal.may_use_arch(queue.get(number).arch):
        raise Forbidden("This token may not report on builds of that arch.")
    return number


def caller() -> Caller:
    """The caller of the request being served (set by the plugin)."""
    found = request.environ.get(CALLER)
    return found if isinstance(found, Caller) else Caller()


class AuthPlugin:
    """Checks each route's declared scope before it runs. A route that declares
    `dashboard=True` (a GET the dashboard reads) also takes a caller without any key when
    public_dashboard is true: the ANONYMOUS principal, which reads only public builds."""

    name = "auth"
    api = 2

    def __init__(self, services: Services):
        self.services = services

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        scope = route.config.get("scope", "admin")  # a route that says nothing is admin-only
        if scope == PUBLIC:
            return callback
        services = self.services
        build_token = bool(route.config.get("build_token", False))
        dashboard = bool(route.config.get("dashboard", False))
        if dashboard and (route.method != "GET" or not ANONYMOUS.allows(scope)):
            raise ValueError(f"{route.method} {route.rule}: only a read route may be "
                             "open to the public dashboard")

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if dashboard and services.config.public_dashboard \
                    and no_key_at_all(request.environ):
                request.environ[CALLER] = Caller(principal=ANONYMOUS)
            else:
                request.environ[CALLER] = resolve(services, scope, given_key(), build_token)
            return callback(*args, **kwargs)

        return wrapper


def known_key(services: Services, key: str) -> bool:
    """Whether a key may send a request body at all: the api_key or a live build token
    (the route still checks what that key may do)."""
    if not key:
        return False
    return services.tokens.resolve(key, int(time.time())) is not None \
        or services.queue.token_build(key) is not None


_LOG_CHUNK_ROUTE = re.compile(r"/api/v[12]/builds/[^/]+/log")
_SOURCE_ROUTE = re.compile(r"/api/v2/builds/[^/]+/source")
# a submission carries a manifest (an inline PKGBUILD of up to 256 KiB, JSON-escaped); a
# source bundle is a tar of up to review.MAX_BUNDLE
LARGE_API_BODY = 1 << 20


def body_limit(config: ServerConfig, path: str) -> int:
    """The largest body a route takes: a package or a whole finished log, one log chunk,
    or a small API body."""
    path = normalise_path(path)
    if path.endswith("/publish") or path == "/api/v1/logs":
        return config.max_upload_size
    if _LOG_CHUNK_ROUTE.fullmatch(path):
        return config.max_log_chunk
    if path == "/api/v2/builds" or _SOURCE_ROUTE.fullmatch(path):
        return max(LARGE_API_BODY, config.max_api_body)
    return config.max_api_body


def body_refusal(services: Services, path: str, key: str,
                 length: int | None) -> tuple[int, str] | None:
    """Why a request may not send its body, decided from its headers alone (before a byte
    of it is read): (401, ...) without a known key, (413, ...) over the route's limit,
    (411, ...) for a chunked body on a route with a small limit, (507, ...) for an
    upload that would leave less than min_free_space on the data disk; None to read it."""
    if not known_key(services, key):
        return 401, "Unauthorized."
    limit = body_limit(services.config, path)
    if length is None and limit < services.config.max_upload_size:
        return 411, "Content-Length is required."
    if length is not None and length > limit:
        return 413, f"the body is larger than this route's limit of {limit} bytes"
    if limit >= services.config.max_upload_size:  # a package or a whole log
        store = services.store
        full = diskspace.upload_refusal(store.tmp_dir, store.pkg_dir, length,
                                        services.config.min_free_space)
        if full is not None:
            return 507, full
    return None
