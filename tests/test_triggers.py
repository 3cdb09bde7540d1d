"""The trigger rules (vieter_lite/triggers.py) as tables: which triggers fire for which
end, the webhook's headers and signature, the email's subject, body and addresses, the
retry schedule, the server's public URL; and keeping a masked secret (targets.py)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json

import pytest

from vieter_lite import triggers
from vieter_lite.errors import Invalid
from vieter_lite.models import Build
from vieter_lite.targets import MASKED_SECRET, check_triggers, keep_secrets

STATES = ("success", "failed", "timeout", "cancelled")


@pytest.mark.parametrize("condition, fires_for", [
    ("always", {"success", "failed", "timeout", "cancelled"}),
    ("success", {"success"}),
    ("failure", {"failed", "timeout", "cancelled"}),
    ("sometimes", set()),
])
def test_a_condition_fires_for_its_states(condition, fires_for):
    assert {s for s in STATES if triggers.fires(condition, s)} == fires_for
    # a build that has not ended fires nothing
    assert not any(triggers.fires(condition, s) for s in ("pending", "queued", "running"))


HOOK = {"action": "webhook", "condition": "always", "url": "https://a.example/hook"}
MAIL = {"action": "email", "condition": "failure", "to": "me@example.com",
        "cc": ["you@example.com", "them@example.com"]}
ON_SUCCESS = {"action": "webhook", "condition": "success", "url": "https://b.example/"}


@pytest.mark.parametrize("build, target, state, expected", [
    ([HOOK], [], "success", [HOOK]),
    ([HOOK], [MAIL], "failed", [HOOK, MAIL]),          # the build's own first
    ([MAIL], [HOOK, ON_SUCCESS], "success", [HOOK, ON_SUCCESS]),
    ([MAIL], [ON_SUCCESS], "cancelled", [MAIL]),
    ([], [], "failed", []),
    ([ON_SUCCESS], [MAIL], "timeout", [MAIL]),
])
def test_firing_takes_the_builds_then_the_targets_triggers(build, target, state, expected):
    assert triggers.firing(json.dumps(build), json.dumps(target), state) == expected


@pytest.mark.parametrize("trigger, destination, recipients", [
    (HOOK, "https://a.example/hook", None),
    (MAIL, "me@example.com, you@example.com, them@example.com",
     ["me@example.com", "you@example.com", "them@example.com"]),
    ({"action": "email", "condition": "always", "to": "a@b.c"}, "a@b.c", ["a@b.c"]),
])
def test_destination_and_recipients(trigger, destination, recipients):
    check_triggers([trigger])
    assert triggers.destination(trigger) == destination
    if recipients is not None:
        assert triggers.recipients(trigger) == recipients


def test_the_signature_is_the_hmac_sha256_of_the_body():
    # RFC 4231, test case 2
    assert triggers.signature("Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@pytest.mark.parametrize("secret", ["", "s3cret"])
def test_webhook_headers(secret):
    body = b'{"id": 42}'
    headers = triggers.webhook_headers(body, "d-1", secret, "vieter-lite/1")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Vieter-Event"] == "build" and headers["X-Vieter-Delivery"] == "d-1"
    if secret:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Vieter-Signature"] == f"sha256={expected}"
    else:
        assert "X-Vieter-Signature" not in headers


@pytest.mark.parametrize("tags, state, subject", [
    (("nightly", "pi"), "failed", "[nightly pi] build #42 failed"),
    (("x",), "success", "[x] build #42 success"),
    ((), "timeout", "build #42 timeout"),
    ([], "cancelled", "build #42 cancelled"),
])
def test_subject(tags, state, subject):
    assert triggers.subject(42, state, tags) == subject


@pytest.mark.parametrize("start, end, text", [
    (100, 105, "5 s"), (100, 100, "0 s"), (0, 240, "4 min 0 s"), (0, 3723, "1 h 2 min 3 s"),
    (None, None, "-"), (100, None, "-"), (200, 100, "0 s"),
])
def test_duration(start, end, text):
    assert triggers.duration(start, end) == text


def _build(**fields) -> Build:
    values = {"id": 42, "target_id": 3, "arch": "x86_64", "status": "failed", "force": False,
              "created_at": 1000, "repo": "bur", "started_at": 1000, "ended_at": 1083,
              "exit_code": 2, "note": "Upgrade to *2.0*\nsee the changelog",
              "tasks": (("setup", "success"), ("source", "success"), ("build", "failed"),
                        ("publish", "skipped"))}
    values.update(fields)
    return Build(**values)


def test_the_email_body_has_status_duration_url_tasks_and_note():
    text = triggers.email_text(_build(), ("nightly",), "http://pi:8000")
    lines = text.splitlines()
    assert "status:   failed (exit code 2)" in lines
    assert "duration: 1 min 23 s" in lines
    assert "build:    http://pi:8000/api/v2/builds/42" in lines
    assert "from:     target 3" in lines and "tags:     nightly" in lines
    task_lines = [line.split() for line in lines if line.startswith("  ")]
    assert task_lines == [
        [name, state, f"http://pi:8000/api/v2/builds/42/tasks/{name}/log"]
        for name, state in (("setup", "success"), ("source", "success"), ("build", "failed"),
                            ("publish", "skipped"))]
    # the note as text, after the rest
    assert text.endswith("Note:\nUpgrade to *2.0*\nsee the changelog\n")


def test_the_email_body_of_a_manifest_build_without_note_or_tasks():
    text = triggers.email_text(_build(target_id=0, note="", tasks=(), status="cancelled",
                                      exit_code=None, started_at=None), (), "http://h")
    assert "status:   cancelled" in text.splitlines() and "from:     manifest" in text
    assert "duration: -" in text and "  (none)" in text and "Note:" not in text


def test_the_email_message_has_subject_from_to_cc_and_the_body():
    raw = triggers.email_message(_build(), ("a", "b"), "http://pi:8000", "ci@pi.example", MAIL,
                                 "d-7", 1_700_000_000)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "[a b] build #42 failed"
    assert message["From"] == "ci@pi.example" and message["To"] == "me@example.com"
    assert message["Cc"] == "you@example.com, them@example.com"
    assert message["X-Vieter-Delivery"] == "d-7"
    assert message["Message-ID"].endswith("@pi.example>")
    assert message.get_content() == triggers.email_text(_build(), ("a", "b"), "http://pi:8000")


@pytest.mark.parametrize("status, outcome", [
    (200, "delivered"), (204, "delivered"), (299, "delivered"),
    (None, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
    (400, "failed"), (404, "failed"), (410, "failed"), (301, "failed"), (100, "failed"),
])
def test_webhook_outcome(status, outcome):
    assert triggers.webhook_outcome(status) == outcome


@pytest.mark.parametrize("code, outcome", [
    (250, "delivered"), (None, "retry"), (421, "retry"), (451, "retry"), (452, "retry"),
    (550, "failed"), (554, "failed"), (535, "failed"),
])
def test_smtp_outcome(code, outcome):
    assert triggers.smtp_outcome(code) == outcome


DELAYS = (10.0, 60.0, 300.0)


@pytest.mark.parametrize("outcome, attempts, expected", [
    ("retry", 1, ("pending", 10.0)),
    ("retry", 2, ("pending", 60.0)),
    ("retry", 3, ("pending", 300.0)),
    ("retry", 4, ("failed", None)),          # 10 s, 60 s, 300 s, then it gives up
    ("delivered", 1, ("delivered", None)),
    ("delivered", 4, ("delivered", None)),
    ("failed", 1, ("failed", None)),         # a 4xx is not tried again
])
def test_the_retry_schedule(outcome, attempts, expected):
    assert triggers.after_attempt(outcome, attempts, DELAYS) == expected


def test_without_delays_nothing_is_retried():
    assert triggers.after_attempt("retry", 1, ()) == ("failed", None)


def test_the_excerpt_is_the_first_2_kib():
    assert triggers.excerpt(b"x" * 5000) == "x" * 2048
    assert triggers.excerpt(b"ok \xff") == "ok \ufffd"


@pytest.mark.parametrize("public_url, host, port, base", [
    ("https://builds.example/vl/", "0.0.0.0", 8000, "https://builds.example/vl"),
    ("", "192.0.2.1", 8000, "http://192.0.2.1:8000"),
    ("", "0.0.0.0", 8080, "http://pi4:8080"),
    ("", "::", 8000, "http://pi4:8000"),
    ("", "::1", 8000, "http://[::1]:8000"),
    ("", "localhost", 81, "http://localhost:81"),
])
def test_public_base(public_url, host, port, base):
    assert triggers.public_base(public_url, host, port, "pi4") == base


@pytest.mark.parametrize("text, delays", [
    ("10,60,300", (10.0, 60.0, 300.0)), (" 0.5 , 2", (0.5, 2.0)), ("", ()), ("7", (7.0,)),
])
def test_parse_delays(text, delays):
    assert triggers.parse_delays(text) == delays


@pytest.mark.parametrize("text", ["10,,60", "0", "-1", "nan", "inf", "ten"])
def test_bad_delays(text):
    with pytest.raises(ValueError):
        triggers.parse_delays(text)


# -- a masked secret sent back keeps the stored one (targets.py) -------------------------

STORED = [{"action": "webhook", "condition": "always", "url": "https://a.example/", "secret": "s1"},
          {"action": "webhook", "condition": "always", "url": "https://b.example/", "secret": ""}]


@pytest.mark.parametrize("sent, kept", [
    # read and sent back: the stored secret stays
    ([{**STORED[0], "secret": MASKED_SECRET}], [STORED[0]]),
    # a new secret replaces it; no secret removes it
    ([{**STORED[0], "secret": "s2"}], [{**STORED[0], "secret": "s2"}]),
    ([{k: v for k, v in STORED[0].items() if k != "secret"}],
     [{k: v for k, v in STORED[0].items() if k != "secret"}]),
    # an email trigger passes as it is
    ([MAIL, {**STORED[0], "secret": MASKED_SECRET, "condition": "failure"}],
     [MAIL, {**STORED[0], "condition": "failure"}]),
])
def test_keep_secrets(sent, kept):
    assert keep_secrets(sent, STORED) == kept


@pytest.mark.parametrize("sent", [
    [{**STORED[0], "url": "https://elsewhere.example/", "secret": MASKED_SECRET}],
    [{**STORED[1], "secret": MASKED_SECRET}],
])
def test_a_masked_secret_without_a_stored_one_is_refused(sent):
    with pytest.raises(Invalid) as caught:
        keep_secrets(sent, STORED)
    assert caught.value.field == "triggers[0].secret"


# -- a webhook's URL (targets.py check_triggers) ------------------------------------------

@pytest.mark.parametrize("url", ["http://[::1/", "http://h:abc/", "http:///x",
                                 "http://a b/", "ftp://h.example/", "http://h.example/\n", 42])
def test_a_webhook_needs_an_http_url_it_can_post_to(url):
    with pytest.raises(Invalid) as caught:
        check_triggers([{"action": "webhook", "condition": "always", "url": url}])
    assert caught.value.field == "triggers[0].url"


@pytest.mark.parametrize("url", ["http://[::1]:8080/hook", "https://h.example/x?token=1",
                                 "http://127.0.0.1:9/"])
def test_webhook_urls_that_pass(url):
    check_triggers([{"action": "webhook", "condition": "always", "url": url}])
