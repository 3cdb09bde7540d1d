"""vieter-lite agents list: the build agents registered with the server (/api/v2/agents)."""

from __future__ import annotations

import argparse
from typing import Any

from vieter_lite.commands.common import Context, print_json, print_table, runs, shown_time

TABLE_HEADERS = ("id", "name", "archs", "labels", "status", "last seen", "slots", "builds",
                 "version")


def agent_rows(agents: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["id"], a["name"], ",".join(a["archs"]),
             ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items())) or "-",
             a["status"], shown_time(a["last_seen_at"]), a["slots"],
             ",".join(str(b["id"]) for b in a["builds"]) or "-", a["version"] or "-")
            for a in agents]


def cmd_list(ctx: Context) -> int:
    found = ctx.client().list_agents()
    if ctx.json:
        print_json(found)
    else:
        print_table(TABLE_HEADERS, agent_rows(found))
    return 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("agents", parents=[flags], help="see the build agents",
                                description="The build agents registered with the server "
                                "(needs a key with builds:read).")
    sub = group.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", parents=[flags],
                       help="agents: archs, labels, online or offline, last seen, their builds")
    p.set_defaults(func=runs(cmd_list))
