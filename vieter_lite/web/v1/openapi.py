"""What each route in Vieter's envelope takes and answers, for the OpenAPI document: /api/v1
(web/v1/routes.py), the agent protocol (web/agent.py) and the repository routes
(web/repo.py). A new route there gets its entry here (tests/test_openapi.py fails until
it has one); the shapes follow web/v1/shapes.py."""

from __future__ import annotations

from vieter_lite.models import BUILD_STATES, TASK_NAMES, TASK_STATES
from vieter_lite.web.openapi import (
    BINARY,
    TEXT,
    ApiDoc,
    Body,
    Operation,
    Param,
    Reply,
    Schema,
    array,
    header,
    nullable,
    obj,
    query,
    ref,
)

TEXT_UTF8 = "text/plain; charset=utf-8"
MAX_INT = 10**18 - 1      # web/http.py reads at most 18 digits
MAX_TIME = 253402300799   # web/http.py: the last second of year 9999
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
FINGERPRINT: Schema = {"type": "string", "pattern": "^[0-9A-F]{40}$"}
UNIX_TIME: Schema = {"type": "integer", "description": "Unix seconds"}
ID: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
COUNT: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
POSITIVE: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_INT}
UNIX_SECONDS: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_TIME,
                        "description": "Unix seconds, at most the end of year 9999"}
ANY_INT: Schema = {"type": "integer", "minimum": -MAX_INT, "maximum": MAX_INT}
# names.py's rules ('api' is reserved for the API)
REPO: Schema = {"type": "string",
                "pattern": r"^(?![Aa][Pp][Ii]$)[A-Za-z0-9_][A-Za-z0-9._+@-]{0,127}$"}
ARCH: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_]{1,32}$"}
ARCHS: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9_]{1,32}(,[A-Za-z0-9_]{1,32})*$",
                 "description": "a comma list of archs ('any' is not one)"}
PKGNAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9@_+][A-Za-z0-9@._+-]{0,254}$"}
FILENAME: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9@_+][A-Za-z0-9@._+:~-]{0,254}$"}
EXIT_CODES: Schema = {"type": "string", "pattern": r"^!?-?[0-9]{1,18}(,!?-?[0-9]{1,18})*$"}
STATUSES: Schema = {"type": "string", "pattern": "^(" + "|".join(BUILD_STATES) + ")(,("
                    + "|".join(BUILD_STATES) + "))*$"}

SCHEMAS: dict[str, Schema] = {
    "VieterError": obj({"message": STRING, "data": {"const": ""}},
                       description="Every error of /api/v1 and the repository routes."),
    "Message": obj({"message": STRING, "data": {"const": ""}}),
    "TargetArch": obj({"id": INTEGER, "target_id": INTEGER, "value": STRING}),
    "Target": obj({"id": INTEGER, "kind": {"enum": ["git", "url"]}, "url": STRING,
                   "branch": STRING, "repo": STRING, "schedule": STRING, "path": STRING,
                   "arch": array(ref("TargetArch"))}),
    "Schedule": obj({"schedule": STRING, "global": BOOLEAN,
                     "archs": array(obj({"arch": STRING, "next_run": nullable(UNIX_TIME)}))},
                    description="`global`: the target has no schedule and runs on "
                                "global_schedule."),
    "BuildLog": obj({"id": INTEGER, "target_id": INTEGER, "start_time": nullable(UNIX_TIME),
                     "end_time": nullable(UNIX_TIME), "arch": STRING,
                     "exit_code": nullable(INTEGER)},
                    description="A build, as Vieter's build logs show it."),
    "Task": obj({"name": {"enum": list(TASK_NAMES)}, "status": {"enum": list(TASK_STATES)}}),
    "Build": obj({"id": INTEGER, "target_id": INTEGER, "arch": STRING, "repo": STRING,
                  "status": {"enum": list(BUILD_STATES)}, "force": BOOLEAN,
                  "created_at": UNIX_TIME, "started_at": nullable(UNIX_TIME),
                  "ended_at": nullable(UNIX_TIME), "exit_code": nullable(INTEGER),
                  "runner": STRING, "lease_expires": nullable(UNIX_TIME),
                  "expiries": INTEGER, "tasks": array(ref("Task"))}),
    "Job": obj({"target_id": INTEGER, "kind": {"enum": ["git", "url"]}, "url": STRING,
                "branch": STRING, "path": STRING, "repo": STRING, "base_image": STRING,
                "force": BOOLEAN, "timeout": INTEGER, "build_id": INTEGER, "arch": STRING,
                "token": STRING},
               description="A claimed build, with the build token it reports through."),
    "Repo": obj({"name": STRING, "archs": array(obj({"arch": STRING, "packages": INTEGER}))}),
    "Package": obj({"name": STRING, "version": STRING, "arch": STRING, "pkg_arch": STRING,
                    "filename": STRING, "size": INTEGER, "published_at": UNIX_TIME,
                    "owner": {"oneOf": [obj({"target_id": nullable(INTEGER)}),
                                        {"type": "null"}]}},
                   description="`owner`: {target_id: N}, {target_id: null} (the admin), or "
                               "null (nobody yet)."),
    "Published": obj({"name": STRING, "version": STRING, "archs": array(STRING)}),
}


