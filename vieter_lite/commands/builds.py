"""vieter-lite builds list | show | submit | start | cancel | log: builds on the server
(/api/v2/builds), as builds.sr.ht's jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vieter_lite.commands.common import (
    Context,
    arch_list,
    count,
    positive_id,
    print_fields,
    print_json,
    print_table,
    refuse,
    runs,
    shown_time,
    visible,
    warn,
)
from vieter_lite.lists import BUILD_STATES

ACTIVE = "queued,running"
ENDED_BADLY = ("failed", "timeout", "cancelled")


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    status = None if a.status.strip() == "all" else arch_list(a.status)
    found = ctx.client().list_builds(states=status, target_ids=a.target, limit=a.limit,
                                     offset=a.offset or 0)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["id", "target", "repo/arch", "status", "queued", "started", "blocked by"],
                [(b["id"], b["target_id"], f"{b['repo']}/{b['arch']}", b["status"],
                  shown_time(b["created_at"]), shown_time(b["started_at"]),
                  blocked_by(b)) for b in found])
    return 0


def blocked_by(build: dict[str, Any]) -> str:
    """The builds of its dependencies a queued build waits for ('3,5'), '-' for none."""
    return ",".join(str(i) for i in build.get("blocked_by") or []) or "-"


def _owner(build: dict[str, Any]) -> str:
    """The submitting token's user; 'admin' for the api_key (and the scheduler)."""
    owner = build.get("owner")
    name = owner.get("name") if isinstance(owner, dict) else owner
    return str(name) if name else "admin"


def _source(build: dict[str, Any]) -> str:
    """'git URL (branch B, path P)', 'url URL' or 'pkgbuild (inline)'."""
    source = build.get("source")
    if not isinstance(source, dict):
        return "-"
    if source.get("kind") == "pkgbuild":
        return "pkgbuild (inline)"
    extra = ", ".join(f"{key} {source[key]}" for key in ("branch", "path") if source.get(key))
    return f"{source.get('kind')} {source.get('url')}" + (f" ({extra})" if extra else "")


def build_fields(build: dict[str, Any]) -> list[tuple[str, Any]]:
    """`key: value` lines of one build (the note as text: control characters shown
    escaped, its further lines indented)."""
    hold = build.get("hold") or {}
    target = build.get("target_id")
    fields: list[tuple[str, Any]] = [
        ("id", build["id"]), ("status", build["status"])]
    if hold:
        fields.append(("hold", f"{visible(str(hold.get('reason') or '?'))} (approve with: "
                       f"vieter-lite builds start {build['id']})"))
    fields += [
        ("target", target if target else "- (submitted with a manifest)"),
        ("repo/arch", f"{build.get('repo')}/{build.get('arch')}"),
        ("source", visible(_source(build))),
        ("review", build.get("review") or "-"),
        ("owner", visible(_owner(build))),
        ("tags", ", ".join(visible(str(t)) for t in build.get("tags") or []) or "-"),
        ("note", visible(build.get("note") or "-").replace("\n", "\n  ")),
        ("created", shown_time(build.get("created_at"))),
        ("started", shown_time(build.get("started_at"))),
        ("ended", shown_time(build.get("ended_at"))),
        ("exit code", "-" if build.get("exit_code") is None else build["exit_code"]),
        ("blocked by", blocked_by(build)),
        ("runner", build.get("runner") or "-")]
    return fields


def cmd_show(ctx: Context) -> int:
    build = ctx.client().get_build_v2(ctx.args.id)
    if ctx.json:
        print_json(build)
        return 0
    print_fields(build_fields(build))
    tasks = build.get("tasks") or []
    if tasks:
        print("tasks:")
        width = max(len(str(t.get("name"))) for t in tasks)
        for task in tasks:
            print(f"  {str(task.get('name')).ljust(width)}  {task.get('status')}")
    diff = (build.get("hold") or {}).get("diff")
    if diff:
        print("\nwhat changed since the last successful build (held for review):")
        print(visible(str(diff)).rstrip("\n"))
    return 0


