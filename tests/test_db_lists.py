"""Lists in sqlite (vieter_lite.db.lists): a ListQuery over real builds and targets made with
the Database's own methods, checked against the same filter and order applied in Python;
labels, tags, pagination, and the query plans (an index behind every filter and order)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pytest

from vieter_lite.agent.daemon import TIMEOUT_EXIT as AGENT_TIMEOUT_EXIT
from vieter_lite.db import Database
from vieter_lite.db.lists import (
    BUILD_STATE_CONDITIONS,
    BUILDS_TABLE,
    TARGETS_TABLE,
    TIMEOUT_EXIT,
    compile_list,
    walk_in_order,
)
from vieter_lite.db.stats import samples_sql
from vieter_lite.lists import BUILD_STATES, BUILDS, TARGETS, ListQuery, parse
from vieter_lite.models import Build

T0 = 1_790_000_000      # 2026-09-21T14:13:20Z
DAY = 86400


def ts(seconds: int) -> str:
    from datetime import datetime
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    db: Database
    builds: list[Build]          # every build, as db.build() reads it
    labels: dict[int, dict[str, str]]
    tags: dict[int, tuple[str, ...]]
    targets: list[int]


def make_world(path: Path) -> World:
    """Three targets; finished builds (success, failed, timed out), queued, running,
    cancelled and pending ones; created_at ties; labels and tags on some."""
    db = Database(path)
    rng = random.Random(7)
    targets = [
        db.add_target({"kind": "git", "url": "https://e.org/a.git", "repo": "bur"},
                      {"x86_64": None, "aarch64": None}),
        db.add_target({"kind": "git", "url": "https://e.org/b.git", "repo": "bur"},
                      {"x86_64": None, "aarch64": None}),
        db.add_target({"kind": "git", "url": "https://e.org/c.git", "repo": "home"},
                      {"aarch64": None}),
    ]
    for i in range(30):                      # finished: success, failed, timeout
        target = targets[i % 3]
        arch = "aarch64" if target == targets[2] or i % 4 == 0 else "x86_64"
        start = T0 + i * 3600 + rng.randint(0, 600)
        code = rng.choice((0, 0, 0, 1, 2, TIMEOUT_EXIT))
        created = T0 + (i // 3) * 3600           # three builds share each created_at
        db.add_finished_build(target, arch, start, start + rng.randint(10, 900), code,
                              now=created, repo=db.target(target).repo)
    for target in targets:                   # queued, then one of them running, one cancelled
        for arch in (a.value for a in db.target(target).arch):
            db.queue_build(db.target(target), arch, False, T0 + 40 * 3600 + target, "", 3600)
    db.claim_builds("x86_64", 1, "pi4", T0 + 41 * 3600, 600, ["h1"])
    db.claim_builds("aarch64", 1, "rock5", T0 + 41 * 3600 + 5, 600, ["h2"])
    queued = db.builds(["queued"])
    db.finish_build(queued[0].id, "cancelled", -1, T0 + 42 * 3600)
    # a build submitted with execute: false (v2) is stored with status 'pending'
    db._run("UPDATE builds SET status = 'pending' WHERE id = ?", queued[1].id)
    builds = db.builds()
    labels, tags = {}, {}
    for build in builds:
        if build.id % 3 == 0:
            labels[build.id] = {"env": rng.choice(("prod", "dev")), "example.com/tier": "web"}
        elif build.id % 5 == 0:
            labels[build.id] = {"env": "staging"}
        if labels.get(build.id):
            db.set_labels(BUILDS_TABLE, build.id, labels[build.id])
        if build.id % 4 == 0:
            tags[build.id] = ("nightly", "x") if build.id % 8 == 0 else ("nightly",)
            db.set_build_tags(build.id, tags[build.id])
    return World(db, builds, labels, tags, targets)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    made = make_world(tmp_path_factory.mktemp("lists") / "vieter.sqlite")
    yield made
    made.db.close()


def state_of(build: Build) -> str:
    if build.status == "failed" and build.exit_code == TIMEOUT_EXIT:
        return "timeout"
    return build.status


def updated_at(build: Build) -> int:
    for value in (build.ended_at, build.started_at):
        if value is not None:
            return value
    return build.created_at


def label_holds(labels: dict[str, str], key: str, op: str, values: tuple[str, ...]) -> bool:
    present = key in labels
    return {"=": present and labels[key] in values, "in": present and labels[key] in values,
            "!=": not (present and labels[key] in values),
            "notin": not (present and labels[key] in values),
            "exists": present, "!exists": not present}[op]


FIELD = {"id": lambda b: b.id, "created_at": lambda b: b.created_at, "updated_at": updated_at,
         "started_at": lambda b: b.started_at, "ended_at": lambda b: b.ended_at}


def expected(world: World, query: ListQuery, keep: Callable[[Build], bool]) -> list[int]:
    """The ids of the whole list (every page), filtered and ordered in Python."""
    kept = [b for b in world.builds if keep(b)]
    key = FIELD[query.order_by]
    # rows whose order field is NULL sort first ascending, last descending (sqlite)
    kept.sort(key=lambda b: (key(b) is not None, key(b) or 0, b.id), reverse=query.descending)
    return [b.id for b in kept]


def everything(world: World, params: list[tuple[str, str]]) -> tuple[list[int], int]:
    """Every page of the list, per_page 4, concatenated; and the total it reported."""
    ids: list[int] = []
    totals = set()
    page = 1
    while True:
        query = parse(params + [("per_page", "4"), ("page", str(page))], BUILDS)
        found, total = world.db.list_builds(query)
        totals.add(total)
        ids += [b.id for b in found]
        if page * 4 >= total:
            break
        page += 1
    assert len(totals) == 1
    return ids, totals.pop()


def at(world: World, n: int, attr: str) -> int:
    values = sorted({getattr(b, attr) for b in world.builds if getattr(b, attr) is not None})
    return values[n]


def needs_attention(world: World) -> Callable[[Build], bool]:
    """since_last_success=true, in Python: a target's failed or timed-out build that ended
    after the last successful build of its target and arch (any, if none succeeded), on an
    arch the target has."""
    archs = {(t, a.value) for t in world.targets for a in world.db.target(t).arch}
    last: dict[tuple[int, str], int] = {}
    for b in world.builds:
        if b.status == "success" and b.ended_at is not None:
            key = (b.target_id, b.arch)
            last[key] = max(last.get(key, -1), b.ended_at)
    return lambda b: (b.target_id, b.arch) in archs and state_of(b) in ("failed", "timeout") \
        and b.ended_at is not None and b.ended_at > last.get((b.target_id, b.arch), -1)


CASES: list[tuple[str, Callable[[World], list], Callable[[World], Callable[[Build], bool]]]] = [
    ("everything by id", lambda w: [], lambda w: lambda b: True),
    ("by -id", lambda w: [("order_by", "-id")], lambda w: lambda b: True),
    ("by created_at, ties by id", lambda w: [("order_by", "created_at")], lambda w: lambda b: True),
    ("by -created_at", lambda w: [("order_by", "-created_at")], lambda w: lambda b: True),
    ("by updated_at", lambda w: [("order_by", "+updated_at")], lambda w: lambda b: True),
    ("by -started_at", lambda w: [("order_by", "-started_at")], lambda w: lambda b: True),
    ("by ended_at", lambda w: [("order_by", "ended_at")], lambda w: lambda b: True),
    *[(f"state {s}", lambda w, s=s: [("states", s)], lambda w, s=s: lambda b: state_of(b) == s)
      for s in BUILD_STATES],
    ("states failed,timeout,running", lambda w: [("states", "failed,timeout,running")],
     lambda w: lambda b: state_of(b) in ("failed", "timeout", "running")),
    ("target_ids", lambda w: [("target_ids", f"{w.targets[0]},{w.targets[2]}")],
     lambda w: lambda b: b.target_id in (w.targets[0], w.targets[2])),
    ("archs", lambda w: [("archs", "aarch64")], lambda w: lambda b: b.arch == "aarch64"),
    ("since_last_success", lambda w: [("since_last_success", "true")], needs_attention),
    ("since_last_success=false is no filter", lambda w: [("since_last_success", "false")],
     lambda w: lambda b: True),
    ("since_last_success with states and target_ids by -ended_at",
     lambda w: [("since_last_success", "true"), ("states", "timeout"),
                ("target_ids", f"{w.targets[0]},{w.targets[1]}"), ("order_by", "-ended_at")],
     lambda w: lambda b: needs_attention(w)(b) and state_of(b) == "timeout"
     and b.target_id in (w.targets[0], w.targets[1])),
    ("repos", lambda w: [("repos", "home,none")], lambda w: lambda b: b.repo == "home"),
    ("runners", lambda w: [("runners", "pi4,rock5")],
     lambda w: lambda b: b.runner in ("pi4", "rock5")),
    ("tags", lambda w: [("tags", "x")], lambda w: lambda b: "x" in w.tags.get(b.id, ())),
    ("tags or", lambda w: [("tags", "x,nightly")],
     lambda w: lambda b: bool(w.tags.get(b.id))),
    ("created_ats equality set", lambda w: [("created_ats", f"{ts(T0)},{ts(T0 + 2 * 3600)}")],
     lambda w: lambda b: b.created_at in (T0, T0 + 2 * 3600)),
    ("created_ats range", lambda w: [("created_ats[gte]", ts(T0 + 3600)),
                                     ("created_ats[lt]", ts(T0 + 5 * 3600))],
     lambda w: lambda b: T0 + 3600 <= b.created_at < T0 + 5 * 3600),
    ("started_ats[gt] (NULLs never match)", lambda w: [("started_ats[gt]",
                                                        ts(at(w, 10, "started_at")))],
     lambda w: lambda b: b.started_at is not None and b.started_at > at(w, 10, "started_at")),
    ("ended_ats[lte]", lambda w: [("ended_ats[lte]", ts(at(w, 12, "ended_at")))],
     lambda w: lambda b: b.ended_at is not None and b.ended_at <= at(w, 12, "ended_at")),
    ("updated_ats[gte] by -updated_at",
     lambda w: [("updated_ats[gte]", ts(T0 + 20 * 3600)), ("order_by", "-updated_at")],
     lambda w: lambda b: updated_at(b) >= T0 + 20 * 3600),
    ("label =", lambda w: [("label_selector", "env=prod")],
     lambda w: lambda b: label_holds(w.labels.get(b.id, {}), "env", "=", ("prod",))),
    ("label ==", lambda w: [("label_selector", "env==dev")],
     lambda w: lambda b: label_holds(w.labels.get(b.id, {}), "env", "=", ("dev",))),
    ("label != (also builds without the key)", lambda w: [("label_selector", "env!=prod")],
     lambda w: lambda b: label_holds(w.labels.get(b.id, {}), "env", "!=", ("prod",))),
    ("label in", lambda w: [("label_selector", "env in (prod,staging)")],
     lambda w: lambda b: label_holds(w.labels.get(b.id, {}), "env", "in", ("prod", "staging"))),
    ("label notin", lambda w: [("label_selector", "env notin (prod,staging)")],
     lambda w: lambda b: label_holds(w.labels.get(b.id, {}), "env", "notin",
                                     ("prod", "staging"))),
    ("label exists", lambda w: [("label_selector", "example.com/tier")],
     lambda w: lambda b: "example.com/tier" in w.labels.get(b.id, {})),
    ("label !exists", lambda w: [("label_selector", "!env")],
     lambda w: lambda b: "env" not in w.labels.get(b.id, {})),
    ("labels AND", lambda w: [("label_selector", "env in (prod,dev),example.com/tier=web,!x")],
     lambda w: lambda b: w.labels.get(b.id, {}).get("env") in ("prod", "dev")),
    ("everything ANDed, by -ended_at",
     lambda w: [("states", "success,failed,timeout"), ("archs", "x86_64"), ("repos", "bur"),
                ("ended_ats[gt]", ts(T0)), ("label_selector", "!env"), ("order_by", "-ended_at")],
     lambda w: lambda b: state_of(b) in ("success", "failed", "timeout") and b.arch == "x86_64"
     and b.repo == "bur" and "env" not in w.labels.get(b.id, {})
     and (b.ended_at or 0) > T0),
    ("nothing matches", lambda w: [("archs", "x'; DROP TABLE builds; --")],
     lambda w: lambda b: False),
]


@pytest.mark.parametrize("name, params, keep", CASES, ids=[c[0] for c in CASES])
def test_list_matches_python_filter_and_order(world: World, name, params, keep):
    pairs = params(world)
    query = parse(pairs, BUILDS)
    want = expected(world, query, keep(world))
    ids, total = everything(world, pairs)
    assert (ids, total) == (want, len(want))
    assert name == "nothing matches" or want, "a case that selects nothing proves little"


def test_since_last_success_leaves_out_failures_before_a_success(world: World):
    """The world has failed builds both before and after their target's last success on
    that arch, so the filter keeps some and drops some."""
    keep = needs_attention(world)
    failed = [b for b in world.builds if state_of(b) in ("failed", "timeout")]
    assert any(keep(b) for b in failed) and not all(keep(b) for b in failed)


@pytest.mark.parametrize("history, kept", [
    # (state, ended_at offset) of one target's builds on x86_64, oldest first -> kept ones
    ([("failed", 1)], [0]),                              # never succeeded: every failure
    ([("failed", 1), ("success", 2)], []),                # fixed since
    ([("success", 1), ("failed", 2), ("timeout", 3)], [1, 2]),
    ([("failed", 1), ("success", 2), ("failed", 3)], [2]),
    ([("success", 1), ("cancelled", 2)], []),             # a cancelled build needs nothing
    # by ended_at, not by id
    ([("failed", 5), ("success", 3)], [0]),
    ([("success", 5), ("failed", 3)], []),
])
def test_since_last_success_table(tmp_path, history, kept):
    db = Database(tmp_path / "v.sqlite")
    try:
        target = db.add_target({"kind": "git", "url": "https://e.org/a.git", "repo": "bur"},
                               {"x86_64": None, "aarch64": None})
        other = db.add_target({"kind": "git", "url": "https://e.org/b.git", "repo": "bur"},
                              {"x86_64": None})
        codes = {"success": 0, "failed": 1, "timeout": TIMEOUT_EXIT}
        ids = []
        for state, end in history:
            if state == "cancelled":
                build = db.add_finished_build(target, "x86_64", T0, T0 + end, 0, T0)
                db._run("UPDATE builds SET status = 'cancelled' WHERE id = ?", build)
            else:
                build = db.add_finished_build(target, "x86_64", T0, T0 + end, codes[state], T0)
            ids.append(build)
        # a success on another arch or of another target changes nothing here, nor does a
        # failure on an arch the target does not have (any more)
        db.add_finished_build(target, "aarch64", T0, T0 + 99, 0, T0)
        db.add_finished_build(other, "x86_64", T0, T0 + 99, 0, T0)
        db.add_finished_build(target, "riscv64", T0, T0 + 99, 1, T0)
        found, total = db.list_builds(parse([("since_last_success", "true")], BUILDS))
        assert [b.id for b in found] == [ids[i] for i in kept] and total == len(kept)
    finally:
        db.close()


def test_the_world_has_every_state_and_ties(world: World):
    assert {state_of(b) for b in world.builds} == set(BUILD_STATES)
    created = [b.created_at for b in world.builds]
    assert len(set(created)) < len(created)


def test_pages_split_the_list_and_past_the_end_is_empty(world: World):
    query = parse([("per_page", "7"), ("order_by", "-created_at")], BUILDS)
    first, total = world.db.list_builds(query)
    assert total == len(world.builds) and len(first) == 7
    last_page = -(-total // 7)
    last, _ = world.db.list_builds(parse([("per_page", "7"), ("page", str(last_page)),
                                          ("order_by", "-created_at")], BUILDS))
    assert len(last) == total - 7 * (last_page - 1)
    beyond, total_beyond = world.db.list_builds(parse([("page", str(10 ** 17)),
                                                       ("per_page", "5000")], BUILDS))
    assert beyond == [] and total_beyond == total


def test_listed_builds_are_whole_records(world: World):
    found, total = world.db.list_builds(parse([("per_page", "5000")], BUILDS))
    assert len(found) == total == len(world.builds)
    assert all(b == world.db.build(b.id) for b in found)
    assert all(len(b.tasks) == 4 for b in found if b.status == "running")


def test_list_rows_returns_the_columns_asked_for(world: World):
    rows, total = world.db.list_rows(BUILDS_TABLE, parse([("archs", "aarch64")], BUILDS),
                                     "id, arch")
    assert total == len(rows) and {r["arch"] for r in rows} == {"aarch64"}


def test_labels_and_tags_read_back_and_go_with_their_build(tmp_path):
    db = Database(tmp_path / "v.sqlite")
    try:
        target = db.add_target({"kind": "git", "url": "https://e.org/a.git", "repo": "bur"},
                               {"x86_64": None})
        build = db.add_finished_build(target, "x86_64", T0, T0 + 5, 0, T0)
        db.set_labels(BUILDS_TABLE, build, {"b": "2", "a": ""})
        db.set_build_tags(build, ["z", "a", "z"])
        db.set_labels(TARGETS_TABLE, target, {"env": "home"})
        assert db.labels(BUILDS_TABLE, build) == {"a": "", "b": "2"}
        assert db.build_tags(build) == ("z", "a")
        db.set_labels(BUILDS_TABLE, build, {"c": "3"})
        assert db.labels(BUILDS_TABLE, build) == {"c": "3"}
        assert db.delete_build(build)
        assert db._one("SELECT COUNT(*) FROM build_labels")[0] == 0
        assert db._one("SELECT COUNT(*) FROM build_tags")[0] == 0
        assert db.remove_target(target)
        assert db._one("SELECT COUNT(*) FROM target_labels")[0] == 0
    finally:
        db.close()


def test_targets_list_by_repo_arch_and_labels(world: World):
    db, (a, b, c) = world.db, world.targets
    db.set_labels(TARGETS_TABLE, a, {"env": "home"})
    db.set_labels(TARGETS_TABLE, c, {"env": "work"})
    try:
        cases = [([], [a, b, c]), ([("order_by", "-id")], [c, b, a]),
                 ([("repos", "bur")], [a, b]), ([("archs", "aarch64")], [a, b, c]),
                 ([("archs", "x86_64"), ("repos", "bur,home")], [a, b]),
                 ([("archs", "aarch64"), ("repos", "bur")], [a, b]),
                 ([("label_selector", "env!=home")], [b, c]),
                 ([("label_selector", "env"), ("archs", "aarch64")], [a, c]),
                 ([("label_selector", "env"), ("archs", "x86_64")], [a]),
                 ([("per_page", "1"), ("page", "2")], [b])]
        for params, want in cases:
            found, total = db.list_targets(parse(params, TARGETS))
            assert [t.id for t in found] == want, params
            assert total == (3 if "per_page" in dict(params) else len(want))
    finally:
        db.set_labels(TARGETS_TABLE, a, {})
        db.set_labels(TARGETS_TABLE, c, {})


# -- the tables agree ----------------------------------------------------------------------


@pytest.mark.parametrize("spec, table", [(BUILDS, BUILDS_TABLE), (TARGETS, TARGETS_TABLE)])
def test_every_parameter_of_a_list_has_its_sql(spec, table):
    assert set(spec.order_fields) <= set(table.fields)
    assert set(spec.timestamp_fields) <= set(table.fields)
    assert {f.name for f in spec.filters} == set(table.filters)
    assert spec.labels == (table.labels is not None)


def test_every_v2_state_has_a_condition_and_timeouts_are_the_agents_exit_code():
    assert set(BUILD_STATE_CONDITIONS) == set(BUILD_STATES)
    assert TIMEOUT_EXIT == AGENT_TIMEOUT_EXIT


def test_a_query_outside_the_table_whitelist_is_a_programming_error():
    with pytest.raises(ValueError, match="order field"):
        compile_list(ListQuery(order_by="created_at"), TARGETS_TABLE)
    with pytest.raises(ValueError, match="filter"):
        compile_list(parse([("states", "failed")], BUILDS), TARGETS_TABLE)


def test_values_are_bound_parameters():
    query = parse([("archs", "x'); DROP TABLE builds; --"), ("label_selector", "env=prod"),
                   ("created_ats[lt]", ts(T0))], BUILDS)
    compiled = compile_list(query, BUILDS_TABLE)
    sql, params = compiled.select_sql("id")
    assert "DROP" not in sql and "prod" not in sql and str(T0) not in sql
    assert "x'); DROP TABLE builds; --" in params and "prod" in params and T0 in params


# -- query plans ---------------------------------------------------------------------------

# The id order alone is left out: sqlite walks the table in id order and stops at the
# page's end (test_an_order_alone_needs_no_sort), and counts it with the smallest index.
PLANNED = [
    [("order_by", "created_at")], [("order_by", "-created_at")],
    [("order_by", "updated_at")], [("order_by", "-updated_at")],
    [("order_by", "started_at")], [("order_by", "-ended_at")],
    [("states", "success")], [("states", "queued,running")], [("states", "failed,timeout")],
    [("target_ids", "3")], [("archs", "x86_64")], [("repos", "bur")], [("runners", "pi4")],
    [("tags", "nightly")],
    [("created_ats", ts(T0))], [("created_ats[gte]", ts(T0)), ("created_ats[lt]", ts(T0 + DAY))],
    [("updated_ats[gt]", ts(T0))], [("started_ats[lt]", ts(T0))], [("ended_ats[gte]", ts(T0))],
    [("label_selector", "env=prod")], [("label_selector", "env in (a,b)")],
    [("label_selector", "env")],
    [("states", "failed"), ("order_by", "-created_at")],
    [("target_ids", "3"), ("order_by", "-ended_at")],
    [("archs", "aarch64"), ("created_ats[gt]", ts(T0))],
    [("since_last_success", "true")], [("since_last_success", "true"), ("target_ids", "3")],
]


def plan(db: Database, sql: str, params: tuple) -> list[str]:
    return [r["detail"] for r in db._all("EXPLAIN QUERY PLAN " + sql, *params)]


@pytest.mark.parametrize("params", PLANNED, ids=["&".join(f"{n}={v}" for n, v in p)
                                                 for p in PLANNED])
def test_every_filter_and_order_is_served_by_an_index(world: World, params):
    compiled = compile_list(parse(params, BUILDS), BUILDS_TABLE)
    for sql, bound in (compiled.select_sql("id"), compiled.count_sql()):
        steps = plan(world.db, sql, bound)
        assert "SCAN builds" not in steps, (sql, steps)
        # a count of label requirements alone reads the label index only
        assert any(s.startswith(("SEARCH builds", "SCAN builds USING",
                                 "SEARCH label0 USING COVERING INDEX build_labels_by_value"))
                   for s in steps), steps


def test_since_last_success_reads_per_target_and_arch_from_two_indexes(labelled: Database):
    """The last success of each target and arch from one index, the failures after it
    from another: no build is read that is not in the answer."""
    compiled = compile_list(parse([("since_last_success", "true")], BUILDS), BUILDS_TABLE)
    for sql, bound in (compiled.select_sql("id"), compiled.count_sql()):
        steps = plan(labelled, sql, bound)
        assert "SEARCH last USING INDEX builds_last_success (target_id=? AND arch=?)" \
            in steps, steps
        assert "SEARCH failed USING INDEX builds_failed_by_target (target_id=? AND arch=? " \
            "AND ended_at>?)" in steps, steps
        assert not any(s.startswith(("SCAN builds", "SCAN last", "SCAN failed"))
                       for s in steps), steps


@pytest.mark.parametrize("order", ["id", "-id", "created_at", "-created_at", "updated_at",
                                   "-updated_at", "started_at", "-started_at", "ended_at",
                                   "-ended_at"])
def test_an_order_alone_needs_no_sort(world: World, order):
    sql, bound = compile_list(parse([("order_by", order)], BUILDS), BUILDS_TABLE).select_sql("*")
    steps = plan(world.db, sql, bound)
    assert not any("TEMP B-TREE" in s for s in steps), steps


# -- plans on a database with statistics -------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Database:
    """3000 finished builds of 30 targets, one in ten failed, each labelled `env` (one of
    three values), one in five also `tier`; opened again afterwards, as a server would."""
    path = tmp_path_factory.mktemp("labelled") / "vieter.sqlite"
    db = Database(path)
    rng = random.Random(3)
    with db.transaction():
        targets = [db.add_target({"kind": "git", "url": f"https://e.org/{i}.git",
                                  "repo": "bur"}, {"x86_64": None, "aarch64": None})
                   for i in range(30)]
        for i in range(3000):
            start = T0 + i * 600
            build = db.add_finished_build(rng.choice(targets), rng.choice(("x86_64", "aarch64")),
                                          start, start + 60, 1 if rng.random() < 0.1 else 0,
                                          now=start, repo="bur")
            labels = {"env": rng.choice(("home", "lab", "ci"))}
            if rng.random() < 0.2:
                labels["tier"] = "1"
            db.set_labels(BUILDS_TABLE, build, labels)
    db.close()
    reopened = Database(path)
    yield reopened
    reopened.close()


def test_a_targets_labelled_builds_are_read_from_the_target_index(labelled: Database):
    """The target's few builds are found by its index and their label looked up by
    (build, key), rather than every build with the label checked for the target."""
    compiled = compile_list(parse([("target_ids", "7"), ("label_selector", "env=lab")], BUILDS),
                            BUILDS_TABLE)
    for sql, bound in (compiled.select_sql("id"), compiled.count_sql()):
        steps = plan(labelled, sql, bound)
        assert steps[0] == "SEARCH builds USING COVERING INDEX builds_by_target (target_id=?)", \
            steps


def test_the_newest_failed_builds_are_read_in_created_at_order(labelled: Database):
    """With statistics sqlite knows failed builds are common enough to walk the
    created_at index and stop at the page's end, instead of sorting all of them."""
    compiled = compile_list(parse([("states", "failed"), ("archs", "x86_64"),
                                   ("order_by", "-created_at")], BUILDS), BUILDS_TABLE)
    steps = plan(labelled, *compiled.select_sql("id"))
    assert steps == ["SCAN builds USING INDEX builds_by_created"], steps


