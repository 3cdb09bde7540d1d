"""The agent protocol (under /api/v1, as Vieter's agents poll it): claim jobs, then report
on a build with its build token: lease, log, tasks, hand back, finish."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle
from bottle import HTTPResponse, request

from vieter_lite.errors import BadRequest, Forbidden
from vieter_lite.tokens import ADMIN
from vieter_lite.web.auth import caller, own_build
from vieter_lite.web.http import envelope, int_param, request_body, text_param
from vieter_lite.web.v1.shapes import build_json, job_json
from vieter_lite.web.workers import hung_up

if TYPE_CHECKING:
    from vieter_lite.services import Services

V1 = {"api": "v1"}
# the answer to a poll that asked to wait, when the server could: how long it waited at most
WAIT_HEADER = "X-Vieter-Poll-Wait"


def register(app: bottle.Bottle, services: Services) -> None:
    queue = services.queue

    @app.get("/api/v1/jobs/poll", scope="agent", **V1)
    def poll_jobs() -> HTTPResponse:
        arch = text_param("arch")
        if arch is None:
            raise BadRequest("Missing arch query arg.")
        limit = int_param("max", missing="Missing max query arg.")
        who = caller()
        if who.principal is not None and not who.principal.may_use_arch(arch):
            raise Forbidden(f"this token may not take builds for '{arch}'")
        runner = text_param("runner")
        # agent=NAME: a registered agent (seen now; builds that ask for labels go to it when
        # it has them); without it, only builds that ask for no labels
        agent_id = None
        name = text_param("agent")
        if name is not None:
            agent = services.agents.polling(who.principal or ADMIN, name, arch)
            agent_id, runner = agent.id, runner or agent.name
        # jobs=v2: an agent that fetches sources for review and builds manifests (vieter-lite's
        # own); Vieter's agents get only what they can run as Vieter's jobs
        runner = (runner or request.remote_addr or "")[:100]
        only = int_param("build", minimum=1)
        plain = (text_param("jobs") or "") != "v2"
        # wait=N: with nothing to claim, wait up to N seconds (at most max_poll_wait) for a
        # build; the header tells the agent the server waited, so it polls again at once
        wait = min(int_param("wait", default=0) or 0, queue.max_wait)
        headers = {}
        if wait > 0:
            claims, waited = queue.poll_waiting(arch, limit or 0, wait,
                                                hung_up(request.environ), runner, only, plain,
                                                agent_id)
            if waited:
                headers[WAIT_HEADER] = str(wait)
        else:
            claims = queue.poll(arch, limit or 0, runner, only, plain, agent_id)
        answer = envelope([job_json(claim.build, claim.token) for claim in claims])
        for header, value in headers.items():
            answer.set_header(header, value)
        return answer

    @app.get("/api/v1/builds/<build_id>", scope="build", **V1)
    def get_build(build_id: str) -> HTTPResponse:
        return envelope(build_json(queue.get(own_build(queue, build_id))))

    @app.post("/api/v1/builds/<build_id>/lease", scope="build", **V1)
    def renew_lease(build_id: str) -> HTTPResponse:
        return envelope(build_json(queue.renew(own_build(queue, build_id))))

    @app.post("/api/v1/builds/<build_id>/log", scope="build", **V1)
    def append_log(build_id: str) -> HTTPResponse:
        number = own_build(queue, build_id)
        size = queue.append_log(number, *request_body())
        return envelope({"size": size})

    @app.route("/api/v1/builds/<build_id>/tasks/<name>", method="PATCH", scope="build", **V1)
    def set_task(build_id: str, name: str) -> HTTPResponse:
        number = own_build(queue, build_id)
        queue.set_task(number, name, text_param("status") or "")
        return envelope(build_json(queue.get(number)))

    @app.post("/api/v1/builds/<build_id>/release", scope="build", **V1)
    def release_build(build_id: str) -> HTTPResponse:
        return envelope(build_json(queue.release(own_build(queue, build_id))))

    @app.post("/api/v1/builds/<build_id>/finish", scope="build", **V1)
    def finish_build(build_id: str) -> HTTPResponse:
        number = own_build(queue, build_id)
        exit_code = int_param("exitCode", missing="Missing exit code.", minimum=None)
        # the agent says 'timeout' for a build it killed at its timeout
        timed_out = (text_param("status") or "") == "timeout"
        build = queue.finish(number, exit_code or 0, started_at=int_param("startTime"),
                             ended_at=int_param("endTime"),
                             status="timeout" if timed_out else None)
        return envelope(build_json(build))
