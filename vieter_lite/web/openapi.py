"""The OpenAPI 3.1 document of every route, built from the app's route table (method, rule,
and the `scope` and `api` each route declares) and one table per API envelope saying what
each route takes and answers (web/v1/openapi.py, web/v2/openapi.py). Pure functions: the
route that serves it is web/v2/docs.py."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vieter_lite import __version__
from vieter_lite.tokens import SCOPES as TOKEN_SCOPES

Schema = dict[str, Any]
JSON = "application/json"
TEXT = "text/plain"
BINARY = "application/octet-stream"
PUBLIC = "public"
# the security requirement of a route that needs a key: either way of sending it
KEYED: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
SECURITY_SCHEMES: dict[str, Schema] = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
               "description": "The configured api_key, a named token's secret, or (on the "
                              "build and publish routes) a running build's token."},
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "The same keys as `Authorization: Bearer KEY`."},
}
SCOPE_TEXT: dict[str, str] = {
    **TOKEN_SCOPES,
    "build": "report on a build: the api_key (admin), or that very build's token",
    "any": "any valid key: the api_key or a named token, whatever its scopes",
}
DASHBOARD_TEXT = ("With public_dashboard = true also without any key: then only builds "
                  "whose access:read holds '*' show (another build is a 404), and no "
                  "triggers or delivery destinations.")
_PARAM = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>")


# -- what a table entry says --------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """A query, header or path parameter. A path parameter without an entry here takes
    its schema from the table's `path_params` by name."""

    name: str
    where: str
    schema: Schema
    description: str = ""
    required: bool = False

    def openapi(self) -> Schema:
        out: Schema = {"name": self.name, "in": self.where, "schema": self.schema,
                       "required": self.required or self.where == "path"}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Body:
    """A request body of one media type."""

    media_type: str
    schema: Schema
    description: str = ""
    required: bool = True


@dataclass(frozen=True)
class Reply:
    """A response that is not an error of the API's envelope (2xx, 206, 304, 416, or a
    route's own body). `media_type` None: no body; a tuple: any of them, with the same
    schema. `headers`: names that are always sent."""

    description: str
    schema: Schema | None = None
    media_type: str | tuple[str, ...] | None = JSON
    headers: tuple[str, ...] = ()
    # OpenAPI links: name -> {"operationId", "parameters", "requestBody"}, what a client
    # (and schemathesis' stateful tests) may call next with values from this answer
    links: Mapping[str, Schema] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One route: a summary, what it reads, its answers, and its errors (status -> when),
    which the generator renders in the route's API envelope. 401 and 403 come from the
    route's scope and need no entry."""

    summary: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Body | None = None
    replies: Mapping[int, Reply] = field(default_factory=dict)
    errors: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiDoc:
    """One envelope's table: the `api` values of the routes it describes (each with the
    tag its operations carry), an entry per (method, rule), its component schemas, the
    component its errors use, and path parameters' schemas by name."""

    tags: Mapping[str, str]
    operations: Mapping[tuple[str, str], Operation]
    schemas: Mapping[str, Schema]
    error_schema: str
    path_params: Mapping[str, tuple[Schema, str]] = field(default_factory=dict)


# -- small schema helpers the tables use ----------------------------------------------------

def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: Mapping[str, Schema], required: Iterable[str] | None = None,
        description: str = "") -> Schema:
    """A closed object; every property is required unless `required` says otherwise."""
    out: Schema = {"type": "object", "properties": dict(properties),
                   "required": list(properties if required is None else required),
                   "additionalProperties": False}
    if description:
        out["description"] = description
    return out


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*types, "null"]}


def query(name: str, schema: Schema, description: str = "", required: bool = False) -> Param:
    return Param(name, "query", schema, description, required)


def header(name: str, schema: Schema, description: str = "") -> Param:
    return Param(name, "header", schema, description)


# -- the generator ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteInfo:
    """What the document needs of a bottle route."""

    method: str
    rule: str
    scope: str
    api: str
    dashboard: bool = False   # a caller without a key may use it when public_dashboard


def route_infos(routes: Iterable[Any]) -> list[RouteInfo]:
    """bottle Route objects -> RouteInfo (a route that declares nothing is admin-only v1,
    as the plugins read it)."""
    return [RouteInfo(r.method, r.rule, r.config.get("scope", "admin"),
                      r.config.get("api", "v1"), bool(r.config.get("dashboard", False)))
            for r in routes]


def path_names(rule: str) -> list[str]:
    return _PARAM.findall(rule)


def _shape(rule: str) -> str:
    return _PARAM.sub("{}", rule)


def _template(rule: str, names: Mapping[str, str]) -> str:
    return _PARAM.sub(lambda m: "{" + names[m.group(1)] + "}", rule)