def test_a_database_is_opened_with_statistics(labelled: Database):
    tables = {r["tbl"] for r in labelled._all("SELECT tbl FROM sqlite_stat1")}
    assert {"builds", "build_labels"} <= tables



def test_a_pages_details_are_read_together(tmp_path):
    """Tags, labels and packages of a page of builds: the same as the per-build readers
    give, in three queries whatever the page's size (a page of 50 took 150)."""
    db = Database(tmp_path / "v.sqlite")
    try:
        target = db.add_target({"kind": "git", "url": "https://e.org/a.git", "repo": "bur"},
                               {"x86_64": None})
        ids = [db.add_finished_build(target, "x86_64", T0 + i, T0 + i + 5, 0, T0 + i)
               for i in range(60)]
        for n, build in enumerate(ids):
            if n % 2:
                db.set_labels(BUILDS_TABLE, build, {"env": "lab", "a": str(n)})
            if n % 3:
                db.set_build_tags(build, ["z", "a"][: 1 + n % 2])
            if n % 5 == 0:
                db.add_build_package(build, "zed", "1-1", "x86_64", "zed-1-1-x86_64.pkg.tar.zst")
                db.add_build_package(build, "abc", "1-1", "any", "abc-1-1-any.pkg.tar.zst")
        statements: list[str] = []
        db._conn.set_trace_callback(statements.append)
        details = db.build_details(ids[5:55])
        db._conn.set_trace_callback(None)
        assert len(statements) == 3, statements
        assert list(details) == ids[5:55]
        for build in ids[5:55]:
            got = details[build]
            assert got.tags == db.build_tags(build)
            assert got.labels == db.labels(BUILDS_TABLE, build)
            assert got.packages == db.build_packages(build)
        assert any(d.tags for d in details.values()) and any(d.packages for d in details.values())
        assert db.build_details([]) == {}
    finally:
        db.close()


