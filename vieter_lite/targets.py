"""Targets: what is built, from where, on which archs and when. Every rule about a target
lives here; /api/v1 builds a TargetSpec from query parameters, /api/v2 from JSON."""

from __future__ import annotations

import builtins
import dataclasses
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vieter_lite import agents, badge, cron, lists, names
from vieter_lite.db import Database
from vieter_lite.db.lists import TARGETS_TABLE
from vieter_lite.errors import Invalid, NotFound
from vieter_lite.lists import ListQuery
from vieter_lite.models import Build, Target
from vieter_lite.scheduler import Scheduler

KINDS = ("git", "url")
TEXT_FIELDS = ("kind", "url", "branch", "path", "repo", "schedule", "review")
REVIEWS = ("never", "changes", "always")
MAX_LABELS = 50
MAX_TRIGGERS = 10
TRIGGER_ACTIONS = {"webhook": ("url", "secret"), "email": ("to", "cc")}
CONDITIONS = ("always", "failure", "success")
HTTP_SCHEMES = ("http", "https")
MAX_URL = 2048
# how the API shows a webhook's stored secret (web/v2/shapes.py public_triggers); sent back
# in an edit, it keeps the secret stored for that URL
MASKED_SECRET = "********"


@dataclass(frozen=True)
class TargetSpec:
    """A new target, or the fields of an edit (None: unchanged)."""

    kind: str | None = None
    url: str | None = None
    branch: str | None = None
    path: str | None = None
    repo: str | None = None
    schedule: str | None = None
    archs: tuple[str, ...] | None = None
    review: str | None = None
    labels: dict[str, str] | None = None
    triggers: list[dict[str, Any]] | None = None
    agent_labels: dict[str, str] | None = None
    rebuild_on_dependency: bool | None = None

    def fields(self) -> dict[str, str]:
        out = {name: value for name in TEXT_FIELDS
               if (value := getattr(self, name)) is not None}
        if self.triggers is not None:
            out["triggers"] = json.dumps(self.triggers, separators=(",", ":"))
        if self.agent_labels is not None:
            out["agent_labels"] = agent_labels_text(self.agent_labels)
        if self.rebuild_on_dependency is not None:
            out["rebuild_on_dependency"] = "1" if self.rebuild_on_dependency else "0"
        return out


def agent_labels_text(labels: dict[str, str]) -> str:
    """The labels a build needs in an agent as stored (a JSON object, keys in order)."""
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


