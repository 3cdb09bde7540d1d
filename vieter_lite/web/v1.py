"""Vieter-compatible /api/v1: targets, build logs, jobs, plus the agents' build reports."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import bottle
from bottle import HTTPResponse, request

from vieter_lite import cron, names
from vieter_lite.errors import BadRequest, Conflict, Forbidden, NotFound
from vieter_lite.models import Build, Target
from vieter_lite.repo.store import ListedPackage
from vieter_lite.web import files
from vieter_lite.web.app import caller, envelope, query_flag, request_body, require_api_key

if TYPE_CHECKING:
    from vieter_lite.web.app import Services

KINDS = ("git", "url")
DEFAULT_LIMIT = 25
_INT = re.compile(r"-?[0-9]{1,18}", re.ASCII)


# -- parameters -----------------------------------------------------------------------

def text_param(name: str) -> str | None:
    """A query value as text; 400 for bytes that are not UTF-8 or hold a NUL (a value a
    target would store and hand to a build's shell and git)."""
    if name not in request.query:
        return None
    value = request.query.getunicode(name)
    if value is None:
        raise BadRequest(f"invalid value for '{name}': not UTF-8")
    if "\0" in value:
        raise BadRequest(f"invalid value for '{name}': contains a NUL character")
    return value


def int_param(name: str, default: int | None = None, minimum: int | None = 0,
              missing: str | None = None) -> int | None:
    """An integer query value; 400 for anything that is not one (Vieter read garbage as 0)."""
    raw = text_param(name)
    if raw is None or raw == "":
        if missing is not None:
            raise BadRequest(missing)
        return default
    if not _INT.fullmatch(raw.strip()):
        raise BadRequest(f"invalid value for '{name}': expected an integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise BadRequest(f"invalid value for '{name}': must be at least {minimum}")
    return value


def path_id(value: str) -> int:
    if not value.isascii() or not value.isdecimal() or len(value) > 18:
        raise BadRequest(f"invalid id '{value}'")
    return int(value)


def arch_list(raw: str) -> list[str]:
    """'a, b,a' -> ['a', 'b']: trimmed, de-duplicated, each a safe arch name (not 'any')."""
    result: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        try:
            names.check_arch(item)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if item == "any":
            raise BadRequest("'any' is not an architecture to build on")
        if item not in result:
            result.append(item)
    return result


def exit_code_filter(raw: str) -> tuple[list[int], list[int]]:
    """'1,2' keeps codes 1 or 2; '!1,!2' drops both; both kinds AND together."""
    keep, drop = [], []
    for item in raw.split(","):
        negated = item.startswith("!")
        number = item[1:] if negated else item
        if not _INT.fullmatch(number):
            raise BadRequest(f"invalid exit code '{item}' in exit_codes")
        (drop if negated else keep).append(int(number))
    return keep, drop


# -- JSON shapes ----------------------------------------------------------------------

def target_json(target: Target) -> dict[str, Any]:
    return {"id": target.id, "kind": target.kind, "url": target.url, "branch": target.branch,
            "repo": target.repo, "schedule": target.schedule, "path": target.path,
            "arch": [{"id": a.id, "target_id": a.target_id, "value": a.value}
                     for a in target.arch]}


def log_json(build: Build) -> dict[str, Any]:
    return {"id": build.id, "target_id": build.target_id, "start_time": build.started_at,
            "end_time": build.ended_at, "arch": build.arch, "exit_code": build.exit_code}


def build_json(build: Build) -> dict[str, Any]:
    return {"id": build.id, "target_id": build.target_id, "arch": build.arch,
            "repo": build.repo, "status": build.status, "force": build.force,
            "created_at": build.created_at, "started_at": build.started_at,
            "ended_at": build.ended_at, "exit_code": build.exit_code, "runner": build.runner,
            "lease_expires": build.lease_expires, "expiries": build.expiries,
            "tasks": [{"name": n, "status": s} for n, s in build.tasks]}


def listed_package_json(listed: ListedPackage) -> dict[str, Any]:
    pkg, owner = listed.package, listed.owner
    return {"name": pkg.name, "version": pkg.version, "arch": pkg.arch,
            "pkg_arch": pkg.pkg_arch, "filename": pkg.filename, "size": listed.size,
            "published_at": pkg.published_at,
            "owner": None if owner is None else {"target_id": owner.target_id}}


def register(app: bottle.Bottle, services: "Services") -> None:
    config, db, queue, scheduler, logs = (services.config, services.db, services.queue,
                                          services.scheduler, services.logs)
    store = services.store

    def admin() -> None:
        require_api_key(config)

    def target_fields(creating: bool) -> tuple[dict[str, str], list[str] | None]:
        """Validated target fields from the query (all checks before anything is saved)."""
        fields = {f: v for f in ("kind", "url", "branch", "path", "repo", "schedule")
                  if (v := text_param(f)) is not None}
        if creating:
            for required in ("kind", "url", "repo"):
                if not fields.get(required):
                    raise BadRequest(f"Missing parameter: {required}.")
        if "kind" in fields and fields["kind"] not in KINDS:
            raise BadRequest("Invalid kind.")
        if "url" in fields and not fields["url"].strip():
            raise BadRequest("url must not be empty.")
        if "repo" in fields:
            try:
                names.check_repo(fields["repo"])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        if fields.get("schedule"):
            try:
                cron.parse(fields["schedule"])
            except cron.CronError as exc:
                raise BadRequest(str(exc)) from None
        raw_arch = text_param("arch")
        # creating: absent or empty means [default_arch]; editing: 'arch=' is an error
        archs = arch_list(raw_arch) if raw_arch or (raw_arch is not None and not creating) \
            else None
        if creating and not archs:
            archs = [config.default_arch]
        return fields, archs

    # -- targets ----------------------------------------------------------------------

    @app.get("/api/v1/targets")
    def list_targets() -> HTTPResponse:
        admin()
        found = db.targets(limit=int_param("limit", DEFAULT_LIMIT) or 0,
                           offset=int_param("offset", 0) or 0, repo=text_param("repo") or "",
                           query=text_param("query") or "", arch=text_param("arch") or "")
        return envelope([target_json(t) for t in found])

    @app.get("/api/v1/targets/<target_id>")
    def get_target(target_id: str) -> HTTPResponse:
        admin()
        target = db.target(path_id(target_id))
        if target is None:
            raise NotFound("Target not found.")
        return envelope(target_json(target))

    @app.post("/api/v1/targets")
    def add_target() -> HTTPResponse:
        admin()
        fields, archs = target_fields(creating=True)
        assert archs
        target_id = db.add_target(fields, scheduler.next_runs(fields.get("schedule", ""), archs))
        return envelope(target_id)

    @app.route("/api/v1/targets/<target_id>", method="PATCH")
    def edit_target(target_id: str) -> HTTPResponse:
        admin()
        number = path_id(target_id)
        fields, archs = target_fields(creating=False)
        current = db.target(number)
        if current is None:
            raise NotFound("Target not found.")
        if archs == []:
            raise BadRequest("a target needs at least one arch")
        schedule = fields.get("schedule", current.schedule)
        new_archs = scheduler.next_runs(schedule, archs) if archs is not None else None
        with db.transaction():
            if not db.update_target(number, fields, new_archs):
                raise NotFound("Target not found.")
            if new_archs is None and "schedule" in fields:
                due = scheduler.next_run_of(schedule)
                for arch in current.arch:
                    db.set_next_run(arch.id, due)
            updated = db.target(number)
            assert updated is not None
            db.refresh_queued(updated)
        return envelope(target_json(updated))

    @app.get("/api/v1/targets/<target_id>/schedule")
    def target_schedule(target_id: str) -> HTTPResponse:
        admin()
        target = db.target(path_id(target_id))
        if target is None:
            raise NotFound("Target not found.")
        schedule, is_global, runs = scheduler.plan(target)
        return envelope({"schedule": schedule, "global": is_global,
                         "archs": [{"arch": a, "next_run": t} for a, t in runs.items()]})

    @app.delete("/api/v1/targets/<target_id>")
    def remove_target(target_id: str) -> HTTPResponse:
        admin()
        if not db.remove_target(path_id(target_id)):
            raise NotFound("Target not found.")
        return envelope(message="Target removed.")

    # -- build logs -------------------------------------------------------------------

    @app.get("/api/v1/logs")
    def list_logs() -> HTTPResponse:
        admin()
        codes = text_param("exit_codes")
        keep, drop = exit_code_filter(codes) if codes else ([], [])
        found = db.finished_builds(
            limit=int_param("limit", DEFAULT_LIMIT) or 0, offset=int_param("offset", 0) or 0,
            target=int_param("target") or None, before=int_param("before"),
            after=int_param("after"), arch=text_param("arch") or "",
            codes_in=keep, codes_not_in=drop)
        return envelope([log_json(b) for b in found])

    def started_build(build_id: str) -> Build:
        build = db.build(path_id(build_id))
        if build is None or build.started_at is None:
            raise NotFound("Build log not found.")
        return build

    @app.get("/api/v1/logs/<build_id>")
    def get_log(build_id: str) -> HTTPResponse:
        admin()
        return envelope(log_json(started_build(build_id)))

    @app.get("/api/v1/logs/<build_id>/content")
    def log_content(build_id: str) -> HTTPResponse:
        """Also the log so far of a build handed back to the queue."""
        admin()
        build = db.build(path_id(build_id))
        if build is None or not logs.path(build.id).is_file():
            raise NotFound("Build log not found.")
        return files.send_file(logs.path(build.id), files.TEXT)

    @app.post("/api/v1/logs")
    def post_log() -> HTTPResponse:
        admin()
        start = int_param("startTime", missing="Invalid or missing start time.", minimum=1)
        end = int_param("endTime", missing="Invalid or missing end time.", minimum=1)
        exit_code = int_param("exitCode", missing="Missing exit code.", minimum=None)
        arch = text_param("arch")
        if arch is None:
            raise BadRequest("Missing parameter 'arch'.")
        arch_list(arch)
        target = db.target(int_param("target", missing="Unknown target.", minimum=1) or 0)
        if target is None:
            raise BadRequest("Unknown target.")
        tmp = logs.receive(*request_body())
        try:
            build_id = db.add_finished_build(target.id, arch, start or 0, end or 0,
                                             exit_code or 0, queue.now(), target.repo)
            logs.adopt(tmp, build_id)
        finally:
            tmp.unlink(missing_ok=True)
        return envelope(build_id)

    @app.delete("/api/v1/logs/<build_id>")
    def delete_log(build_id: str) -> HTTPResponse:
        admin()
        build = started_build(build_id)
        if build.status == "running":
            raise Conflict("The build is still running.")
        logs.remove(build.id)
        db.delete_build(build.id)
        return envelope(message="Build log removed.")

    # -- jobs -------------------------------------------------------------------------

    @app.post("/api/v1/jobs/queue")
    def queue_job() -> HTTPResponse:
        admin()
        target_id = int_param("target", missing="Missing target query arg.", minimum=1)
        arch = text_param("arch")
        if arch is None:
            raise BadRequest("Missing arch query arg.")
        if arch == "":
            raise BadRequest("Empty arch query arg.")
        if db.target(target_id or 0) is None:
            raise BadRequest("Unknown target id.")
        return envelope(queue.queue(target_id or 0, arch, force=query_flag("force"),
                                    timeout=int_param("timeout", minimum=1)))

    @app.get("/api/v1/jobs/poll")
    def poll_jobs() -> HTTPResponse:
        admin()
        arch = text_param("arch")
        if arch is None:
            raise BadRequest("Missing arch query arg.")
        limit = int_param("max", missing="Missing max query arg.")
        runner = text_param("runner") or request.remote_addr or ""
        return envelope(queue.poll(arch, limit or 0, runner[:100],
                                   only=int_param("build", minimum=1)))

    # -- metrics ----------------------------------------------------------------------

    @app.get("/api/v1/metrics")
    @app.get("/metrics")
    def metrics() -> HTTPResponse:
        if not config.collect_metrics:
            raise NotFound("Metrics are disabled (collect_metrics = false).")
        packages = {(("repo", r), ("arch", a)): n for (r, a), n in db.package_counts().items()}
        text = services.metrics.render({
            "builds": ("Builds by status.",
                       {(("status", s),): n for s, n in db.build_counts().items()}),
            "queue_depth": ("Queued builds per arch.",
                            {(("arch", a),): n for a, n in db.queue_depths().items()}),
            "packages": ("Packages per arch-repo.", packages),
        })
        return HTTPResponse(text, headers={"Content-Type": "text/plain; version=0.0.4; "
                                                           "charset=utf-8"})

    # -- reading builds and repositories ----------------------------------------------

    @app.get("/api/v1/builds")
    def list_builds() -> HTTPResponse:
        admin()
        statuses = [part.strip() for part in (text_param("status") or "").split(",")
                    if part.strip()]
        found = queue.list(statuses, target=int_param("target", minimum=1),
                           limit=int_param("limit", DEFAULT_LIMIT) or 0,
                           offset=int_param("offset", 0) or 0)
        return envelope([build_json(b) for b in found])

    @app.get("/api/v1/repos")
    def list_repos() -> HTTPResponse:
        admin()
        return envelope([{"name": repo, "archs": [{"arch": a, "packages": n}
                                                  for a, n in archs.items()]}
                         for repo, archs in store.repos().items()])

    @app.get("/api/v1/repos/<repo>")
    @app.get("/api/v1/repos/<repo>/<arch>")
    def list_packages(repo: str, arch: str | None = None) -> HTTPResponse:
        admin()
        return envelope([listed_package_json(p) for p in store.listed_packages(repo, arch)])

    # -- builds: what agents report while they build ---------------------------------

    def own_build(build_id: str) -> int:
        """The api_key, or the token of this very build."""
        who = caller(services)
        number = path_id(build_id)
        if who is not None and who.id != number:
            raise Forbidden("This token belongs to another build.")
        return number

    @app.get("/api/v1/builds/<build_id>")
    def get_build(build_id: str) -> HTTPResponse:
        return envelope(build_json(queue.get(own_build(build_id))))

    @app.post("/api/v1/builds/<build_id>/lease")
    def renew_lease(build_id: str) -> HTTPResponse:
        return envelope(build_json(queue.renew(own_build(build_id))))

    @app.post("/api/v1/builds/<build_id>/log")
    def append_log(build_id: str) -> HTTPResponse:
        number = own_build(build_id)
        size = queue.append_log(number, *request_body())
        return envelope({"size": size})

    @app.route("/api/v1/builds/<build_id>/tasks/<name>", method="PATCH")
    def set_task(build_id: str, name: str) -> HTTPResponse:
        number = own_build(build_id)
        queue.set_task(number, name, text_param("status") or "")
        return envelope(build_json(queue.get(number)))

    @app.post("/api/v1/builds/<build_id>/release")
    def release_build(build_id: str) -> HTTPResponse:
        return envelope(build_json(queue.release(own_build(build_id))))

    @app.post("/api/v1/builds/<build_id>/finish")
    def finish_build(build_id: str) -> HTTPResponse:
        number = own_build(build_id)
        exit_code = int_param("exitCode", missing="Missing exit code.", minimum=None)
        build = queue.finish(number, exit_code or 0, started_at=int_param("startTime"),
                             ended_at=int_param("endTime"))
        return envelope(build_json(build))