def read_manifest(where: str) -> str:
    """The manifest's text from a file, or standard input for '-'; ValueError naming
    what went wrong."""
    try:
        data = sys.stdin.buffer.read() if where == "-" else Path(where).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{'standard input' if where == '-' else where} is not UTF-8 "
                         "text") from None


def cmd_submit(ctx: Context) -> int:
    a = ctx.args
    try:
        text = read_manifest(a.manifest)
    except ValueError as exc:
        return refuse(f"builds submit: {exc}")
    body: dict[str, Any] = {"manifest": text, "execute": not a.no_execute}
    if a.note is not None:
        body["note"] = a.note
    if a.tag:
        body["tags"] = list(dict.fromkeys(a.tag))
    build = ctx.client().submit_build(body)
    if ctx.json:
        print_json(build)
    else:
        print(build["id"])
    return 0


def _changed(ctx: Context, build: dict[str, Any]) -> int:
    if ctx.json:
        print_json(build)
    else:
        print(f"Build {build['id']} {build['status']}")
    return 0


def cmd_start(ctx: Context) -> int:
    return _changed(ctx, ctx.client().start_build(ctx.args.id))


def cmd_cancel(ctx: Context) -> int:
    return _changed(ctx, ctx.client().cancel_build(ctx.args.id))


def cmd_log(ctx: Context) -> int:
    """The log as it is, or (--follow) as it grows until it is done: then exit 1 when the
    build failed, timed out or was cancelled."""
    client, build_id = ctx.client(), ctx.args.id
    out = sys.stdout.buffer
    if not ctx.args.follow:
        out.write(client.build_log(build_id))
        out.flush()
        return 0
    for event in client.follow_log(build_id):
        if event.name == "done":
            break
        if event.name == "reset":
            warn(f"the log of build {build_id} was replaced; it follows from its start")
        elif not event.name and event.data:
            out.write(event.data.encode())
            out.flush()
    build = client.get_build_v2(build_id)
    if build["status"] in ENDED_BADLY:
        code = build.get("exit_code")
        warn(f"build {build_id} {build['status']}"
             + (f" with exit code {code}" if code is not None else ""))
        return 1
    return 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("builds", parents=[flags], help="see, submit, start and cancel "
                                "builds", description="The server's builds: queued, running, "
                                "done; submit one from a manifest, start, cancel, follow its "
                                "log.")
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

    p = sub.add_parser("show", parents=[flags], help="show one build: status, tasks, hold, "
                       "note, owner", description="Show one build. A build held for review "
                       "shows what changed since the last successful build. Times are local.")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_show))

    p = sub.add_parser("submit", parents=[flags], help="submit a build from a manifest and "
                       "print its id", description="Submit a build from a YAML manifest "
                       "(repo, arch, source: git / url / pkgbuild, image, force, timeout, "
                       "environment, review); prints the new build's id.")
    p.add_argument("manifest", metavar="MANIFEST", help="the manifest file, or - for standard "
                   "input")
    p.add_argument("--note", metavar="TEXT", help="a note shown with the build")
    p.add_argument("--tag", action="append", metavar="TAG", help="a tag (repeat for more; "
                   "lowercase letters, digits and -_.:)")
    p.add_argument("--no-execute", action="store_true", help="leave it pending until "
                   "`builds start ID`")
    p.set_defaults(func=runs(cmd_submit))

    p = sub.add_parser("start", parents=[flags], help="queue a pending build (approves a held "
                       "one)")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_start))

    p = sub.add_parser("cancel", parents=[flags], help="cancel a pending, queued or running "
                       "build")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_cancel))

    p = sub.add_parser("log", parents=[flags], help="print a build's log (--follow: as it "
                       "grows)", description="Print a build's log. With --follow, print it as "
                       "it grows until it is done (a dropped connection is resumed where it "
                       "stopped); exit status 1 when the build then failed, timed out or was "
                       "cancelled.")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.add_argument("--follow", action="store_true", help="follow the log until it is done")
    p.set_defaults(func=runs(cmd_log))
