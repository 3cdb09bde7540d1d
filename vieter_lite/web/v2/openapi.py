"""What each /api/v2 route takes and answers, for the OpenAPI document. A new v2 route gets
its entry in OPERATIONS (tests/test_openapi.py fails until it has one); its shapes follow
web/v2/shapes.py, its errors are CF's envelope (web/v2/errors.py) and a list's query
parameters come from its lists.ListSpec."""

from __future__ import annotations

from vieter_lite import lists, stats
from vieter_lite.tokens import SCOPES
from vieter_lite.web.openapi import (
    BINARY,
    JSON,
    TEXT,
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
from vieter_lite.web.v1.openapi import (
    ARCH,
    FILE_HEADERS,
    MAX_INT,
    PKGNAME,
    REPO,
    TEXT_UTF8,
    file_replies,
)
from vieter_lite.web.v2.repos import PACKAGES, REPOS
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
LABELS: Schema = {"type": "object", "additionalProperties": STRING}
METADATA: Schema = obj({"labels": LABELS, "annotations": LABELS})
TRIGGER: Schema = {"type": "object", "description": "a webhook or email trigger"}
NULL: Schema = {"type": "null"}
SCHEMAS.update({
    "BuildV2": obj({
        "id": ID, "status": {"enum": list(lists.BUILD_STATES)}, "target_id": nullable(ID),
        "repo": STRING, "arch": STRING, "force": {"type": "boolean"}, "note": STRING,
        "tags": array(STRING), "metadata": METADATA, "access:read": array(STRING),
        "access:write": array(STRING), "triggers": array(TRIGGER),
        "owner": obj({"name": nullable(STRING)}), "runner": nullable(STRING),
        "exit_code": nullable(INTEGER),
        "hold": nullable(obj({"reason": STRING, "diff": STRING})),
        "blocked_by": {**array(ID), "description": "the builds of its dependencies a queued "
                                                    "build waits for"},
        "timeout": INTEGER, "review": {"enum": ["never", "changes", "always"]},
        "agent_labels": LABELS, "agent_id": nullable(ID),
        "source": obj({"kind": {"enum": ["git", "url", "pkgbuild", ""]},
                       "url": nullable(STRING), "branch": nullable(STRING),
                       "path": nullable(STRING)}),
        "created_at": TIME, "updated_at": TIME,
        "started_at": nullable(TIME), "ended_at": nullable(TIME), "setup_log": STRING,
        "tasks": array(obj({"name": STRING, "status": STRING, "log": STRING})),
        "packages": array(obj({"name": STRING, "version": STRING, "arch": STRING,
                               "filename": STRING})),
        "links": obj({"self": LINK, "log": LINK, "target": nullable(LINK),
                       "manifest": LINK})}),
    "TargetV2": obj({
        "id": ID, "kind": {"enum": ["git", "url"]}, "url": STRING, "branch": STRING,
        "path": STRING, "repo": STRING, "schedule": STRING, "arch": array(STRING),
        "metadata": METADATA, "triggers": array(TRIGGER),
        "review": {"enum": ["never", "changes", "always"]}, "agent_labels": LABELS,
        "next_run_at": {"type": "object", "additionalProperties": nullable(TIME)},
        "schedule_effective": obj({"schedule": STRING, "global": {"type": "boolean"}}),
        "last_build": nullable(obj({"id": ID, "status": STRING})),
        "rebuild_on_dependency": {"type": "boolean"},
        "srcinfo": {"type": "object", "description": "per arch: the build that last read "
                                                     "its PKGBUILD",
                    "additionalProperties": obj({"build_id": ID, "pkgbase": STRING,
                                                 "read_at": TIME})},
        "dependencies": array(obj({"arch": STRING, "target_id": ID,
                                   "kind": {"enum": ["needs", "cycle", "unread"]},
                                   "via": STRING})),
        "links": obj({"self": LINK, "builds": LINK})}),
    "RepoV2": obj({
        "name": STRING,
        "archs": array(obj({"arch": STRING, "packages": INTEGER,
                            "db_last_modified": nullable(TIME),
                            "links": obj({"packages": LINK, "db": LINK})})),
        "sign_key_fingerprint": nullable({"type": "string", "pattern": "^[0-9A-F]{40}$"}),
        "pacman_conf": STRING,
        "links": obj({"setup": LINK, "key": LINK}, required=("setup",))},
        description="`sign_key_fingerprint`: the key that signs the repo's packages and "
                    "dbs (null: sign = false); `links.key` is there when it is set."),
    "PackageV2": obj({
        "name": STRING, "version": STRING, "arch": STRING, "filename": STRING,
        "size": INTEGER, "sha256": nullable(STRING), "published_at": TIME,
        "owner": nullable(obj({"target_id": nullable(ID), "user": nullable(STRING)})),
        "signed": {"type": "boolean"},
        "kept_versions": array(STRING),
        "hold": nullable(ref("PackageHold")),
        "links": obj({"download": LINK})},
        description="kept_versions: the replaced versions kept on disk (keep_versions), "
                    "the most recently replaced first; hold: set by a rollback, no newer "
                    "version is published until it is released."),
    "PackageHold": obj({"version": STRING, "since": TIME, "by": STRING}),
    "PackageVersion": obj({
        "version": STRING, "filename": STRING, "size": INTEGER, "sha256": nullable(STRING),
        "published_at": TIME, "current": {"type": "boolean"}, "kept_at": nullable(TIME),
        "signed": {"type": "boolean"}, "links": obj({"download": LINK})}),
    "DeliveryAttempt": obj({
        "id": ID, "build_id": ID, "created_at": TIME,
        "action": {"enum": ["webhook", "email"]}, "destination": STRING,
        "condition": {"enum": ["always", "success", "failure"]},
        "response_status": nullable(INTEGER), "response": STRING, "error": nullable(STRING),
        "delivery": obj({"id": ID, "uuid": STRING,
                         "status": {"enum": ["pending", "delivered", "failed"]},
                         "attempts": INTEGER, "next_at": nullable(TIME)}),
        "links": obj({"build": LINK})},
        description="One attempt to deliver a build's notification (created_at: when it was "
                    "made; response_status: HTTP status or SMTP reply code, null when no "
                    "answer came)."),
    "Log": obj({
        "id": STRING, "build_id": ID, "logs": STRING, "lines": INTEGER,
        "status": {"enum": ["NEW", "DONE"]}, "created_at": TIME, "updated_at": nullable(TIME),
        "offset": INTEGER, "next_offset": INTEGER}),
})
SCHEMAS["PackageDetail"] = {
    **SCHEMAS["PackageV2"],
    "properties": {**SCHEMAS["PackageV2"]["properties"],
                   "desc": {"type": "object", "additionalProperties": array(STRING)},
                   "versions": array(ref("PackageVersion"))},
    "required": [*SCHEMAS["PackageV2"]["required"], "desc", "versions"]}
TARGET_BODY = {"kind": {"enum": ["git", "url"]}, "url": STRING, "branch": STRING,
               "path": STRING, "repo": REPO, "schedule": STRING, "arch": array(ARCH),
               "metadata": {"type": "object", "properties": {"labels": LABELS}},
               "triggers": array(TRIGGER), "review": {"enum": ["never", "changes", "always"]},
               "agent_labels": {**LABELS, "description": "labels an agent must have to "
                                                         "build it (key: value)"},
               "rebuild_on_dependency": {"type": "boolean"}}
# OpenAPI links: what to call next with this answer's ids (a target -> its builds; a
# build -> poll it, claim it as an agent, start or cancel it, list its target's builds)
BUILDS_OF_TARGET = {"operationId": "get_api_v2_builds",
                    "parameters": {"query.target_ids": "$response.body#/id"}}
TARGET_LINKS: dict[str, Schema] = {
    "GetTarget": {"operationId": "get_api_v2_targets_by_target_id",
                  "parameters": {"path.target_id": "$response.body#/id"}},
    "SubmitBuild": {"operationId": "post_api_v2_builds",
                    "requestBody": {"target_id": "$response.body#/id"}},
    "ListBuilds": BUILDS_OF_TARGET,
}
BUILD_LINKS: dict[str, Schema] = {
    "GetBuild": {"operationId": "get_api_v2_builds_by_build_id",
                 "parameters": {"path.build_id": "$response.body#/id"}},
    "ClaimBuild": {"operationId": "get_api_v1_jobs_poll",
                   "parameters": {"query.build": "$response.body#/id",
                                  "query.arch": "$response.body#/arch", "query.max": "1"}},
    "StartBuild": {"operationId": "post_api_v2_builds_by_build_id_start",
                   "parameters": {"path.build_id": "$response.body#/id"}},
    "CancelBuild": {"operationId": "post_api_v2_builds_by_build_id_cancel",
                    "parameters": {"path.build_id": "$response.body#/id"}},
    "ListBuilds": {**BUILDS_OF_TARGET, "parameters": {
        "query.target_ids": "$response.body#/target_id"}},
}
OFFSET = query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_INT},
               "from this byte of the log")
