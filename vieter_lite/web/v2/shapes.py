"""/api/v2's JSON: pure functions of records (and the base URL for links); times are
RFC 3339 UTC with second precision."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from vieter_lite.buildlogs import LogView
from vieter_lite.models import (
    Agent,
    Build,
    DeliveryAttempt,
    PackageHold,
    PackageOwner,
    Target,
    TargetDependencies,
    Token,
)
from vieter_lite.repo.desc import parse_desc
from vieter_lite.repo.store import ListedPackage
from vieter_lite.rollback import PackageVersion
from vieter_lite.stats import Bucket, StatsQuery
from vieter_lite.web.http import MAX_TIME


def rfc3339(seconds: int | None) -> str | None:
    """Unix seconds as `2026-11-23T07:00:00Z`; a time outside years 1970-9999 (only a
    client could have sent one) is shown at that edge."""
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(max(seconds, 0), MAX_TIME)))


def token_json(token: Token, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": token.id, "name": token.name, "user": token.user,
                           "scopes": list(token.scopes), "repos": list(token.repos),
                           "archs": list(token.archs), "created_at": rfc3339(token.created_at),
                           "expires_at": rfc3339(token.expires_at),
                           "last_used_at": rfc3339(token.last_used_at)}
    if secret is not None:
        out["secret"] = secret
    return out


def link(base: str, path: str) -> dict[str, str]:
    return {"href": f"{base}{path}"}


def build_json(build: Build, base: str, tags: tuple[str, ...] = (),
               labels: dict[str, str] | None = None,
               packages: list[tuple[str, str, str, str]] | None = None,
               blocked_by: tuple[int, ...] = ()) -> dict[str, Any]:
    """A build as builds.sr.ht shows a job, with Cloud Foundry's metadata and links. The
    note is text (never rendered here); trigger secrets are not shown. `blocked_by`: the
    builds of its dependencies a queued build waits for."""
    here = f"/api/v2/builds/{build.id}"
    updated = max(t for t in (build.created_at, build.started_at, build.ended_at)
                  if t is not None)
    hold = None if build.hold_reason is None else \
        {"reason": build.hold_reason, "diff": build.hold_diff or ""}
    return {
        "id": build.id, "status": build.state,
        "target_id": build.target_id if build.has_target else None,
        "repo": build.repo, "arch": build.arch, "force": build.force, "note": build.note,
        "tags": list(tags), "metadata": {"labels": dict(labels or {}), "annotations": {}},
        "access:read": list(build.access_read), "access:write": list(build.access_write),
        "triggers": public_triggers(build.triggers),
        "owner": {"name": build.owner or None}, "runner": build.runner or None,
        "exit_code": build.exit_code, "hold": hold, "blocked_by": list(blocked_by),
        "timeout": build.timeout,
        "source": {"kind": build.kind, "url": build.url or None,
                   "branch": build.branch or None, "path": build.path or None},
        "review": build.review, "agent_labels": json.loads(build.agent_labels),
        "agent_id": build.agent_id,
        "created_at": rfc3339(build.created_at), "updated_at": rfc3339(updated),
        "started_at": rfc3339(build.started_at), "ended_at": rfc3339(build.ended_at),
        "setup_log": f"{base}{here}/log/content",
        "tasks": [{"name": name, "status": status, "log": f"{base}{here}/tasks/{name}/log"}
                  for name, status in build.tasks],
        "packages": [{"name": n, "version": v, "arch": a, "filename": f}
                     for n, v, a, f in packages or []],
        "links": {"self": link(base, here), "log": link(base, f"{here}/log"),
                  "target": link(base, f"/api/v2/targets/{build.target_id}")
                  if build.has_target else None,
                  "manifest": link(base, f"{here}/manifest")},
    }


def public_triggers(text: str) -> list[dict[str, Any]]:
    """Triggers as the API shows them: a webhook's secret only as whether it has one."""
    shown = []
    for trigger in json.loads(text):
        trigger = dict(trigger)
        if "secret" in trigger:
            trigger["secret"] = "********" if trigger["secret"] else ""
        shown.append(trigger)
    return shown


