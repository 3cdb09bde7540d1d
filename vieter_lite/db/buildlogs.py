"""SQL for the build log as a resource: its uuid, status (log_done) and update time, and
the offsets where each task's part of the log begins."""

from __future__ import annotations

from vieter_lite.db.base import Base
from vieter_lite.models import LogRecord


class BuildLogQueries(Base):
    """A build's log record and its tasks' log offsets."""

    def log_record(self, build_id: int) -> LogRecord | None:
        row = self._one("SELECT id, status, log_uuid, log_done, created_at, log_updated_at "
                        "FROM builds WHERE id = ?", build_id)
        if row is None:
            return None
        return LogRecord(build_id=row["id"], build_status=row["status"],
                         log_id=row["log_uuid"], done=bool(row["log_done"]),
                         created_at=row["created_at"], updated_at=row["log_updated_at"])

    def give_log_id(self, build_id: int, log_id: str) -> str | None:
        """The log's uuid: `log_id` unless it has one already; None for no such build."""
        with self.transaction():
            self._run("UPDATE builds SET log_uuid = ? WHERE id = ? AND log_uuid IS NULL",
                      log_id, build_id)
            row = self._one("SELECT log_uuid FROM builds WHERE id = ?", build_id)
        return None if row is None else str(row["log_uuid"])

    def touch_log(self, build_id: int, now: int) -> None:
        self._run("UPDATE builds SET log_updated_at = ? WHERE id = ?", now, build_id)

    def close_log(self, build_id: int, now: int) -> bool:
        """Mark the log DONE; False when it was DONE already (or there is no such build)."""
        return self._run("UPDATE builds SET log_done = 1, log_updated_at = ? "
                         "WHERE id = ? AND log_done = 0", now, build_id) == 1

    def start_task_log(self, build_id: int, name: str, offset: int) -> None:
        """Where a task's part of the log begins (its first report as running counts)."""
        self._run("UPDATE tasks SET log_start = ? WHERE build_id = ? AND name = ? "
                  "AND log_start IS NULL", offset, build_id, name)

    def task_log_starts(self, build_id: int) -> dict[str, int | None]:
        return {r["name"]: r["log_start"] for r in
                self._all("SELECT name, log_start FROM tasks WHERE build_id = ?", build_id)}

    def cut_task_logs(self, build_id: int, cut: int | None) -> None:
        """After the log lost its first `cut` bytes: the offsets move with the text; None:
        the text was replaced and no task has a part of it any more."""
        if cut is None:
            self._run("UPDATE tasks SET log_start = NULL WHERE build_id = ?", build_id)
        else:
            self._run("UPDATE tasks SET log_start = MAX(0, log_start - ?) WHERE build_id = ? "
                      "AND log_start IS NOT NULL", cut, build_id)
