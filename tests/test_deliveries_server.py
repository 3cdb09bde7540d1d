"""Notifications from a real server process (tests/conftest.py ServerProcess): builds
ended through the agent's API over HTTP, webhooks to loopback receivers; a pending
delivery survives a restart, and a receiver that hangs holds up neither requests, nor
builds, nor the other deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from conftest import ServerProcess
from http_clients import KEY, ServerClient
from receivers import HANG, WebhookReceiver

pytestmark = pytest.mark.integration

JSON_KEY = {**KEY, "Content-Type": "application/json"}


def call(client: ServerClient, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    resp = client.request(method, path, data, JSON_KEY if headers is None else headers)
    assert resp.status < 300, resp
    return resp.json() if resp.body else None


def add_target(client: ServerClient, repo: str, triggers: list[dict[str, Any]]) -> int:
    return call(client, "POST", "/api/v2/targets",
                {"kind": "git", "url": f"https://example.invalid/{repo}.git", "repo": repo,
                 "arch": ["x86_64"], "schedule": "0 3 1 1", "triggers": triggers})["id"]


def end_build(client: ServerClient, target_id: int, exit_code: int) -> int:
    """Queue, claim (as an agent) and finish a build of the target."""
    build_id = call(client, "POST", f"/api/v1/jobs/queue?target={target_id}&arch=x86_64")["data"]
    (job,) = call(client, "GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2"
                               f"&build={build_id}")["data"]
    call(client, "POST", f"/api/v1/builds/{build_id}/finish?exitCode={exit_code}",
         headers={"Authorization": f"Bearer {job['token']}"})
    return build_id


def attempts(client: ServerClient, build_id: int) -> list[dict[str, Any]]:
    return call(client, "GET", f"/api/v2/builds/{build_id}/deliveries?per_page=5000")["resources"]


def wait_attempts(client: ServerClient, build_id: int, done: Any, timeout: float = 30.0
                  ) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not done(found := attempts(client, build_id)):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def test_a_pending_delivery_survives_a_restart(tmp_path):
    with WebhookReceiver(then=500) as receiver:
        proc = ServerProcess(tmp_path / "data", env_extra={
            "VIETER_TRIGGER_RETRY_DELAYS": "1,1,1,1,1,1,1,1"})
        proc.start()
        try:
            client = ServerClient(proc, KEY)
            target = add_target(client, "restarted",
                                [{"action": "webhook", "condition": "failure",
                                  "url": receiver.url, "secret": "s3cret"}])
            build_id = end_build(client, target, 2)
            before = wait_attempts(client, build_id, lambda found: len(found) >= 1)
            assert proc.stop() == 0, proc.log()
            # stopped with the delivery pending (it got 500s)
            assert {a["delivery"]["status"] for a in before} == {"pending"}
            receiver.then = 200
            proc.start()
            after = wait_attempts(client, build_id, lambda found: any(
                a["delivery"]["status"] != "pending" for a in found))
        finally:
            if proc.proc is not None and proc.proc.poll() is None:
                assert proc.stop() == 0, proc.log()
        statuses = [a["response_status"] for a in after]
        assert statuses[-1] == 200 and set(statuses[:-1]) == {500} and len(statuses) >= 2
        assert after[-1]["delivery"]["status"] == "delivered"
        requests = receiver.requests
        # at least once: an attempt under way at the stop is not recorded, and sent again
        assert len(requests) >= len(statuses)
        # one delivery, sent again after the restart: same uuid, same signed body
        assert len({r.headers["x-vieter-delivery"] for r in requests}) == 1
        assert len({r.body for r in requests}) == 1
        last = requests[-1]
        assert last.headers["x-vieter-signature"] == \
            "sha256=" + hmac.new(b"s3cret", last.body, hashlib.sha256).hexdigest()
        assert json.loads(last.body)["id"] == build_id


def test_a_hanging_receiver_holds_up_nothing_else(tmp_path):
    with WebhookReceiver([HANG]) as slow, WebhookReceiver() as fast:
        proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_TRIGGER_RETRY_DELAYS": "1"})
        proc.env_extra["VIETER_PUBLIC_URL"] = proc.url
        proc.start()
        try:
            client = ServerClient(proc, KEY)
            hanging = end_build(client, add_target(
                client, "slow", [{"action": "webhook", "condition": "always",
                                  "url": slow.url}]), 1)
            slow.wait_for(1)
            # the slow receiver holds its request (for up to the 10 s timeout): builds end,
            # requests are answered, and another build's webhook goes out meanwhile
            other = end_build(client, add_target(
                client, "fast", [{"action": "webhook", "condition": "always",
                                  "url": fast.url}]), 0)
            (got,) = fast.wait_for(1)
            shown = call(client, "GET", f"/api/v2/builds/{other}")
            assert call(client, "GET", "/health")["message"] == "Healthy."
            assert attempts(client, hanging) == [] and not slow.requests[0].answered
            # the body is the build's JSON, as GET shows it (links under public_url)
            assert json.loads(got.body) == shown
            slow.released.set()      # it hangs up without an answer: tried again
            found = wait_attempts(client, hanging, lambda found: any(
                a["delivery"]["status"] != "pending" for a in found))
        finally:
            assert proc.stop() == 0, proc.log()
        assert [a["response_status"] for a in found] == [None, 200]
        assert found[0]["error"] and found[-1]["delivery"]["status"] == "delivered"