@pytest.mark.parametrize("total, offset, limit, rows, walk", [
    (6700, 0, 50, 100_000, True),        # one build in 15 matches: the page is 750 rows in
    (6700, 50, 50, 100_000, True),
    (6700, 49_950, 50, 100_000, False),  # a deep page: most of the table before it
    (100, 0, 50, 100_000, False),        # a rare label: its index has the few rows
    (1000, 0, 50, 3000, True),
    (10, 0, 50, 10, False),              # a small list: nothing to win, read it from the labels
    (0, 0, 50, 100_000, False),
])
def test_walk_in_order(total, offset, limit, rows, walk):
    assert walk_in_order(total, offset, limit, rows) is walk


def issued_page_select(db: Database, query: ListQuery) -> tuple[str, list]:
    """The page select list_rows sends (with its values inlined), and the rows it got."""
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    try:
        rows, _ = db.list_rows(BUILDS_TABLE, query, "id")
    finally:
        db._conn.set_trace_callback(None)
    [page] = [s for s in statements if " LIMIT " in s]
    return page, [r["id"] for r in rows]


def test_a_page_of_a_common_label_walks_the_order_and_stops(labelled: Database):
    """A third of the builds have env=lab: the first page is read by walking the builds in
    id order and looking each one's label up, not by reading every build with the label
    and sorting them."""
    page, ids = issued_page_select(labelled, parse([("label_selector", "env=lab")], BUILDS))
    steps = plan(labelled, page, ())
    assert steps[0] == "SCAN builds" and not any("TEMP B-TREE" in s for s in steps), steps
    assert len(ids) == 50


