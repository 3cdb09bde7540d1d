"""vieter-lite targets list | add | info | edit | remove | build."""

from __future__ import annotations

import argparse
from typing import Any

from vieter_lite import cron
from vieter_lite.client import Client, ClientError
from vieter_lite.commands.common import (
    Context,
    arch_list,
    count,
    local,
    positive_id,
    print_fields,
    print_json,
    print_table,
    refuse,
    runs,
)

KINDS = ("git", "url")
EDITABLE = ("url", "branch", "repo", "arch", "schedule", "kind", "path")


def archs(target: dict[str, Any]) -> list[str]:
    return [a["value"] for a in target.get("arch", [])]


def check_schedule(schedule: str | None) -> None:
    """Vieter checks a schedule before sending it; CronError is a usage error (exit 2)."""
    if schedule:
        cron.parse(schedule)


def target_fields(target: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("id", target["id"]), ("kind", target["kind"]), ("url", target["url"]),
            ("branch", target["branch"]), ("path", target["path"]), ("repo", target["repo"]),
            ("schedule", target["schedule"]), ("arch", ", ".join(archs(target)))]


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    found = ctx.client().list_targets(limit=a.limit, offset=a.offset, repo=a.repo or None,
                                      query=a.query or None, arch=a.arch or None)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["id", "kind", "url", "repo", "arch", "schedule"],
                [(t["id"], t["kind"], t["url"], t["repo"], ",".join(archs(t)), t["schedule"])
                 for t in found])
    return 0


def cmd_add(ctx: Context) -> int:
    a = ctx.args
    check_schedule(a.schedule)
    target_id = ctx.client().add_target(a.url, a.repo, kind=a.kind, branch=a.branch,
                                        path=a.path, arch=a.arch, schedule=a.schedule)
    if ctx.json:
        print_json(target_id)
    else:
        print(f"Target added with id {target_id}")
    return 0


def schedule_plan(client: Client, target_id: int) -> dict[str, Any] | None:
    """The effective schedule and next runs, or None from a server without that route."""
    try:
        return client.target_schedule(target_id)
    except ClientError as exc:
        if exc.status in (404, 405):
            return None
        raise


def v2_target(client: Client, target_id: int) -> dict[str, Any] | None:
    """The target as /api/v2 shows it, or None from a server without /api/v2."""
    try:
        return client.get_target_v2(target_id)
    except ClientError as exc:
        if exc.status in (404, 405):
            return None
        raise


