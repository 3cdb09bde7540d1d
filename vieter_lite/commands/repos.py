"""vieter-lite repos list | show (GET /api/v2/repos and its packages lists) | remove |
rollback | release, and vieter-lite aur search | add (AUR RPC v5)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vieter_lite.client import Client, ClientError
from vieter_lite.commands.common import (
    Context,
    print_json,
    print_table,
    refuse,
    runs,
    shown_time,
)
from vieter_lite.commands.targets import check_schedule


def size(n: int) -> str:
    """Bytes for a person: 512 B, 3.4 KiB, 12.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def owner(package: dict[str, Any]) -> str:
    """Who may publish the name: 'target N', 'user U' (a user's manifest builds), 'admin'
    (an owner without either: the api_key) or '-' (nobody yet)."""
    found = package.get("owner")
    if not found:
        return "-"
    if found.get("user"):
        return f"user {found['user']}"
    return "admin" if found.get("target_id") is None else f"target {found['target_id']}"


def cmd_repos_list(ctx: Context) -> int:
    found = ctx.client().list_repos()
    if ctx.json:
        print_json(found)
        return 0
    print_table(["repo", "arch", "packages"],
                [(r["name"], a["arch"], a["packages"]) for r in found for a in r["archs"]])
    return 0


def arch_repos(client: Client, repo: str, arch: str | None) -> list[str]:
    """The archs `repos show` lists: ARCH as given (the server says if it is not there),
    or every arch-repo of REPO from the repos list."""
    if arch is not None:
        return [arch]
    for found in client.list_repos():
        if found["name"] == repo:
            return [a["arch"] for a in found["archs"]]
    raise ClientError(f"repository '{repo}' not found", 404)


def cmd_repos_show(ctx: Context) -> int:
    client = ctx.client()
    listed = [(arch, p) for arch in arch_repos(client, ctx.args.repo, ctx.args.arch)
              for p in client.list_packages(ctx.args.repo, arch)]
    if ctx.json:
        print_json([p for _, p in listed])
        return 0
    print_table(["name", "version", "arch", "size", "published", "owner", "kept"],
                [(p["name"], shown_version(p), arch, size(p["size"]),
                  shown_time(p["published_at"]), owner(p),
                  ",".join(p.get("kept_versions") or ()) or "-") for arch, p in listed])
    return 0


def shown_version(package: dict[str, Any]) -> str:
    """The version, marked when a rollback holds the name there."""
    return package["version"] + (" (held)" if package.get("hold") else "")


def cmd_repos_rollback(ctx: Context) -> int:
    a = ctx.args
    found = ctx.client().rollback(a.repo, a.arch, a.name, a.version, hold=a.hold)
    if ctx.json:
        print_json(found)
        return 0
    print(f"Rolled {a.name} in {a.repo}/{a.arch} back to {found['version']}.")
    if found.get("hold"):
        print(f"Held: no newer version is published until `vieter-lite repos release "
              f"{a.repo} {a.arch} {a.name}`.")
    return 0


def cmd_repos_release(ctx: Context) -> int:
    a = ctx.args
    ctx.client().release_hold(a.repo, a.arch, a.name)
    if ctx.json:
        print_json({"repo": a.repo, "arch": a.arch, "name": a.name, "released": True})
    else:
        print(f"Released the hold of {a.name} in {a.repo}/{a.arch}.")
    return 0


def cmd_repos_remove(ctx: Context) -> int:
    a = ctx.args
    if a.package is None and not a.force:
        what = f"arch-repo {a.repo}/{a.arch}" if a.arch else f"repository {a.repo}"
        return refuse(f"removing the whole {what} is very destructive: add --force if you "
                      "mean it")
    message = ctx.client().remove_repo(a.repo, a.arch, a.package)
    if ctx.json:
        print_json({"repo": a.repo, "arch": a.arch, "package": a.package, "removed": True})
    else:
        print(message or "Removed")
    return 0


def cmd_aur_search(ctx: Context) -> int:
    found = ctx.aur().search(ctx.args.term)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["name", "version", "description"],
                [(p["Name"], p.get("Version", ""), p.get("Description") or "") for p in found])
    return 0


