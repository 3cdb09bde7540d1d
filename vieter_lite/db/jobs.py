"""SQL for builds.sr.ht's jobs: builds made from a spec (a manifest's or a target's), the
pending state (start, hold for review), manifests and source bundles."""

from __future__ import annotations

import json

from vieter_lite.db.base import Base
from vieter_lite.models import NO_TARGET, TASK_NAMES, BuildSpec

_SPEC_COLUMNS = ("target_id", "arch", "status", "force", "created_at", "repo", "kind", "url",
                 "branch", "path", "base_image", "timeout", "owner", "note", "access_read",
                 "access_write", "triggers", "environment", "review", "agent_labels")


class JobQueries(Base):
    """Builds submitted through /api/v2/builds and what they carry besides their record."""

    def add_build(self, spec: BuildSpec, now: int, sha256: str = "") -> int:
        """Insert a build from its spec (pending unless it executes), its tasks, tags,
        labels, manifest and source bundle, in one transaction; returns its id."""
        values = (spec.target_id, spec.arch, "queued" if spec.execute else "pending",
                  int(spec.force), now, spec.repo, spec.kind, spec.url, spec.branch, spec.path,
                  spec.base_image, spec.timeout, spec.owner, spec.note,
                  json.dumps(list(spec.access_read)), json.dumps(list(spec.access_write)),
                  spec.triggers, spec.environment, spec.review, spec.agent_labels)
        with self.transaction():
            with self._lock:
                cursor = self._conn.execute(
                    f"INSERT INTO builds ({', '.join(_SPEC_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_SPEC_COLUMNS))})", values)
            build_id = int(cursor.lastrowid or 0)
            for name in TASK_NAMES:
                self._run("INSERT INTO tasks (build_id, name, status) VALUES (?, ?, 'pending')",
                          build_id, name)
            for position, tag in enumerate(dict.fromkeys(spec.tags)):
                self._run("INSERT INTO build_tags (build_id, tag, position) VALUES (?, ?, ?)",
                          build_id, tag, position)
            for key, value in spec.labels.items():
                self._run("INSERT INTO build_labels (build_id, key, value) VALUES (?, ?, ?)",
                          build_id, key, value)
            if spec.manifest is not None:
                self._run("INSERT INTO build_manifests (build_id, manifest) VALUES (?, ?)",
                          build_id, spec.manifest)
            if spec.bundle is not None:
                self.put_source(build_id, spec.bundle, sha256, now, approved=True)
        return build_id

    def start_build(self, build_id: int) -> bool:
        """pending -> queued; a build held for review goes on with the source it fetched."""
        with self.transaction():
            if self._run("UPDATE builds SET status = 'queued', hold_reason = NULL, "
                         "hold_diff = NULL WHERE id = ? AND status = 'pending'", build_id) != 1:
                return False
            self._run("UPDATE build_sources SET approved = 1 WHERE build_id = ?", build_id)
            return True

    def hold_build(self, build_id: int, reason: str, diff: str) -> bool:
        """running -> pending, held: its runner, lease and token go; setup and source stay
        done, the later tasks wait."""
        with self.transaction():
            if self._run("UPDATE builds SET status = 'pending', hold_reason = ?, hold_diff = ?, "
                         "runner = '', agent_id = NULL, lease_expires = NULL, token_hash = NULL "
                         "WHERE id = ? AND status = 'running'", reason, diff, build_id) != 1:
                return False
            self._run("UPDATE tasks SET status = 'success' WHERE build_id = ? "
                      "AND name IN ('setup', 'source')", build_id)
            self._run("UPDATE tasks SET status = 'pending' WHERE build_id = ? "
                      "AND name NOT IN ('setup', 'source')", build_id)
            return True

    def build_manifest(self, build_id: int) -> str | None:
        row = self._one("SELECT manifest FROM build_manifests WHERE build_id = ?", build_id)
        return None if row is None else str(row["manifest"])

    # -- source bundles ------------------------------------------------------------------

    def put_source(self, build_id: int, bundle: bytes, sha256: str, now: int,
                   approved: bool = False) -> None:
        self._run("INSERT OR REPLACE INTO build_sources (build_id, bundle, sha256, approved, "
                  "created_at) VALUES (?, ?, ?, ?, ?)", build_id, bundle, sha256, int(approved),
                  now)

    def build_source(self, build_id: int) -> tuple[bytes, bool] | None:
        """A build's bundle and whether it was approved (stored by the server: inline, or
        held and started)."""
        row = self._one("SELECT bundle, approved FROM build_sources WHERE build_id = ?",
                        build_id)
        return None if row is None else (bytes(row["bundle"]), bool(row["approved"]))

    def last_good_source(self, build_id: int) -> bytes | None:
        """The bundle of the last successful build before `build_id` of the same source: the
        same target, or (a manifest's build) the same kind, URL, branch and path."""
        row = self._one(
            "SELECT s.bundle FROM builds me JOIN builds b ON b.id < me.id "
            "AND b.status = 'success' AND b.target_id = me.target_id "
            "AND (me.target_id != ? OR (b.kind = me.kind AND b.url = me.url "
            "AND b.branch = me.branch AND b.path = me.path)) "
            "JOIN build_sources s ON s.build_id = b.id WHERE me.id = ? "
            "ORDER BY b.id DESC LIMIT 1", NO_TARGET, build_id)
        return None if row is None else bytes(row["bundle"])

    def prune_sources(self) -> int:
        """Drop the bundles no review will compare with: of finished builds that are not the
        last successful build of their source."""
        return self._run(
            "DELETE FROM build_sources WHERE build_id IN (SELECT b.id FROM builds b "
            "WHERE b.status IN ('failed', 'timeout', 'cancelled') OR (b.status = 'success' "
            "AND EXISTS (SELECT 1 FROM builds n JOIN build_sources ns ON ns.build_id = n.id "
            "WHERE n.id > b.id AND n.status = 'success' AND n.target_id = b.target_id "
            "AND (b.target_id != ? OR (n.kind = b.kind AND n.url = b.url "
            "AND n.branch = b.branch AND n.path = b.path)))))", NO_TARGET)
