"""schemathesis against a real server, from the document it serves: for every operation,
requests generated from its parameters and bodies (a fixed seed, a few dozen each: with
valid values, with invalid ones, and aimed at the data seeded below) get no 5xx and
answers that match the documented statuses, media types, headers and schemas; and every
route that needs a key refuses a request without one (401) and one from a token without
its scope (403; a route open to any valid key only the 401)."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite.web.openapi import PUBLIC, openapi_paths, route_infos

pytestmark = pytest.mark.integration

EXAMPLES = 40          # generated requests per operation and mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, ignored_auth]
KEY = {"X-Api-Key": API_KEY}
# path parameters (by the route's names) that name the seeded data (see `seed`); DELETEs
# aim at data of their own, so that the other routes keep finding theirs
SEEDED = {"repo": ["bur"], "arch": ["x86_64"], "target_id": [1], "build_id": [1, 2],
          "token_id": [1], "name": ["build"], "pkg": ["foo"],
          "filename": ["bur.db", "bur.files", "foo-1.0-1", "foo-1.0-1-x86_64.pkg.tar.zst"]}
SEEDED_FOR_DELETE = {**SEEDED, "repo": ["victim"], "target_id": [2], "build_id": [2],
                     "token_id": [2], "agent_id": [2]}
# query parameters, too, where a route has them
SEEDED_QUERY = {"target": 1, "arch": "x86_64"}


def _routes():
    import tempfile

    from conftest import make_config
    from vieter_lite.services import build_services
    from vieter_lite.web.app import build_app

    with tempfile.TemporaryDirectory() as tmp:
        services = build_services(make_config(Path(tmp)))
        try:
            return route_infos(build_app(services).routes)
        finally:
            services.db.close()


# the DELETEs last, so that the others find the seeded data whatever ids the DELETEs draw
ROUTES = sorted(_routes(), key=lambda r: r.method == "DELETE")
PATHS = openapi_paths(r.rule for r in ROUTES)


def _call(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> dict:
    req = urllib.request.Request(url, data=body, method=method, headers={**KEY, **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def package(tmp: Path) -> bytes:
    return make_synthetic_package(tmp / "foo.pkg.tar.zst", {
        "pkgname": "foo", "pkgver": "1.0-1", "arch": "x86_64", "size": "1"}).read_bytes()


def seed(url: str, tmp: Path) -> None:
    """Data for the aimed requests: target 1 with build 1 running (claimed) and build 2
    finished, build 3 of target 2 queued (for a poll to claim), package foo in bur/x86_64,
    token 1, agent 1; and for the DELETEs target 2, token 2, agent 2 and package foo in
    victim/x86_64."""
    for _ in range(2):
        _call(f"{url}/api/v1/targets?kind=git&url=https://example.invalid/foo.git&repo=bur",
              "POST")
    _call(f"{url}/api/v1/jobs/queue?target=1&arch=x86_64", "POST")
    _call(f"{url}/api/v1/jobs/poll?arch=x86_64&max=1")
    _call(f"{url}/api/v1/logs?target=1&arch=x86_64&startTime=1700000000&endTime=1700000060"
          "&exitCode=0", "POST", b"a log\n")
    _call(f"{url}/api/v1/jobs/queue?target=2&arch=x86_64", "POST")
    for repo in ("bur", "victim"):
        _call(f"{url}/{repo}/publish", "POST", package(tmp))
    for name in ("reader", "victim"):
        _call(f"{url}/api/v2/tokens", "POST", json.dumps(
            {"name": name, "scopes": ["builds:read"]}).encode(),
            {"Content-Type": "application/json"})
        _call(f"{url}/api/v2/agents", "POST", json.dumps(
            {"name": name, "archs": ["x86_64"], "labels": {"seeded": "true"}}).encode(),
            {"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[ServerProcess, object, bytes]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    # polls answer at once (a generated wait=N would hold each request up to max_poll_wait;
    # the waiting poll is tests/test_agents.py's)
    server = ServerProcess(tmp / "data", env_extra={"VIETER_COLLECT_METRICS": "true",
                                                    "VIETER_LOG_LEVEL": "WARN",
                                                    "VIETER_MAX_POLL_WAIT": "0"}).start()
    try:
        seed(server.url, tmp)
        yield (server, schemathesis.openapi.from_url(server.url + "/api/v2/openapi.json"),
               package(tmp))
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


def _operation(schema, route):
    return schema[PATHS[route.rule][0]][route.method]


def _run(strategy, examples: int, test) -> None:
    settings(max_examples=examples, derandomize=True, database=None, deadline=None,
             phases=[Phase.explicit, Phase.generate],
             suppress_health_check=list(HealthCheck))(given(case=strategy)(test))()


def _aimed(operation, route, package: bytes):
    """Cases whose path and query parameters name the seeded data (and a publish whose
    body is a real package); None for an operation that has nothing to aim."""
    renames = PATHS[route.rule][1]   # route's name -> the document's
    in_query = {p.name for p in operation.query}
    query = {k: v for k, v in SEEDED_QUERY.items() if k in in_query}
    body = {"body": package} if route.rule.endswith("/publish") else {}
    if not renames and not query and not body:
        return None
    seeded = SEEDED_FOR_DELETE if route.method == "DELETE" else SEEDED
    picks = [seeded.get(name, [1]) for name in renames]
    return st.tuples(*(st.sampled_from(p) for p in picks)).flatmap(
        lambda values: operation.as_strategy(
            path_parameters=dict(zip(renames.values(), values, strict=True)),
            query=query or None, **body))


def _id(route) -> str:
    return f"{route.method} {route.rule}"


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_responses_conform_to_the_document(api, route):
    server, schema, pkg = api
    operation = _operation(schema, route)

    def check(case):
        response = case.call(base_url=server.url, headers=KEY, timeout=10)
        case.validate_response(response, checks=CHECKS, headers=KEY)

    _run(operation.as_strategy(), EXAMPLES, check)
    if route.rule != "/" and ("<" in route.rule or operation.query or operation.headers
                              or operation.body):
        _run(operation.as_strategy(GenerationMode.NEGATIVE), EXAMPLES, check)
    aimed = _aimed(operation, route, pkg)
    if aimed is not None:
        _run(aimed, EXAMPLES, check)


@pytest.fixture(scope="module")
def scopeless(api) -> dict[str, str]:
    """Two tokens, each without the scopes of most routes: scope -> a key lacking it."""
    server, _, _ = api
    keys = {}
    for name, scope in (("no-builds", "targets:read"), ("no-targets", "builds:read")):
        made = _call(f"{server.url}/api/v2/tokens", "POST", json.dumps(
            {"name": name, "scopes": [scope]}).encode(), {"Content-Type": "application/json"})
        keys[scope] = made["secret"]
    return keys


@pytest.mark.parametrize("route", [r for r in ROUTES if r.scope != PUBLIC], ids=_id)
def test_a_route_refuses_a_caller_without_its_scope(api, scopeless, route):
    server, schema, _ = api
    operation = _operation(schema, route)
    other = scopeless["builds:read"] if route.scope.startswith("targets") \
        else scopeless["targets:read"]

    def check(case):
        case.headers = {k: v for k, v in (case.headers or {}).items()
                        if k.lower() not in ("x-api-key", "authorization")}
        response = case.call(base_url=server.url, timeout=10)
        assert response.status_code == 401, (case.as_curl_command(), response.text)
        if route.scope == "any":    # every valid key may: there is no scope to lack
            return
        response = case.call(base_url=server.url, headers={"X-Api-Key": other}, timeout=10)
        assert response.status_code == 403, (case.as_curl_command(), response.text)

    _run(operation.as_strategy(), 3, check)


# -- stateful: the document's links, create target -> queue -> poll -> finish -> list --------

# the operations a flow walks through by the document's links: add a target, submit a
# build of it, claim it (an agent's poll), finish it, list its target's builds (the others
# have links too: a build's and a target's page, start, cancel, a log chunk; the tests above
# call each of them, and after each finish the test reads the build as a client polls it)
FLOW = ["post_api_v2_targets", "post_api_v2_builds", "get_api_v1_jobs_poll",
        "post_api_v1_builds_by_build_id_finish", "get_api_v2_builds"]
SCENARIOS = 20         # state machine runs at least, each of at most STEPS calls
STEPS = 12
MAX_SCENARIOS = 250
FINAL = {"success", "failed", "timeout", "cancelled"}
# A flow's target and its builds: what of the generated bodies a flow keeps, and the
# target's kind, url, repo, arch and review (generated ones seldom pass the rules, and
# seldom make a target that a Vieter agent, without labels or review, may build; the tests
# above send all of them)
FLOW_TARGET = {"kind": "git", "url": "https://example.invalid/f.git", "repo": "flow",
               "arch": ["x86_64"], "review": "never"}
FLOW_TARGET_KEYS = ("branch", "path", "rebuild_on_dependency")
FLOW_BUILD_KEYS = ("target_id", "force")


def _cancel_unfinished(url: str) -> None:
    """Cancel what a scenario left pending, queued or running, so that the next one's
    polls claim only its own builds."""
    page = _call(f"{url}/api/v2/builds?states=pending,queued,running&per_page=5000")
    for build in page["resources"]:
        _call(f"{url}/api/v2/builds/{build['id']}/cancel", "POST")


def test_the_links_lead_from_a_target_to_its_finished_builds(api):
    """schemathesis' state machine over the document's links: it adds targets (with a real
    kind, url and repo, the rest generated), submits builds of them, polls, claims them as
    an agent, starts, cancels, appends to logs, finishes and lists them, with the same
    checks as above on every answer. After each finish the build is in a final state with
    the exit code it was given, and the list of its target's builds holds it."""
    server, _, _ = api
    finished: list[tuple[int, int]] = []
    scenarios = 0
    _cancel_unfinished(server.url)  # what the tests above left

    # valid values only (the tests above send invalid ones): a flow goes on from a 2xx
    flow = schemathesis.openapi.from_url(server.url + "/api/v2/openapi.json")
    flow.config.generation.update(modes=[GenerationMode.POSITIVE])

    class Flow(flow.include(operation_id=FLOW).as_state_machine()):
        def before_call(self, case):
            label = case.operation.label
            if label == "POST /api/v2/targets" and isinstance(case.body, dict):
                case.body = {**{k: v for k, v in case.body.items()
                                if k in FLOW_TARGET_KEYS}, **FLOW_TARGET}
            if label == "POST /api/v2/builds" and isinstance(case.body, dict) \
                    and "target_id" in case.body:  # a target's build, as the link makes it
                case.body = {k: v for k, v in case.body.items() if k in FLOW_BUILD_KEYS}
            if label == "GET /api/v1/jobs/poll" and case.query:
                for key in ("agent", "wait"):  # an unregistered agent is a 404
                    case.query.pop(key, None)

        def get_call_kwargs(self, case):
            return {"base_url": server.url, "headers": KEY, "timeout": 10}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, headers=KEY)

        def after_call(self, response, case):
            super().after_call(response, case)
            if case.operation.label == "POST /api/v1/builds/{build_id}/finish" \
                    and response.status_code == 200:
                build_id = int(case.path_parameters["build_id"])
                build = _call(f"{server.url}/api/v2/builds/{build_id}")
                assert build["status"] in FINAL, build
                assert build["exit_code"] == int(case.query["exitCode"]), build
                listed = _call(f"{server.url}/api/v2/builds?target_ids={build['target_id']}"
                               "&per_page=5000")
                assert build_id in [b["id"] for b in listed["resources"]], listed
                finished.append((build_id, build["exit_code"]))

        def teardown(self):
            nonlocal scenarios
            scenarios += 1
            _cancel_unfinished(server.url)
            super().teardown()

    # Batches of scenarios until SCENARIOS ran and one of them finished a build, at most
    # MAX_SCENARIOS. A batch is given up as flaky when the
    # server answers a replayed step otherwise than before (its state has moved on: ids,
    # claims); schemathesis' own runner then starts again, and so does this test. A failed
    # check is an error as always.
    while (scenarios < SCENARIOS or not finished) and scenarios < MAX_SCENARIOS:
        with contextlib.suppress(Flaky):
            Flow.run(settings=settings(max_examples=SCENARIOS, stateful_step_count=STEPS,
                                       deadline=None, database=None, phases=[Phase.generate],
                                       suppress_health_check=list(HealthCheck)))
    assert finished, f"none of {scenarios} scenarios got as far as finishing a build"
    print(f"{scenarios} scenarios, {len(finished)} builds finished")
