"""/api/v2/builds/:id/log: a build's log as a resource (read, follow as server-sent events,
each task's part, append / replace / trim / close, delete)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle
from bottle import request, response

from vieter_lite.buildlogs import Follower, LogChange
from vieter_lite.errors import BadQueryParameter
from vieter_lite.web import files
from vieter_lite.web.auth import caller, own_build
from vieter_lite.web.http import json_body, path_id
from vieter_lite.web.v2 import sse
from vieter_lite.web.v2.common import DASHBOARD, V2, principal
from vieter_lite.web.v2.shapes import log_json, rfc3339
from vieter_lite.web.workers import hung_up

if TYPE_CHECKING:
    from vieter_lite.services import Services


def allow_params(*names: str) -> None:
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        valid = ", ".join(f"'{n}'" for n in names) or "none"
        raise BadQueryParameter(unknown[0], "Unknown query parameter(s): "
                                f"{', '.join(repr(u) for u in unknown)}. "
                                f"Valid parameters are: {valid}")


def offset_param(value: str | None, name: str) -> int:
    if value is None or value == "":
        return 0
    if not (value.isascii() and value.isdecimal()) or len(value) > 18:
        raise BadQueryParameter(name, f"{name}: must be a byte offset (an integer >= 0)")
    return int(value)


def wants_events() -> bool:
    follow = request.query.get("follow")
    if follow is not None:
        if follow.lower() not in ("true", "false", "1", "0", ""):
            raise BadQueryParameter("follow", "follow: must be true or false")
        return follow.lower() in ("true", "1", "")
    return "text/event-stream" in request.get_header("Accept", "")


class EventStream:
    """The response body of a follower: the retry hint at once (so the headers go out
    before the log has anything), then one event per update; close() ends the follower
    (waitress calls it when the client goes or the stream ends)."""

    def __init__(self, follower: Follower):
        self.follower = follower
        self._started = False

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> bytes:
        if not self._started:
            self._started = True
            return sse.RETRY
        return sse.render(next(self.follower))

    def close(self) -> None:
        self.follower.close()


def register(app: bottle.Bottle, services: Services) -> None:
    build_logs, config, jobs = services.build_logs, services.config, services.jobs

    def readable(build_id: str) -> int:
        return jobs.readable(principal(), path_id(build_id)).id

    @app.get("/api/v2/builds/<build_id>/log", scope="builds:read", **DASHBOARD)
    def get_log(build_id: str) -> Any:
        allow_params("offset")
        offset = offset_param(request.query.get("offset"), "offset")
        return log_json(build_logs.view(readable(build_id), offset))

    @app.get("/api/v2/builds/<build_id>/log/content", scope="builds:read", **DASHBOARD)
    def log_content(build_id: str) -> Any:
        allow_params("follow", "offset")
        number = readable(build_id)
        if wants_events():
            resume = request.get_header("Last-Event-ID")
            offset = offset_param(resume, "Last-Event-ID") if resume is not None \
                else offset_param(request.query.get("offset"), "offset")
            stream = EventStream(build_logs.follow(number, offset, hung_up(request.environ)))
            response.content_type = sse.CONTENT_TYPE
            response.set_header("Cache-Control", "no-cache")
            response.set_header("X-Accel-Buffering", "no")  # a proxy must not hold events
            return stream
        record = build_logs.record(number)
        path = services.logs.path(number)
        if not path.is_file():  # queued: no log yet
            return files.send(b"", 0, record.created_at, files.TEXT)
        return files.send_file(path, files.TEXT)

    @app.get("/api/v2/builds/<build_id>/tasks/<name>/log", scope="builds:read", **DASHBOARD)
    def task_log(build_id: str, name: str) -> Any:
        allow_params()
        number = readable(build_id)
        part = build_logs.task_part(number, name)
        record = build_logs.record(number)
        return files.send(part, len(part), record.updated_at or record.created_at, files.TEXT)

    @app.route("/api/v2/builds/<build_id>/log", method="PATCH", scope="builds:write",
               build_token=True, **V2)
    def change_log(build_id: str) -> Any:
        allow_params()
        number = own_build(services.queue, build_id)
        if caller().principal is not None:
            jobs.writable(principal(), number)
        change = LogChange.of(json_body(config.max_log_chunk))
        return {"updated_at": rfc3339(build_logs.change(number, change))}

    @app.delete("/api/v2/builds/<build_id>/log", scope="builds:write", **V2)
    def delete_log(build_id: str) -> Any:
        allow_params()
        number = jobs.writable(principal(), path_id(build_id)).id
        return {"deleted": True, "deleted_at": rfc3339(build_logs.delete(number))}