def v2_fields(target: dict[str, Any]) -> list[tuple[str, Any]]:
    """review, labels (k=v, by key), last build (id and status), rebuild on dependency and
    what it depends on (per arch: 'target 3 (foo>=1)', a cycle or a target not read yet
    said so) of a v2 target."""
    labels = (target.get("metadata") or {}).get("labels") or {}
    last = target.get("last_build")
    fields = [("review", target.get("review")),
              ("labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))),
              ("last build", None if not last else f"{last['id']} ({last['status']})"),
              ("rebuild on dependency", "yes" if target.get("rebuild_on_dependency") else "no")]
    per_arch: dict[str, list[str]] = {}
    for dep in target.get("dependencies") or []:
        kind = dep.get("kind")
        why = "not read yet" if kind == "unread" else \
            f"{dep.get('via')}{', a cycle' if kind == 'cycle' else ''}"
        per_arch.setdefault(str(dep.get("arch")), []).append(
            f"target {dep.get('target_id')} ({why})")
    fields += [(f"depends on ({arch})", ", ".join(deps)) for arch, deps in per_arch.items()]
    return fields


def cmd_info(ctx: Context) -> int:
    client = ctx.client()
    target = client.get_target(ctx.args.id)
    plan = schedule_plan(client, ctx.args.id)
    extra = v2_target(client, ctx.args.id)
    if ctx.json:
        if plan is not None:
            target = {**target, "schedule_effective": plan["schedule"],
                      "schedule_global": plan["global"], "next_runs": plan["archs"]}
        if extra is not None:
            target = {**target, "review": extra.get("review"),
                      "labels": (extra.get("metadata") or {}).get("labels") or {},
                      "last_build": extra.get("last_build"),
                      "rebuild_on_dependency": extra.get("rebuild_on_dependency"),
                      "dependencies": extra.get("dependencies") or []}
        print_json(target)
        return 0
    fields = target_fields(target) + (v2_fields(extra) if extra is not None else [])
    if plan is not None:
        shown = plan["schedule"] + (" (global_schedule)" if plan["global"] else "")
        fields = [(k, shown if k == "schedule" else v) for k, v in fields]
        fields += [(f"next run ({a['arch']})", local(a["next_run"])) for a in plan["archs"]]
    print_fields(fields)
    return 0


def cmd_edit(ctx: Context) -> int:
    a = ctx.args
    fields = {name: getattr(a, name) for name in EDITABLE if getattr(a, name) is not None}
    if not fields:
        return refuse("targets edit: nothing to change; give at least one of "
                      + ", ".join("--" + n for n in EDITABLE))
    check_schedule(fields.get("schedule"))
    if "arch" in fields:
        fields["arch"] = ",".join(arch_list(fields["arch"]))
    target = ctx.client().edit_target(a.id, **fields)
    if ctx.json:
        print_json(target)
    else:
        print_fields(target_fields(target))
    return 0


def cmd_remove(ctx: Context) -> int:
    ctx.client().remove_target(ctx.args.id)
    if ctx.json:
        print_json({"id": ctx.args.id, "removed": True})
    else:
        print(f"Target {ctx.args.id} removed")
    return 0


def cmd_build(ctx: Context) -> int:
    a = ctx.args
    client = ctx.client()
    wanted = arch_list(a.arch) if a.arch else archs(client.get_target(a.id))
    if not wanted:
        return refuse("targets build: --arch is empty")
    if not a.remote:
        return build_here(ctx, client, wanted)
    queued = [{"target_id": a.id, "arch": arch,
               "build_id": client.queue_build(a.id, arch, a.force, a.timeout)}
              for arch in wanted]
    if ctx.json:
        print_json(queued)
    else:
        for build in queued:
            print(f"Queued build {build['build_id']} of target {a.id} for {build['arch']}")
    return 0


def build_here(ctx: Context, client: Client, wanted: list[str]) -> int:
    """Build on this machine in rootless Podman (the agent's code), printing the log."""
    from vieter_lite.agent import local

    a = ctx.args
    if len(wanted) != 1:
        return refuse("targets build: a local build is for one arch; choose it with --arch")
    build = local.build(client, a.id, wanted[0], a.force, a.timeout,
                        getattr(a, "config_file", None))
    if ctx.json:
        print_json(build)
    else:
        print(f"\nBuild {build['id']}: {build['status']} (exit code {build['exit_code']})")
    return 0 if build["status"] == "success" else 1


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("targets", parents=[flags], help="manage build targets",
                                description="Manage the server's build targets.")
    sub = group.add_subparsers(dest="targets_command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[flags], help="list targets")
    p.add_argument("-l", "--limit", type=count, help="at most this many (server default 25; "
                   "0 for all)")
    p.add_argument("-o", "--offset", type=count, help="skip this many")
    p.add_argument("--repo", help="only targets of this repo")
    p.add_argument("-q", "--query", help="only targets whose url, path or branch contain this")
    p.add_argument("--arch", help="only targets built for this arch")
    p.set_defaults(func=runs(cmd_list))

    p = sub.add_parser("add", parents=[flags], help="add a target",
                       description="Add a target: a git repository with a PKGBUILD (kind git) "
                       "or the URL of a PKGBUILD (kind url), built into REPO.")
    p.add_argument("url", metavar="URL")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("--kind", choices=KINDS, default="git", help="default: git")
    p.add_argument("--branch", help="git branch (default: the repository's default)")
    p.add_argument("--path", help="subdirectory holding the PKGBUILD")
    p.add_argument("--arch", help="comma-separated archs (default: the server's default_arch)")
    p.add_argument("--schedule", help="cron expression (default: the server's global_schedule)")
    p.set_defaults(func=runs(cmd_add))

    p = sub.add_parser("info", parents=[flags], help="show one target")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_info))

    p = sub.add_parser("edit", parents=[flags], help="change a target",
                       description="Change the given fields only; an empty value clears one "
                       "(--schedule '' goes back to the global schedule).")
    p.add_argument("id", metavar="ID", type=positive_id)
    for name in EDITABLE:
        p.add_argument(f"--{name}", help={"arch": "comma-separated archs (replaces the list)",
                                          "kind": "git or url"}.get(name))
    p.set_defaults(func=runs(cmd_edit))

    p = sub.add_parser("remove", parents=[flags], help="remove a target (its logs stay)")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_remove))

    p = sub.add_parser("build", parents=[flags], help="build a target now",
                       description="Build the target here in rootless Podman with the agent's "
                       "code, printing the log (one arch), or queue a build on the server "
                       "(--remote) for the given archs or every arch of the target.")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.add_argument("--remote", action="store_true",
                   help="queue the build on the server instead of building here")
    p.add_argument("--arch", help="comma-separated archs (default: the target's archs)")
    p.add_argument("--force", action="store_true",
                   help="build even when the repo has this version already")
    p.add_argument("--timeout", type=positive_id, metavar="SECONDS",
                   help="build timeout (default: the server's default_build_timeout)")
    p.set_defaults(func=runs(cmd_build))
