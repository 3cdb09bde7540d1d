"""Bench: listing failed build logs of one target among N finished builds, over HTTP.

    python3 bench/logs_list.py [--builds 100000] [--targets 200] [--requests 200]
                               [--warmup 5] [--seed 1] [--tmpdir DIR]

Prepares a data dir with N finished build records (v1 build logs) across T targets by
opening vieter_lite.db.Database directly (Database.add_target, then
Database.add_finished_build per record inside one transaction; no log files), times the
query in-process (Database.finished_builds), then starts a real server process on the data
dir and times sequential `GET /api/v1/logs?target=<random>&exit_codes=!0&limit=25` over one
keep-alive connection. Prints figures and the server's RSS; asserts nothing about time.
Every response is checked (200, envelope, at most 25 items, all of the requested target
with a non-zero exit code); mismatches are counted and printed, never raised.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from vieter_lite.db import Database  # noqa: E402

MEDIAN_TARGET_MS = 20.0
RSS_TARGET_MB = 80
LIMIT = 25
REPO = "bench"
ARCHS = ("x86_64", "aarch64")
YEAR = 365 * 86400
# non-zero exit codes as they come out of makepkg/containers: plain failures dominate
FAIL_CODES = (1, 1, 1, 1, 2, 4, 8, 124, 125, 137, 255)
FAIL_RATE = 0.10
ITEM_KEYS = {"id", "target_id", "start_time", "end_time", "arch", "exit_code"}


def prepare(db: Database, n_builds: int, n_targets: int, seed: int, now: int,
            on_build: Callable[[int, int], None] | None = None) -> dict:
    """T targets (all x86_64, about half also aarch64) and N finished builds spread over the
    year before `now`, in start-time order (ids grow with time, as they would live). Targets
    build at different rates (weights 0.25-1.75), ~10% of builds exit non-zero.
    `on_build(build_id, exit_code)` runs after each build, in the builds' transaction."""
    rng = random.Random(seed)
    stats: dict = {}
    t0 = time.perf_counter()
    targets: list[tuple[int, tuple[str, ...]]] = []
    with db.transaction():
        for i in range(n_targets):
            archs = ARCHS if rng.random() < 0.5 else ARCHS[:1]
            # next runs a day or two ahead: the scheduler has nothing to arm or queue
            next_run = now + 86400 + rng.randint(0, 86400)
            target_id = db.add_target(
                {"kind": "git", "url": f"https://git.example.org/pkgs/bench-pkg{i}.git",
                 "branch": "main", "path": "", "repo": REPO, "schedule": ""},
                {arch: next_run for arch in archs})
            targets.append((target_id, archs))
    stats["targets_s"] = time.perf_counter() - t0

    weights = [rng.uniform(0.25, 1.75) for _ in targets]
    picks = rng.choices(range(len(targets)), weights, k=n_builds)
    starts = sorted(rng.randint(now - YEAR, now - 7200) for _ in range(n_builds))
    per_target = [0] * len(targets)
    failed = 0
    t0 = time.perf_counter()
    with db.transaction():
        for start, pick in zip(starts, picks, strict=True):
            target_id, archs = targets[pick]
            arch = rng.choice(archs)
            end = start + int(min(7200, max(10, rng.lognormvariate(5.5, 1.0))))
            code = rng.choice(FAIL_CODES) if rng.random() < FAIL_RATE else 0
            failed += code != 0
            per_target[pick] += 1
            build_id = db.add_finished_build(target_id, arch, start, end, code, now=end,
                                             repo=REPO)
            if on_build is not None:
                on_build(build_id, code)
    stats["builds_s"] = time.perf_counter() - t0
    stats["failed"] = failed
    stats["per_target"] = sorted(per_target)
    stats["target_ids"] = [t for t, _ in targets]
    return stats


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def time_in_process(db: Database, queries: list[int], warmup: int) -> tuple[list[float],
                                                                           dict[int, list[int]]]:
    """The same query as the route, straight against sqlite: per-query seconds, and the ids
    each target gets (to compare with what the server answers)."""
    for target in queries[:warmup]:
        db.finished_builds(limit=LIMIT, target=target, codes_not_in=[0])
    times, ids = [], {}
    for target in queries:
        start = time.perf_counter()
        builds = db.finished_builds(limit=LIMIT, target=target, codes_not_in=[0])
        times.append(time.perf_counter() - start)
        ids[target] = [b.id for b in builds]
    return times, ids