def envelope(data: Schema) -> Schema:
    return obj({"message": STRING, "data": data})


def ok(data: Schema, description: str = "OK") -> dict[int, Reply]:
    return {200: Reply(description, envelope(data))}


def done(description: str) -> dict[int, Reply]:
    return {200: Reply(description, ref("Message"))}


METRICS = Operation(
    "Prometheus metrics",
    "Requests by route template and status, builds by status, queue depth per arch, "
    "packages per arch-repo.",
    replies={200: Reply("the text exposition format", STRING, TEXT)},
    errors={404: "collect_metrics is false"})
LIMIT = query("limit", COUNT, "at most this many (0: all; default 25)")
OFFSET = query("offset", COUNT, "skip this many")
BAD_ID = {400: "an id that is not a number"}
FILE_HEADERS = (header("Range", STRING, "one byte range"),
                header("If-Modified-Since", STRING, "an HTTP date"))
FILE: Schema = {"type": "string", "format": "binary"}


def file_replies(media_type: str | tuple[str, ...]) -> dict[int, Reply]:
    """A file's answers (web/files.py): whole, a range, not modified, no such range."""
    return {200: Reply("the file", FILE, media_type, ("Last-Modified",)),
            206: Reply("the range asked for", FILE, media_type,
                       ("Last-Modified", "Content-Range")),
            304: Reply("not modified since If-Modified-Since", media_type=None),
            416: Reply("the range lies past the end", media_type=None,
                       headers=("Content-Range",))}


TARGET_FIELDS = (query("branch", STRING), query("path", STRING, "a sub directory"),
                 query("schedule", STRING, "cron, Vieter's dialect (empty: global_schedule)"))
PUBLISH = Operation(
    "Publish a package",
    "An `any` package goes into default_arch and every arch-repo of the repo.",
    params=(query("force", BOOLEAN, "allow a downgrade"),
            query("sig", {"type": "string", "maxLength": 21848,
                          "pattern": "^[A-Za-z0-9+/_=-]*$"},
                  "the package's own detached binary signature (the .sig file), base64; "
                  "kept as it is, served at <file>.sig")),
    body=Body(BINARY, {"type": "string", "format": "binary"},
              "a .pkg.tar.zst, .xz, .gz, .bz2 or plain .pkg.tar"),
    replies=ok(ref("Published"), "published"),
    errors={400: "not a readable package, an unsafe name, or a sig that is not a binary "
                 "OpenPGP signature",
            409: "an older version than the one published (without force)",
            411: "no Content-Length", 413: "over max_upload_size",
            507: "the data disk is full, or the upload would leave less than min_free_space "
                 "(the message says whether the package was published all the same)"})

