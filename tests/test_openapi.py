"""The OpenAPI document (GET /api/v2/openapi.json): valid OpenAPI 3.1, every route of the
app in it and nothing else, each with its scope and its API's error envelope, and served
without a key by a real server."""

from __future__ import annotations

import json
import urllib.request

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from vieter_lite import names
from vieter_lite.web import openapi
from vieter_lite.web.openapi import (
    KEYED,
    ApiDoc,
    Operation,
    RouteInfo,
    missing_entries,
    openapi_paths,
    stale_entries,
)
from vieter_lite.web.v1.openapi import ARCH, REPO
from vieter_lite.web.v2.docs import DOCS, app_document

ERROR_SCHEMA = {"v1": "VieterError", "repo": "VieterError", "v2": "CFError"}


def _app_and_routes():
    import tempfile
    from pathlib import Path

    from conftest import make_config
    from vieter_lite.services import build_services
    from vieter_lite.web.app import build_app

    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(make_config(Path(tmp)))
        try:
            app = build_app(services)
            return app_document(app), openapi.route_infos(app.routes)
        finally:
            services.db.close()


DOCUMENT, ROUTES = _app_and_routes()
PATHS = openapi_paths(r.rule for r in ROUTES)


def _operation(route: RouteInfo) -> dict:
    path, _ = PATHS[route.rule]
    return DOCUMENT["paths"].get(path, {}).get(route.method.lower())


def _id(route: RouteInfo) -> str:
    return f"{route.method} {route.rule}"


def test_the_document_is_valid_openapi_3_1():
    assert DOCUMENT["openapi"].startswith("3.1.")
    errors = [e.message for e in OpenAPIV31SpecValidator(DOCUMENT).iter_errors()]
    assert errors == []


def test_the_app_has_the_routes_this_module_checks():
    keys = {(r.method, r.rule) for r in ROUTES}
    assert {("GET", "/api/v1/targets"), ("PUT", "/<repo>/publish"),
            ("GET", "/api/v2/openapi.json"), ("PATCH", "/api/v1/builds/<build_id>/tasks/<name>"),
            ("HEAD", "/<repo>/<arch>/<filename>")} <= keys


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_every_route_is_in_the_document(route):
    assert _operation(route) is not None, \
        f"{route.method} {route.rule} has no entry in web/v1/openapi.py or web/v2/openapi.py"


def test_no_path_in_the_document_lacks_a_route():
    documented = {(method.upper(), path) for path, ops in DOCUMENT["paths"].items()
                  for method in ops}
    routed = {(r.method, PATHS[r.rule][0]) for r in ROUTES}
    assert documented - routed == set()


def test_no_table_entry_lacks_a_route():
    assert stale_entries(ROUTES, DOCS) == []


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_each_operation_carries_its_scope_and_security(route):
    op = _operation(route)
    assert op["x-scope"] == route.scope
    if route.scope == openapi.PUBLIC:
        assert op["security"] == []
        assert "401" not in op["responses"]
    elif route.scope == "any":   # any valid key: nothing it could lack
        assert op["security"] == KEYED
        assert "401" in op["responses"] and "403" not in op["responses"]
    else:
        assert op["security"] == KEYED
        assert {"401", "403"} <= set(op["responses"])
    assert op.get("x-public-dashboard", False) == route.dashboard


# errors a route answers with a body of its own instead of the envelope (a badge of an
# unknown target or repo is still a badge: "unknown")
OWN_ERROR_BODIES = {("GET", "/badge/<name>.svg"): {"404"}}


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_error_responses_are_in_the_routes_envelope(route):
    op = _operation(route)
    schema_ref = f"#/components/schemas/{ERROR_SCHEMA[route.api]}"
    own = OWN_ERROR_BODIES.get((route.method, route.rule), set())
    errors = {s: r for s, r in op["responses"].items()
              if int(s) >= 400 and int(s) != 416 and s not in own}
    for status, response in errors.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": schema_ref}, \
            status


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_every_path_parameter_is_described(route):
    op = _operation(route)
    path, _ = PATHS[route.rule]
    in_path = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
    assert sorted(in_path) == sorted(path[1:].replace("}", "{").split("{")[1::2])


@pytest.mark.parametrize("rules, expected", [
    (["/<repo>/<arch>"], {"/<repo>/<arch>": ("/{repo}/{arch}", {"repo": "repo",
                                                                  "arch": "arch"})}),
    (["/api/v1/builds/<build_id:int>/log"],
     {"/api/v1/builds/<build_id:int>/log": ("/api/v1/builds/{build_id}/log",
                                             {"build_id": "build_id"})}),
    (["/<repo>/<arch>/<filename>", "/<repo>/<arch>/<pkg>"],
     {"/<repo>/<arch>/<filename>": ("/{repo}/{arch}/{filename}",
                                    {"repo": "repo", "arch": "arch", "filename": "filename"}),
      "/<repo>/<arch>/<pkg>": ("/{repo}/{arch}/{filename}",
                               {"repo": "repo", "arch": "arch", "pkg": "filename"})}),
    (["/<a>/<b>/x", "/<b>/<a>/x"],
     {"/<a>/<b>/x": ("/{a}/{b}/x", {"a": "a", "b": "b"}),
      "/<b>/<a>/x": ("/{a}/{b}/x", {"b": "a", "a": "b"})}),
    (["/", "/health"], {"/": ("/", {}), "/health": ("/health", {})}),
])
def test_openapi_paths(rules, expected):
    assert openapi_paths(rules) == expected


FAKE = ApiDoc(tags={"v1": "v1"}, operations={("GET", "/a"): Operation("a"),
                                             ("GET", "/gone"): Operation("gone")},
              schemas={}, error_schema="E")


def test_a_route_without_an_entry_is_named_and_left_out():
    routes = [RouteInfo("GET", "/a", "public", "v1"), RouteInfo("POST", "/a", "admin", "v1"),
              RouteInfo("GET", "/b", "public", "v2")]
    assert missing_entries(routes, [FAKE]) == routes[1:]
    assert list(openapi.document(routes, [FAKE])["paths"]) == ["/a"]
    assert list(openapi.document(routes, [FAKE])["paths"]["/a"]) == ["get"]


def test_an_entry_without_a_route_is_named():
    assert stale_entries([RouteInfo("GET", "/a", "public", "v1")], [FAKE]) == [("GET", "/gone")]


@pytest.mark.parametrize("name", ["bur", "my_repo.2", "a+b@c-d", "_", "x" * 128, "apis",
                                  "API", "api", "", "-x", ".x", "a/b", "a b", "x" * 129, "é"])
def test_the_repo_pattern_is_names_rule(name):
    import re

    try:
        names.check_repo(name)
        valid = True
    except ValueError:
        valid = False
    assert bool(re.search(REPO["pattern"], name)) == valid


@pytest.mark.parametrize("name", ["x86_64", "aarch64", "any", "A_1", "x" * 32, "x" * 33, "",
                                  "arm-v7", "x 1"])
def test_the_arch_pattern_is_names_rule(name):
    import re

    try:
        names.check_arch(name)
        valid = True
    except ValueError:
        valid = False
    assert bool(re.search(ARCH["pattern"], name)) == valid


@pytest.mark.integration
def test_a_real_server_serves_it_without_a_key(server):
    with urllib.request.urlopen(server.url + "/api/v2/openapi.json", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        served = json.load(resp)
    assert served["servers"] == [{"url": server.url}]
    assert served["paths"] == DOCUMENT["paths"]
    assert served["components"] == DOCUMENT["components"]
