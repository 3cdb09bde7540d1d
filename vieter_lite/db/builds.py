"""SQL for targets and builds: the build record behind jobs, the queue and build logs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from vieter_lite.db.base import Base
from vieter_lite.db.deps import DEPENDENCIES_DONE
from vieter_lite.models import NO_TARGET, TASK_NAMES, TIMEOUT_EXIT, Build, Target, TargetArch

_BUILD_COLUMNS = ("id, target_id, arch, status, force, created_at, repo, kind, url, branch, "
                  "path, base_image, timeout, started_at, ended_at, exit_code, runner, "
                  "lease_expires, expiries, log_done, pkgbase, releases, owner, note, "
                  "access_read, access_write, triggers, environment, review, hold_reason, "
                  "hold_diff, agent_labels, agent_id")
TARGET_FIELDS = ("kind", "url", "branch", "path", "repo", "schedule", "review", "triggers",
                 "agent_labels", "rebuild_on_dependency")
TARGET_DEFAULTS = {"review": "never", "triggers": "[]", "agent_labels": "{}",
                   "rebuild_on_dependency": "0"}
# The claim's condition on agent labels: a build that asks for labels (builds.agent_labels,
# a JSON object) goes only to the registered agent (bound to ?) that has each of them, key
# and value; a poll without a registered agent (id 0: Vieter's agents) gets only builds
# that ask for none.
AGENT_LABELS_MATCH = ("NOT EXISTS (SELECT 1 FROM json_each(b.agent_labels) AS want "
                      "WHERE NOT EXISTS (SELECT 1 FROM agent_labels AS have "
                      "WHERE have.agent_id = ? AND have.key = want.key "
                      "AND have.value = want.value))")


def _build(row: sqlite3.Row, tasks: Iterable[tuple[str, str]] = ()) -> Build:
    return Build(id=row["id"], target_id=row["target_id"], arch=row["arch"],
                 status=row["status"], force=bool(row["force"]), created_at=row["created_at"],
                 repo=row["repo"], kind=row["kind"], url=row["url"], branch=row["branch"],
                 path=row["path"], base_image=row["base_image"], timeout=row["timeout"],
                 started_at=row["started_at"], ended_at=row["ended_at"],
                 exit_code=row["exit_code"], runner=row["runner"],
                 lease_expires=row["lease_expires"], expiries=row["expiries"],
                 log_done=bool(row["log_done"]), tasks=tuple(tasks), pkgbase=row["pkgbase"],
                 releases=row["releases"], owner=row["owner"], note=row["note"],
                 access_read=tuple(json.loads(row["access_read"])),
                 access_write=tuple(json.loads(row["access_write"])),
                 triggers=row["triggers"], environment=row["environment"],
                 review=row["review"], hold_reason=row["hold_reason"],
                 hold_diff=row["hold_diff"], agent_labels=row["agent_labels"],
                 agent_id=row["agent_id"])


class BuildQueries(Base):
    """Targets, their archs' next run times, and builds with their tasks."""

    # -- targets ----------------------------------------------------------------------

    def _target(self, row: sqlite3.Row) -> Target:
        archs = self._all("SELECT id, target_id, value, next_run FROM target_archs "
                          "WHERE target_id = ? ORDER BY id", row["id"])
        return Target(id=row["id"], kind=row["kind"], url=row["url"], branch=row["branch"],
                      path=row["path"], repo=row["repo"], schedule=row["schedule"],
                      review=row["review"], triggers=row["triggers"],
                      agent_labels=row["agent_labels"],
                      rebuild_on_dependency=bool(row["rebuild_on_dependency"]),
                      arch=tuple(TargetArch(a["id"], a["target_id"], a["value"], a["next_run"])
                                 for a in archs))

    def add_target(self, fields: dict[str, str], archs: dict[str, int | None]) -> int:
        """Insert a target and its archs ({arch: next_run}); returns the new id."""
        with self.transaction():
            with self._lock:
                cursor = self._conn.execute(
                    f"INSERT INTO targets ({', '.join(TARGET_FIELDS)}) "
                    f"VALUES ({', '.join('?' * len(TARGET_FIELDS))})",
                    tuple(fields.get(f, TARGET_DEFAULTS.get(f, "")) for f in TARGET_FIELDS))
            target_id = int(cursor.lastrowid or 0)
            self._set_archs(target_id, archs)
        return target_id

    def _set_archs(self, target_id: int, archs: dict[str, int | None]) -> None:
        self._run("DELETE FROM target_archs WHERE target_id = ?", target_id)
        for value, next_run in archs.items():
            self._run("INSERT INTO target_archs (target_id, value, next_run) VALUES (?, ?, ?)",
                      target_id, value, next_run)

    def target(self, target_id: int) -> Target | None:
        row = self._one("SELECT * FROM targets WHERE id = ?", target_id)
        return None if row is None else self._target(row)

    def targets(self, limit: int = 0, offset: int = 0, repo: str = "", query: str = "",
                arch: str = "") -> list[Target]:
        """Targets ordered by id; filters AND together; limit 0 = no limit."""
        sql = "SELECT * FROM targets t WHERE 1"
        args: list[str | int] = []
        if repo:
            sql += " AND repo = ?"
            args.append(repo)
        if query:
            sql += " AND (instr(url, ?) OR instr(path, ?) OR instr(branch, ?))"
            args += [query] * 3
        if arch:
            sql += " AND EXISTS (SELECT 1 FROM target_archs a WHERE a.target_id = t.id " \
                   "AND a.value = ?)"
            args.append(arch)
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        args += [limit if limit > 0 else -1, offset]
        return [self._target(r) for r in self._all(sql, *args)]

    def update_target(self, target_id: int, fields: dict[str, str],
                      archs: dict[str, int | None] | None) -> bool:
        """Change some fields (and replace the archs when given); False if no such target."""
        with self.transaction():
            if self._one("SELECT 1 FROM targets WHERE id = ?", target_id) is None:
                return False
            for name, value in fields.items():
                assert name in TARGET_FIELDS
                self._run(f"UPDATE targets SET {name} = ? WHERE id = ?", value, target_id)
            if archs is not None:
                self._set_archs(target_id, archs)
        return True

    def refresh_queued(self, target: Target) -> None:
        """After an edit: queued builds take the target's new fields; those for archs it
        no longer has are dropped."""
        with self.transaction():
            archs = [a.value for a in target.arch]
            self._run(f"DELETE FROM builds WHERE target_id = ? AND status = 'queued' "
                      f"AND arch NOT IN ({', '.join('?' * len(archs))})", target.id, *archs)
            self._run("UPDATE builds SET repo = ?, kind = ?, url = ?, branch = ?, path = ?, "
                      "agent_labels = ? WHERE target_id = ? AND status = 'queued'", target.repo,
                      target.kind, target.url, target.branch, target.path, target.agent_labels,
                      target.id)

    def remove_target(self, target_id: int) -> bool:
        """Delete a target and the builds it has waiting; its finished builds stay."""
        with self.transaction():
            self._run("DELETE FROM builds WHERE target_id = ? AND status IN ('pending', 'queued')",
                      target_id)
            return self._run("DELETE FROM targets WHERE id = ?", target_id) == 1

    def all_target_archs(self) -> list[tuple[Target, TargetArch]]:
        result = []
        for row in self._all("SELECT * FROM targets ORDER BY id"):
            target = self._target(row)
            result += [(target, a) for a in target.arch]
        return result

    def due_target_archs(self, now: int) -> list[tuple[Target, TargetArch]]:
        rows = self._all("SELECT DISTINCT target_id FROM target_archs WHERE next_run <= ?", now)
        result = []
        for row in rows:
            target = self.target(row["target_id"])
            if target is not None:
                result += [(target, a) for a in target.arch
                           if a.next_run is not None and a.next_run <= now]
        return result

    def soonest_next_run(self) -> int | None:
        row = self._one("SELECT MIN(next_run) AS t FROM target_archs")
        return None if row is None else row["t"]

    def set_next_run(self, target_arch_id: int, next_run: int | None) -> None:
        self._run("UPDATE target_archs SET next_run = ? WHERE id = ?", next_run, target_arch_id)

    # -- builds -----------------------------------------------------------------------

    def build(self, build_id: int) -> Build | None:
        row = self._one(f"SELECT {_BUILD_COLUMNS} FROM builds WHERE id = ?", build_id)
        if row is None:
            return None
        tasks = self._all("SELECT name, status FROM tasks WHERE build_id = ?", build_id)
        order = {name: i for i, name in enumerate(TASK_NAMES)}
        return _build(row, sorted(((t["name"], t["status"]) for t in tasks),
                                  key=lambda t: order.get(t[0], 99)))

    def queue_build(self, target: Target, arch: str, force: bool, now: int, base_image: str,
                    timeout: int) -> tuple[int, bool]:
        """Queue a build of target/arch unless one is already queued (then force is ORed
        into it). Returns (build id, whether a new build was made); id 0 when the target
        no longer exists."""
        with self.transaction():
            if self._one("SELECT 1 FROM targets WHERE id = ?", target.id) is None:
                return 0, False
            row = self._one("SELECT id FROM builds WHERE target_id = ? AND arch = ? "
                            "AND status = 'queued'", target.id, arch)
            if row is not None:
                if force:
                    self._run("UPDATE builds SET force = 1 WHERE id = ?", row["id"])
                return row["id"], False
            with self._lock:
                cursor = self._conn.execute(
                    "INSERT INTO builds (target_id, arch, status, force, created_at, repo, kind, "
                    "url, branch, path, base_image, timeout, review, agent_labels) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (target.id, arch, int(force), now, target.repo, target.kind, target.url,
                     target.branch, target.path, base_image, timeout, target.review,
                     target.agent_labels))
            build_id = int(cursor.lastrowid or 0)
            for name in TASK_NAMES:
                self._run("INSERT INTO tasks (build_id, name, status) VALUES (?, ?, 'pending')",
                          build_id, name)
            return build_id, True

    def claim_builds(self, arch: str, limit: int, runner: str, now: int, lease: int,
                     token_hashes: Iterable[str], only: int | None = None,
                     plain_only: bool = False, agent_id: int | None = None) -> list[Build]:
        """Hand up to `limit` queued builds of `arch` (or just build `only`) to a runner with
        a lease, skipping target/archs that already have a running build and builds that
        wait for a dependency's build (DEPENDENCIES_DONE). `plain_only`: only builds of a
        git or URL source without review (what Vieter's own agents can run). `agent_id`: the
        registered agent polling (its labels decide, AGENT_LABELS_MATCH)."""
        claimed: list[int] = []
        hashes = iter(token_hashes)
        with self.transaction():
            rows = self._all(
                "SELECT id, target_id FROM builds b WHERE status = 'queued' AND arch = ? "
                "AND (target_id = ? OR NOT EXISTS (SELECT 1 FROM builds r WHERE "
                "r.status = 'running' AND r.target_id = b.target_id AND r.arch = b.arch)) "
                "AND (? IS NULL OR id = ?) AND (? = 0 OR (kind IN ('git', 'url') "
                "AND review = 'never')) "
                f"AND {AGENT_LABELS_MATCH} AND {DEPENDENCIES_DONE} "
                "ORDER BY id", arch, NO_TARGET, only, only, int(plain_only), agent_id or 0)
            seen: set[int] = set()
            for row in rows:
                if len(claimed) >= limit:
                    break
                if row["target_id"] in seen:
                    continue
                if row["target_id"] != NO_TARGET:  # builds of a manifest run side by side
                    seen.add(row["target_id"])
                self._run("UPDATE builds SET status = 'running', runner = ?, started_at = ?, "
                          "lease_expires = ?, token_hash = ?, agent_id = ? WHERE id = ?",
                          runner, now, now + lease, next(hashes), agent_id, row["id"])
                claimed.append(row["id"])
        return [b for b in (self.build(i) for i in claimed) if b is not None]

    def renew_lease(self, build_id: int, now: int, lease: int) -> bool:
        return self._run("UPDATE builds SET lease_expires = ? WHERE id = ? AND status = 'running'",
                         now + lease, build_id) == 1

    def expired_leases(self, now: int) -> list[Build]:
        rows = self._all(f"SELECT {_BUILD_COLUMNS} FROM builds WHERE status = 'running' "
                         "AND lease_expires < ?", now)
        return [_build(r) for r in rows]

    def running_builds(self) -> list[Build]:
        rows = self._all(f"SELECT {_BUILD_COLUMNS} FROM builds WHERE status = 'running'")
        return [_build(r) for r in rows]

    def requeue(self, build_id: int, now: int, counted: bool = True,
                released: bool | None = None) -> str:
        """A lost lease (counted) or a build handed back (not counted; `released` False: a
        build sent back to wait for a dependency, not counted as handed back either): back
        in the queue; or cancelled when a newer build of the same target/arch is already
        queued. Returns the new status."""
        handed_back = int(not counted if released is None else released)
        with self.transaction():
            waiting = self._one("SELECT 1 FROM builds b JOIN builds r ON r.target_id = b.target_id "
                                "AND r.arch = b.arch AND r.status = 'queued' WHERE b.id = ? "
                                "AND b.target_id != ?", build_id, NO_TARGET)
            if waiting is not None:
                self._run("UPDATE builds SET expiries = expiries + ?, releases = releases + ? "
                          "WHERE id = ?", int(counted), handed_back, build_id)
                self.finish_build(build_id, "cancelled", -1, now)
                return "cancelled"
            # queued again, its log is open (NEW) again; the tasks start over
            self._run("UPDATE builds SET status = 'queued', runner = '', started_at = NULL, "
                      "agent_id = NULL, "
                      "lease_expires = NULL, token_hash = NULL, expiries = expiries + ?, "
                      "releases = releases + ?, log_done = 0 WHERE id = ? AND status = 'running'",
                      int(counted), handed_back, build_id)
            self._run("UPDATE tasks SET status = 'pending', log_start = NULL WHERE build_id = ?",
                      build_id)
            return "queued"

    def lose_lease_for_good(self, build_id: int, now: int) -> None:
        with self.transaction():
            self._run("UPDATE builds SET expiries = expiries + 1 WHERE id = ?", build_id)
            self.finish_build(build_id, "failed", -1, now)

    def finish_build(self, build_id: int, status: str, exit_code: int | None, ended_at: int,
                     started_at: int | None = None) -> bool:
        """End a build (success/failed/timeout, or cancelled, also while pending); its token
        stops working."""
        with self.transaction():
            changed = self._run(
                "UPDATE builds SET status = ?, exit_code = ?, ended_at = ?, "
                "started_at = COALESCE(?, started_at, ?), lease_expires = NULL, "
                "token_hash = NULL, log_done = 1, hold_reason = NULL, hold_diff = NULL "
                "WHERE id = ? AND status IN ('pending', 'queued', 'running')",
                status, exit_code, ended_at, started_at, ended_at, build_id) == 1
            if changed:
                self._run("UPDATE tasks SET status = 'skipped' WHERE build_id = ? "
                          "AND status = 'pending'", build_id)
                self._run("UPDATE tasks SET status = ? WHERE build_id = ? "
                          "AND status = 'running'",
                          "success" if status == "success" else "failed", build_id)
            return changed

    def fix_pkgbase(self, build_id: int, pkgbase: str) -> None:
        """Record the pkgbase a build publishes (its first publish sets it; later ones keep it)."""
        self._run("UPDATE builds SET pkgbase = ? WHERE id = ? AND pkgbase = ''", pkgbase, build_id)

    def add_build_package(self, build_id: int, name: str, version: str, arch: str,
                          filename: str) -> None:
        """Note a package a build published (publishing it again changes nothing)."""
        self._run("INSERT OR IGNORE INTO build_packages (build_id, name, version, arch, "
                  "filename) VALUES (?, ?, ?, ?, ?)", build_id, name, version, arch, filename)

    def build_packages(self, build_id: int) -> list[tuple[str, str, str, str]]:
        """(name, version, arch, filename) of what a build published, by name."""
        return [(r["name"], r["version"], r["arch"], r["filename"]) for r in self._all(
            "SELECT name, version, arch, filename FROM build_packages WHERE build_id = ? "
            "ORDER BY name, version", build_id)]

    def builds(self, statuses: Iterable[str] = (), target: int | None = None,
               limit: int = 0, offset: int = 0) -> list[Build]:
        """Builds by id with their tasks; filters AND together; limit 0 = no limit."""
        sql = "SELECT id FROM builds WHERE 1"
        args: list[str | int] = []
        statuses = list(statuses)
        if statuses:
            sql += f" AND status IN ({', '.join('?' * len(statuses))})"
            args += statuses
        if target is not None:
            sql += " AND target_id = ?"
            args.append(target)
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        args += [limit if limit > 0 else -1, offset]
        return [b for b in (self.build(r["id"]) for r in self._all(sql, *args)) if b is not None]

    def last_build(self, target_id: int) -> Build | None:
        row = self._one("SELECT id FROM builds WHERE target_id = ? ORDER BY id DESC LIMIT 1",
                        target_id)
        return None if row is None else self.build(row["id"])

    def target_results(self, target_id: int) -> tuple[bool, list[str]]:
        """Whether a build of the target runs, and the state of its latest finished
        (success, failed, timeout) build on each arch (by ended_at, then id)."""
        with self._lock:
            running = self._one("SELECT 1 FROM builds WHERE target_id = ? AND status = "
                                "'running' LIMIT 1", target_id) is not None
            # sqlite takes a bare column from the row holding the MAX
            rows = self._all("SELECT arch, status, exit_code, MAX(ended_at * 1000000000 + id) "
                             "FROM builds WHERE target_id = ? AND status IN ('success', "
                             "'failed', 'timeout') AND ended_at IS NOT NULL GROUP BY arch",
                             target_id)
        return running, ["timeout" if r["status"] == "failed" and r["exit_code"] == TIMEOUT_EXIT
                         else r["status"] for r in rows]

    def set_task(self, build_id: int, name: str, status: str) -> bool:
        return self._run("UPDATE tasks SET status = ? WHERE build_id = ? AND name = ?",
                         status, build_id, name) == 1

    def build_by_token(self, token_hash: str) -> Build | None:
        row = self._one("SELECT id FROM builds WHERE token_hash = ? AND status = 'running'",
                        token_hash)
        return None if row is None else self.build(row["id"])

    def add_finished_build(self, target_id: int, arch: str, started_at: int, ended_at: int,
                           exit_code: int, now: int, repo: str = "") -> int:
        """A build log posted by an agent (v1): a build that is already over."""
        with self.transaction():
            with self._lock:
                cursor = self._conn.execute(
                    "INSERT INTO builds (target_id, arch, status, created_at, repo, started_at, "
                    "ended_at, exit_code, log_done) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (target_id, arch, "success" if exit_code == 0 else "failed", now, repo,
                     started_at, ended_at, exit_code))
            return int(cursor.lastrowid or 0)

    def finished_builds(self, limit: int = 25, offset: int = 0, target: int | None = None,
                        before: int | None = None, after: int | None = None, arch: str = "",
                        codes_in: Iterable[int] = (), codes_not_in: Iterable[int] = ()
                        ) -> list[Build]:
        """Finished builds (v1 build logs), by id; filters AND together; limit 0 = no limit."""
        sql, args = f"SELECT {_BUILD_COLUMNS} FROM builds WHERE ended_at IS NOT NULL", []
        for clause, value in (("target_id = ?", target), ("started_at < ?", before),
                              ("started_at > ?", after), ("arch = ?", arch or None)):
            if value is not None:
                sql += " AND " + clause
                args.append(value)
        codes_in, codes_not_in = list(codes_in), list(codes_not_in)
        if codes_in:
            sql += f" AND exit_code IN ({', '.join('?' * len(codes_in))})"
            args += codes_in
        if codes_not_in:
            sql += f" AND exit_code NOT IN ({', '.join('?' * len(codes_not_in))})"
            args += codes_not_in
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        args += [limit if limit > 0 else -1, offset]
        return [_build(r) for r in self._all(sql, *args)]

    def delete_build(self, build_id: int) -> bool:
        return self._run("DELETE FROM builds WHERE id = ? AND status NOT IN ('running')",
                         build_id) == 1

    def finished_builds_started_before(self, before: int, limit: int) -> list[int]:
        rows = self._all("SELECT id FROM builds WHERE ended_at IS NOT NULL AND started_at < ? "
                         "ORDER BY id LIMIT ?", before, limit)
        return [r["id"] for r in rows]

    def set_log_done(self, build_id: int) -> None:
        self._run("UPDATE builds SET log_done = 1 WHERE id = ?", build_id)

    def build_counts(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in
                self._all("SELECT status, COUNT(*) AS n FROM builds GROUP BY status")}

    def queue_depths(self) -> dict[str, int]:
        return {r["arch"]: r["n"] for r in
                self._all("SELECT arch, COUNT(*) AS n FROM builds WHERE status = 'queued' "
                          "GROUP BY arch")}
