"""SQL for build statistics: the few columns of the builds created in a time window."""

from __future__ import annotations

from vieter_lite.db.base import Base
from vieter_lite.db.lists import BUILDS_TABLE, TIMEOUT_EXIT
from vieter_lite.models import BuildSample as Sample


def samples_sql(since: int, until: int, target_id: int | None = None,
                reader: str | None = None) -> tuple[str, tuple]:
    """The SELECT of `build_samples`: the window from the covering index builds_stats, or
    builds_stats_by_target for one target; the reader's condition as the builds list's."""
    where = ["created_at >= ?", "created_at < ?"]
    params: list[object] = [since, until]
    if target_id is not None:
        where.append("target_id = ?")
        params.append(target_id)
    if reader is not None:
        assert BUILDS_TABLE.reader is not None
        where.append(BUILDS_TABLE.reader)
        params += [reader] * BUILDS_TABLE.reader.count("?")
    return ("SELECT created_at, started_at, ended_at, status, exit_code FROM builds "
            f"WHERE {' AND '.join(where)}", tuple(params))


class StatsQueries(Base):
    def build_samples(self, since: int, until: int, target_id: int | None = None,
                      reader: str | None = None) -> list[Sample]:
        """The builds created in [since, until) (of one target, if given; readable by
        `reader` as the builds list filters them, if given), only what the statistics
        need."""
        sql, params = samples_sql(since, until, target_id, reader)
        # by position (created_at, started_at, ended_at, status, exit_code): a window may
        # hold 100 000 rows
        return [Sample(r[0], r[1], r[2], "timeout" if r[3] == "failed"
                       and r[4] == TIMEOUT_EXIT else r[3]) for r in self._all(sql, *params)]
