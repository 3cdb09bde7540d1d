"""Bench: /api/v2/builds lists against the v1 build-log list, over HTTP, among N builds.

    python3 bench/v2_lists.py [--builds 100000] [--targets 200] [--requests 100]
                              [--warmup 5] [--seed 1] [--tmpdir DIR]

Prepares a data dir as bench/logs_list.py does (Database.add_target, then
Database.add_finished_build per record in one transaction), and in the same transaction
labels every build (`env` one of home/lab/ci, `tier` on about one in five) and records one
published package for every successful build. Starts one real server process and times,
per query and each over its own keep-alive connection after a warm-up, sequential GETs:
the v1 logs query (`GET /api/v1/logs?target=T&exit_codes=!0&limit=25`, random targets) as
the reference, then the /api/v2/builds lists in QUERIES. Prints median, p95 and max per
query and the ratio of each median to the v1 median. Every response is checked (status
200, the CF list shape, the filters and order asked for, and the same ids and total as
the same ListQuery run in-process before the server started); mismatches are counted and
printed, never raised. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import logs_list as v1  # noqa: E402
from vieter_lite.db import Database  # noqa: E402
from vieter_lite.db.lists import BUILDS_TABLE  # noqa: E402
from vieter_lite.lists import BUILDS, LabelRequirement, ListQuery, parse  # noqa: E402

MEDIAN_TARGET_MS = 20.0
ENVS = ("home", "lab", "ci")
TIER_RATE = 0.2
PAGE_KEYS = {"pagination", "resources"}
PAGINATION_KEYS = {"total_results", "total_pages", "first", "last", "next", "previous"}
BUILD_KEYS = {"id", "status", "target_id", "repo", "arch", "force", "note", "tags",
              "metadata", "access:read", "access:write", "triggers", "owner", "runner",
              "exit_code", "hold", "blocked_by", "timeout", "source", "review",
              "agent_labels", "agent_id", "created_at", "updated_at", "started_at",
              "ended_at", "setup_log", "tasks", "packages", "links"}
DEEP_PAGE = 1000


@dataclass(frozen=True)
class Case:
    """One timed request kind: `path` may hold `{target}` (a random target per request)."""

    name: str
    path: str


V1 = Case("v1 logs target=T exit_codes=!0 limit=25",
          f"/api/v1/logs?target={{target}}&exit_codes=!0&limit={v1.LIMIT}")
QUERIES = [
    Case("v2 failed x86_64 -created_at", "/api/v2/builds?states=failed&archs=x86_64"
                                         "&order_by=-created_at&per_page=50"),
    Case("v2 label env=lab,tier", "/api/v2/builds?label_selector=env=lab,tier&per_page=50"),
    Case("v2 target=T label env=lab", "/api/v2/builds?target_ids={target}"
                                      "&label_selector=env=lab&per_page=50"),
    Case("v2 failed x86_64 -created_at p2", "/api/v2/builds?states=failed&archs=x86_64"
                                            "&order_by=-created_at&per_page=50&page=2"),
    Case(f"v2 -created_at page {DEEP_PAGE}",
         f"/api/v2/builds?order_by=-created_at&per_page=50&page={DEEP_PAGE}"),
    Case(f"v2 id page {DEEP_PAGE}", f"/api/v2/builds?per_page=50&page={DEEP_PAGE}"),
    Case("v2 -ended_at", "/api/v2/builds?order_by=-ended_at&per_page=50"),
    Case("v2 since_last_success", "/api/v2/builds?since_last_success=true&per_page=50"),
    Case("v2 since_last_success -ended_at", "/api/v2/builds?since_last_success=true"
                                            "&order_by=-ended_at&per_page=50"),
    Case("v2 since_last_success target=T", "/api/v2/builds?since_last_success=true"
                                           "&target_ids={target}&per_page=50"),
]
# /api/v2/stats/builds: checked against stats.summarise over Database.build_samples
STATS = [
    Case("stats 30 days by day", "/api/v2/stats/builds"),
    Case("stats 30 days by day target=T", "/api/v2/stats/builds?target_id={target}"),
    Case("stats 7 days by hour", "/api/v2/stats/builds?bucket=hour&since={week_ago}"),
    Case("stats 365 days by day", "/api/v2/stats/builds?since={year_ago}"),
]


def labeller(db: Database, seed: int) -> Callable[[int, int], None]:
    """What every prepared build gets besides its record: labels (`env` always, `tier` on
    about one in five) and, when it succeeded, one published package."""
    rng = random.Random(seed + 2)

    def on_build(build_id: int, code: int) -> None:
        labels = {"env": rng.choice(ENVS)}
        if rng.random() < TIER_RATE:
            labels["tier"] = str(rng.randint(1, 3))
        db.set_labels(BUILDS_TABLE, build_id, labels)
        if code == 0:
            name = f"bench-pkg{build_id % 997}"
            db.add_build_package(build_id, name, f"1.{build_id}-1", "x86_64",
                                 f"{name}-1.{build_id}-1-x86_64.pkg.tar.zst")
    return on_build


def query_of(path: str) -> ListQuery:
    from urllib.parse import parse_qsl, urlsplit
    return parse(parse_qsl(urlsplit(path).query, keep_blank_values=True), BUILDS)


def expected_v2(db: Database, paths: set[str]) -> dict[str, tuple[list[int], int, float]]:
    """Per distinct path: the ids and total the same ListQuery gives in-process, and the
    median time of Database.list_builds for it (three calls after one untimed)."""
    out = {}
    for path in sorted(paths):
        query = query_of(path)
        db.list_builds(query)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            builds, total = db.list_builds(query)
            times.append(time.perf_counter() - start)
        out[path] = ([b.id for b in builds], total, c.median(times))
    return out


def stats_paths(now: int, targets: list[int]) -> dict[str, set[str]]:
    """Per stats case, the paths its requests ask (a target, or a time, filled in)."""
    fill = {"week_ago": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7 * 86400)),
            "year_ago": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 365 * 86400))}
    return {case.path: {case.path.format(target=t, **fill) for t in targets} for case in STATS}


def expected_stats(db: Database, paths: set[str], now: int) -> dict[str, tuple[list, int,
                                                                                float]]:
    """Per path: the buckets as the route shapes them, the builds counted, and the median
    time of Database.build_samples + stats.summarise (three calls after one untimed)."""
    from urllib.parse import parse_qsl, urlsplit

    from vieter_lite import stats
    from vieter_lite.web.v2.shapes import stats_json
    out = {}
    for path in sorted(paths):
        query = stats.parse_query(parse_qsl(urlsplit(path).query), now)
        times = []
        for i in range(4):
            start = time.perf_counter()
            buckets = stats.summarise(db.build_samples(query.since, query.until,
                                                       query.target_id), query)
            if i:
                times.append(time.perf_counter() - start)
        shown = stats_json(query, buckets)["buckets"]
        out[path] = (shown, sum(b["builds"] for b in shown), c.median(times))
    return out


def check_stats(status: int, body: bytes, expected: tuple[list, int, float] | None
                ) -> list[str]:
    if status != 200:
        return [f"status {status}: {body[:200]!r}"]
    doc = json.loads(body)
    if expected is not None and doc["buckets"] != expected[0]:
        return ["buckets differ from stats.summarise in-process"]
    return []


def label_matches(labels: dict[str, str], req: LabelRequirement) -> bool:
    """The positive requirements the bench's queries use."""
    if req.op == "=":
        return labels.get(req.key) == req.values[0]
    if req.op == "exists":
        return req.key in labels
    raise ValueError(f"the bench does not check '{req.op}'")


