"""vieter-lite builds list: what is queued and running (or any builds) on the server
(GET /api/v2/builds)."""

from __future__ import annotations

import argparse

from vieter_lite.commands.common import (
    Context,
    arch_list,
    count,
    positive_id,
    print_json,
    print_table,
    runs,
    shown_time,
)
from vieter_lite.lists import BUILD_STATES

ACTIVE = "queued,running"


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    status = None if a.status.strip() == "all" else arch_list(a.status)
    found = ctx.client().list_builds(states=status, target_ids=a.target, limit=a.limit,
                                     offset=a.offset or 0)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["id", "target", "repo/arch", "status", "queued", "started"],
                [(b["id"], b["target_id"], f"{b['repo']}/{b['arch']}", b["status"],
                  shown_time(b["created_at"]), shown_time(b["started_at"])) for b in found])
    return 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("builds", parents=[flags], help="see queued and running builds",
                                description="See the server's builds: queued, running, done.")
    sub = group.add_subparsers(dest="builds_command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", parents=[flags], help="list builds (queued and running ones by "
                       "default)", description="List builds, oldest first. Times are local.")
    p.add_argument("--status", default=ACTIVE, metavar="S[,S...]",
                   help=f"only builds in these states (default: {ACTIVE}; 'all' for every "
                   f"state: {', '.join(BUILD_STATES)})")
    p.add_argument("--target", type=positive_id, help="only builds of this target")
    p.add_argument("-l", "--limit", type=count, default=0,
                   help="at most this many (default 0: all)")
    p.add_argument("-o", "--offset", type=count, help="skip this many")
    p.set_defaults(func=runs(cmd_list))