SCHEMAS["Agent"] = obj({
    "id": ID, "name": STRING, "archs": array(STRING), "labels": LABELS, "version": STRING,
    "slots": INTEGER, "poll_period": INTEGER, "status": {"enum": ["online", "offline"]},
    "token_id": nullable(ID), "registered_at": TIME, "last_seen_at": TIME,
    "builds": array(obj({"id": ID, "links": obj({"self": LINK})})),
    "links": obj({"self": LINK})},
    description="A registered build agent; offline when it was not seen for 3 poll periods; "
                "builds: the running builds it holds.")
AGENT_NAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"}
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
    # -- the server and the caller (web/v2/about.py) -------------------------------------
    ("GET", "/api/v2/info"): Operation(
        "What the server is",
        "Its version, whether callers without a key may read the dashboard's routes "
        "(public_dashboard), the fingerprint of its signing key, and its public_url.",
        replies={200: Reply("the server", obj({
            "version": STRING, "public_dashboard": {"type": "boolean"},
            "signing": nullable(obj({"fingerprint": STRING})),
            "public_url": nullable(STRING)}))}),
    ("GET", "/api/v2/whoami"): Operation(
        "Who the key is",
        "Its name, every scope it holds (with the ones they imply; all for an admin), and "
        "the repos and archs it is limited to (empty: all).",
        replies={200: Reply("the caller", obj({
            "name": STRING, "scopes": array({"enum": list(SCOPES)}),
            "admin": {"type": "boolean"}, "repos": array(STRING),
            "archs": array(STRING)}))}),
    # -- build statistics (web/v2/stats.py) -----------------------------------------------
    ("GET", "/api/v2/stats/builds"): Operation(
        "Build statistics per day or hour",
        "Over the builds the caller may read, by created_at: builds, success, failed "
        "(failed and timeout), cancelled, success_rate (success / (success + failed)), "
        "the median and longest duration of the builds that ran to an end and the median "
        "and longest wait (started_at - created_at) of those that started, in seconds. "
        "Oldest bucket first, empty ones too; at most 1000 buckets.",
        params=(query("target_id", ID, "only this target's builds"),
                query("bucket", {"enum": list(stats.BUCKETS)}, "default day"),
                query("since", TIME, "rounded down to a bucket; default: 30 days before "
                                     "until"),
                query("until", TIME, "exclusive; default: the end of the current bucket")),
        replies={200: Reply("the buckets", obj({
            "bucket": {"enum": list(stats.BUCKETS)}, "target_id": nullable(ID),
            "since": TIME, "until": TIME,
            "buckets": array(obj({
                "start": TIME, "builds": INTEGER, "success": INTEGER, "failed": INTEGER,
                "cancelled": INTEGER,
                "success_rate": nullable({"type": "number", "minimum": 0, "maximum": 1}),
                "duration_p50": nullable(INTEGER), "duration_max": nullable(INTEGER),
                "wait_p50": nullable(INTEGER), "wait_max": nullable(INTEGER)}))}))},
        errors={400: "an unknown or repeated parameter (CF-BadQueryParameter)",
                422: "a bad bucket, time or target_id, since not before until, or more "
                     "than 1000 buckets"}),
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
    # -- agents (web/v2/agents.py) --------------------------------------------------------
    ("POST", "/api/v2/agents"): Operation(
        "Register a build agent",
        "With the agent's own token (scope agent): its name, archs, labels (key: value; "
        "emulated: 'true' under qemu-user emulation), version, slots and poll period in "
        "seconds. Registering a name again updates it.",
        body=Body(JSON, obj({"name": AGENT_NAME,
                             "archs": {**array(ARCH), "minItems": 1, "maxItems": 100},
                             "labels": LABELS,
                             "version": {"type": "string", "pattern": "^[\\x21-\\x7e]{0,64}$"},
                             "slots": {"type": "integer", "minimum": 1, "maximum": 1000},
                             "poll_period": {"type": "integer", "minimum": 1,
                                             "maximum": 86400}},
                            required=("name", "archs"))),
        replies={201: Reply("registered", ref("Agent"), headers=("Location",)),
                 200: Reply("registered again: updated", ref("Agent"))},
        errors={**BODY_ERRORS, 403: "an arch the token may not use",
                409: "another token registered the name"}),
    ("GET", "/api/v2/agents"): Operation(
        "List build agents", params=list_params(lists.AGENTS),
        replies={200: Reply("a page of agents", cf_list(ref("Agent")))}, errors=LIST_ERRORS),
    ("GET", "/api/v2/agents/<agent_id>"): Operation(
        "A build agent", replies={200: Reply("the agent", ref("Agent"))},
        errors={400: "an id that is not a number", 404: "no such agent"}),
    ("DELETE", "/api/v2/agents/<agent_id>"): Operation(
        "Forget a build agent", "It registers again on its next poll; its builds go on.",
        replies={204: Reply("forgotten", media_type=None)},
        errors={400: "an id that is not a number", 404: "no such agent"}),
    # -- builds (web/v2/builds.py) --------------------------------------------------------
    ("GET", "/api/v2/builds"): Operation(
        "List builds", params=list_params(lists.BUILDS),
        replies={200: Reply("a page of builds", cf_list(ref("BuildV2")))}, errors=LIST_ERRORS),
    ("GET", "/api/v2/builds/<build_id>"): Operation(
        "A build", "With its tasks, log links, the packages it published and links.",
        replies={200: Reply("the build", ref("BuildV2"))},
        errors={400: "an id that is not a number", 404: "no such build"}),
    ("GET", "/api/v2/builds/<build_id>/deliveries"): Operation(
        "The attempts to deliver a build's notifications",
        "Its triggers' webhooks and emails, each attempt with the answer or the error.",
        params=list_params(lists.DELIVERIES),
        replies={200: Reply("a page of attempts", cf_list(ref("DeliveryAttempt")))},
        errors={**LIST_ERRORS, 403: "not on the access:read list", 404: "no such build"}),
    ("POST", "/api/v2/builds"): Operation(
        "Submit a build",
        "builds.sr.ht's job: a YAML manifest (repo, arch, source git/url/pkgbuild, image, "
        "force, timeout, environment, review), or a target_id to build a target once; with "
        "a note, tags, access lists, triggers and execute (false: pending until started).",
        body=Body(JSON, obj({
            "manifest": STRING, "target_id": ID, "arch": ARCH, "force": {"type": "boolean"},
            "note": {"type": "string", "maxLength": 4096},
            "tags": {**array({"type": "string", "pattern": "^[a-z0-9_.:-]{1,64}$"}),
                     "maxItems": 10},
            "access:read": array(STRING), "access:write": array(STRING),
            "triggers": array(TRIGGER), "execute": {"type": "boolean"},
            "metadata": {"type": "object", "properties": {"labels": LABELS}}}, required=())),
        replies={201: Reply("the build", ref("BuildV2"), headers=("Location",),
                            links=BUILD_LINKS)},
        errors={**BODY_ERRORS, 413: "over 1 MiB", 403: "a repo or arch the token may not use",
                404: "no such target"}),
    ("GET", "/api/v2/builds/<build_id>/manifest"): Operation(
        "A build's manifest", "As submitted, or made from the build's target.",
        replies={200: Reply("the manifest (YAML)", {"type": "string"},
                            media_type="text/plain; charset=utf-8")},
        errors={400: "an id that is not a number", 403: "not on the access:read list",
                404: "no such build"}),
    ("POST", "/api/v2/builds/<build_id>/start"): Operation(
        "Start a pending build", "Also approves a build held for review: it goes on with "
        "the source it fetched.",
        replies={200: Reply("the build", ref("BuildV2"))},
        errors={400: "an id that is not a number", 403: "not on the access:write list",
                404: "no such build", 409: "the build is not pending"}),
    ("POST", "/api/v2/builds/<build_id>/cancel"): Operation(
        "Cancel a build", "Pending, queued or running: a running build's container is "
        "killed and nothing it built is published.",
        replies={200: Reply("the build", ref("BuildV2"))},
        errors={400: "an id that is not a number", 403: "not on the access:write list",
                404: "no such build", 409: "the build has ended"}),
    ("DELETE", "/api/v2/builds/<build_id>"): Operation(
        "Delete a finished build", "With its log.",
        replies={204: Reply("deleted", media_type=None)},
        errors={400: "an id that is not a number", 403: "not on the access:write list",
                404: "no such build", 409: "the build has not ended"}),
    # -- the agent's side of a build (web/v2/jobs.py) -------------------------------------
    ("GET", "/api/v2/builds/<build_id>/job"): Operation(
        "A claimed build's details for its agent",
        "With the build's token (or an agent's): source 'server' means GET the source "
        "bundle, 'fetch' means fetch it and PUT it for review.",
        replies={200: Reply("the job", obj({
            "build_id": ID, "kind": STRING, "url": STRING, "branch": STRING, "path": STRING,
            "repo": STRING, "arch": STRING, "image": STRING, "timeout": INTEGER,
            "force": {"type": "boolean"},
            "environment": {"type": "object", "additionalProperties": STRING},
            "source": {"enum": ["fetch", "server"]}}))},
        errors={400: "an id that is not a number", 403: "another build's token",
                404: "no such build", 409: "the build is not running"}),
    ("GET", "/api/v2/builds/<build_id>/source"): Operation(
        "A build's source bundle", "An uncompressed tar of the PKGBUILD's directory.",
        replies={200: Reply("the bundle", {"type": "string", "format": "binary"},
                            media_type="application/x-tar")},
        errors={400: "an id that is not a number", 403: "another build's token",
                404: "no such build or no source stored"}),
    ("PUT", "/api/v2/builds/<build_id>/source"): Operation(
        "The source a running build fetched",
        "Compared with the last successful build's under the build's review rule: "
        "'build' goes on, 'hold' has made the build pending with the diff (its token is "
        "dead).",
        body=Body(BINARY, {"type": "string", "format": "binary"},
                  "an uncompressed tar (any Content-Type)"),
        replies={200: Reply("what to do", obj({"action": {"enum": ["build", "hold"]},
                                               "diff": STRING}, required=("action",)))},
        errors={400: "not a valid bundle", 403: "another build's token",
                404: "no such build", 409: "the build is not running",
                413: "over 1 MiB", 422: "a bundle that breaks a rule"}),
    ("PUT", "/api/v2/builds/<build_id>/srcinfo"): Operation(
        "What makepkg read of a running build's PKGBUILD",
        "The output of `makepkg --printsrcinfo`: kept as its target's for the build's arch. "
        "'build' goes on; 'wait' has sent the build back to the queue until the builds of "
        "its dependencies in blocked_by have ended (its token is dead).",
        body=Body(TEXT, STRING, "a .SRCINFO (any Content-Type)"),
        replies={200: Reply("what to do", obj({"action": {"enum": ["build", "wait"]},
                                               "blocked_by": array(ID)},
                                              required=("action",)))},
        errors={400: "an id that is not a number", 403: "another build's token",
                404: "no such build", 409: "the build is not running",
                413: "over max_api_body", 422: "not a .SRCINFO"}),
    # -- build logs (web/v2/logs.py) ------------------------------------------------------
    ("GET", "/api/v2/builds/<build_id>/log"): Operation(
        "A build's log", "NEW while the build is waiting or runs, DONE once delivered.",
        params=(OFFSET,), replies={200: Reply("the log", ref("Log"))},
        errors={400: "a bad id or offset", 404: "no such build"}),
    ("GET", "/api/v2/builds/<build_id>/log/content"): Operation(
        "A build's log text",
        "With `Accept: text/event-stream` or `?follow=true`: server-sent events, each `id:` "
        "the byte offset after its data; `Last-Event-ID` resumes; `event: done` at the end "
        "(a follower beyond max_log_followers gets a 503).",
        params=(*FILE_HEADERS, OFFSET), replies=file_replies(TEXT_UTF8),
        errors={400: "a bad id or offset", 404: "no such build"}),
    ("GET", "/api/v2/builds/<build_id>/tasks/<name>/log"): Operation(
        "One task's part of a build's log", params=FILE_HEADERS,
        replies=file_replies(TEXT_UTF8),
        errors={400: "a bad id or task name", 404: "no such build or task"}),
    ("PATCH", "/api/v2/builds/<build_id>/log"): Operation(
        "Change a build's log", "append, replace (logs), keep the last lines, or close it "
        "(status DONE); also with the build's own token.",
        body=Body(JSON, obj({"append": STRING, "logs": STRING,
                             "lines": {"type": "integer", "minimum": 0},
                             "status": {"enum": ["NEW", "DONE"]}}, required=())),
        replies={200: Reply("changed", obj({"updated_at": TIME}))},
        errors={**BODY_ERRORS, 404: "no such build", 409: "the log is DONE",
                507: "the data disk is full: nothing was appended"}),
    ("DELETE", "/api/v2/builds/<build_id>/log"): Operation(
        "Empty a build's log", "The build stays; its log is empty and DONE.",
        replies={200: Reply("deleted", obj({"deleted": {"type": "boolean"},
                                            "deleted_at": TIME}))},
        errors={400: "an id that is not a number", 404: "no such build",
                409: "the build has not ended"}),
    # -- targets (web/v2/targets.py) ------------------------------------------------------
    ("GET", "/api/v2/targets"): Operation(
        "List targets", params=list_params(lists.TARGETS),
        replies={200: Reply("a page of targets", cf_list(ref("TargetV2")))},
        errors=LIST_ERRORS),
    ("POST", "/api/v2/targets"): Operation(
        "Add a target", body=Body(JSON, obj(TARGET_BODY, required=("kind", "url", "repo"))),
        replies={201: Reply("the target", ref("TargetV2"), headers=("Location",),
                            links=TARGET_LINKS)},
        errors=BODY_ERRORS),
    ("GET", "/api/v2/targets/<target_id>"): Operation(
        "A target", replies={200: Reply("the target", ref("TargetV2"))},
        errors={400: "an id that is not a number", 404: "no such target"}),
    ("PATCH", "/api/v2/targets/<target_id>"): Operation(
        "Change a target", body=Body(JSON, obj(TARGET_BODY, required=())),
        replies={200: Reply("the target", ref("TargetV2"))},
        errors={**BODY_ERRORS, 404: "no such target"}),
    ("DELETE", "/api/v2/targets/<target_id>"): Operation(
        "Remove a target", "Its queued builds go too; finished ones stay.",
        replies={204: Reply("removed", media_type=None)},
        errors={400: "an id that is not a number", 404: "no such target"}),
    # -- repos (web/v2/repos.py) ----------------------------------------------------------
    ("GET", "/api/v2/repos"): Operation(
        "List repos", params=list_params(REPOS),
        replies={200: Reply("a page of repos", cf_list(ref("RepoV2")))}, errors=LIST_ERRORS),
    ("GET", "/api/v2/repos/<repo>/<arch>/packages"): Operation(
        "List an arch-repo's packages", params=list_params(PACKAGES),
        replies={200: Reply("a page of packages", cf_list(ref("PackageV2")))},
        errors={**LIST_ERRORS, 404: "no such repo or arch-repo"}),
    ("GET", "/api/v2/repos/<repo>/<arch>/packages/<name>"): Operation(
        "A package", "Every desc field, and the versions kept.",
        replies={200: Reply("the package", ref("PackageDetail"))},
        errors={400: "an unsafe name", 404: "no such package"}),
    ("POST", "/api/v2/repos/<repo>/<arch>/packages/<name>/rollback"): Operation(
        "Roll a package back to a kept version",
        "Publishes the kept version again with force (the current one becomes a kept one); "
        "the name's owner stays. hold_version: no newer version of the name is published "
        "in the arch-repo (every arch-repo for an 'any' package) until the hold is "
        "released; false (the default) releases a hold. A name owned by a target or by "
        "another user's builds needs an admin.",
        body=Body(JSON, obj({"version": {"type": "string", "minLength": 1},
                             "hold_version": {"type": "boolean"}}, required=("version",))),
        replies={200: Reply("the package", ref("PackageDetail"))},
        errors={**BODY_ERRORS, 403: "a build token, a repo the token may not publish to, "
                                    "or a name owned by a target or another user",
                404: "no such package, or the version is not kept"}),
    ("DELETE", "/api/v2/repos/<repo>/<arch>/packages/<name>/hold"): Operation(
        "Release a rollback's hold", "Newer versions of the name are published again.",
        replies={204: Reply("released", media_type=None)},
        errors={400: "an unsafe name",
                403: "a build token, a repo the token may not publish to, or a name "
                     "owned by a target or another user",
                404: "no such package, or it is not held"}),
}

PATH_PARAMS: dict[str, tuple[Schema, str]] = {
    "token_id": (ID, "a token's id"),
    "agent_id": (ID, "an agent's id"),
    "build_id": (ID, "a build's id"),
    "target_id": (ID, "a target's id"),
    "repo": (REPO, "a repository"),
    "arch": (ARCH, "an architecture"),
    "name": (PKGNAME, "a package or task name"),
}

DOC = ApiDoc(tags={"v2": "/api/v2"}, operations=OPERATIONS, schemas=SCHEMAS,
             error_schema="CFError", path_params=PATH_PARAMS)