NO_LISTING = Operation(
    "No listing", "A repo or arch-repo path is no file (its packages are in its db).",
    errors={404: "always"})

BADGE_TYPE = "image/svg+xml; charset=utf-8"

OPERATIONS: dict[tuple[str, str], Operation] = {
    # -- repository routes (web/repo.py, web/app.py) --------------------------------------
    ("GET", "/health"): Operation(
        "Health check", "With sign = true, `data` names the signing key's fingerprint.",
        replies={200: Reply("always", obj({"message": {"const": "Healthy."},
                                           "data": {"oneOf": [
                                               {"const": ""},
                                               obj({"fingerprint": FINGERPRINT})]}}))}),
    ("GET", "/key"): Operation(
        "The signing key", "The ASCII-armored public key that signs the packages and dbs "
        "(sign = true).",
        replies={200: Reply("the key", STRING, "application/pgp-keys")},
        errors={404: "sign = false: there is no key"}),
    ("GET", "/setup"): Operation(
        "A pacman set-up script",
        "A POSIX shell script that adds the signing key to pacman's keyring (pacman-key "
        "--add, --lsign-key) and adds or updates the repo's pacman.conf stanza; run it as "
        "root (`curl -fsS URL/setup?repo=NAME | sh`).",
        params=(query("repo", REPO, required=True),),
        replies={200: Reply("the script", STRING, TEXT_UTF8)},
        errors={400: "no repo, an unsafe name, or a host the script cannot name (set "
                     "public_url)", 404: "no such repository"}),
    ("GET", "/badge/<name>.svg"): Operation(
        "A status badge (SVG)",
        "Digits name a target: `build | passing` (its latest finished build on each arch "
        "succeeded), `failing` (one failed or timed out), `running` (one of its builds "
        "runs) or `unknown` (none finished yet). Anything else names a repo: "
        "`<repo> | N packages`. No key needed; `Cache-Control: no-cache` with an ETag.",
        params=(Param("name", "path", {"type": "string",
                                       "pattern": "^[A-Za-z0-9_][A-Za-z0-9._+@-]{0,127}$"},
                      "a target's id (digits) or a repo's name", True),
                header("If-None-Match", STRING, "an ETag of this badge: 304 if unchanged")),
        replies={200: Reply("the badge", STRING, BADGE_TYPE, ("ETag", "Cache-Control")),
                 304: Reply("not modified (If-None-Match)", media_type=None,
                            headers=("ETag",)),
                 404: Reply("no such target or repo: an `unknown` badge", STRING, BADGE_TYPE,
                            ("ETag", "Cache-Control"))}),
    # -- the dashboard (web/ui.py) ---------------------------------------------------------
    ("GET", "/"): Operation(
        "To the dashboard", "A redirect to /ui/.",
        replies={302: Reply("Location: /ui/", media_type=None)}),
    ("GET", "/ui"): Operation(
        "The dashboard", "Its HTML page (it reads /api/v2 with the visitor's token).",
        replies={200: Reply("the page", STRING, "text/html"),
                 304: Reply("not modified (ETag, Last-Modified)", media_type=None)}),
    ("GET", "/ui/<name:path>"): Operation(
        "A file of the dashboard", "Its scripts, style sheet and images.",
        replies={200: Reply("the file", STRING, ("text/javascript", "text/css",
                                                  "image/svg+xml", "text/html")),
                 304: Reply("not modified (ETag, Last-Modified)", media_type=None)},
        errors={404: "no such file"}),
    ("HEAD", "/ui"): Operation(
        "The dashboard's headers",
        replies={200: Reply("the page's headers", media_type=None),
                 304: Reply("not modified (ETag, Last-Modified)", media_type=None)}),
    ("HEAD", "/ui/<name:path>"): Operation(
        "A dashboard file's headers",
        replies={200: Reply("the file's headers", media_type=None),
                 304: Reply("not modified (ETag, Last-Modified)", media_type=None)},
        errors={404: "no such file"}),
    ("GET", "/favicon.ico"): Operation(
        "The icon", "The dashboard's icon (SVG).",
        replies={200: Reply("the icon", STRING, "image/svg+xml"),
                 304: Reply("not modified (ETag, Last-Modified)", media_type=None)}),
    ("HEAD", "/favicon.ico"): Operation(
        "The icon's headers",
        replies={200: Reply("the icon's headers", media_type=None),
                 304: Reply("not modified (ETag, Last-Modified)", media_type=None)}),
    ("GET", "/<repo>/<arch>/<filename>"): Operation(
        "A file of an arch-repo",
        "`<repo>.db`, `<repo>.files` (and their `.tar.gz` names): the db archives; a name "
        "containing `.pkg`: the package file; any of those + `.sig`: its signature; "
        "`<name>-<version>`: that package's desc entry (text/plain).",
        params=FILE_HEADERS, replies=file_replies((BINARY, TEXT_UTF8)),
        errors={400: "an unsafe repo or arch name", 404: "no such file"}),
    ("HEAD", "/<repo>/<arch>/<filename>"): Operation(
        "A file's headers", params=FILE_HEADERS[1:],
        replies={200: Reply("the file exists", media_type=None),
                 304: Reply("not modified since If-Modified-Since", media_type=None)},
        errors={400: "an unsafe repo or arch name", 404: "no such file"}),
    ("GET", "/<repo>"): NO_LISTING,
    ("HEAD", "/<repo>"): NO_LISTING,
    ("GET", "/<repo>/<arch>"): NO_LISTING,
    ("HEAD", "/<repo>/<arch>"): NO_LISTING,
    ("POST", "/<repo>/publish"): PUBLISH,
    ("PUT", "/<repo>/publish"): PUBLISH,
    ("DELETE", "/<repo>/<arch>/<pkg>"): Operation(
        "Remove a package from an arch-repo", replies=done("removed"),
        errors={400: "an unsafe name", 404: "no such package"}),
    ("DELETE", "/<repo>/<arch>"): Operation(
        "Remove an arch-repo", replies=done("removed"),
        errors={400: "an unsafe name", 404: "no such arch-repo"}),
    ("DELETE", "/<repo>"): Operation(
        "Remove a repository", replies=done("removed"),
        errors={400: "an unsafe name", 404: "no such repository"}),
    # -- targets ----------------------------------------------------------------------------
    ("GET", "/api/v1/targets"): Operation(
        "List targets", params=(LIMIT, OFFSET, query("repo", STRING, "exactly this repo"),
                                query("query", STRING, "a substring of url, path or branch"),
                                query("arch", STRING, "built for this arch")),
        replies=ok(array(ref("Target"))), errors={400: "a bad limit or offset"}),
    ("GET", "/api/v1/targets/<target_id>"): Operation(
        "A target", replies=ok(ref("Target")), errors={**BAD_ID, 404: "no such target"}),
    ("POST", "/api/v1/targets"): Operation(
        "Add a target",
        params=(query("kind", {"enum": ["git", "url"]}, required=True),
                query("url", STRING, required=True), query("repo", REPO, required=True),
                *TARGET_FIELDS, query("arch", ARCHS, "default: default_arch")),
        replies=ok(INTEGER, "the new target's id"),
        errors={400: "a missing or invalid field (Vieter's texts)"}),
    ("PATCH", "/api/v1/targets/<target_id>"): Operation(
        "Edit a target",
        "Only the given fields change; `arch` replaces the list; `schedule=` goes back to "
        "global_schedule. Its queued builds take the new fields.",
        params=(query("kind", {"enum": ["git", "url"]}), query("url", STRING),
                query("repo", REPO), *TARGET_FIELDS, query("arch", ARCHS)),
        replies=ok(ref("Target"), "the target as edited"),
        errors={**BAD_ID, 400: "an invalid field or id", 404: "no such target"}),
    ("DELETE", "/api/v1/targets/<target_id>"): Operation(
        "Remove a target", "Also drops its queued builds.", replies=done("removed"),
        errors={**BAD_ID, 404: "no such target"}),
    ("GET", "/api/v1/targets/<target_id>/schedule"): Operation(
        "A target's schedule and next runs", replies=ok(ref("Schedule")),
        errors={**BAD_ID, 404: "no such target"}),
    # -- build logs -----------------------------------------------------------------------
    ("GET", "/api/v1/logs"): Operation(
        "List build logs (finished builds)",
        params=(LIMIT, OFFSET, query("target", COUNT, "of this target"),
                query("before", COUNT, "started before (Unix seconds)"),
                query("after", COUNT, "started after (Unix seconds)"),
                query("arch", STRING), query("exit_codes", EXIT_CODES,
                                             "'1,2' keeps 1 or 2; '!1,!2' drops both")),
        replies=ok(array(ref("BuildLog"))), errors={400: "a bad number or exit code"}),
    ("GET", "/api/v1/logs/<build_id>"): Operation(
        "A build log's record", replies=ok(ref("BuildLog")),
        errors={**BAD_ID, 404: "no such build, or it never started"}),
    ("GET", "/api/v1/logs/<build_id>/content"): Operation(
        "A build's log text", "Also while the build runs.", params=FILE_HEADERS,
        replies=file_replies(TEXT_UTF8),
        errors={**BAD_ID, 404: "no such build or log"}),
    ("POST", "/api/v1/logs"): Operation(
        "Record a finished build with its whole log", "What a Vieter agent sends.",
        params=(query("target", POSITIVE, required=True), query("arch", ARCH, required=True),
                query("startTime", UNIX_SECONDS, required=True),
                query("endTime", UNIX_SECONDS, required=True),
                query("exitCode", ANY_INT, required=True)),
        body=Body(TEXT, STRING, "the log text"),
        replies=ok(INTEGER, "the new build's id"),
        errors={400: "a missing or invalid value, an unknown target", 411: "no Content-Length",
                413: "over max_upload_size"}),
    ("DELETE", "/api/v1/logs/<build_id>"): Operation(
        "Remove a build and its log", replies=done("removed"),
        errors={**BAD_ID, 404: "no such build log", 409: "the build is running"}),
    # -- jobs, builds, repos, metrics -----------------------------------------------------
    ("POST", "/api/v1/jobs/queue"): Operation(
        "Queue a build of a target", "A target/arch has at most one queued build.",
        params=(query("target", POSITIVE, required=True), query("arch", ARCH, required=True),
                query("force", BOOLEAN), query("timeout", POSITIVE, "seconds")),
        replies=ok(INTEGER, "the build's id"),
        errors={400: "a missing or invalid value, an unknown target",
                404: "the target was removed meanwhile"}),
    ("GET", "/api/v1/builds"): Operation(
        "List builds with their tasks",
        params=(query("status", STATUSES, "a comma list"), query("target", POSITIVE),
                LIMIT, OFFSET),
        replies=ok(array(ref("Build"))), errors={400: "a bad status or number"}),
    ("GET", "/api/v1/repos"): Operation(
        "List repositories", replies=ok(array(ref("Repo")))),
    ("GET", "/api/v1/repos/<repo>"): Operation(
        "A repository's packages", replies=ok(array(ref("Package"))),
        errors={400: "an unsafe name", 404: "no such repository"}),
    ("GET", "/api/v1/repos/<repo>/<arch>"): Operation(
        "An arch-repo's packages", replies=ok(array(ref("Package"))),
        errors={400: "an unsafe name", 404: "no such repository or arch-repo"}),
    ("GET", "/api/v1/metrics"): METRICS,
    ("GET", "/metrics"): METRICS,
    # -- the agent protocol (web/agent.py) ------------------------------------------------
    ("GET", "/api/v1/jobs/poll"): Operation(
        "Claim queued builds",
        "Claims up to `max` queued builds of `arch`, each with a lease and a build token.",
        params=(query("arch", STRING, required=True), query("max", COUNT, required=True),
                query("runner", STRING, "the agent's name (default: its address)"),
                query("build", POSITIVE, "claim only this build"),
                query("agent", STRING, "a registered agent's name (POST /api/v2/agents): "
                                       "builds that ask for agent labels go only to an "
                                       "agent that has them; the agent is seen now"),
                query("wait", COUNT, "with nothing to claim, wait up to this many seconds "
                                     "(at most max_poll_wait) for a build; the answer then "
                                     "carries X-Vieter-Poll-Wait with the seconds waited "
                                     "at most")),
        replies={200: Reply("OK", envelope(array(ref("Job"))), links={
            "FinishBuild": {"operationId": "post_api_v1_builds_by_build_id_finish",
                            "parameters": {"path.build_id": "$response.body#/data/0/build_id"}},
            "AppendLog": {"operationId": "post_api_v1_builds_by_build_id_log",
                          "parameters": {"path.build_id": "$response.body#/data/0/build_id"}},
        })},
        errors={400: "a missing or invalid value, or an arch the agent is not registered "
                     "for", 403: "an arch the token may not use, or another token's agent",
                404: "no agent of that name is registered"}),
    ("GET", "/api/v1/builds/<build_id>"): Operation(
        "A build with its tasks", replies=ok(ref("Build")),
        errors={**BAD_ID, 404: "no such build"}),
    ("POST", "/api/v1/builds/<build_id>/lease"): Operation(
        "Renew a build's lease", replies=ok(ref("Build")),
        errors={**BAD_ID, 404: "no such build", 409: "the build is not running"}),
    ("POST", "/api/v1/builds/<build_id>/log"): Operation(
        "Append to a build's log", body=Body(TEXT, STRING, "a chunk of the log"),
        replies=ok(obj({"size": INTEGER}), "the log's size now"),
        errors={**BAD_ID, 404: "no such build", 409: "the build is not running",
                411: "no Content-Length", 413: "over max_log_chunk",
                507: "the data disk is full: nothing was appended"}),
    ("PATCH", "/api/v1/builds/<build_id>/tasks/<name>"): Operation(
        "Set a task's status",
        params=(query("status", {"enum": list(TASK_STATES)}, required=True),),
        replies=ok(ref("Build")),
        errors={400: "an unknown task or status, or a bad id", 404: "no such build",
                409: "the build is not running"}),
    ("POST", "/api/v1/builds/<build_id>/release"): Operation(
        "Hand a build back to the queue", replies=ok(ref("Build")),
        errors={**BAD_ID, 404: "no such build", 409: "the build is not running"}),
    ("POST", "/api/v1/builds/<build_id>/finish"): Operation(
        "End a build", "Its times are the server's, the agent's only within that window.",
        params=(query("exitCode", ANY_INT, required=True), query("startTime", COUNT),
                query("endTime", COUNT)),
        replies={200: Reply("OK", envelope(ref("Build")), links={
            "GetBuild": {"operationId": "get_api_v2_builds_by_build_id",
                         "parameters": {"path.build_id": "$request.path.build_id"}},
            "ListBuilds": {"operationId": "get_api_v2_builds",
                           "parameters": {"query.target_ids": "$response.body#/data/target_id"}},
        })},
        errors={400: "a missing or invalid value", 404: "no such build",
                409: "the build is not running"}),
}

PATH_PARAMS: dict[str, tuple[Schema, str]] = {
    "repo": (REPO, "a repository"),
    "arch": (ARCH, "an architecture"),
    "filename": (FILENAME, "a db archive, package file or desc entry name"),
    "pkg": (PKGNAME, "a package name"),
    "target_id": (ID, "a target's id"),
    "build_id": (ID, "a build's id"),
    "name": ({"enum": list(TASK_NAMES)}, "a task"),
}

DOC = ApiDoc(tags={"repo": "repositories", "v1": "/api/v1"}, operations=OPERATIONS,
             schemas=SCHEMAS, error_schema="VieterError", path_params=PATH_PARAMS)
