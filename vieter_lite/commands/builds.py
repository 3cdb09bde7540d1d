"""vieter-lite builds list: what is queued and running (or any builds) on the server."""

from __future__ import annotations

import argparse

from vieter_lite.commands.common import (
    Context,
    count,
    local,
    positive_id,
    print_json,
    print_table,
    runs,
)

ACTIVE = "queued,running"


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    status = None if a.status.strip() == "all" else a.status
    found = ctx.client().list_builds(status=status, target=a.target, limit=a.limit,
                                     offset=a.offset)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["id", "target", "repo/arch", "status", "queued", "started"],
                [(b["id"], b["target_id"], f"{b['repo']}/{b['arch']}", b["status"],
                  local(b["created_at"]), local(b["started_at"])) for b in found])
    return 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("builds", parents=[flags], help="see queued and running builds",
                                description="See the server's builds: queued, running, done.")
    sub = group.add_subparsers(dest="builds_command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", parents=[flags], help="list builds (queued and running ones by "
                       "default)", description="List builds, oldest first. Times are local.")
    p.add_argument("--status", default=ACTIVE, metavar="S[,S...]",
                   help=f"only builds in these states (default: {ACTIVE}; 'all' for every "
                   "state: queued, running, success, failed, cancelled)")
    p.add_argument("--target", type=positive_id, help="only builds of this target")
    p.add_argument("-l", "--limit", type=count, default=0,
                   help="at most this many (default 0: all)")
    p.add_argument("-o", "--offset", type=count, help="skip this many")
    p.set_defaults(func=runs(cmd_list))
