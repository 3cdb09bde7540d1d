"""builds.sr.ht's jobs over the build queue: submission (a manifest, or a target once),
start, cancel, the access lists, and what an agent needs of a job (its details and its
source bundle, which a review may hold). Every rule about a job lives here; the routes
only translate."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vieter_lite import manifest, review
from vieter_lite.db import Database
from vieter_lite.errors import Conflict, Forbidden, NotFound
from vieter_lite.models import NO_TARGET, Build, BuildSpec
from vieter_lite.queue import BuildQueue
from vieter_lite.targets import Targets, agent_labels_text
from vieter_lite.tokens import Principal

ANYONE = "*"


def may_read(who: Principal, build: Build) -> bool:
    """The admin, the owner, a user on the build's access:read list, or anyone ('*')."""
    return who.is_admin or ANYONE in build.access_read or who.user in build.access_read \
        or (build.owner != "" and who.user == build.owner)


def may_write(who: Principal, build: Build) -> bool:
    """The admin, the owner, or a user on access:write ('*': anyone); a build nobody owns
    (the scheduler's, the api_key's) anyone with builds:write."""
    if who.anonymous:
        return False
    if who.is_admin or build.owner == "":
        return True
    return who.user == build.owner or ANYONE in build.access_write \
        or who.user in build.access_write


def owner_of(who: Principal) -> str:
    """The user a principal's builds belong to ('' for the api_key)."""
    return "" if who.is_admin and who.token_id is None else who.user


class Jobs:
    """Builds as builds.sr.ht's jobs."""

    def __init__(self, db: Database, queue: BuildQueue, targets: Targets, default_arch: str):
        self.db = db
        self.queue = queue
        self.targets = targets
        self.default_arch = default_arch

    # -- reading -------------------------------------------------------------------------

    def readable(self, who: Principal, build_id: int) -> Build:
        build = self.queue.get(build_id)
        if not may_read(who, build):
            if who.anonymous:   # a caller without a key does not learn that it exists
                raise NotFound(f"build {build_id} not found")
            raise Forbidden(f"build {build_id} is not on this token's access:read list")
        return build

    def writable(self, who: Principal, build_id: int) -> Build:
        build = self.readable(who, build_id)
        if not may_write(who, build):
            raise Forbidden(f"build {build_id} is not on this token's access:write list")
        return build

    def manifest(self, who: Principal, build_id: int) -> str:
        """The manifest as submitted, or one made from the build's record."""
        build = self.readable(who, build_id)
        text = self.db.build_manifest(build.id)
        if text is not None:
            return text
        if build.kind not in ("git", "url"):  # a build log an agent posted through /api/v1
            raise NotFound(f"build {build_id} has no manifest: it was reported, not built here")
        return manifest.manifest_of(build)

    # -- the lifecycle -------------------------------------------------------------------

    def submit(self, who: Principal, body: dict[str, Any]) -> Build:
        """A build from a submission body: a manifest, or an existing target once."""
        sub = manifest.parse_submission(body, self.default_arch)
        common: dict[str, Any] = {
            "force": sub.force, "owner": owner_of(who), "note": sub.note, "tags": sub.tags,
            "labels": sub.labels, "access_read": sub.access_read,
            "access_write": sub.access_write, "execute": sub.execute,
            "triggers": json.dumps(sub.triggers, separators=(",", ":"))}
        bundle = None
        if sub.manifest is not None:
            m = sub.manifest
            if m.source.kind == "pkgbuild":
                bundle = review.pack_bundle({"PKGBUILD": m.source.pkgbuild.encode()})
            spec = BuildSpec(target_id=NO_TARGET, arch=m.arch, repo=m.repo, kind=m.source.kind,
                             url=m.source.url, branch=m.source.branch, path=m.source.path,
                             base_image=m.image or self.queue.base_image,
                             timeout=m.timeout or self.queue.default_timeout,
                             environment=json.dumps(m.environment, separators=(",", ":")),
                             review=m.review, manifest=m.text, bundle=bundle,
                             agent_labels=agent_labels_text(m.agent_labels),
                             **{**common, "force": m.force or sub.force})
        else:
            assert sub.target_id is not None
            target = self.targets.get(sub.target_id)
            archs = [a.value for a in target.arch]
            arch = sub.arch or (archs[0] if archs else self.default_arch)
            spec = BuildSpec(target_id=target.id, arch=arch, repo=target.repo, kind=target.kind,
                             url=target.url, branch=target.branch, path=target.path,
                             base_image=self.queue.base_image,
                             timeout=self.queue.default_timeout, review=target.review,
                             agent_labels=target.agent_labels, **common)
        if not who.may_use_repo(spec.repo):
            raise Forbidden(f"this token may not build for the repo '{spec.repo}'")
        if not who.may_use_arch(spec.arch):
            raise Forbidden(f"this token may not build for '{spec.arch}'")
        sha = hashlib.sha256(bundle).hexdigest() if bundle is not None else ""
        return self.queue.submit(spec, sha)

    def start(self, who: Principal, build_id: int) -> Build:
        return self.queue.start(self.writable(who, build_id).id)

    def cancel(self, who: Principal, build_id: int) -> Build:
        return self.queue.cancel(self.writable(who, build_id).id, who.user)

    def delete(self, who: Principal, build_id: int) -> None:
        """A finished build goes, with its log (409 while it is open)."""
        build = self.writable(who, build_id)
        if build.ended_at is None:
            raise Conflict(f"build {build_id} is {build.state}: only a finished build is "
                           "deleted")
        self.queue.delete_log(build.id)

    # -- the agent's side ----------------------------------------------------------------

    def job(self, build_id: int) -> dict[str, Any]:
        """What an agent needs to run a claimed build besides the v1 job."""
        build = self.queue.running(build_id)
        stored = self.db.build_source(build.id)
        return {"build_id": build.id, "kind": build.kind, "url": build.url,
                "branch": build.branch, "path": build.path, "repo": build.repo,
                "arch": build.arch, "image": build.base_image, "timeout": build.timeout,
                "force": build.force, "environment": json.loads(build.environment),
                "source": "server" if stored is not None and stored[1] else "fetch"}

    def source(self, build_id: int) -> bytes:
        """The bundle the server holds for a build (inline, or fetched and approved)."""
        self.queue.get(build_id)
        stored = self.db.build_source(build_id)
        if stored is None:
            raise NotFound(f"build {build_id} has no source stored")
        return stored[0]

    def put_source(self, build_id: int, data: bytes) -> dict[str, str]:
        """The source a running build fetched: kept, and compared with the last successful
        build's under the build's review rule. A change holds the build (pending, with the
        diff); else it goes on."""
        build = self.queue.running(build_id)
        files = review.read_bundle(data)
        old = self.db.last_good_source(build.id)
        diff = review.decide(build.review, None if old is None else review.read_bundle(old),
                             files)
        self.db.put_source(build.id, data, hashlib.sha256(data).hexdigest(), self.queue.now(),
                           approved=diff is None)
        if diff is None:
            return {"action": "build"}
        self.queue.hold(build.id, "review", diff)
        return {"action": "hold", "diff": diff}
