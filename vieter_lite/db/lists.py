"""SQL for lists: a ListQuery compiled against one table's whitelist, and labels and tags.

A `TableSpec` says, per API name, which SQL expression an order or timestamp field is,
how each resource filter becomes a condition, and where the labels live. Column names and
expressions come only from these specs; every value from the request is a bound parameter.
Ties in the order are broken by id in the same direction, so one index serves both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from vieter_lite.db.builds import _BUILD_COLUMNS, BuildQueries, _build
from vieter_lite.lists import ListQuery
from vieter_lite.models import TASK_NAMES, Build, BuildDetails, Target

_V = TypeVar("_V")

MAX_OFFSET = 2 ** 63 - 1
# The agent records a build killed at its timeout as failed with this exit code
# (agent/daemon.py TIMEOUT_EXIT); builds have no 'timeout' status of their own yet.
TIMEOUT_EXIT = 124
# A build's updated_at: no column of its own; its latest lifecycle time. The same text as
# the expression index builds_by_update (schema.py), so that sqlite uses the index.
BUILD_UPDATED_AT = "COALESCE(ended_at, started_at, created_at)"


@dataclass(frozen=True)
class In:
    """`column IN (values)`; `integer` binds the values as integers."""

    column: str
    integer: bool = False


@dataclass(frozen=True)
class Related:
    """`id IN (SELECT key FROM table WHERE column IN (values))`: a child table (tags,
    a target's archs)."""

    table: str
    key: str
    column: str


@dataclass(frozen=True)
class Choice:
    """Each API value stands for an SQL condition with its parameters; given values OR."""

    conditions: Mapping[str, tuple[str, tuple]]


@dataclass(frozen=True)
class TableSpec:
    """One table's whitelist: `fields` maps order and timestamp fields (API names) to SQL
    expressions, `filters` resource filters to In/Related/Choice, `labels` names the
    (table, key column) holding the labels, or None."""

    table: str
    fields: Mapping[str, str]
    filters: Mapping[str, In | Related | Choice] = field(default_factory=dict)
    labels: tuple[str, str] | None = None


@dataclass(frozen=True)
class CompiledList:
    """`SELECT ... FROM table {joins} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?` with
    `params` then (limit, offset); `count_sql()` counts the same rows. `joins` hold the
    positive label requirements (one label row per key and owner, so they never repeat a
    row), their values come first in `params`."""

    table: str
    where: str
    params: tuple
    order: str
    limit: int
    offset: int
    joins: str = ""

    def _from(self) -> str:
        return f"{self.table} {self.joins}" if self.joins else self.table

    def select_sql(self, columns: str) -> tuple[str, tuple]:
        columns = f"{self.table}.*" if columns == "*" else columns
        return (f"SELECT {columns} FROM {self._from()} WHERE {self.where} "
                f"ORDER BY {self.order} LIMIT ? OFFSET ?", self.params + (self.limit, self.offset))

    def count_sql(self) -> tuple[str, tuple]:
        return f"SELECT COUNT(*) FROM {self._from()} WHERE {self.where}", self.params


# A v2 build state -> the condition on how builds store it today (status, exit_code).
BUILD_STATE_CONDITIONS: dict[str, tuple[str, tuple]] = {
    "pending": ("status = ?", ("pending",)),
    "queued": ("status = ?", ("queued",)),
    "running": ("status = ?", ("running",)),
    "success": ("status = ?", ("success",)),
    "failed": ("(status = ? AND exit_code IS NOT ?)", ("failed", TIMEOUT_EXIT)),
    "timeout": ("(status = ? OR (status = ? AND exit_code = ?))",
                ("timeout", "failed", TIMEOUT_EXIT)),
    "cancelled": ("status = ?", ("cancelled",)),
}

BUILDS_TABLE = TableSpec(
    table="builds",
    fields={"id": "id", "created_at": "created_at", "updated_at": BUILD_UPDATED_AT,
            "started_at": "started_at", "ended_at": "ended_at"},
    filters={"states": Choice(BUILD_STATE_CONDITIONS), "target_ids": In("target_id", True),
             "archs": In("arch"), "repos": In("repo"), "runners": In("runner"),
             "tags": Related("build_tags", "build_id", "tag")},
    labels=("build_labels", "build_id"))

TARGETS_TABLE = TableSpec(
    table="targets",
    fields={"id": "id"},
    filters={"repos": In("repo"), "archs": Related("target_archs", "target_id", "value")},
    labels=("target_labels", "target_id"))

_TIME_SQL = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _filter(rule: In | Related | Choice, values: tuple[str, ...]) -> tuple[str, tuple]:
    if isinstance(rule, In):
        bound = tuple(int(v) for v in values) if rule.integer else values
        return f"{rule.column} IN ({_marks(len(values))})", bound
    if isinstance(rule, Related):
        return (f"id IN (SELECT {rule.key} FROM {rule.table} "
                f"WHERE {rule.column} IN ({_marks(len(values))}))", values)
    picked = [rule.conditions[v] for v in dict.fromkeys(values)]
    return "(" + " OR ".join(sql for sql, _ in picked) + ")", \
        tuple(p for _, params in picked for p in params)


def _label(labels: tuple[str, str], key: str, op: str, values: tuple[str, ...]
           ) -> tuple[str, tuple]:
    """A negative requirement as a condition (`id NOT IN (...)`: rows without the key match)."""
    table, owner = labels
    sql = f"SELECT {owner} FROM {table} WHERE key = ?"
    if op in ("!=", "notin"):
        sql += f" AND value IN ({_marks(len(values))})"
    return f"id NOT IN ({sql})", (key, *values)


def _label_join(main: str, labels: tuple[str, str], n: int, key: str, op: str,
                values: tuple[str, ...]) -> tuple[str, tuple]:
    """A positive requirement as a join on the owner's label row for `key`: sqlite then
    weighs it like any other condition (with ANALYZE's statistics) and can start from the
    label index or from another filter's index and look the label up by (owner, key)."""
    table, owner = labels
    sql = f"JOIN {table} AS label{n} ON label{n}.{owner} = {main}.id AND label{n}.key = ?"
    if op in ("=", "in"):
        sql += f" AND label{n}.value IN ({_marks(len(values))})"
    return sql, (key, *values)


def compile_list(query: ListQuery, table: TableSpec) -> CompiledList:
    """The WHERE, ORDER BY, LIMIT and OFFSET of `query` over `table`. A field, filter or
    label selector the table does not know is a programming error (ValueError): the
    ListSpec that parsed the query and the TableSpec must agree."""
    where: list[str] = []
    params: list = []
    for condition in query.times:
        expr = _known(table.fields, condition.field, "timestamp field")
        if condition.op == "eq":
            where.append(f"{expr} IN ({_marks(len(condition.values))})")
        else:
            where.append(f"{expr} {_TIME_SQL[condition.op]} ?")
        params += condition.values
    for name, values in query.filters:
        sql, bound = _filter(_known(table.filters, name, "filter"), values)
        where.append(sql)
        params += bound
    if query.labels and table.labels is None:
        raise ValueError(f"{table.table} has no labels")
    joins: list[str] = []
    join_params: list = []
    for requirement in query.labels:
        assert table.labels is not None
        if requirement.op in ("!=", "notin", "!exists"):
            sql, bound = _label(table.labels, requirement.key, requirement.op,
                                requirement.values)
            where.append(sql)
            params += bound
        else:
            sql, bound = _label_join(table.table, table.labels, len(joins), requirement.key,
                                     requirement.op, requirement.values)
            joins.append(sql)
            join_params += bound
    direction = "DESC" if query.descending else "ASC"
    expr = _known(table.fields, query.order_by, "order field")
    if expr != "id":
        order = f"{expr} {direction}, id {direction}"
    elif query.times:
        # '+id' keeps sqlite from walking the whole table in id order looking for the few
        # rows in a time range: it reads the range from its index and sorts what it found
        order = f"+id {direction}"
    else:
        order = f"id {direction}"
    return CompiledList(table.table, " AND ".join(where) or "1", tuple(join_params + params),
                        order, query.per_page, min(query.offset, MAX_OFFSET), " ".join(joins))


def _known(table: Mapping[str, _V], name: str, what: str) -> _V:
    if name not in table:
        raise ValueError(f"no {what} '{name}' in this table's whitelist")
    return table[name]


class ListQueries(BuildQueries):
    """Lists by ListQuery, and the labels and tags they filter on."""

    def list_rows(self, table: TableSpec, query: ListQuery, columns: str = "*"
                  ) -> tuple[list[sqlite3.Row], int]:
        """One page of rows and the total matching, read under one lock (no write through
        this connection can fall between them)."""
        compiled = compile_list(query, table)
        with self._lock:
            rows = self._all(*_spread(compiled.select_sql(columns)))
            total = self._one(*_spread(compiled.count_sql()))
        return rows, (total[0] if total is not None else 0)

    def list_builds(self, query: ListQuery) -> tuple[list[Build], int]:
        """A page of builds with their tasks (as `build()` gives them) and the total; the
        tasks of the whole page are read with one query per 500 builds."""
        order = {name: i for i, name in enumerate(TASK_NAMES)}
        with self._lock:
            rows, total = self.list_rows(BUILDS_TABLE, query, _BUILD_COLUMNS)
            tasks: dict[int, list[tuple[str, str]]] = {r["id"]: [] for r in rows}
            ids = list(tasks)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for t in self._all(f"SELECT build_id, name, status FROM tasks "
                                   f"WHERE build_id IN ({_marks(len(chunk))})", *chunk):
                    tasks[t["build_id"]].append((t["name"], t["status"]))
        return [_build(r, sorted(tasks[r["id"]], key=lambda t: order.get(t[0], 99)))
                for r in rows], total

    def list_targets(self, query: ListQuery) -> tuple[list[Target], int]:
        with self._lock:
            rows, total = self.list_rows(TARGETS_TABLE, query, "id")
            found = [self.target(r["id"]) for r in rows]
        return [t for t in found if t is not None], total

    # -- labels and tags ------------------------------------------------------------------

    def set_labels(self, table: TableSpec, owner_id: int, labels: Mapping[str, str]) -> None:
        """Replace the labels of one row of `table` (validated by the caller)."""
        assert table.labels is not None
        label_table, owner = table.labels
        with self.transaction():
            self._run(f"DELETE FROM {label_table} WHERE {owner} = ?", owner_id)
            for key, value in labels.items():
                self._run(f"INSERT INTO {label_table} ({owner}, key, value) VALUES (?, ?, ?)",
                          owner_id, key, value)

    def labels(self, table: TableSpec, owner_id: int) -> dict[str, str]:
        assert table.labels is not None
        label_table, owner = table.labels
        return {r["key"]: r["value"] for r in self._all(
            f"SELECT key, value FROM {label_table} WHERE {owner} = ? ORDER BY key", owner_id)}

    def build_details(self, build_ids: Iterable[int]) -> dict[int, BuildDetails]:
        """The tags, labels and published packages of several builds, three queries per 500
        builds (a list page) instead of three per build; each as `build_tags`, `labels`
        and `build_packages` read them. Builds without any get empty details."""
        ids = list(dict.fromkeys(build_ids))
        tags: dict[int, list[str]] = {i: [] for i in ids}
        labels: dict[int, dict[str, str]] = {i: {} for i in ids}
        packages: dict[int, list[tuple[str, str, str, str]]] = {i: [] for i in ids}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = _marks(len(chunk))
                for r in self._all(f"SELECT build_id, tag FROM build_tags WHERE build_id IN "
                                   f"({marks}) ORDER BY build_id, position", *chunk):
                    tags[r["build_id"]].append(r["tag"])
                for r in self._all(f"SELECT build_id, key, value FROM build_labels WHERE "
                                   f"build_id IN ({marks}) ORDER BY build_id, key", *chunk):
                    labels[r["build_id"]][r["key"]] = r["value"]
                for r in self._all(f"SELECT build_id, name, version, arch, filename FROM "
                                   f"build_packages WHERE build_id IN ({marks}) "
                                   f"ORDER BY build_id, name, version", *chunk):
                    packages[r["build_id"]].append((r["name"], r["version"], r["arch"],
                                                    r["filename"]))
        return {i: BuildDetails(tuple(tags[i]), labels[i], packages[i]) for i in ids}

    def set_build_tags(self, build_id: int, tags: Iterable[str]) -> None:
        with self.transaction():
            self._run("DELETE FROM build_tags WHERE build_id = ?", build_id)
            for position, tag in enumerate(dict.fromkeys(tags)):
                self._run("INSERT INTO build_tags (build_id, tag, position) VALUES (?, ?, ?)",
                          build_id, tag, position)

    def build_tags(self, build_id: int) -> tuple[str, ...]:
        return tuple(r["tag"] for r in self._all(
            "SELECT tag FROM build_tags WHERE build_id = ? ORDER BY position", build_id))


def _spread(pair: tuple[str, tuple]) -> tuple:
    sql, params = pair
    return (sql, *params)