def openapi_paths(rules: Iterable[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """rule -> (its OpenAPI path, {route parameter: name in that path}). bottle's
    '/<repo>/<arch>' is '/{repo}/{arch}'. Rules that differ only in their parameters' names
    ('/<repo>/<arch>/<filename>', '/<repo>/<arch>/<pkg>') share one path, named as the
    first of them (OpenAPI treats such templates as the same path)."""
    first: dict[str, str] = {}
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for rule in rules:
        canonical = first.setdefault(_shape(rule), rule)
        renames = dict(zip(path_names(rule), path_names(canonical), strict=True))
        out[rule] = (_template(rule, renames), renames)
    return out


def missing_entries(routes: Iterable[RouteInfo], docs: Iterable[ApiDoc]) -> list[RouteInfo]:
    """Routes that no table describes (or whose table is another API's)."""
    by_api = {api: doc for doc in docs for api in doc.tags}
    return [r for r in routes if r.api not in by_api
            or (r.method, r.rule) not in by_api[r.api].operations]


def stale_entries(routes: Iterable[RouteInfo], docs: Iterable[ApiDoc]) -> list[tuple[str, str]]:
    """Table entries that describe no route."""
    present = {(r.method, r.rule) for r in routes}
    return [key for doc in docs for key in doc.operations if key not in present]


def _error_reply(doc: ApiDoc, description: str) -> Schema:
    return {"description": description,
            "content": {JSON: {"schema": ref(doc.error_schema)}}}


def _reply(reply: Reply) -> Schema:
    out: Schema = {"description": reply.description}
    types = (reply.media_type,) if isinstance(reply.media_type, str) \
        else reply.media_type or ()
    if types:
        out["content"] = {t: {"schema": reply.schema} if reply.schema is not None else {}
                          for t in types}
    if reply.headers:
        out["headers"] = {name: {"required": True, "schema": {"type": "string"}}
                          for name in reply.headers}
    if reply.links:
        out["links"] = dict(reply.links)
    return out


def _auth_errors(scope: str) -> dict[int, str]:
    if scope == PUBLIC:
        return {}
    if scope == "any":
        return {401: "no key, or one the server does not know"}
    forbidden = "a named token, or another build's token" if scope == "build" \
        else f"a token without the scope '{scope}' (or outside its repos or archs)"
    return {401: "no key, or one the server does not know", 403: forbidden}


def operation_object(route: RouteInfo, op: Operation, doc: ApiDoc,
                     renames: Mapping[str, str]) -> Schema:
    """One OpenAPI operation: the table's entry plus what the route declares."""
    declared = {p.name for p in op.params if p.where == "path"}
    unknown = declared - set(path_names(route.rule))
    if unknown:
        raise ValueError(f"{route.method} {route.rule}: no path parameter {sorted(unknown)}")
    params = []
    for name in path_names(route.rule):
        given = next((p for p in op.params if p.where == "path" and p.name == name), None)
        schema, text = (given.schema, given.description) if given is not None \
            else doc.path_params.get(name, ({"type": "string"}, ""))
        params.append(Param(renames.get(name, name), "path", schema, text, True).openapi())
    params += [p.openapi() for p in op.params if p.where != "path"]
    scope_text = SCOPE_TEXT.get(route.scope, "no key needed")
    out: Schema = {
        "operationId": _operation_id(route),
        "summary": op.summary,
        "description": (op.description + "\n\n" if op.description else "")
        + f"Scope: `{route.scope}` ({scope_text})."
        + (f" {DASHBOARD_TEXT}" if route.dashboard else ""),
        "tags": [doc.tags[route.api]],
        "x-scope": route.scope,
        **({"x-public-dashboard": True} if route.dashboard else {}),
        "security": [] if route.scope == PUBLIC else KEYED,
    }
    if params:
        out["parameters"] = params
    if op.body is not None:
        body_schema: Schema = {"schema": op.body.schema}
        out["requestBody"] = {"required": op.body.required,
                              "content": {op.body.media_type: body_schema}}
        if op.body.description:
            out["requestBody"]["description"] = op.body.description
    responses: dict[str, Schema] = {str(s): _reply(r) for s, r in op.replies.items()}
    for status, when in {**_auth_errors(route.scope), **op.errors}.items():
        responses.setdefault(str(status), _error_reply(doc, when))
    out["responses"] = dict(sorted(responses.items()))
    return out


def _operation_id(route: RouteInfo) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", _PARAM.sub(r"by_\1", route.rule)).strip("_")
    return f"{route.method.lower()}_{words or 'root'}"


def document(routes: Iterable[RouteInfo], docs: Iterable[ApiDoc], base_url: str = "") \
        -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (those with a table entry; `missing_entries`
    names the others)."""
    routes, docs = list(routes), list(docs)
    by_api = {api: doc for doc in docs for api in doc.tags}
    paths_of = openapi_paths(r.rule for r in routes)
    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        doc = by_api.get(route.api)
        op = doc.operations.get((route.method, route.rule)) if doc is not None else None
        if doc is None or op is None:
            continue
        path, renames = paths_of[route.rule]
        paths.setdefault(path, {})[route.method.lower()] = \
            operation_object(route, op, doc, renames)
    schemas: dict[str, Schema] = {}
    for doc in docs:
        for name, schema in doc.schemas.items():
            if schemas.setdefault(name, schema) is not schema:
                raise ValueError(f"two tables define the schema '{name}'")
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "vieter-lite", "version": __version__,
                 "description": "An Arch Linux package repository and build server: the "
                                "pacman repositories, Vieter's /api/v1 and /api/v2."},
        "tags": [{"name": tag} for doc in docs for tag in doc.tags.values()],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
    if base_url:
        out["servers"] = [{"url": base_url}]
    return out