def check(status: int, body: bytes, target: int, expected_ids: list[int] | None) -> list[str]:
    """What is wrong with one response (empty list = fine)."""
    if status != 200:
        return [f"status {status}: {body[:200]!r}"]
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return [f"not JSON ({exc}): {body[:200]!r}"]
    if not isinstance(doc, dict) or set(doc) != {"message", "data"} \
            or not isinstance(doc.get("data"), list):
        return [f"not the envelope: {body[:200]!r}"]
    items = doc["data"]
    problems = []
    if len(items) > LIMIT:
        problems.append(f"{len(items)} items > {LIMIT}")
    for item in items:
        if not isinstance(item, dict) or not set(item) >= ITEM_KEYS:
            problems.append(f"item without {sorted(ITEM_KEYS)}: {str(item)[:200]}")
            continue
        if item["target_id"] != target:
            problems.append(f"item {item['id']} has target_id {item['target_id']}")
        if item["exit_code"] == 0 or item["exit_code"] is None:
            problems.append(f"item {item['id']} has exit_code {item['exit_code']}")
    if expected_ids is not None and not problems \
            and [item["id"] for item in items] != expected_ids:
        problems.append(f"ids differ from db.finished_builds: "
                        f"{[item['id'] for item in items][:5]}... vs {expected_ids[:5]}...")
    return problems


def time_http(server: c.Server, queries: list[int], warmup: int,
              expected: dict[int, list[int]]) -> dict:
    """Warm-up, then one timed GET per target in `queries`, all over one HTTP/1.1 connection.
    Responses are checked after the clock stops."""
    headers = {"X-Api-Key": c.API_KEY}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connects = 0
    result: dict = {"times": [], "sizes": [], "items": [], "problems": [], "bad_responses": 0}
    try:
        for i, target in enumerate(queries[:warmup] + queries):
            timed = i >= warmup
            path = f"/api/v1/logs?target={target}&exit_codes=!0&limit={LIMIT}"
            if conn.sock is None:
                connects += 1
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - start
            problems = check(resp.status, body, target, expected.get(target))
            if not timed:
                if problems:
                    result["problems"].append(f"warm-up GET {path}: {problems[0]}")
                continue
            result["times"].append(elapsed)
            result["sizes"].append(len(body))
            if resp.status == 200 and not problems:
                result["items"].append(len(json.loads(body)["data"]))
            if problems:
                result["bad_responses"] += 1
                result["problems"] += [f"GET {path}: {p}" for p in problems]
    finally:
        conn.close()
    result["connects"] = connects
    return result