def without_private(shown: dict[str, Any]) -> dict[str, Any]:
    """A build, target, agent or delivery attempt as a caller without a key sees it: no
    triggers, no destination and no response of a delivery, no agent's token id."""
    out = dict(shown)
    if "token_id" in out:
        out["token_id"] = None
    if "triggers" in out:
        out["triggers"] = []
    if "destination" in out:
        out["destination"] = ""
        out["response"] = None
        out["error"] = None
    return out


def target_json(target: Target, base: str, labels: dict[str, str], schedule: str,
                is_global: bool, last: Build | None,
                deps: TargetDependencies | None = None) -> dict[str, Any]:
    """A target with its labels, triggers, review rule, next runs, last build, and what its
    PKGBUILD was read to say and depend on."""
    deps = deps or TargetDependencies()
    here = f"/api/v2/targets/{target.id}"
    return {
        "id": target.id, "kind": target.kind, "url": target.url, "branch": target.branch,
        "path": target.path, "repo": target.repo, "schedule": target.schedule,
        "arch": [a.value for a in target.arch],
        "metadata": {"labels": labels, "annotations": {}},
        "triggers": public_triggers(target.triggers), "review": target.review,
        "agent_labels": json.loads(target.agent_labels),
        "next_run_at": {a.value: rfc3339(a.next_run) for a in target.arch},
        "schedule_effective": {"schedule": schedule, "global": is_global},
        "last_build": None if last is None else {"id": last.id, "status": last.state},
        "rebuild_on_dependency": target.rebuild_on_dependency,
        "srcinfo": {arch: {"build_id": build_id, "pkgbase": pkgbase, "read_at": rfc3339(at)}
                    for arch, (build_id, pkgbase, at) in deps.read.items()},
        "dependencies": [{"arch": arch, "target_id": dep, "kind": kind, "via": via}
                         for arch, dep, kind, via in deps.edges],
        "links": {"self": link(base, here),
                  "builds": link(base, f"/api/v2/builds?target_ids={target.id}")},
    }


def attempt_json(attempt: DeliveryAttempt, base: str) -> dict[str, Any]:
    """One attempt to deliver a build's notification, with where its delivery stands."""
    delivery = attempt.delivery
    return {"id": attempt.id, "build_id": delivery.build_id,
            "created_at": rfc3339(attempt.at), "action": delivery.action,
            "destination": delivery.destination, "condition": delivery.condition,
            "response_status": attempt.response_status,
            "response": attempt.response, "error": attempt.error or None,
            "delivery": {"id": delivery.id, "uuid": delivery.uuid, "status": delivery.status,
                         "attempts": delivery.attempts,
                         "next_at": rfc3339(None if delivery.next_at is None
                                            else math.ceil(delivery.next_at))},
            "links": {"build": link(base, f"/api/v2/builds/{delivery.build_id}")}}


def repo_json(name: str, archs: dict[str, int], mtimes: dict[str, int | None],
              base: str, fingerprint: str | None = None) -> dict[str, Any]:
    """A repo; `fingerprint`: the key that signs it (None: sign = false)."""
    siglevel = "SigLevel = Required\n" if fingerprint else ""
    links = {"setup": link(base, f"/setup?repo={name}"),
             **({"key": link(base, "/key")} if fingerprint else {})}
    return {"name": name,
            "archs": [{"arch": arch, "packages": count,
                       "db_last_modified": rfc3339(mtimes.get(arch)),
                       "links": {"packages": link(base, f"/api/v2/repos/{name}/{arch}/packages"),
                                 "db": link(base, f"/{name}/{arch}/{name}.db")}}
                      for arch, count in archs.items()],
            "sign_key_fingerprint": fingerprint,
            "pacman_conf": f"[{name}]\n{siglevel}Server = {base}/$repo/$arch\n",
            "links": links}


