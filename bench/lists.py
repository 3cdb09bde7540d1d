"""Bench: /api/v2 list queries (Cloud Foundry v3 rules) over N builds, in-process.

    python3 bench/lists.py [--builds 100000] [--targets 200] [--repeat 30] [--seed 1]
                           [--tmpdir DIR]

Prepares a database with N builds across T targets with the Database's own methods
(add_target, add_finished_build in one transaction; ids grow with time), labels on one
build in ten (`env` prod/dev, `team`) and the tag `nightly` on one in twenty. Then, for
each query in QUERIES, parses the parameters with vieter_lite.lists.parse and times
Database.list_rows(BUILDS_TABLE, query, "id") (one page of ids plus the total) and
Database.list_builds(query) (the page as Build records with their tasks). The reference,
timed in the same run on the same database, is the v1 build-log list query
(Database.finished_builds(limit=25, target=T, codes_not_in=[0])); the ratio column is the
median against the reference median. Each query's plan (EXPLAIN QUERY PLAN of the page
select) is printed. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vieter_lite.db import Database  # noqa: E402
from vieter_lite.db.lists import BUILDS_TABLE, compile_list, walk_in_order  # noqa: E402
from vieter_lite.lists import BUILDS, parse  # noqa: E402

YEAR = 365 * 86400
NOW = 1_790_000_000


def ts(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    ("default (id)", []),
    ("-created_at", [("order_by", "-created_at")]),
    ("-updated_at", [("order_by", "-updated_at")]),
    ("-ended_at, page 100", [("order_by", "-ended_at"), ("page", "100")]),
    ("states=failed", [("states", "failed")]),
    ("states=failed -created_at", [("states", "failed"), ("order_by", "-created_at")]),
    ("states=success -created_at", [("states", "success"), ("order_by", "-created_at")]),
    ("target_ids=T -created_at", [("target_ids", "{target}"), ("order_by", "-created_at")]),
    ("archs=aarch64", [("archs", "aarch64")]),
    ("created_ats last week", [("created_ats[gte]", ts(NOW - 7 * 86400))]),
    ("created_ats first 300 days", [("created_ats[lt]", ts(NOW - YEAR + 300 * 86400))]),
    ("updated_ats[gt] last day", [("updated_ats[gt]", ts(NOW - 86400))]),
    ("label env=prod", [("label_selector", "env=prod")]),
    ("label env!=prod", [("label_selector", "env!=prod")]),
    ("tags=nightly", [("tags", "nightly")]),
    ("per_page=5000", [("per_page", "5000")]),
]


def prepare(db: Database, n_builds: int, n_targets: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    with db.transaction():
        targets = [db.add_target({"kind": "git", "url": f"https://e.org/p{i}.git",
                                  "repo": "bench"}, {"x86_64": None, "aarch64": None})
                   for i in range(n_targets)]
        starts = sorted(rng.randint(NOW - YEAR, NOW - 3600) for _ in range(n_builds))
        for start in starts:
            end = start + rng.randint(10, 3600)
            code = rng.choice((1, 2, 124)) if rng.random() < 0.1 else 0
            build = db.add_finished_build(rng.choice(targets), rng.choice(("x86_64", "aarch64")),
                                          start, end, code, now=start - 5, repo="bench")
            if build % 10 == 0:
                db.set_labels(BUILDS_TABLE, build, {"env": rng.choice(("prod", "dev")),
                                                    "team": "home"})
            if build % 20 == 0:
                db.set_build_tags(build, ["nightly"])
    return targets


def timed(fn, repeat: int) -> list[float]:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=100_000)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--analyze", action="store_true",
                        help="run ANALYZE after preparing (sqlite then knows how selective "
                             "each index is)")
    args = parser.parse_args(argv)
    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    print(f"# python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        db = Database(Path(tmp) / "vieter.sqlite")
        start = time.perf_counter()
        targets = prepare(db, args.builds, args.targets, args.seed)
        print(f"# prepared {args.builds} builds, {args.targets} targets in "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
        if args.analyze:
            db._run("ANALYZE")
        target = targets[len(targets) // 2]
        reference = statistics.median(timed(
            lambda: db.finished_builds(limit=25, target=target, codes_not_in=[0]), args.repeat))
        print(f"reference v1 logs list (target, exit_codes=!0, limit 25): "
              f"{reference * 1000:.2f} ms median")
        print(f"{'query':32} {'rows ms':>8} {'ratio':>6} {'records ms':>10} {'ratio':>6} "
              f"{'total':>7}  plan")
        for name, params in QUERIES:
            params = [(k, v.format(target=target)) for k, v in params]
            query = parse(params, BUILDS)
            rows_ms = statistics.median(timed(
                lambda q=query: db.list_rows(BUILDS_TABLE, q, "id"), args.repeat))
            records_ms = statistics.median(timed(lambda q=query: db.list_builds(q), args.repeat))
            _, total = db.list_rows(BUILDS_TABLE, query, "id")
            compiled = compile_list(query, BUILDS_TABLE)
            # the page select list_rows sends (labels walked in order or joined)
            walk = bool(compiled.positive) and walk_in_order(
                total, compiled.offset, compiled.limit, args.builds)
            sql, bound = compiled.select_sql("id", walk)
            plan = "; ".join(r["detail"] for r in db._all("EXPLAIN QUERY PLAN " + sql, *bound))
            print(f"{name:32} {rows_ms * 1000:8.2f} {rows_ms / reference:6.1f} "
                  f"{records_ms * 1000:10.2f} {records_ms / reference:6.1f} {total:7}  {plan}")
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