def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=100_000,
                        help="finished build records (default: %(default)s)")
    parser.add_argument("--targets", type=int, default=200,
                        help="targets the builds belong to (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed sequential requests (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed requests first (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--tmpdir", default=None,
                        help="where the scratch data dir goes (default: the system temp dir)")
    args = parser.parse_args(argv)
    if args.builds < 1 or args.targets < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--builds, --targets and --requests must be at least 1, --warmup >= 0")

    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])))
    print(f"# python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs; data dir under {args.tmpdir or tempfile.gettempdir()}")
    print(f"# targets: median < {MEDIAN_TARGET_MS:g} ms, server RSS < {RSS_TARGET_MB} MB",
          flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="vieter-bench-logs-", dir=args.tmpdir))
    server: c.Server | None = None
    db: Database | None = None
    try:
        data_dir = workdir / "data"
        data_dir.mkdir()
        config_path = c.write_config(workdir / "vieter-lite.toml", data_dir, c.free_port())
        cfg = c.load_config(config_path)
        db_path = cfg.data_dir / "vieter.sqlite"   # where services.build_services opens it
        now = int(time.time())

        print(f"# preparing {args.builds} builds across {args.targets} targets ...",
              file=sys.stderr, flush=True)
        db = Database(db_path)
        prep = prepare(db, args.builds, args.targets, args.seed, now)
        db.close()
        db = None
        per = prep["per_target"]
        size = sum(p.stat().st_size for p in data_dir.iterdir() if p.name.startswith("vieter."))
        print(f"# prepared {args.builds} finished builds ({prep['failed']} non-zero, "
              f"{prep['failed'] / args.builds * 100:.1f}%) across {args.targets} targets: "
              f"targets {prep['targets_s']:.2f} s, builds {prep['builds_s']:.1f} s "
              f"(Database.add_finished_build per row, one transaction); sqlite "
              f"{size / 1e6:.1f} MB; builds per target min/median/max "
              f"{per[0]}/{per[len(per) // 2]}/{per[-1]}")

        rng = random.Random(args.seed + 1)
        queries = [rng.choice(prep["target_ids"]) for _ in range(args.requests)]

        db = Database(db_path)   # fresh connection, like the server's
        local_times, expected = time_in_process(db, queries, args.warmup)
        db.close()
        db = None

        print("# starting the server, then "
              f"{args.warmup} warm-up + {args.requests} timed requests ...",
              file=sys.stderr, flush=True)
        server = c.Server(config_path, cfg.port, workdir / "server.log").start()
        idle = server.status()
        res = time_http(server, queries, args.warmup, expected)
        status = server.status()
        rss, hwm = c.kib(status["VmRSS"]), c.kib(status["VmHWM"])
        server.stop()
        server = None

        times = [t * 1000 for t in res["times"]]
        local_ms = c.median(local_times) * 1000
        med = c.median(times)
        print(f"GET /api/v1/logs?target=<random of {args.targets}>&exit_codes=!0&limit={LIMIT}: "
              f"{len(times)} sequential requests over {res['connects']} keep-alive "
              f"connection(s), after {args.warmup} warm-up")
        print(f"  latency ms   median {med:.2f}   p95 {percentile(times, 95):.2f}   "
              f"max {max(times):.2f}   min {min(times):.2f}   "
              f"[target median < {MEDIAN_TARGET_MS:g} ms: "
              f"{'ok' if med < MEDIAN_TARGET_MS else 'MISSED'}]")
        sizes = sorted(res["sizes"])
        items = sorted(res["items"]) or [0]
        print(f"  response body bytes   median {c.median(sizes):.0f}   min {sizes[0]}   "
              f"max {sizes[-1]};   items per response median {c.median(items):.0f}   "
              f"min {items[0]}   max {items[-1]}")
        print(f"  in-process db.finished_builds(target=..., codes_not_in=[0], limit={LIMIT}): "
              f"median {local_ms:.3f} ms, p95 {percentile(local_times, 95) * 1000:.3f} ms "
              f"-> HTTP overhead (median difference) {med - local_ms:.2f} ms")
        print(f"  server RSS {rss / 1024:.1f} MB, peak (VmHWM) {hwm / 1024:.1f} MB after the "
              f"requests (idle after start: {c.kib(idle['VmRSS']) / 1024:.1f} MB) "
              f"[target RSS < {RSS_TARGET_MB} MB: "
              f"{'ok' if rss / 1024 < RSS_TARGET_MB else 'MISSED'}]")
        problems = res["problems"]
        print(f"  checks: {len(times) - res['bad_responses']}/{len(times)} timed responses "
              f"fine (200, envelope, <= {LIMIT} items, requested target_id, exit_code != 0, "
              f"same ids as db.finished_builds); {len(problems)} mismatch(es)")
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