def _sorted_by(items: list[dict], key: str) -> bool:
    values = [(item[key], item["id"]) for item in items]
    return values == sorted(values, reverse=True)


def check_v2(status: int, body: bytes, path: str,
             expected: tuple[list[int], int, float] | None) -> list[str]:
    """What is wrong with one /api/v2/builds response (empty list = fine)."""
    if status != 200:
        return [f"status {status}: {body[:200]!r}"]
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return [f"not JSON ({exc}): {body[:200]!r}"]
    if not isinstance(doc, dict) or set(doc) != PAGE_KEYS \
            or set(doc["pagination"]) != PAGINATION_KEYS \
            or not isinstance(doc["resources"], list):
        return [f"not a CF list: {body[:200]!r}"]
    query = query_of(path)
    items = doc["resources"]
    problems = []
    if len(items) > query.per_page:
        problems.append(f"{len(items)} items > per_page {query.per_page}")
    wanted = dict(query.filters)
    for item in items:
        if not isinstance(item, dict) or set(item) != BUILD_KEYS:
            problems.append(f"not a build: {str(item)[:200]}")
            continue
        labels = item["metadata"]["labels"]
        if "states" in wanted and item["status"] not in wanted["states"]:
            problems.append(f"build {item['id']} is {item['status']}")
        if "archs" in wanted and item["arch"] not in wanted["archs"]:
            problems.append(f"build {item['id']} is {item['arch']}")
        if "target_ids" in wanted and str(item["target_id"]) not in wanted["target_ids"]:
            problems.append(f"build {item['id']} has target_id {item['target_id']}")
        for req in query.labels:
            if not label_matches(labels, req):
                problems.append(f"build {item['id']} labels {labels} miss {req}")
    if query.descending and not problems and not _sorted_by(items, query.order_by):
        problems.append(f"not ordered by -{query.order_by}")
    if expected is not None and not problems:
        ids, total = [item["id"] for item in items], doc["pagination"]["total_results"]
        if (ids, total) != expected[:2]:
            problems.append(f"ids/total differ from Database.list_builds: {ids[:3]}... "
                            f"{total} vs {expected[0][:3]}... {expected[1]}")
    return problems


