"""Every route declares its API and its scope, and answers a caller without a key (and a
wrong method) in its own API's error envelope."""

from __future__ import annotations

import json
import re

import pytest
import webtest

from vieter_lite.web.app import RENDERERS, build_app
from vieter_lite.web.auth import PUBLIC, SCOPES

PARAM = re.compile(r"<([a-z_]+)[^>]*>")
SAMPLE = {"target_id": "1", "build_id": "1", "repo": "bur", "arch": "x86_64", "name": "build",
          "filename": "foo-1.0-1-x86_64.pkg.tar.zst", "pkg": "foo"}
ENVELOPES = {
    "v1": lambda body, status: set(body) == {"message", "data"},
    "repo": lambda body, status: set(body) == {"message", "data"},
    "v2": lambda body, status: list(body) == ["errors"] and len(body["errors"]) == 1
    and set(body["errors"][0]) == {"code", "title", "detail"}
    and body["errors"][0]["code"] == {401: 10002, 405: 10000}[status],
}


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    from conftest import make_config
    from vieter_lite.services import build_services

    services = build_services(make_config(tmp_path_factory.mktemp("routes")))
    app = build_app(services)
    yield app, [(r.method, r.rule, dict(r.config)) for r in app.routes]
    services.db.close()


def _all_routes(**overrides: object) -> dict[tuple[str, str], str]:
    """{(method, rule): scope} of every route, read from a fresh app (for parametrising)."""
    import tempfile
    from pathlib import Path

    from conftest import make_config
    from vieter_lite.services import build_services

    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(make_config(Path(tmp), **overrides))
        try:
            return {(r.method, r.rule): r.config.get("scope")
                    for r in build_app(services).routes}
        finally:
            services.db.close()


SCOPE_OF = _all_routes()
ROUTES = list(SCOPE_OF)
KEYED = [route for route, scope in SCOPE_OF.items() if scope != PUBLIC]
# what anyone may call without a key: pacman's files (and their signatures), the health
# check, metrics (when enabled), the page at /, the API document, the signing key and the
# client set-up script (neither holds anything secret), what the server is (/api/v2/info)
# and the status badges
PUBLIC_ROUTES = {("GET", "/api/v2/info"), ("GET", "/badge/<name>.svg"),
                 ("GET", "/health"), ("GET", "/"), ("GET", "/<repo>/<arch>/<filename>"),
                 ("GET", "/key"), ("GET", "/setup"),
                 ("HEAD", "/<repo>/<arch>/<filename>"), ("GET", "/<repo>"), ("HEAD", "/<repo>"),
                 ("GET", "/<repo>/<arch>"), ("HEAD", "/<repo>/<arch>"), ("GET", "/metrics"),
                 ("GET", "/api/v1/metrics"), ("GET", "/api/v2/openapi.json")}


# what a caller without any key may read when public_dashboard is true (only builds whose
# access:read holds '*')
DASHBOARD_ROUTES = {
    ("GET", "/api/v2/builds"), ("GET", "/api/v2/builds/<build_id>"),
    ("GET", "/api/v2/builds/<build_id>/log"), ("GET", "/api/v2/builds/<build_id>/log/content"),
    ("GET", "/api/v2/builds/<build_id>/tasks/<name>/log"),
    ("GET", "/api/v2/builds/<build_id>/deliveries"),
    ("GET", "/api/v2/targets"), ("GET", "/api/v2/targets/<target_id>"),
    ("GET", "/api/v2/repos"), ("GET", "/api/v2/repos/<repo>/<arch>/packages"),
    ("GET", "/api/v2/repos/<repo>/<arch>/packages/<name>"),
    ("GET", "/api/v2/agents"), ("GET", "/api/v2/stats/builds")}


def test_there_are_routes_to_check():
    assert ("GET", "/api/v1/targets") in ROUTES and ("POST", "/<repo>/publish") in ROUTES


