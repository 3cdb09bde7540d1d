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
    reader: str | None = None   # the condition a reader's rows meet (the user bound to ?s)


@dataclass(frozen=True)
class CompiledList:
    """`SELECT ... FROM table WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?` with `params`
    then (limit, offset); `count_sql()` counts the same rows.

    `positive` holds the label requirements a row must meet (=, in, exists), each as the
    condition on its label row `label{n}` (in `labels`, the table and its owner column)
    with its parameters. They are joined on the owner's label row for the key (one per key
    and owner, so a join never repeats a row): sqlite weighs them like any other condition
    (with ANALYZE's statistics) and may start from the label index or look a label up by
    (owner, key) from another filter's index. `select_sql(walk=True)` writes them as
    correlated EXISTS instead: sqlite then walks the order's index and looks each row's
    labels up, stopping at the page's end (see `walk_in_order`)."""

    table: str
    where: str
    params: tuple
    order: str
    limit: int
    offset: int
    labels: tuple[str, str] | None = None
    positive: tuple[tuple[str, tuple], ...] = ()

    def _joins(self) -> tuple[str, tuple]:
        if not self.positive:
            return self.table, ()
        assert self.labels is not None
        label_table, owner = self.labels
        parts = [self.table]
        for n, (condition, _) in enumerate(self.positive):
            parts.append(f"JOIN {label_table} AS label{n} ON label{n}.{owner} = "
                         f"{self.table}.id AND {condition.format(n=n)}")
        return " ".join(parts), tuple(p for _, bound in self.positive for p in bound)

    def _exists(self) -> tuple[str, tuple]:
        assert self.labels is not None
        label_table, owner = self.labels
        conditions = [self.where] if self.where != "1" else []
        conditions += [f"EXISTS (SELECT 1 FROM {label_table} AS label{n} WHERE "
                       f"label{n}.{owner} = {self.table}.id AND {condition.format(n=n)})"
                       for n, (condition, _) in enumerate(self.positive)]
        return (" AND ".join(conditions),
                self.params + tuple(p for _, bound in self.positive for p in bound))

    def select_sql(self, columns: str, walk: bool = False) -> tuple[str, tuple]:
        columns = f"{self.table}.*" if columns == "*" else columns
        if walk and self.positive:
            where, params = self._exists()
            source = self.table
        else:
            source, join_params = self._joins()
            where, params = self.where, join_params + self.params
        return (f"SELECT {columns} FROM {source} WHERE {where} ORDER BY {self.order} "
                f"LIMIT ? OFFSET ?", params + (self.limit, self.offset))

    def count_sql(self) -> tuple[str, tuple]:
        if self.positive and self.where == "1":
            return self._count_labels()
        source, join_params = self._joins()
        return f"SELECT COUNT(*) FROM {source} WHERE {self.where}", join_params + self.params

    def _count_labels(self) -> tuple[str, tuple]:
        """Only label requirements, all positive: the owners are counted in the label table
        alone (a label row always has its owner: the foreign key deletes it with it)."""
        assert self.labels is not None
        label_table, owner = self.labels
        (first, first_params), rest = self.positive[0], self.positive[1:]
        parts = [f"{label_table} AS label0"]
        for n, (condition, _) in enumerate(rest, start=1):
            parts.append(f"JOIN {label_table} AS label{n} ON label{n}.{owner} = "
                         f"label0.{owner} AND {condition.format(n=n)}")
        return (f"SELECT COUNT(*) FROM {' '.join(parts)} WHERE {first.format(n=0)}",
                tuple(p for _, bound in rest for p in bound) + first_params)


def walk_in_order(total: int, offset: int, limit: int, rows: int) -> bool:
    """Whether a page of a list with label requirements is better read by walking the
    order's index and looking each row's labels up, than from the label index. Walking
    reads about (offset + limit) * rows / total rows before the page is full (if the
    labels do not depend on the order); starting from the labels reads at least every
    matching row (`total`), usually many more. So: walk when the first is smaller."""
    if total <= 0:
        return False
    return (offset + limit) * rows < total * total


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

# since_last_success=true: the failed and timed-out builds of a target that ended after the
# last successful build of that target on that arch (every one, when it never succeeded),
# for each arch the target has. Per (target, arch) the last success is one lookup in the
# partial index builds_last_success and the failures after it one range of
# builds_failed_by_target (the indexes' WHEREs written out literally, so that sqlite uses
# them): a few hundred lookups, whatever the number of builds
SINCE_LAST_SUCCESS = (
    "builds.id IN (SELECT failed.id FROM target_archs AS ta JOIN builds AS failed "
    "ON failed.target_id = ta.target_id AND failed.arch = ta.value "
    "AND failed.status IN ('failed', 'timeout') "
    "AND failed.ended_at > COALESCE((SELECT MAX(last.ended_at) FROM builds AS last "
    "WHERE last.status = 'success' AND last.target_id = ta.target_id "
    "AND last.arch = ta.value), -1))")

