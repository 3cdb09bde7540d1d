"""GET /api/v2/stats/builds: builds, outcomes, durations and waits per day or hour, over
the builds the caller may read (as the builds list shows them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import stats
from vieter_lite.web.v2.common import DASHBOARD, principal, query_pairs
from vieter_lite.web.v2.shapes import stats_json

if TYPE_CHECKING:
    from vieter_lite.services import Services


def register(app: bottle.Bottle, services: Services) -> None:
    queue = services.queue

    @app.get("/api/v2/stats/builds", scope="builds:read", **DASHBOARD)
    def build_stats() -> Any:
        query = stats.parse_query(query_pairs(), queue.now())
        who = principal()
        buckets = queue.stats(query, None if who.is_admin else who.user)
        return stats_json(query, buckets)
