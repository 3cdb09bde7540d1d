"""vieter-lite repos list | show (GET /api/v2/repos and its packages lists) | remove |
rollback | release."""

from __future__ import annotations

import argparse
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
