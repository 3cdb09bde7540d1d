"""Notifications of ended builds, in-process with real parts: the app (webtest) and its
services on a fresh data dir, builds ended through the agent's API, the deliveries
worker in a thread, a loopback HTTP receiver and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import webtest

from conftest import make_config
from http_clients import KEY, InProcessClient
from receivers import HANG, SmtpReceiver, WebhookReceiver
from vieter_lite.db import Database
from vieter_lite.db.schema import MIGRATIONS
from vieter_lite.deliveries import Deliveries
from vieter_lite.notify import SmtpSettings
from vieter_lite.services import Services, build_services
from vieter_lite.web.app import make_app
from vieter_lite.web.v2.deliveries import webhook_renderer

JSON_KEY = {**KEY, "Content-Type": "application/json"}
QUIET = "0 3 1 1"
FAST = (0.05, 0.05, 0.05)      # retry delays for the tests


class Env:
    """Services with a Deliveries made for the test (short delays and timeout), the app,
    and the worker thread, started on demand."""

    def __init__(self, services: Services, smtp: SmtpSettings | None = None,
                 delays: tuple[float, ...] = FAST, timeout: float = 2.0):
        self.services = services
        # the links webtest's requests get: the webhook body must equal GET's answer
        self.base = "http://localhost:80"
        self.deliveries = Deliveries(services.db, self.base, smtp or SmtpSettings(),
                                     render=webhook_renderer(self.base), delays=delays,
                                     timeout=timeout)
        services.deliveries = self.deliveries
        services.logs.listen(self.deliveries.wake)
        self.app = webtest.TestApp(make_app(services))
        self.client = InProcessClient(self.app, services, KEY)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Env:
        self.thread = threading.Thread(target=self.deliveries.run, args=(self.stop,),
                                       daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.deliveries.wake()
        if self.thread is not None:
            self.thread.join(10)

    # -- the API ------------------------------------------------------------------------

    def send(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        resp = self.client.request(method, path, data, JSON_KEY)
        assert resp.status < 300, resp
        return resp.json() if resp.body else None

    def target(self, repo: str, triggers: list[dict[str, Any]]) -> int:
        return self.send("POST", "/api/v2/targets",
                         {"kind": "git", "url": f"https://example.invalid/{repo}.git",
                          "repo": repo, "arch": ["x86_64"], "schedule": QUIET,
                          "triggers": triggers})["id"]

    def end_build(self, target_id: int, exit_code: int = 0, status: str = "",
                  tags: list[str] | None = None,
                  triggers: list[dict[str, Any]] | None = None) -> int:
        """Queue a build of the target (submitted through /api/v2 with the build's own
        `tags` and `triggers` when given), claim it as an agent and finish it."""
        if tags or triggers:
            build_id = self.send("POST", "/api/v2/builds", {
                "target_id": target_id, "arch": "x86_64", "force": True, "tags": tags or [],
                "triggers": triggers or []})["id"]
        else:
            build_id = self.send("POST", f"/api/v1/jobs/queue?target={target_id}"
                                         "&arch=x86_64&force=true")["data"]
        jobs = self.send("GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2"
                              f"&build={build_id}")["data"]
        token = {"Authorization": f"Bearer {jobs[0]['token']}"}
        extra = f"&status={status}" if status else ""
        resp = self.client.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode="
                                           f"{exit_code}{extra}", headers=token)
        assert resp.status == 200, resp
        return build_id

    def attempts(self, build_id: int, query: str = "") -> list[dict[str, Any]]:
        return self.send("GET", f"/api/v2/builds/{build_id}/deliveries?per_page=5000"
                                f"{'&' + query if query else ''}")["resources"]

    def settled(self, build_id: int, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The attempts once every delivery of the build is delivered or failed (and
        `count` attempts were made)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.attempts(build_id)
            if len(found) >= count and all(a["delivery"]["status"] != "pending" for a in found):
                return found
            assert time.monotonic() < deadline, found
            time.sleep(0.02)


@pytest.fixture
def env(services) -> Iterator[Env]:
    e = Env(services)
    yield e
    e.close()


def webhook(url: str, condition: str = "always", secret: str | None = None) -> dict[str, Any]:
    trigger = {"action": "webhook", "condition": condition, "url": url}
    if secret is not None:
        trigger["secret"] = secret
    return trigger


# -- webhooks ---------------------------------------------------------------------------

def test_a_webhook_posts_the_builds_json_signed_with_its_secret(env):
    with WebhookReceiver() as receiver:
        target = env.target("hooked", [webhook(receiver.url, "failure", "s3cret")])
        env.start()
        build_id = env.end_build(target, exit_code=1)
        (got,) = receiver.wait_for(1)
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-vieter-event"] == "build"
        expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-vieter-signature"] == f"sha256={expected}"
        # the body is the build as GET /api/v2/builds/:id shows it
        assert json.loads(got.body) == env.send("GET", f"/api/v2/builds/{build_id}")
        (attempt,) = env.settled(build_id, 1)
    assert attempt["action"] == "webhook" and attempt["destination"] == receiver.url
    assert attempt["response_status"] == 200 and attempt["error"] is None
    assert attempt["response"] == "answer 200 to request 1"
    assert attempt["delivery"]["status"] == "delivered"
    assert attempt["delivery"]["uuid"] == got.headers["x-vieter-delivery"]
    assert attempt["condition"] == "failure" and attempt["build_id"] == build_id


def test_only_triggers_whose_condition_holds_fire(env):
    with WebhookReceiver() as receiver:
        target = env.target("conds", [webhook(receiver.url + "?on=failure", "failure"),
                                      webhook(receiver.url + "?on=success", "success"),
                                      webhook(receiver.url + "?on=always", "always")])
        env.start()
        ok_build = env.end_build(target, 0)
        assert {a["destination"].rsplit("=", 1)[1] for a in env.settled(ok_build, 2)} == \
            {"success", "always"}
        timed_out = env.end_build(target, 124, "timeout")
        assert {a["destination"].rsplit("=", 1)[1] for a in env.settled(timed_out, 2)} == \
            {"failure", "always"}
        assert len(receiver.wait_for(4)) == 4
        # without a secret, nothing is signed
        assert all("x-vieter-signature" not in r.headers for r in receiver.requests)


def test_a_5xx_is_retried_until_it_is_delivered(env):
    with WebhookReceiver([500, 503, 200]) as receiver:
        target = env.target("retried", [webhook(receiver.url)])
        env.start()
        build_id = env.end_build(target, 1)
        attempts = env.settled(build_id, 3)
        requests = receiver.wait_for(3)
    assert [a["response_status"] for a in attempts] == [500, 503, 200]
    assert {a["delivery"]["status"] for a in attempts} == {"delivered"}
    assert attempts[-1]["delivery"]["attempts"] == 3
    # every attempt is the same delivery, with the same body
    assert len({r.headers["x-vieter-delivery"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    # newest first, and only webhooks
    newest = env.attempts(build_id, "order_by=-created_at&actions=webhook")
    assert [a["id"] for a in newest] == sorted((a["id"] for a in attempts), reverse=True)
    assert env.attempts(build_id, "actions=email") == []


def test_a_5xx_every_time_gives_up_after_the_last_delay(env):
    with WebhookReceiver(then=502) as receiver:
        target = env.target("gaveup", [webhook(receiver.url)])
        env.start()
        build_id = env.end_build(target, 0)
        attempts = env.settled(build_id, 4)
        receiver.wait_for(4)
    assert [a["response_status"] for a in attempts] == [502] * 4
    assert attempts[-1]["delivery"]["status"] == "failed"


def test_a_4xx_is_not_retried(env):
    with WebhookReceiver([404]) as receiver:
        target = env.target("gone", [webhook(receiver.url)])
        env.start()
        build_id = env.end_build(target, 0)
        (attempt,) = env.settled(build_id, 1)
    assert attempt["response_status"] == 404 and attempt["delivery"]["status"] == "failed"
    assert len(receiver.requests) == 1


def test_no_answer_is_retried(env):
    with WebhookReceiver() as receiver:
        url = receiver.url
    target = env.target("refused", [webhook(url)])   # nobody listens there any more
    env.start()
    build_id = env.end_build(target, 0)
    attempts = env.settled(build_id, 4)
    assert all(a["response_status"] is None and a["error"] for a in attempts)
    assert attempts[-1]["delivery"]["status"] == "failed"


def test_a_receiver_that_never_answers_times_out_and_holds_nothing_else_up(services):
    env = Env(services, timeout=0.5)
    try:
        with WebhookReceiver([HANG, HANG]) as slow, WebhookReceiver() as fast:
            target = env.target("slow", [webhook(slow.url), webhook(fast.url)])
            env.start()
            build_id = env.end_build(target, 1)
            slow.wait_for(1)
            # while the slow receiver holds its request, the other one is delivered, and
            # requests and builds go on
            fast.wait_for(1)
            other = env.end_build(env.target("other", []), 0)
            assert env.send("GET", f"/api/v2/builds/{other}")["status"] == "success"
            assert not slow.released.is_set() and not slow.requests[0].answered
            attempts = env.settled(build_id, 4)
            assert len(slow.requests) == 3
    finally:
        env.close()
    by_url = {}
    for attempt in attempts:
        by_url.setdefault(attempt["destination"], []).append(attempt)
    assert [a["error"] for a in by_url[slow.url]] == ["timed out", "timed out", None]
    assert [a["response_status"] for a in by_url[slow.url]] == [None, None, 200]
    assert [a["response_status"] for a in by_url[fast.url]] == [200]


def test_a_builds_own_triggers_fire_with_its_targets(env):
    with WebhookReceiver() as receiver:
        target = env.target("both", [webhook(receiver.url + "?from=target")])
        env.start()
        build_id = env.end_build(target, 0,
                                 triggers=[webhook(receiver.url + "?from=build")])
        attempts = env.settled(build_id, 2)
    # the build's own triggers come first (the attempts themselves run side by side)
    by_delivery = sorted(attempts, key=lambda a: a["delivery"]["id"])
    assert [a["destination"].rsplit("=", 1)[1] for a in by_delivery] == ["build", "target"]


# -- email ------------------------------------------------------------------------------

def test_an_email_goes_through_the_smtp_server(services):
    with SmtpReceiver() as smtp:
        env = Env(services, SmtpSettings(host="127.0.0.1", port=smtp.port,
                                         sender="ci@pi.example", starttls=False))
        try:
            target = env.target("mailed", [{"action": "email", "condition": "failure",
                                            "to": "me@example.com",
                                            "cc": ["you@example.com", "them@example.com"]}])
            env.start()
            build_id = env.end_build(target, 1)
            (mail_from, rcpts, raw), = smtp.wait_for(1)
            (attempt,) = env.settled(build_id, 1)
            tasks = env.send("GET", f"/api/v2/builds/{build_id}")["tasks"]
        finally:
            env.close()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == f"build #{build_id} failed"
    assert message["To"] == "me@example.com"
    assert message["Cc"] == "you@example.com, them@example.com"
    assert mail_from == "ci@pi.example"
    assert sorted(rcpts) == ["me@example.com", "them@example.com", "you@example.com"]
    body = message.get_content()
    assert "status:   failed (exit code 1)" in body
    assert f"build:    http://localhost:80/api/v2/builds/{build_id}" in body
    # one line per task: name, status, its log
    lines = [line.split() for line in body.splitlines() if line.startswith("  ")]
    assert lines == [[t["name"], t["status"], t["log"]] for t in tasks] and len(lines) == 4
    assert attempt["action"] == "email" and attempt["response_status"] == 250
    assert attempt["destination"] == "me@example.com, you@example.com, them@example.com"
    assert attempt["delivery"]["status"] == "delivered"


def test_the_subject_carries_the_builds_tags(services):
    with SmtpReceiver() as smtp:
        env = Env(services, SmtpSettings(host="127.0.0.1", port=smtp.port,
                                         sender="ci@pi.example", starttls=False))
        try:
            target = env.target("tagged", [])
            env.start()
            build_id = env.end_build(target, 0, tags=["nightly", "pi"], triggers=[
                {"action": "email", "condition": "success", "to": "me@x.example"}])
            (_, rcpts, raw), = smtp.wait_for(1)
        finally:
            env.close()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == f"[nightly pi] build #{build_id} success" and \
        rcpts == ["me@x.example"]


def test_without_smtp_host_an_email_fails_with_the_reason(env):
    target = env.target("nomail", [{"action": "email", "condition": "always",
                                    "to": "me@example.com"}])
    env.start()
    build_id = env.end_build(target, 0)
    (attempt,) = env.settled(build_id, 1)
    assert attempt["delivery"]["status"] == "failed"
    assert attempt["error"] == "email is not configured (smtp_host is empty)"


# -- what is kept ----------------------------------------------------------------------

def test_a_build_that_ended_before_a_crash_is_still_notified(tmp_path, services):
    with WebhookReceiver() as receiver:
        before = Env(services)
        target = before.target("crash", [webhook(receiver.url)])
        build_id = before.end_build(target, 1)    # no worker ran: the process "crashed"
        services.db.close()
        again = build_services(make_config(tmp_path))
        after = Env(again).start()
        try:
            (attempt,) = after.settled(build_id, 1)
            (got,) = receiver.wait_for(1)
        finally:
            after.close()
            again.db.close()
    assert attempt["delivery"]["status"] == "delivered"
    assert json.loads(got.body)["id"] == build_id


def test_builds_that_ended_before_the_upgrade_are_not_notified(tmp_path):
    class Before(Database):
        migrations = MIGRATIONS[:8]

    old = Before(tmp_path / "v.sqlite")
    old._run("INSERT INTO targets (kind, url, repo, triggers) VALUES ('git', 'u', 'r', ?)",
             json.dumps([webhook("http://127.0.0.1:9/")]))
    for status in ("success", "failed", "cancelled", "running", "queued"):
        old._run("INSERT INTO builds (target_id, arch, status, created_at) "
                 "VALUES (1, 'x86_64', ?, 1)", status)
    old.close()
    db = Database(tmp_path / "v.sqlite")
    try:
        assert db.builds_to_notify(100) == []
        db._run("UPDATE builds SET status = 'failed' WHERE status = 'running'")
        assert db.builds_to_notify(100) == [4]
    finally:
        db.close()


def test_a_webhooks_secret_is_masked_and_kept_when_sent_back(env):
    with WebhookReceiver() as receiver:
        target = env.target("masked", [webhook(receiver.url, secret="s3cret")])
        shown = env.send("GET", f"/api/v2/targets/{target}")
        assert shown["triggers"][0]["secret"] == "********"
        assert "s3cret" not in json.dumps(shown)
        # an edit sends back what it read, with another condition
        trigger = {**shown["triggers"][0], "condition": "failure"}
        env.send("PATCH", f"/api/v2/targets/{target}", {"triggers": [trigger]})
        env.start()
        build_id = env.end_build(target, 1)
        (got,) = receiver.wait_for(1)
        env.settled(build_id, 1)
    expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-vieter-signature"] == f"sha256={expected}"


def test_a_masked_secret_for_another_url_is_refused(env):
    target = env.target("moved", [webhook("https://a.example/hook", secret="s3cret")])
    resp = env.client.request("PATCH", f"/api/v2/targets/{target}", json.dumps(
        {"triggers": [webhook("https://b.example/hook", secret="********")]}).encode(),
        JSON_KEY)
    assert resp.status == 422 and "triggers[0].secret" in resp.json()["errors"][0]["detail"]


# -- the list ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, status, code", [
    ("/api/v2/builds/999999/deliveries", 404, 10010),
    ("/api/v2/builds/1/deliveries?colour=red", 400, 10005),
    ("/api/v2/builds/1/deliveries?actions=sms", 400, 10005),
    ("/api/v2/builds/1/deliveries?order_by=destination", 400, 10005),
    ("/api/v2/builds/x/deliveries", 400, None),
])
def test_the_list_refuses_bad_requests(env, path, status, code):
    env.end_build(env.target("plain", []), 0)
    resp = env.client.request("GET", path, headers=KEY)
    assert resp.status == status, resp
    if code is not None:
        assert resp.json()["errors"][0]["code"] == code


def test_the_list_follows_the_builds_access_list(env):
    with WebhookReceiver() as receiver:
        env.start()
        build_id = env.send("POST", "/api/v2/builds", {
            "target_id": env.target("private", []), "arch": "x86_64", "force": True,
            "access:read": ["alice"], "triggers": [webhook(receiver.url)]})["id"]
        jobs = env.send("GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2"
                             f"&build={build_id}")["data"]
        assert env.client.request("POST", f"/api/v1/builds/{build_id}/finish?exitCode=0",
                                  headers={"Authorization": f"Bearer {jobs[0]['token']}"}
                                  ).status == 200
        env.settled(build_id, 1)
    secrets = {user: env.send("POST", "/api/v2/tokens", {"name": user, "user": user,
                                                         "scopes": ["builds:read"]})["secret"]
               for user in ("alice", "bob")}
    path = f"/api/v2/builds/{build_id}/deliveries"
    alice = env.client.request("GET", path, headers={"X-Api-Key": secrets["alice"]})
    assert alice.status == 200 and len(alice.json()["resources"]) == 1
    bob = env.client.request("GET", path, headers={"X-Api-Key": secrets["bob"]})
    assert bob.status == 403 and bob.json()["errors"][0]["code"] == 10003


def test_a_build_without_triggers_lists_no_attempts(env):
    build_id = env.end_build(env.target("quiet", []), 0)
    body = env.send("GET", f"/api/v2/builds/{build_id}/deliveries")
    assert body["resources"] == [] and body["pagination"]["total_results"] == 0