def package_json(listed: ListedPackage, base: str, kept: list[str] | None = None,
                 hold: PackageHold | None = None,
                 versions: list[PackageVersion] | None = None) -> dict[str, Any]:
    """A package of an arch-repo with its kept versions (most recently replaced first) and
    its hold; given `versions` (the detail), every desc field as a JSON list too."""
    pkg = listed.package
    parsed = parse_desc(pkg.desc)
    out: dict[str, Any] = {
        "name": pkg.name, "version": pkg.version, "arch": pkg.pkg_arch,
        "filename": pkg.filename, "size": listed.size,
        "sha256": next(iter(parsed.get("SHA256SUM", [])), None),
        "published_at": rfc3339(pkg.published_at),
        # {"target_id": null}: the api_key owns the name; null: nobody yet
        "owner": None if listed.owner is None else owner_json(listed.owner),
        "signed": listed.signed,
        "kept_versions": list(kept or ()),
        "hold": None if hold is None else hold_json(hold),
        "links": {"download": link(base, f"/{pkg.repo}/{pkg.arch}/{pkg.filename}")}}
    if versions is not None:
        out["desc"] = {key.lower(): values for key, values in parsed.items()}
        out["versions"] = [version_json(v, base) for v in versions]
    return out


def hold_json(hold: PackageHold) -> dict[str, Any]:
    """A rollback's hold: no version newer than `version` is published until released."""
    return {"version": hold.version, "since": rfc3339(hold.since), "by": hold.held_by}


def version_json(version: PackageVersion, base: str) -> dict[str, Any]:
    """One version of a package on disk: the current one or a kept one."""
    pkg = version.package
    return {"version": pkg.version, "filename": pkg.filename, "size": version.size,
            "sha256": next(iter(parse_desc(pkg.desc).get("SHA256SUM", [])), None),
            "published_at": rfc3339(pkg.published_at), "current": version.current,
            "kept_at": rfc3339(version.kept_at), "signed": version.signed,
            "links": {"download": link(base, f"/{pkg.repo}/{pkg.arch}/{pkg.filename}")}}


def owner_json(owner: PackageOwner) -> dict[str, Any]:
    """A package name's owner: a target, a user's manifest builds, or (both null) the
    api_key."""
    return {"target_id": owner.target_id, "user": owner.user}


def log_json(view: LogView) -> dict[str, Any]:
    """A build log (Calyptia's pipeline log): `logs` from the requested offset,
    `next_offset` the byte offset to ask for next."""
    return {"id": view.id, "build_id": view.build_id,
            "logs": view.text.decode("utf-8", "replace"), "lines": view.lines,
            "status": view.status, "created_at": rfc3339(view.created_at),
            "updated_at": rfc3339(view.updated_at),
            "offset": view.offset, "next_offset": view.offset + len(view.text)}


def agent_json(agent: Agent, base: str, status: str) -> dict[str, Any]:
    """A registered agent: what it said of itself, when it was last seen, whether it is
    online, and the running builds it holds."""
    here = f"/api/v2/agents/{agent.id}"
    return {"id": agent.id, "name": agent.name, "archs": list(agent.archs),
            "labels": dict(agent.labels), "version": agent.version, "slots": agent.slots,
            "poll_period": agent.poll_period, "status": status, "token_id": agent.token_id,
            "registered_at": rfc3339(agent.registered_at),
            "last_seen_at": rfc3339(agent.last_seen_at),
            "builds": [{"id": build_id, "links": {"self": link(base, f"/api/v2/builds/{build_id}")}}
                       for build_id in agent.builds],
            "links": {"self": link(base, here)}}


def stats_json(query: StatsQuery, buckets: list[Bucket]) -> dict[str, Any]:
    """Build statistics: the bucket size, the target (or null: all) and each bucket,
    oldest first."""
    return {"bucket": query.bucket, "target_id": query.target_id,
            "since": rfc3339(query.since), "until": rfc3339(query.until),
            "buckets": [{"start": rfc3339(b.start), "builds": b.builds, "success": b.success,
                         "failed": b.failed, "cancelled": b.cancelled,
                         "success_rate": b.success_rate, "duration_p50": b.duration_p50,
                         "duration_max": b.duration_max, "wait_p50": b.wait_p50,
                         "wait_max": b.wait_max} for b in buckets]}
