"""The sqlite connection, its lock, migrations and transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vieter_lite.db.schema import MIGRATIONS


def statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, each complete: a ';' inside a trigger body, a string
    or a comment does not end one (sqlite3.complete_statement decides)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending!r}")


# rows per index that opening the database reads for the planner's statistics
OPEN_ANALYSIS_ROWS = 10000


class Base:
    """The connection: one sqlite connection (WAL) behind one re-entrant lock."""

    migrations: tuple[str, ...] = MIGRATIONS

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False,
                                     isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self.analyze(sample=OPEN_ANALYSIS_ROWS)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(self.migrations[version:], start=version + 1):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements(script):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {number}")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    def analyze(self, sample: int = 0) -> None:
        """Gather sqlite's statistics (sqlite_stat1): how many rows each index value picks
        out. Without them the query planner guesses, and for the /api/v2 lists it guesses
        wrong in ways that cost tens of milliseconds at 100 000 builds (sorting every
        failed build to show the newest 50; walking every build with a label to find a
        target's few). `sample` > 0 reads about that many rows per index (analysis_limit)
        instead of all of them: what opening the database does, so start-up stays quick
        however large it grew; housekeeping gathers the full statistics."""
        with self._lock:
            self._conn.execute(f"PRAGMA analysis_limit = {int(sample)}")
            self._conn.execute("ANALYZE")

    @contextmanager
    def transaction(self) -> Iterator[Base]:
        """Run several calls as one sqlite transaction (re-entrant within a thread)."""
        with self._lock:
            if self._conn.in_transaction:
                yield self
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """End a failed transaction. sqlite may have rolled it back itself already (a full
        disk, SQLITE_FULL, does, even on COMMIT): the original error is what counts, and
        the connection must never stay inside a transaction that later writes would join
        and that would never be committed."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                if self._conn.in_transaction:
                    raise

    def _all(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, *args: object) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def _run(self, sql: str, *args: object) -> int:
        with self._lock:
            return self._conn.execute(sql, args).rowcount
