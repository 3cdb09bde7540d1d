"""vieter-lite logs list | info | content | tail | remove."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta
from typing import Any, BinaryIO

from vieter_lite.client import Client, ClientError
from vieter_lite.commands.common import (
    Context,
    count,
    day,
    duration,
    exit_code,
    local,
    local_time,
    positive_id,
    print_fields,
    print_json,
    print_table,
    refuse,
    runs,
    seconds,
    warn,
)

ACTIVE = ("queued", "running")


def day_bounds(when: date) -> tuple[int, int]:
    """(after, before) that keep the builds started on a local day: after is strict, so
    it is one second before midnight."""
    midnight = datetime.combine(when, datetime.min.time())
    next_midnight = datetime.combine(when + timedelta(days=1), datetime.min.time())
    return int(midnight.timestamp()) - 1, int(next_midnight.timestamp())


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    after, before = a.after, a.before
    if a.today or a.day:
        if after is not None or before is not None:
            return refuse("logs list: --today and --day cannot be combined with "
                          "--before or --after")
        after, before = day_bounds(date.today() if a.today else a.day)
    codes = ["!0"] if a.failed else (a.code or None)
    found = ctx.client().list_logs(limit=a.limit, offset=a.offset, target=a.target,
                                   before=before, after=after, arch=a.arch or None,
                                   exit_codes=codes)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["id", "target", "start time", "end time", "arch", "exit code"],
                [(b["id"], b["target_id"], local(b["start_time"]), local(b["end_time"]),
                  b["arch"], b["exit_code"]) for b in found])
    return 0


def log_fields(build: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("id", build["id"]), ("target id", build["target_id"]),
            ("start time", local(build["start_time"])), ("end time", local(build["end_time"])),
            ("duration", duration(build["start_time"], build["end_time"])),
            ("arch", build["arch"]),
            ("exit code", "-" if build["exit_code"] is None else build["exit_code"])]


def cmd_info(ctx: Context) -> int:
    build = ctx.client().get_log(ctx.args.id)
    if ctx.json:
        print_json(build)
    else:
        print_fields(log_fields(build))
    return 0


def cmd_content(ctx: Context) -> int:
    data, _ = ctx.client().log_content(ctx.args.id)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


def print_new(client: Client, build_id: int, offset: int, out: BinaryIO) -> int:
    """Write what the log has past `offset`; the new offset."""
    try:
        data, total = client.log_content(build_id, offset)
    except ClientError as exc:
        if exc.status == 404:  # not started yet, or no line written yet
            return offset
        raise
    if not data and total is not None and total < offset:
        return 0  # the log was replaced: start again from its beginning
    if data:
        out.write(data)
        out.flush()
    return offset + len(data)


def cmd_tail(ctx: Context) -> int:
    """Follow a build's log until the build ends: exit 0 if it succeeded, else 1."""
    client, build_id = ctx.client(), ctx.args.id
    out = sys.stdout.buffer
    offset = 0
    build = client.get_build(build_id)
    if build["status"] == "queued":
        warn(f"build {build_id} is queued; waiting for an agent to start it")
    while True:
        # the status is read before the log: once it says "ended", the log read after it
        # is complete
        ended = build["status"] not in ACTIVE
        if build.get("started_at") is not None:
            offset = print_new(client, build_id, offset, out)
        if ended:
            break
        time.sleep(ctx.args.interval)
        build = client.get_build(build_id)
    if build["status"] == "success":
        return 0
    code = build.get("exit_code")
    warn(f"build {build_id} {build['status']}"
         + (f" with exit code {code}" if code is not None else ""))
    return 1


def cmd_remove(ctx: Context) -> int:
    ctx.client().remove_log(ctx.args.id)
    if ctx.json:
        print_json({"id": ctx.args.id, "removed": True})
    else:
        print(f"Build log {ctx.args.id} removed")
    return 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("logs", parents=[flags], help="read build logs",
                                description="Read the logs of finished and running builds.")
    sub = group.add_subparsers(dest="logs_command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[flags], help="list finished builds",
                       description="List finished builds, oldest first. Times are local.")
    p.add_argument("-l", "--limit", type=count, help="at most this many (server default 25; "
                   "0 for all)")
    p.add_argument("-o", "--offset", type=count, help="skip this many")
    p.add_argument("--target", type=positive_id, help="only builds of this target")
    p.add_argument("--arch", help="only builds for this arch")
    p.add_argument("--before", type=local_time, metavar="'YYYY-MM-DD HH:MM:SS'",
                   help="only builds started before this local time")
    p.add_argument("--after", type=local_time, metavar="'YYYY-MM-DD HH:MM:SS'",
                   help="only builds started after this local time")
    days = p.add_mutually_exclusive_group()
    days.add_argument("-d", "--day", type=day, metavar="YYYY-MM-DD",
                      help="only builds started on this local day")
    days.add_argument("-t", "--today", action="store_true", help="only builds started today")
    p.add_argument("--code", type=exit_code, action="append", metavar="N",
                   help="only builds with exit code N (repeatable); !N: not N")
    p.add_argument("--failed", action="store_true",
                   help="only failed builds (exit code not 0; replaces --code)")
    p.set_defaults(func=runs(cmd_list))

    p = sub.add_parser("info", parents=[flags], help="show one build's times and exit code")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_info))

    p = sub.add_parser("content", parents=[flags], help="print a build's log")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_content))

    p = sub.add_parser("tail", parents=[flags], help="follow a build's log until it ends",
                       description="Print a build's log as it grows, until the build ends. "
                       "Exit status 0 when the build succeeded, 1 when it failed or was "
                       "cancelled.")
    p.add_argument("id", metavar="ID", type=positive_id, help="the build id")
    p.add_argument("--interval", type=seconds, default=2.0, metavar="S",
                   help="seconds between checks (default 2)")
    p.set_defaults(func=runs(cmd_tail))

    p = sub.add_parser("remove", parents=[flags], help="remove a finished build and its log")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_remove))
