"""SQL for notifications: builds whose end is not yet turned into deliveries, the
deliveries (pending, delivered, failed) and each attempt of one."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable

from vieter_lite.db.lists import Choice, In, ListQueries, TableSpec
from vieter_lite.lists import ListQuery
from vieter_lite.models import FINAL_STATES, Delivery, DeliveryAttempt, NewDelivery

_FINAL = ", ".join(f"'{s}'" for s in FINAL_STATES)
_DELIVERY_COLUMNS = ("id, build_id, uuid, action, destination, condition, spec, payload, "
                     "status, attempts, next_at, created_at")

# the attempts of one build's deliveries, as /api/v2 lists them ("build" is set by the
# service from the path, never by a query parameter)
ATTEMPTS_TABLE = TableSpec(
    table="delivery_attempts",
    fields={"id": "id", "created_at": "at"},
    filters={"build": In("build_id", True),
             "actions": Choice({a: ("delivery_id IN (SELECT id FROM deliveries "
                                    "WHERE build_id = delivery_attempts.build_id "
                                    "AND action = ?)", (a,))
                                for a in ("webhook", "email")})})


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(id=row["id"], build_id=row["build_id"], uuid=row["uuid"],
                    action=row["action"], destination=row["destination"],
                    condition=row["condition"], spec=row["spec"], payload=bytes(row["payload"]),
                    status=row["status"], attempts=row["attempts"], next_at=row["next_at"],
                    created_at=row["created_at"])


class DeliveryQueries(ListQueries):
    """Deliveries of ended builds and their attempts."""

    def builds_to_notify(self, limit: int) -> list[int]:
        """Ids of builds that ended and whose triggers have not been looked at yet."""
        rows = self._all(f"SELECT id FROM builds WHERE notified = 0 AND +status IN ({_FINAL}) "
                         "ORDER BY id LIMIT ?", limit)
        return [r["id"] for r in rows]

    def add_deliveries(self, build_id: int, deliveries: Iterable[NewDelivery], now: float
                       ) -> bool:
        """Mark a build notified and add its deliveries, due now, in one transaction.
        False (and nothing added) when it was marked already."""
        with self.transaction():
            if self._run("UPDATE builds SET notified = 1 WHERE id = ? AND notified = 0",
                         build_id) != 1:
                return False
            for new in deliveries:
                self._run("INSERT INTO deliveries (build_id, uuid, action, destination, "
                          "condition, spec, payload, next_at, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", build_id, new.uuid, new.action,
                          new.destination, new.condition, new.spec, new.payload, now, int(now))
        return True

    def due_deliveries(self, now: float, limit: int, skip: Collection[int] = ()
                       ) -> list[Delivery]:
        """Pending deliveries due by `now`, soonest first, except the ids in `skip`."""
        rows = self._all(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' "
                         "AND next_at <= ? ORDER BY next_at, id LIMIT ?", now,
                         limit + len(skip))
        return [_delivery(r) for r in rows if r["id"] not in skip][:limit]

    def next_delivery_at(self) -> float | None:
        """When the soonest pending delivery is due (None: none is pending)."""
        row = self._one("SELECT MIN(next_at) AS t FROM deliveries WHERE status = 'pending'")
        return None if row is None else row["t"]

    def delivery(self, delivery_id: int) -> Delivery | None:
        row = self._one(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", delivery_id)
        return None if row is None else _delivery(row)

    def record_attempt(self, delivery_id: int, at: int, response_status: int | None,
                       response: str, error: str, status: str, next_at: float | None) -> bool:
        """Note an attempt and where the delivery stands after it (pending again at
        `next_at`, delivered or failed). False when the delivery is gone (its build was
        deleted meanwhile)."""
        with self.transaction():
            row = self._one("SELECT build_id FROM deliveries WHERE id = ?", delivery_id)
            if row is None:
                return False
            self._run("INSERT INTO delivery_attempts (delivery_id, build_id, at, "
                      "response_status, response, error) VALUES (?, ?, ?, ?, ?, ?)",
                      delivery_id, row["build_id"], at, response_status, response, error)
            self._run("UPDATE deliveries SET attempts = attempts + 1, status = ?, next_at = ? "
                      "WHERE id = ?", status, next_at, delivery_id)
        return True

    def build_deliveries(self, build_id: int) -> list[Delivery]:
        rows = self._all(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE build_id = ? "
                         "ORDER BY id", build_id)
        return [_delivery(r) for r in rows]

    def list_attempts(self, query: ListQuery) -> tuple[list[DeliveryAttempt], int]:
        """A page of delivery attempts (the query names the build) and the total."""
        with self._lock:
            rows, total = self.list_rows(ATTEMPTS_TABLE, query)
            ids = {r["delivery_id"] for r in rows}
            deliveries = {}
            if ids:
                marks = ", ".join("?" * len(ids))
                deliveries = {r["id"]: _delivery(r) for r in self._all(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id IN ({marks})", *ids)}
        return [DeliveryAttempt(id=r["id"], delivery=deliveries[r["delivery_id"]], at=r["at"],
                                response_status=r["response_status"], response=r["response"],
                                error=r["error"])
                for r in rows if r["delivery_id"] in deliveries], total