BUILDS_TABLE = TableSpec(
    table="builds",
    fields={"id": "id", "created_at": "created_at", "updated_at": BUILD_UPDATED_AT,
            "started_at": "started_at", "ended_at": "ended_at"},
    filters={"states": Choice(BUILD_STATE_CONDITIONS), "target_ids": In("target_id", True),
             "archs": In("arch"), "repos": In("repo"), "runners": In("runner"),
             "tags": Related("build_tags", "build_id", "tag"),
             "since_last_success": Choice({"true": (SINCE_LAST_SUCCESS, ()),
                                           "false": ("1", ())})},
    labels=("build_labels", "build_id"),
    # a build's access:read: everyone (the usual list, checked first), its owner, or a user
    # on the list
    reader="(builds.access_read = '[\"*\"]' OR builds.owner = ? OR EXISTS (SELECT 1 FROM "
           "json_each(builds.access_read) WHERE json_each.value IN ('*', ?)))")

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


def _label_match(op: str, values: tuple[str, ...]) -> tuple[str, tuple]:
    """A positive requirement as the condition on its label row `label{n}`."""
    if op in ("=", "in"):
        return f"label{{n}}.key = ? AND label{{n}}.value IN ({_marks(len(values))})", values
    return "label{n}.key = ?", ()


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
    if query.reader is not None:
        if table.reader is None:
            raise ValueError(f"{table.table} has no access lists")
        where.append(table.reader)
        params += [query.reader] * table.reader.count("?")
    if query.labels and table.labels is None:
        raise ValueError(f"{table.table} has no labels")
    positive: list[tuple[str, tuple]] = []
    for requirement in query.labels:
        assert table.labels is not None
        if requirement.op in ("!=", "notin", "!exists"):
            sql, bound = _label(table.labels, requirement.key, requirement.op,
                                requirement.values)
            where.append(sql)
            params += bound
        else:
            sql, bound = _label_match(requirement.op, requirement.values)
            positive.append((sql, (requirement.key, *bound)))
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
    return CompiledList(table.table, " AND ".join(where) or "1", tuple(params), order,
                        query.per_page, min(query.offset, MAX_OFFSET), table.labels,
                        tuple(positive))


def _known(table: Mapping[str, _V], name: str, what: str) -> _V:
    if name not in table:
        raise ValueError(f"no {what} '{name}' in this table's whitelist")
    return table[name]


class ListQueries(BuildQueries):
    """Lists by ListQuery, and the labels and tags they filter on."""

    def list_rows(self, table: TableSpec, query: ListQuery, columns: str = "*"
                  ) -> tuple[list[sqlite3.Row], int]:
        """One page of rows and the total matching, read under one lock (no write through
        this connection can fall between them). The total comes first: a page past the
        end is not read, and with label requirements it decides how the page is read
        (`walk_in_order`, against the table's highest id as its size)."""
        compiled = compile_list(query, table)
        with self._lock:
            counted = self._one(*_spread(compiled.count_sql()))
            total = counted[0] if counted is not None else 0
            if total <= compiled.offset:
                return [], total
            walk = False
            if compiled.positive:
                highest = self._one(f"SELECT MAX(id) FROM {table.table}")
                walk = walk_in_order(total, compiled.offset, compiled.limit,
                                     (highest[0] if highest is not None else 0) or 0)
            rows = self._all(*_spread(compiled.select_sql(columns, walk)))
        return rows, total

    def list_builds(self, query: ListQuery) -> tuple[list[Build], int]:
        """A page of builds with their tasks (as `build()` gives them) and the total. The
        page is found as ids (sqlite sorts or skips narrow index entries, not whole rows),
        then its records and their tasks are read by id, one query each per 500 builds."""
        order = {name: i for i, name in enumerate(TASK_NAMES)}
        with self._lock:
            found, total = self.list_rows(BUILDS_TABLE, query, "id")
            ids = [r["id"] for r in found]
            rows: dict[int, sqlite3.Row] = {}
            tasks: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = _marks(len(chunk))
                for r in self._all(f"SELECT {_BUILD_COLUMNS} FROM builds WHERE id IN ({marks})",
                                   *chunk):
                    rows[r["id"]] = r
                for t in self._all(f"SELECT build_id, name, status FROM tasks "
                                   f"WHERE build_id IN ({marks})", *chunk):
                    tasks[t["build_id"]].append((t["name"], t["status"]))
        return [_build(rows[i], sorted(tasks[i], key=lambda t: order.get(t[0], 99)))
                for i in ids if i in rows], total

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