def run(server: c.Server, case: Case, targets: list[int], warmup: int,
        check: Callable[[int, bytes, str, int], list[str]], **fill: str) -> dict:
    """Warm-up, then one timed GET per entry of `targets`, over one HTTP/1.1 connection;
    responses are checked after the clock stops."""
    headers = {"X-Api-Key": c.API_KEY}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    result: dict = {"times": [], "sizes": [], "problems": [], "bad": 0, "connects": 0}
    try:
        for i, target in enumerate(targets[:warmup] + targets):
            path = case.path.format(target=target, **fill)
            if conn.sock is None:
                result["connects"] += 1
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - start
            problems = check(resp.status, body, path, target)
            if i < warmup:
                result["problems"] += [f"warm-up GET {path}: {p}" for p in problems[:1]]
                continue
            result["times"].append(elapsed * 1000)
            result["sizes"].append(len(body))
            if problems:
                result["bad"] += 1
                result["problems"] += [f"GET {path}: {p}" for p in problems]
    finally:
        conn.close()
    return result


def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=100_000,
                        help="finished build records (default: %(default)s)")
    parser.add_argument("--targets", type=int, default=200,
                        help="targets the builds belong to (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=100,
                        help="timed sequential requests per query (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed requests first, per query (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--tmpdir", default=None,
                        help="where the scratch data dir goes (default: the system temp dir)")
    args = parser.parse_args(argv)
    if args.builds < 1 or args.targets < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--builds, --targets and --requests must be at least 1, --warmup >= 0")

    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    print(f"# python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"data dir under {args.tmpdir or tempfile.gettempdir()}")
    print(f"# target: v2 list median < {MEDIAN_TARGET_MS:g} ms", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="vieter-bench-v2-", dir=args.tmpdir))
    server: c.Server | None = None
    db: Database | None = None
    try:
        data_dir = workdir / "data"
        data_dir.mkdir()
        config_path = c.write_config(workdir / "vieter-lite.toml", data_dir, c.free_port())
        cfg = c.load_config(config_path)
        db_path = cfg.data_dir / "vieter.sqlite"   # where services.build_services opens it

        print(f"# preparing {args.builds} builds across {args.targets} targets ...",
              file=sys.stderr, flush=True)
        db = Database(db_path)
        start = time.perf_counter()
        with db.transaction():
            prep = v1.prepare(db, args.builds, args.targets, args.seed, int(time.time()),
                              labeller(db, args.seed))
        prepare_s = time.perf_counter() - start
        db.close()
        db = None
        size = sum(p.stat().st_size for p in data_dir.iterdir() if p.name.startswith("vieter."))
        print(f"# prepared {args.builds} finished builds ({prep['failed']} non-zero) across "
              f"{args.targets} targets, labels on each (env {'/'.join(ENVS)}, tier on about "
              f"{TIER_RATE:.0%}), a package per success, in {prepare_s:.1f} s (one "
              f"transaction); sqlite {size / 1e6:.1f} MB")

        rng = random.Random(args.seed + 1)
        targets = [rng.choice(prep["target_ids"]) for _ in range(args.requests)]

        start = time.perf_counter()
        db = Database(db_path)   # fresh connection, like the server's
        print(f"# opening the database (migrations, ANALYZE) took "
              f"{(time.perf_counter() - start) * 1000:.0f} ms")
        _, expected_v1 = v1.time_in_process(db, targets, args.warmup)
        paths = {q.path.format(target=t) for q in QUERIES for t in targets}
        expected = expected_v2(db, paths)
        now = int(time.time())
        fill = {"week_ago": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7 * 86400)),
                "year_ago": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                          time.gmtime(now - 365 * 86400))}
        stat_paths = {p for ps in stats_paths(now, targets).values() for p in ps}
        expected_st = expected_stats(db, stat_paths, now)
        db.close()
        db = None

        print(f"# starting the server, then {args.warmup} warm-up + {args.requests} timed "
              f"requests per query ...", file=sys.stderr, flush=True)
        server = c.Server(config_path, cfg.port, workdir / "server.log").start()
        results = [(V1, run(server, V1, targets, args.warmup,
                            lambda s, b, _p, t: v1.check(s, b, t, expected_v1.get(t))))]
        for case in QUERIES:
            results.append((case, run(server, case, targets, args.warmup,
                                      lambda s, b, p, _t: check_v2(s, b, p, expected.get(p)))))
        for case in STATS:
            results.append((case, run(server, case, targets, args.warmup,
                                      lambda s, b, p, _t: check_stats(s, b, expected_st.get(p)),
                                      **fill)))
        rss = c.kib(server.status()["VmRSS"])
        server.stop()
        server = None

        reference = c.median(results[0][1]["times"])
        print(f"{args.requests} sequential requests per query, each query over its own "
              f"keep-alive connection after {args.warmup} warm-up; T = a random target")
        print(f"{'query':40} {'median':>7} {'p95':>7} {'max':>7} {'v2/v1':>6} "
              f"{'in-proc':>8} {'total':>6} {'bytes':>6}  conns")
        for case, res in results:
            times = res["times"]
            med = c.median(times)
            first = case.path.format(target=targets[0], **fill)
            sample = [e for p, e in {**expected, **expected_st}.items() if p == first]
            inproc = f"{sample[0][2] * 1000:8.2f}" if sample else f"{'':8}"
            total = f"{sample[0][1]:6}" if sample else f"{'':6}"
            print(f"{case.name:40} {med:7.2f} {v1.percentile(times, 95):7.2f} "
                  f"{max(times):7.2f} {med / reference:6.2f} {inproc} {total} "
                  f"{c.median(res['sizes']):6.0f}  {res['connects']}")
        worst = max(c.median(res["times"]) for _, res in results[1:])
        print(f"  slowest v2 median {worst:.2f} ms [target < {MEDIAN_TARGET_MS:g} ms: "
              f"{'ok' if worst < MEDIAN_TARGET_MS else 'MISSED'}]; server RSS "
              f"{rss / 1024:.1f} MB after the requests")
        print("  (in-proc: Database.list_builds (stats: build_samples + summarise) median for "
              "the query of the first target, no details or JSON; total: its total_results "
              "(stats: the builds counted))")
        problems = [p for _, res in results for p in res["problems"]]
        bad = sum(res["bad"] for _, res in results)
        print(f"  checks: {len(results) * args.requests - bad}/{len(results) * args.requests} "
              f"timed responses fine (200, envelope or CF list shape, filters and order, same "
              f"ids and total as in-process); {len(problems)} mismatch(es)")
        for line in problems[:20]:
            print(f"    {line}")
        if len(problems) > 20:
            print(f"    ... and {len(problems) - 20} more")
        return 0
    finally:
        if server is not None:
            server.stop()
        if db is not None:
            db.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