def check_labels(labels: dict[str, str]) -> None:
    """metadata.labels: Kubernetes-style keys and values, at most MAX_LABELS."""
    if len(labels) > MAX_LABELS:
        raise Invalid("metadata.labels", "too_many", f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not lists.is_label_key(key):
            raise Invalid("metadata.labels", "invalid", f"invalid label key {key!r}")
        if not isinstance(value, str) or not lists.is_label_value(value):
            raise Invalid(f"metadata.labels.{key}", "invalid", f"invalid label value {value!r}")


def check_url(field: str, value: Any, schemes: tuple[str, ...] = HTTP_SCHEMES) -> str:
    """An absolute URL with one of `schemes` and a host, at most MAX_URL characters, without
    spaces or control characters (which urlsplit would drop silently)."""
    what = "an http(s) URL" if schemes == HTTP_SCHEMES else f"a URL ({', '.join(schemes)})"
    if not isinstance(value, str) or len(value) > MAX_URL \
            or any(ch <= " " or ch == "\x7f" for ch in value):
        raise Invalid(field, "invalid", f"not {what}")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 (a port out of range or not a number raises here)
    except ValueError:  # an unclosed IPv6 bracket, a bad port
        raise Invalid(field, "invalid", f"not {what}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise Invalid(field, "invalid", f"not {what}")
    return value


def check_triggers(triggers: list[dict[str, Any]]) -> None:
    """builds.sr.ht's triggers: webhook (url, secret) or email (to, cc), each with a
    condition."""
    if len(triggers) > MAX_TRIGGERS:
        raise Invalid("triggers", "too_many", f"at most {MAX_TRIGGERS} triggers")
    for i, trigger in enumerate(triggers):
        where = f"triggers[{i}]"
        if not isinstance(trigger, dict):
            raise Invalid(where, "invalid", "a trigger is an object")
        action = trigger.get("action")
        if not isinstance(action, str) or action not in TRIGGER_ACTIONS:
            raise Invalid(f"{where}.action", "invalid", "one of webhook, email")
        allowed = {"action", "condition", *TRIGGER_ACTIONS[action]}
        for key in trigger:
            if key not in allowed:
                raise Invalid(f"{where}.{key}", "unknown", f"not a field of a {action} trigger")
        if trigger.get("condition") not in CONDITIONS:
            raise Invalid(f"{where}.condition", "invalid", "one of always, failure, success")
        if action == "webhook":
            check_url(f"{where}.url", trigger.get("url"))
            if not isinstance(trigger.get("secret", ""), str):
                raise Invalid(f"{where}.secret", "invalid", "a string")
        else:
            cc = trigger.get("cc", [])
            if not isinstance(cc, list):
                raise Invalid(f"{where}.cc", "invalid", "a list of email addresses")
            addresses = [(f"{where}.to", trigger.get("to"))]
            addresses += [(f"{where}.cc[{j}]", address) for j, address in enumerate(cc)]
            for field, address in addresses:
                if not isinstance(address, str) or "@" not in address or len(address) > 254 \
                        or any(ch < " " or ch == "\x7f" for ch in address):
                    raise Invalid(field, "invalid", "not an email address")


def keep_secrets(triggers: list[dict[str, Any]], stored: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """Triggers of an edit, with each webhook's masked secret (as a client read it and sent
    it back) replaced by the secret stored for its URL."""
    secrets = {t.get("url"): t.get("secret", "") for t in stored
               if t.get("action") == "webhook"}
    kept = []
    for i, trigger in enumerate(triggers):
        if trigger.get("action") == "webhook" and trigger.get("secret") == MASKED_SECRET:
            if not secrets.get(trigger.get("url")):
                raise Invalid(f"triggers[{i}].secret", "invalid",
                              f"'{MASKED_SECRET}' stands for the stored secret of a webhook "
                              "with this url, and there is none: send the secret itself")
            trigger = {**trigger, "secret": secrets[trigger.get("url")]}
        kept.append(trigger)
    return kept


def check_archs(archs: tuple[str, ...]) -> tuple[str, ...]:
    """Each a safe arch name, not 'any'; de-duplicated in order."""
    result: list[str] = []
    for arch in archs:
        try:
            names.check_arch(arch)
        except ValueError as exc:
            raise Invalid("arch", "invalid", str(exc)) from None
        if arch == "any":
            raise Invalid("arch", "invalid", "'any' is not an architecture to build on")
        if arch not in result:
            result.append(arch)
    return tuple(result)


def check_spec(spec: TargetSpec, creating: bool) -> None:
    """Every check before anything is saved; the messages are the ones Vieter's clients see."""
    if spec.agent_labels is not None:
        agents.check_labels("agent_labels", spec.agent_labels)
    fields = spec.fields()
    if creating:
        for required in ("kind", "url", "repo"):
            if not fields.get(required):
                raise Invalid(required, "missing", f"Missing parameter: {required}.")
    if "kind" in fields and fields["kind"] not in KINDS:
        raise Invalid("kind", "invalid", "Invalid kind.")
    if "url" in fields and not fields["url"].strip():
        raise Invalid("url", "empty", "url must not be empty.")
    if "repo" in fields:
        try:
            names.check_repo(fields["repo"])
        except ValueError as exc:
            raise Invalid("repo", "invalid", str(exc)) from None
    if fields.get("schedule"):
        try:
            cron.parse(fields["schedule"])
        except cron.CronError as exc:
            raise Invalid("schedule", "invalid", str(exc)) from None
    if spec.review is not None and spec.review not in REVIEWS:
        raise Invalid("review", "invalid", "one of never, changes, always")
    if spec.labels is not None:
        check_labels(spec.labels)
    if spec.triggers is not None:
        check_triggers(spec.triggers)
    if spec.rebuild_on_dependency is not None and not isinstance(spec.rebuild_on_dependency,
                                                                 bool):
        raise Invalid("rebuild_on_dependency", "invalid", "true or false")


class Targets:
    """Add, edit, remove and read targets; keeps their next runs and queued builds in step."""

    def __init__(self, db: Database, scheduler: Scheduler, default_arch: str):
        self.db = db
        self.scheduler = scheduler
        self.default_arch = default_arch
        self._listeners: builtins.list[Callable[[str], None]] = []

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call `listener(repo)` after a target of `repo` was added, changed or removed (a
        target that moved to another repo: for both)."""
        self._listeners.append(listener)

    def _changed(self, *repos: str) -> None:
        for repo in dict.fromkeys(repos):
            for listener in self._listeners:
                listener(repo)

    def get(self, target_id: int) -> Target:
        target = self.db.target(target_id)
        if target is None:
            raise NotFound("Target not found.")
        return target

    def badge_status(self, target_id: int) -> str:
        """The status a target's badge shows (badge.target_status); NotFound for no such
        target."""
        self.get(target_id)
        return badge.target_status(*self.db.target_results(target_id))

    def exists(self, target_id: int) -> bool:
        return self.db.target(target_id) is not None

    def list(self, limit: int = 0, offset: int = 0, repo: str = "", query: str = "",
             arch: str = "") -> list[Target]:
        return self.db.targets(limit=limit, offset=offset, repo=repo, query=query, arch=arch)

    def add(self, spec: TargetSpec) -> int:
        check_spec(spec, creating=True)
        if spec.triggers is not None:
            spec = dataclasses.replace(spec, triggers=keep_secrets(spec.triggers, []))
        archs = check_archs(spec.archs) if spec.archs else (self.default_arch,)
        fields = spec.fields()
        with self.db.transaction():
            target_id = self.db.add_target(fields, self.scheduler.next_runs(
                fields.get("schedule", ""), list(archs)))
            if spec.labels:
                self.db.set_labels(TARGETS_TABLE, target_id, spec.labels)
        self._changed(fields["repo"])
        return target_id

    def edit(self, target_id: int, spec: TargetSpec) -> Target:
        check_spec(spec, creating=False)
        archs = check_archs(spec.archs) if spec.archs is not None else None
        current = self.get(target_id)
        if spec.triggers is not None:
            spec = dataclasses.replace(spec, triggers=keep_secrets(
                spec.triggers, json.loads(current.triggers)))
        if archs == ():
            raise Invalid("arch", "empty", "a target needs at least one arch")
        fields = spec.fields()
        schedule = fields.get("schedule", current.schedule)
        new_archs = self.scheduler.next_runs(schedule, list(archs)) if archs is not None \
            else None
        with self.db.transaction():
            if not self.db.update_target(target_id, fields, new_archs):
                raise NotFound("Target not found.")
            if spec.labels is not None:
                self.db.set_labels(TARGETS_TABLE, target_id, spec.labels)
            if new_archs is None and "schedule" in fields:
                due = self.scheduler.next_run_of(schedule)
                for arch in current.arch:
                    self.db.set_next_run(arch.id, due)
            updated = self.get(target_id)
            self.db.refresh_queued(updated)
        self._changed(current.repo, updated.repo)
        return updated

    def remove(self, target_id: int) -> None:
        current = self.db.target(target_id)
        if current is None or not self.db.remove_target(target_id):
            raise NotFound("Target not found.")
        self._changed(current.repo)

    def page(self, query: ListQuery) -> tuple[builtins.list[Target], int]:
        """A page of targets (a Cloud Foundry list) and how many match in all."""
        return self.db.list_targets(query)

    def labels(self, target_id: int) -> dict[str, str]:
        return self.db.labels(TARGETS_TABLE, target_id)

    def last_build(self, target_id: int) -> Build | None:
        return self.db.last_build(target_id)

    def plan(self, target_id: int) -> tuple[str, bool, dict[str, int | None]]:
        """(the schedule it runs on, whether that is the global one, {arch: next run})."""
        return self.scheduler.plan(self.get(target_id))
