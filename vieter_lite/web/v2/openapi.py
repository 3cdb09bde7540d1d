"""What each /api/v2 route takes and answers, for the OpenAPI document. A new v2 route gets
its entry in OPERATIONS (tests/test_openapi.py fails until it has one); its shapes follow
web/v2/shapes.py, its errors are CF's envelope (web/v2/errors.py) and a list's query
parameters come from its lists.ListSpec."""

from __future__ import annotations

from vieter_lite import lists
from vieter_lite.tokens import SCOPES
from vieter_lite.web.openapi import (
    JSON,
    ApiDoc,
    Body,
    Operation,
    Param,
    Reply,
    Schema,
    array,
    nullable,
    obj,
    query,
    ref,
)
from vieter_lite.web.v1.openapi import ARCH, MAX_INT, REPO
from vieter_lite.web.v2.tokens import TOKENS

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
TIME: Schema = {"type": "string",
                "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                "description": "RFC 3339, UTC, whole seconds"}
ID: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
LINK: Schema = obj({"href": {"type": "string", "format": "uri"}})

SCHEMAS: dict[str, Schema] = {
    "CFError": obj({"errors": {**array(obj({"code": INTEGER, "title": STRING,
                                            "detail": STRING})), "minItems": 1}},
                   description="Every error of /api/v2 (Cloud Foundry's envelope)."),
    "Link": LINK,
    "Pagination": obj({"total_results": {"type": "integer", "minimum": 0},
                       "total_pages": {"type": "integer", "minimum": 1},
                       "first": ref("Link"), "last": ref("Link"), "next": nullable(ref("Link")),
                       "previous": nullable(ref("Link"))}),
    "Token": obj({"id": INTEGER, "name": STRING, "user": STRING,
                  "scopes": array({"enum": list(SCOPES)}), "repos": array(STRING),
                  "archs": array(STRING), "created_at": TIME, "expires_at": nullable(TIME),
                  "last_used_at": nullable(TIME)}),
}
SCHEMAS["NewToken"] = {**SCHEMAS["Token"],
                       "properties": {**SCHEMAS["Token"]["properties"], "secret": STRING},
                       "required": [*SCHEMAS["Token"]["required"], "secret"],
                       "description": "The token and its secret, which is shown only here."}


def cf_list(resource: Schema) -> Schema:
    return obj({"pagination": ref("Pagination"), "resources": array(resource)})


def list_params(spec: lists.ListSpec) -> tuple[Param, ...]:
    """The query parameters of a CF list, from what it accepts."""
    order = "|".join(spec.order_fields)
    out = [query("page", {"type": "integer", "minimum": 1, "maximum": MAX_INT}),
           query("per_page", {"type": "integer", "minimum": 1, "maximum": lists.MAX_PER_PAGE},
                 f"default {lists.DEFAULT_PER_PAGE}"),
           query("order_by", {"type": "string", "pattern": f"^[+-]?({order})$"},
                 "a field, '-' before it for descending; default id")]
    times = TIME["pattern"][1:-1]
    for name in spec.timestamp_fields:
        out.append(query(f"{name}s", {"type": "string", "pattern": f"^{times}(,{times})*$"},
                         "those whole seconds"))
        out += [query(f"{name}s[{op}]", TIME) for op in lists.TIME_OPS]
    if spec.labels:
        out.append(query("label_selector", STRING, "k=v, k!=v, k in (a,b), k notin (a,b), "
                                                   "k, !k; comma-separated, ANDed"))
    for rule in spec.filters:
        if rule.integer:
            item = "[0-9]{1,18}"
        elif rule.choices:
            item = "(" + "|".join(rule.choices) + ")"
        else:
            item = "[^,]+"
        out.append(query(rule.name, {"type": "string", "pattern": f"^{item}(,{item})*$"},
                         "a comma list"))
    return tuple(out)


LIST_ERRORS = {400: "an unknown parameter, or a bad value (CF-BadQueryParameter)"}
BODY_ERRORS = {400: "the body is not a JSON object", 413: "over max_api_body",
               422: "an invalid value (the detail names the field)"}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/api/v2/openapi.json"): Operation(
        "This document", replies={200: Reply("OpenAPI 3.1", {"type": "object"})}),
    # -- tokens (web/v2/tokens.py) --------------------------------------------------------
    ("POST", "/api/v2/tokens"): Operation(
        "Add a named token",
        body=Body(JSON, obj({"name": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"},
                             "user": {"type": "string", "pattern": r"^[A-Za-z0-9._@-]{1,64}$",
                                      "description": "default: the name"},
                             "scopes": {**array({"enum": list(SCOPES)}), "minItems": 1},
                             "repos": array(REPO), "archs": array(ARCH),
                             "expires_at": nullable(TIME)},
                            required=("name", "scopes"))),
        replies={201: Reply("the token, with its secret", ref("NewToken"),
                            headers=("Location",))},
        errors={**BODY_ERRORS, 409: "an active token has the name"}),
    ("GET", "/api/v2/tokens"): Operation(
        "List tokens", params=list_params(TOKENS),
        replies={200: Reply("a page of tokens", cf_list(ref("Token")))}, errors=LIST_ERRORS),
    ("GET", "/api/v2/tokens/<token_id>"): Operation(
        "A token", replies={200: Reply("the token", ref("Token"))},
        errors={400: "an id that is not a number", 404: "no such token"}),
    ("DELETE", "/api/v2/tokens/<token_id>"): Operation(
        "Revoke a token", "The next request with its secret is refused.",
        replies={204: Reply("revoked", media_type=None)},
        errors={400: "an id that is not a number", 404: "no such token"}),
}

PATH_PARAMS: dict[str, tuple[Schema, str]] = {
    "token_id": (ID, "a token's id"),
    "build_id": (ID, "a build's id"),
    "target_id": (ID, "a target's id"),
    "repo": (REPO, "a repository"),
    "arch": (ARCH, "an architecture"),
}

DOC = ApiDoc(tags={"v2": "/api/v2"}, operations=OPERATIONS, schemas=SCHEMAS,
             error_schema="CFError", path_params=PATH_PARAMS)