@pytest.mark.parametrize("params", [
    [("label_selector", "env=lab")], [("label_selector", "env in (lab,ci),tier")],
    [("label_selector", "tier,env!=ci"), ("order_by", "-created_at")],
    [("label_selector", "env=home"), ("archs", "x86_64"), ("page", "3")],
    [("label_selector", "tier"), ("order_by", "-ended_at"), ("page", "7")],
])
def test_walking_and_joining_read_the_same_page(labelled: Database, params):
    compiled = compile_list(parse(params, BUILDS), BUILDS_TABLE)
    walked = [r["id"] for r in labelled._all(*_flat(compiled.select_sql("id", walk=True)))]
    joined = [r["id"] for r in labelled._all(*_flat(compiled.select_sql("id", walk=False)))]
    assert walked == joined and len(walked) == 50


def _flat(pair: tuple[str, tuple]) -> tuple:
    return (pair[0], *pair[1])


@pytest.mark.parametrize("selector", ["env=lab", "env in (lab,ci),tier", "tier"])
def test_a_count_of_labels_alone_reads_no_builds(labelled: Database, selector):
    """Only positive label requirements: the total is counted in the label table."""
    compiled = compile_list(parse([("label_selector", selector)], BUILDS), BUILDS_TABLE)
    steps = plan(labelled, *compiled.count_sql())
    assert not any("builds " in s.replace("build_labels", "") for s in steps), steps
    total = labelled._one(*_flat(compiled.count_sql()))[0]
    rows, _ = labelled.list_rows(BUILDS_TABLE, parse([("label_selector", selector),
                                                     ("per_page", "5000")], BUILDS), "id")
    assert total == len(rows) > 0


