"""Vieter-compatible /api/v1: targets, build logs, jobs, and the read routes the CLI uses.
Each route parses its query, makes one call into the domain, and shapes the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse

from vieter_lite.errors import BadRequest, NotFound
from vieter_lite.targets import TargetSpec, check_archs
from vieter_lite.web import files
from vieter_lite.web.http import (
    INTEGER_TEXT,
    MAX_TIME,
    envelope,
    int_param,
    path_id,
    query_flag,
    request_body,
    text_param,
)
from vieter_lite.web.v1.shapes import build_json, listed_package_json, log_json, target_json

if TYPE_CHECKING:
    from vieter_lite.services import Services

DEFAULT_LIMIT = 25
V1 = {"api": "v1"}


def arch_list(raw: str) -> list[str]:
    """'a, b,a' -> ['a', 'b']: trimmed, de-duplicated, each a safe arch name (not 'any')."""
    return list(check_archs(tuple(part.strip() for part in raw.split(","))))


def exit_code_filter(raw: str) -> tuple[list[int], list[int]]:
    """'1,2' keeps codes 1 or 2; '!1,!2' drops both; both kinds AND together."""
    keep: list[int] = []
    drop: list[int] = []
    for item in raw.split(","):
        negated = item.startswith("!")
        number = item[1:] if negated else item
        if not INTEGER_TEXT.fullmatch(number):
            raise BadRequest(f"invalid exit code '{item}' in exit_codes")
        (drop if negated else keep).append(int(number))
    return keep, drop


def target_spec(creating: bool) -> TargetSpec:
    """A target's fields from the query: for a new target an absent or empty arch means the
    default arch; for an edit 'arch=' is an error (a target needs one)."""
    raw_arch = text_param("arch")
    archs: tuple[str, ...] | None = None
    if raw_arch or (raw_arch is not None and not creating):
        archs = tuple(part.strip() for part in raw_arch.split(","))
    return TargetSpec(kind=text_param("kind"), url=text_param("url"),
                      branch=text_param("branch"), path=text_param("path"),
                      repo=text_param("repo"), schedule=text_param("schedule"), archs=archs)


def register(app: bottle.Bottle, services: Services) -> None:
    targets, queue, store, config = (services.targets, services.queue, services.store,
                                     services.config)

    # -- targets ----------------------------------------------------------------------

    @app.get("/api/v1/targets", scope="targets:read", **V1)
    def list_targets() -> HTTPResponse:
        found = targets.list(limit=int_param("limit", DEFAULT_LIMIT) or 0,
                             offset=int_param("offset", 0) or 0, repo=text_param("repo") or "",
                             query=text_param("query") or "", arch=text_param("arch") or "")
        return envelope([target_json(t) for t in found])

    @app.get("/api/v1/targets/<target_id>", scope="targets:read", **V1)
    def get_target(target_id: str) -> HTTPResponse:
        return envelope(target_json(targets.get(path_id(target_id))))

    @app.post("/api/v1/targets", scope="targets:write", **V1)
    def add_target() -> HTTPResponse:
        return envelope(targets.add(target_spec(creating=True)))

    @app.route("/api/v1/targets/<target_id>", method="PATCH", scope="targets:write", **V1)
    def edit_target(target_id: str) -> HTTPResponse:
        number = path_id(target_id)
        return envelope(target_json(targets.edit(number, target_spec(creating=False))))

    @app.get("/api/v1/targets/<target_id>/schedule", scope="targets:read", **V1)
    def target_schedule(target_id: str) -> HTTPResponse:
        schedule, is_global, runs = targets.plan(path_id(target_id))
        return envelope({"schedule": schedule, "global": is_global,
                         "archs": [{"arch": a, "next_run": t} for a, t in runs.items()]})

    @app.delete("/api/v1/targets/<target_id>", scope="targets:write", **V1)
    def remove_target(target_id: str) -> HTTPResponse:
        targets.remove(path_id(target_id))
        return envelope(message="Target removed.")

    # -- build logs -------------------------------------------------------------------

    @app.get("/api/v1/logs", scope="builds:read", **V1)
    def list_logs() -> HTTPResponse:
        codes = text_param("exit_codes")
        keep, drop = exit_code_filter(codes) if codes else ([], [])
        found = services.db.finished_builds(
            limit=int_param("limit", DEFAULT_LIMIT) or 0, offset=int_param("offset", 0) or 0,
            target=int_param("target") or None, before=int_param("before"),
            after=int_param("after"), arch=text_param("arch") or "",
            codes_in=keep, codes_not_in=drop)
        return envelope([log_json(b) for b in found])

    @app.get("/api/v1/logs/<build_id>", scope="builds:read", **V1)
    def get_log(build_id: str) -> HTTPResponse:
        return envelope(log_json(queue.started(path_id(build_id))))

    @app.get("/api/v1/logs/<build_id>/content", scope="builds:read", **V1)
    def log_content(build_id: str) -> HTTPResponse:
        return files.send_file(queue.log_path(path_id(build_id)), files.TEXT)

    @app.post("/api/v1/logs", scope="builds:write", **V1)
    def post_log() -> HTTPResponse:
        start = int_param("startTime", missing="Invalid or missing start time.", minimum=1,
                          maximum=MAX_TIME)
        end = int_param("endTime", missing="Invalid or missing end time.", minimum=1,
                        maximum=MAX_TIME)
        exit_code = int_param("exitCode", missing="Missing exit code.", minimum=None)
        arch = text_param("arch")
        if arch is None:
            raise BadRequest("Missing parameter 'arch'.")
        arch_list(arch)
        target = int_param("target", missing="Unknown target.", minimum=1) or 0
        return envelope(queue.add_finished(target, arch, start or 0, end or 0, exit_code or 0,
                                           *request_body()))

    @app.delete("/api/v1/logs/<build_id>", scope="builds:write", **V1)
    def delete_log(build_id: str) -> HTTPResponse:
        queue.delete_log(path_id(build_id))
        return envelope(message="Build log removed.")

    # -- jobs -------------------------------------------------------------------------

    @app.post("/api/v1/jobs/queue", scope="builds:write", **V1)
    def queue_job() -> HTTPResponse:
        target_id = int_param("target", missing="Missing target query arg.", minimum=1)
        arch = text_param("arch")
        if arch is None:
            raise BadRequest("Missing arch query arg.")
        if arch == "":
            raise BadRequest("Empty arch query arg.")
        if not targets.exists(target_id or 0):
            raise BadRequest("Unknown target id.")
        return envelope(queue.queue(target_id or 0, arch, force=query_flag("force"),
                                    timeout=int_param("timeout", minimum=1)))

    # -- metrics ----------------------------------------------------------------------

    @app.get("/api/v1/metrics", scope="public", **V1)
    @app.get("/metrics", scope="public", **V1)
    def metrics() -> HTTPResponse:
        if not config.collect_metrics:
            raise NotFound("Metrics are disabled (collect_metrics = false).")
        db = services.db
        packages = {(("repo", r), ("arch", a)): n for (r, a), n in db.package_counts().items()}
        text = app.metrics.render({
            "builds": ("Builds by status.",
                       {(("status", s),): n for s, n in db.build_counts().items()}),
            "queue_depth": ("Queued builds per arch.",
                            {(("arch", a),): n for a, n in db.queue_depths().items()}),
            "packages": ("Packages per arch-repo.", packages),
        })
        return HTTPResponse(text, headers={"Content-Type": "text/plain; version=0.0.4; "
                                                           "charset=utf-8"})

    # -- reading builds and repositories ----------------------------------------------

    @app.get("/api/v1/builds", scope="builds:read", **V1)
    def list_builds() -> HTTPResponse:
        statuses = [part.strip() for part in (text_param("status") or "").split(",")
                    if part.strip()]
        found = queue.list(statuses, target=int_param("target", minimum=1),
                           limit=int_param("limit", DEFAULT_LIMIT) or 0,
                           offset=int_param("offset", 0) or 0)
        return envelope([build_json(b) for b in found])

    @app.get("/api/v1/repos", scope="repos:read", **V1)
    def list_repos() -> HTTPResponse:
        return envelope([{"name": repo, "archs": [{"arch": a, "packages": n}
                                                  for a, n in archs.items()]}
                         for repo, archs in store.repos().items()])

    @app.get("/api/v1/repos/<repo>", scope="repos:read", **V1)
    @app.get("/api/v1/repos/<repo>/<arch>", scope="repos:read", **V1)
    def list_packages(repo: str, arch: str | None = None) -> HTTPResponse:
        return envelope([listed_package_json(p) for p in store.listed_packages(repo, arch)])