def test_only_these_routes_are_public():
    assert {route for route, scope in SCOPE_OF.items() if scope == PUBLIC} == PUBLIC_ROUTES


def test_only_these_routes_are_open_to_the_public_dashboard(routes):
    _, table = routes
    assert {(m, r) for m, r, c in table if c.get("dashboard")} == DASHBOARD_ROUTES


@pytest.fixture(scope="module")
def public_dashboard(tmp_path_factory):
    from conftest import make_config
    from vieter_lite.services import build_services

    services = build_services(make_config(tmp_path_factory.mktemp("dashboard"),
                                          public_dashboard=True))
    yield webtest.TestApp(build_app(services))
    services.db.close()


@pytest.mark.parametrize("method, rule", sorted(set(KEYED) - DASHBOARD_ROUTES))
def test_public_dashboard_opens_no_other_route(public_dashboard, method, rule):
    """With public_dashboard = true a caller without any key still gets a 401 on every
    keyed route but the dashboard's reads."""
    resp = public_dashboard.request(_path(rule), method=method, expect_errors=True)
    assert resp.status_int == 401, (method, rule, resp.text)


@pytest.mark.parametrize("method, rule", sorted(DASHBOARD_ROUTES))
def test_public_dashboard_routes_refuse_a_wrong_or_empty_key(public_dashboard, method, rule):
    for headers in ({"X-Api-Key": "not-the-key"}, {"Authorization": "Bearer "},
                    {"X-Api-Key": ""}):
        resp = public_dashboard.request(_path(rule), method=method, expect_errors=True,
                                        headers=headers)
        assert resp.status_int == 401, (method, rule, headers, resp.text)


@pytest.mark.parametrize("method, rule", sorted(DASHBOARD_ROUTES))
def test_public_dashboard_routes_take_no_key_only_when_it_is_on(routes, public_dashboard,
                                                                method, rule):
    app, _ = routes    # public_dashboard = false (the default)
    closed = webtest.TestApp(app).request(_path(rule), method=method, expect_errors=True)
    assert closed.status_int == 401, (method, rule, closed.text)
    opened = public_dashboard.request(_path(rule), method=method, expect_errors=True)
    assert opened.status_int != 401, (method, rule, opened.text)
    assert opened.status_int != 403, (method, rule, opened.text)


@pytest.mark.parametrize("method, rule", ROUTES)
def test_every_route_declares_an_api_and_a_known_scope(routes, method, rule):
    _, table = routes
    config = next(c for m, r, c in table if (m, r) == (method, rule))
    assert config.get("scope") in SCOPES, f"{method} {rule} declares no known scope"
    assert config.get("api") in RENDERERS, f"{method} {rule} declares no known api"


def _path(rule: str) -> str:
    return PARAM.sub(lambda m: SAMPLE.get(m.group(1), "1"), rule)


@pytest.mark.parametrize("method, rule", KEYED)
def test_a_caller_without_a_key_gets_401_in_the_routes_envelope(routes, method, rule):
    app, table = routes
    config = next(c for m, r, c in table if (m, r) == (method, rule))
    client = webtest.TestApp(app)
    resp = client.request(_path(rule), method=method, expect_errors=True,
                          headers={"X-Api-Key": "not-the-key"})
    assert resp.status_int == 401, (method, rule, resp.text)
    body = json.loads(resp.text)
    assert ENVELOPES[config["api"]](body, 401), body


@pytest.mark.parametrize("method, rule", [r for r in ROUTES if r[0] == "DELETE"])
def test_a_method_no_route_takes_is_a_405_in_the_envelope(routes, method, rule):
    app, _ = routes
    client = webtest.TestApp(app)
    resp = client.request(_path(rule), method="PUT", expect_errors=True)
    assert resp.status_int == 405, resp.text
    api = "v2" if rule.startswith("/api/v2/") else "v1"
    assert ENVELOPES[api](json.loads(resp.text), 405), resp.text