# -- build statistics' samples (db/stats.py) ----------------------------------------------

@pytest.mark.parametrize("target, reader, index", [
    (None, None, "builds_stats (created_at>? AND created_at<?)"),
    (None, "alice", "builds_stats (created_at>? AND created_at<?)"),
    (3, None, "builds_stats_by_target (target_id=? AND created_at>? AND created_at<?)"),
    (3, "alice", "builds_stats_by_target (target_id=? AND created_at>? AND created_at<?)"),
])
def test_stats_samples_read_the_window_from_an_index_alone(labelled: Database, target, reader,
                                                           index):
    """Only the window's entries of an index holding every column read, the readers'
    condition's included: no row of the table."""
    sql, bound = samples_sql(T0, T0 + DAY, target, reader)
    steps = plan(labelled, sql, bound)
    assert steps[0] == f"SEARCH builds USING COVERING INDEX {index}", steps


def test_stats_samples_are_the_window_the_target_and_the_readers_builds(world: World):
    since, until = T0 + 3600, T0 + 6 * 3600
    target = world.targets[0]
    want = sorted((b.created_at, b.started_at, b.ended_at, state_of(b)) for b in world.builds
                  if since <= b.created_at < until and b.target_id == target)
    got = world.db.build_samples(since, until, target)
    assert sorted((s.created_at, s.started_at, s.ended_at, s.state) for s in got) == want
    assert want and "timeout" in {s.state for s in world.db.build_samples(0, T0 + 99 * DAY)}
    private = world.builds[0].id
    world.db._run("UPDATE builds SET access_read = '[\"alice\"]' WHERE id = ?", private)
    try:
        everyone = len(world.db.build_samples(0, T0 + 99 * DAY))
        assert len(world.db.build_samples(0, T0 + 99 * DAY, reader="alice")) == everyone
        assert len(world.db.build_samples(0, T0 + 99 * DAY, reader="bob")) == everyone - 1
        assert len(world.db.build_samples(0, T0 + 99 * DAY, reader="*")) == everyone - 1
    finally:
        world.db._run("UPDATE builds SET access_read = '[\"*\"]' WHERE id = ?", private)