def cmd_aur_add(ctx: Context) -> int:
    """Add a git target per AUR package (by its package base); exit 1 if any failed."""
    a = ctx.args
    check_schedule(a.schedule)
    client, aur = ctx.client(), ctx.aur()
    found = aur.info(a.packages)
    results: list[dict[str, Any]] = []
    for name in dict.fromkeys(a.packages):
        result: dict[str, Any] = {"name": name, "url": None, "target_id": None,
                                  "existed": False, "error": None}
        results.append(result)
        package = found.get(name)
        if package is None:
            result["error"] = "not found in the AUR"
            continue
        url = aur.git_url(package.get("PackageBase") or name)
        result["url"] = url
        existing = [t for t in client.list_targets(limit=0, repo=a.repo, query=url)
                    if t["url"] == url]
        if existing:
            result.update(target_id=existing[0]["id"], existed=True)
            continue
        try:
            result["target_id"] = client.add_target(url, a.repo, kind="git", arch=a.arch,
                                                    schedule=a.schedule)
        except ClientError as exc:
            if exc.status in (0, 401):  # the server, not this package: stop here
                raise
            result["error"] = exc.message
    failed = [r for r in results if r["error"]]
    if ctx.json:
        print_json(results)
        return 1 if failed else 0
    for r in results:
        if r["error"]:
            print(f"Failed to add {r['name']}: {r['error']}", file=sys.stderr)
        elif r["existed"]:
            print(f"{r['name']} is already target {r['target_id']} of {a.repo}")
        else:
            print(f"Added {r['name']} (target {r['target_id']})")
    return 1 if failed else 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("repos", parents=[flags], help="manage repositories")
    sub = group.add_subparsers(dest="repos_command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", parents=[flags], help="list repositories, their archs and "
                       "package counts")
    p.set_defaults(func=runs(cmd_repos_list))
    p = sub.add_parser("show", parents=[flags], help="list a repository's packages",
                       description="The packages of REPO (or of its arch-repo ARCH): name, "
                       "version ('(held)': a rollback holds it there), arch-repo, size, "
                       "published time (local), the target that owns the name ('-': no "
                       "target; builds of other targets may not publish a name a target "
                       "owns) and the versions kept for `repos rollback`.")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("arch", metavar="ARCH", nargs="?")
    p.set_defaults(func=runs(cmd_repos_show))
    p = sub.add_parser("remove", parents=[flags], help="remove a package, arch-repo or repo",
                       description="REPO ARCH PKG removes one package from one arch-repo; "
                       "REPO ARCH an arch-repo and REPO a whole repository, with --force.")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("arch", metavar="ARCH", nargs="?")
    p.add_argument("package", metavar="PKG", nargs="?")
    p.add_argument("--force", action="store_true",
                   help="needed to remove a whole repository or arch-repo")
    p.set_defaults(func=runs(cmd_repos_remove))
    p = sub.add_parser("rollback", parents=[flags], help="make a kept version of a package "
                       "current again",
                       description="Publish VERSION of NAME, kept on the server "
                       "(keep_versions), again in REPO/ARCH: a downgrade that pacman -Syuu "
                       "installs; the current version becomes a kept one. With --hold, no "
                       "newer version of NAME is published there (a target's builds of it "
                       "fail) until `repos release`; without, a hold there is released.")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION", help="a kept version ([epoch:]pkgver-pkgrel)")
    p.add_argument("--hold", action="store_true",
                   help="hold NAME at VERSION until `repos release`")
    p.set_defaults(func=runs(cmd_repos_rollback))
    p = sub.add_parser("release", parents=[flags], help="release a rollback's hold",
                       description="Newer versions of NAME are published in REPO/ARCH again.")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("arch", metavar="ARCH")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=runs(cmd_repos_release))

    group = commands.add_parser("aur", parents=[flags],
                                help="find AUR packages, add them as targets")
    sub = group.add_subparsers(dest="aur_command", required=True, metavar="COMMAND")
    p = sub.add_parser("search", parents=[flags], help="search the AUR by name and description")
    p.add_argument("term", metavar="TERM")
    p.set_defaults(func=runs(cmd_aur_search))
    p = sub.add_parser("add", parents=[flags], help="add AUR packages as git targets of REPO",
                       description="Look the packages up in the AUR and add a git target "
                       "<aur_url>/<package base>.git to REPO for each; exit status 1 if any "
                       "could not be added.")
    p.add_argument("packages", metavar="PKG", nargs="+")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("--arch", help="comma-separated archs (default: the server's default_arch)")
    p.add_argument("--schedule", help="cron expression (default: the server's global_schedule)")
    p.set_defaults(func=runs(cmd_aur_add))
