"""The only place with SQL: the Database class, one sqlite connection (WAL) behind one lock."""

from __future__ import annotations

from vieter_lite.db.agents import AgentQueries
from vieter_lite.db.buildlogs import BuildLogQueries
from vieter_lite.db.builds import BuildQueries
from vieter_lite.db.deliveries import DeliveryQueries
from vieter_lite.db.deps import DepQueries
from vieter_lite.db.jobs import JobQueries
from vieter_lite.db.kept import KeptQueries
from vieter_lite.db.lists import ListQueries
from vieter_lite.db.repos import BUCKETS, ArchiveSnapshot, RepoQueries, bucket_of
from vieter_lite.db.stats import StatsQueries
from vieter_lite.db.tokens import TokenQueries


class Database(RepoQueries, KeptQueries, DeliveryQueries, AgentQueries, ListQueries,
               BuildQueries, JobQueries, BuildLogQueries, TokenQueries, DepQueries,
               StatsQueries):
    """All of vieter_lite's SQL. Methods are atomic; `transaction()` groups several."""


__all__ = ["BUCKETS", "ArchiveSnapshot", "Database", "bucket_of"]
