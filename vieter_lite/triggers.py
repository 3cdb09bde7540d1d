"""Triggers (builds.sr.ht's), as pure rules: which fire when a build ends, what a webhook
request and an email carry, and whether and when a failed attempt is tried again."""

from __future__ import annotations

import hashlib
import hmac
import json
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from vieter_lite.models import Build

# the build states each condition fires on ("failure": every way a build ends badly)
CONDITION_STATES: dict[str, tuple[str, ...]] = {
    "always": ("success", "failed", "timeout", "cancelled"),
    "success": ("success",),
    "failure": ("failed", "timeout", "cancelled"),
}
# seconds before the 2nd, 3rd, 4th attempt; after the last one fails, the delivery fails
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (10.0, 60.0, 300.0)
EXCERPT_BYTES = 2048     # how much of an answer is kept with an attempt
EVENT = "build"

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"


def fires(condition: str, state: str) -> bool:
    """Whether a trigger with `condition` fires for a build that ended in `state`."""
    return state in CONDITION_STATES.get(condition, ())


def firing(build_triggers: str, target_triggers: str, state: str) -> list[dict[str, Any]]:
    """The triggers (JSON lists as stored) that fire for a build that ended in `state`:
    the build's own, then its target's."""
    found = json.loads(build_triggers) + json.loads(target_triggers)
    return [t for t in found if fires(t.get("condition", ""), state)]


def destination(trigger: dict[str, Any]) -> str:
    """Where a trigger sends: a webhook's URL, an email's addresses (To, then Cc)."""
    if trigger["action"] == "webhook":
        return str(trigger["url"])
    return ", ".join([trigger["to"], *(trigger.get("cc") or [])])


def recipients(trigger: dict[str, Any]) -> list[str]:
    """An email trigger's envelope recipients: To and every Cc."""
    return [trigger["to"], *(trigger.get("cc") or [])]


def signature(secret: str, body: bytes) -> str:
    """`X-Vieter-Signature`: the hex HMAC-SHA256 of the body, keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(body: bytes, delivery: str, secret: str = "",
                    user_agent: str = "vieter-lite") -> dict[str, str]:
    """The headers of a webhook's POST; signed when the trigger has a secret."""
    headers = {"Content-Type": "application/json", "User-Agent": user_agent,
               "X-Vieter-Event": EVENT, "X-Vieter-Delivery": delivery}
    if secret:
        headers["X-Vieter-Signature"] = signature(secret, body)
    return headers


def subject(build_id: int, state: str, tags: tuple[str, ...] | list[str]) -> str:
    """`[tag1 tag2] build #42 failed`, without the brackets when there are no tags."""
    prefix = f"[{' '.join(tags)}] " if tags else ""
    return f"{prefix}build #{build_id} {state}"


def duration(started_at: int | None, ended_at: int | None) -> str:
    """`1 h 2 min 3 s`, `4 min 0 s`, `5 s`; `-` when the build never started."""
    if started_at is None or ended_at is None:
        return "-"
    seconds = max(0, ended_at - started_at)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min {seconds} s"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def email_text(build: Build, tags: tuple[str, ...] | list[str], base: str) -> str:
    """The body of a build's email: status, duration, the build's URL, one line per task,
    and the note as plain text."""
    here = f"{base}/api/v2/builds/{build.id}"
    status = build.state if build.exit_code is None \
        else f"{build.state} (exit code {build.exit_code})"
    source = f"target {build.target_id}" if build.has_target else "manifest"
    lines = [f"Build #{build.id} {build.state}.", "",
             f"status:   {status}",
             f"repo:     {build.repo} ({build.arch})",
             f"from:     {source}",
             f"duration: {duration(build.started_at, build.ended_at)}",
             f"tags:     {' '.join(tags) or '-'}",
             f"build:    {here}",
             f"log:      {here}/log/content", "", "Tasks:"]
    width = max((len(name) for name, _ in build.tasks), default=0)
    lines += [f"  {name.ljust(width)}  {state.ljust(7)}  {here}/tasks/{name}/log"
              for name, state in build.tasks] or ["  (none)"]
    if build.note:
        lines += ["", "Note:", build.note]
    return "\n".join(lines) + "\n"


def email_message(build: Build, tags: tuple[str, ...] | list[str], base: str, sender: str,
                  trigger: dict[str, Any], delivery: str, now: float) -> bytes:
    """The whole message of an email trigger, as sent on every attempt."""
    message = EmailMessage()
    message["Subject"] = subject(build.id, build.state, tags)
    message["From"] = sender
    message["To"] = trigger["to"]
    if trigger.get("cc"):
        message["Cc"] = ", ".join(trigger["cc"])
    message["Date"] = formatdate(now, localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(f"build{build.id}",
                                       domain=sender.rpartition("@")[2] or "localhost")
    message["X-Vieter-Event"] = EVENT
    message["X-Vieter-Delivery"] = delivery
    message.set_content(email_text(build, tags, base))
    return message.as_bytes()


def webhook_outcome(status: int | None) -> str:
    """A webhook attempt's outcome from its HTTP status (None: no answer, a network
    error or a timeout): 2xx delivered; no answer or 5xx tried again; else failed."""
    if status is None or status >= 500:
        return RETRY
    return DELIVERED if 200 <= status < 300 else FAILED


def smtp_outcome(code: int | None) -> str:
    """An email attempt's outcome from the SMTP reply code that ended it (None: no
    answer): 2xx delivered; no answer or 4xx (transient) tried again; 5xx failed."""
    if code is None or 400 <= code < 500:
        return RETRY
    return DELIVERED if 200 <= code < 300 else FAILED


def after_attempt(outcome: str, attempts: int, delays: tuple[float, ...]
                  ) -> tuple[str, float | None]:
    """(status, seconds until the next attempt) after `attempts` attempts of which the
    last had `outcome`: pending again after the next delay while one is left."""
    if outcome == RETRY and attempts <= len(delays):
        return "pending", delays[attempts - 1]
    return (DELIVERED if outcome == DELIVERED else FAILED), None


def excerpt(data: bytes) -> str:
    """What an attempt keeps of an answer: its first EXCERPT_BYTES, as text."""
    return data[:EXCERPT_BYTES].decode("utf-8", "replace")


def public_base(public_url: str, host: str, port: int, hostname: str) -> str:
    """The server's URL in what it sends out: `public_url`, else http://<host>:<port>
    (this machine's name for a wildcard host)."""
    if public_url:
        return public_url.rstrip("/")
    if host in ("", "0.0.0.0", "::"):
        host = hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def parse_delays(text: str) -> tuple[float, ...]:
    """`10,60,300` -> (10.0, 60.0, 300.0); each a number of seconds > 0; `` -> no retry."""
    if not text.strip():
        return ()
    delays = []
    for part in text.split(","):
        value = float(part.strip())
        if not value > 0 or value == float("inf"):
            raise ValueError(f"'{part.strip()}' is not a number of seconds > 0")
        delays.append(value)
    return tuple(delays)
