"""/api/v1's JSON: pure functions of records, as Vieter's clients read them."""

from __future__ import annotations

from typing import Any

from vieter_lite.models import Build, Target
from vieter_lite.repo.store import ListedPackage


def target_json(target: Target) -> dict[str, Any]:
    return {"id": target.id, "kind": target.kind, "url": target.url, "branch": target.branch,
            "repo": target.repo, "schedule": target.schedule, "path": target.path,
            "arch": [{"id": a.id, "target_id": a.target_id, "value": a.value}
                     for a in target.arch]}


def log_json(build: Build) -> dict[str, Any]:
    return {"id": build.id, "target_id": build.target_id, "start_time": build.started_at,
            "end_time": build.ended_at, "arch": build.arch, "exit_code": build.exit_code}


def build_json(build: Build) -> dict[str, Any]:
    return {"id": build.id, "target_id": build.target_id, "arch": build.arch,
            "repo": build.repo, "status": build.status, "force": build.force,
            "created_at": build.created_at, "started_at": build.started_at,
            "ended_at": build.ended_at, "exit_code": build.exit_code, "runner": build.runner,
            "lease_expires": build.lease_expires, "expiries": build.expiries,
            "tasks": [{"name": n, "status": s} for n, s in build.tasks]}


def job_json(build: Build, token: str | None = None) -> dict[str, Any]:
    """The seed's BuildConfig fields, plus build_id and the build token (additive)."""
    job: dict[str, Any] = {"target_id": build.target_id, "kind": build.kind, "url": build.url,
                           "branch": build.branch, "path": build.path, "repo": build.repo,
                           "base_image": build.base_image, "force": build.force,
                           "timeout": build.timeout, "build_id": build.id, "arch": build.arch}
    if token is not None:
        job["token"] = token
    return job


def listed_package_json(listed: ListedPackage) -> dict[str, Any]:
    pkg, owner = listed.package, listed.owner
    return {"name": pkg.name, "version": pkg.version, "arch": pkg.arch,
            "pkg_arch": pkg.pkg_arch, "filename": pkg.filename, "size": listed.size,
            "published_at": pkg.published_at,
            "owner": None if owner is None else {"target_id": owner.target_id}}
