"""Targets: what is built, from where, on which archs and when. Every rule about a target
lives here; /api/v1 builds a TargetSpec from query parameters, /api/v2 from JSON."""

from __future__ import annotations

from dataclasses import dataclass

from vieter_lite import cron, names
from vieter_lite.db import Database
from vieter_lite.errors import Invalid, NotFound
from vieter_lite.models import Target
from vieter_lite.scheduler import Scheduler

KINDS = ("git", "url")
TEXT_FIELDS = ("kind", "url", "branch", "path", "repo", "schedule")


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

    def fields(self) -> dict[str, str]:
        return {name: value for name in TEXT_FIELDS
                if (value := getattr(self, name)) is not None}


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


class Targets:
    """Add, edit, remove and read targets; keeps their next runs and queued builds in step."""

    def __init__(self, db: Database, scheduler: Scheduler, default_arch: str):
        self.db = db
        self.scheduler = scheduler
        self.default_arch = default_arch

    def get(self, target_id: int) -> Target:
        target = self.db.target(target_id)
        if target is None:
            raise NotFound("Target not found.")
        return target

    def exists(self, target_id: int) -> bool:
        return self.db.target(target_id) is not None

    def list(self, limit: int = 0, offset: int = 0, repo: str = "", query: str = "",
             arch: str = "") -> list[Target]:
        return self.db.targets(limit=limit, offset=offset, repo=repo, query=query, arch=arch)

    def add(self, spec: TargetSpec) -> int:
        check_spec(spec, creating=True)
        archs = check_archs(spec.archs) if spec.archs else (self.default_arch,)
        fields = spec.fields()
        return self.db.add_target(fields, self.scheduler.next_runs(fields.get("schedule", ""),
                                                                   list(archs)))

    def edit(self, target_id: int, spec: TargetSpec) -> Target:
        check_spec(spec, creating=False)
        archs = check_archs(spec.archs) if spec.archs is not None else None
        current = self.get(target_id)
        if archs == ():
            raise Invalid("arch", "empty", "a target needs at least one arch")
        fields = spec.fields()
        schedule = fields.get("schedule", current.schedule)
        new_archs = self.scheduler.next_runs(schedule, list(archs)) if archs is not None \
            else None
        with self.db.transaction():
            if not self.db.update_target(target_id, fields, new_archs):
                raise NotFound("Target not found.")
            if new_archs is None and "schedule" in fields:
                due = self.scheduler.next_run_of(schedule)
                for arch in current.arch:
                    self.db.set_next_run(arch.id, due)
            updated = self.get(target_id)
            self.db.refresh_queued(updated)
        return updated

    def remove(self, target_id: int) -> None:
        if not self.db.remove_target(target_id):
            raise NotFound("Target not found.")

    def plan(self, target_id: int) -> tuple[str, bool, dict[str, int | None]]:
        """(the schedule it runs on, whether that is the global one, {arch: next run})."""
        return self.scheduler.plan(self.get(target_id))
