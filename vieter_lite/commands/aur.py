"""vieter-lite aur search | add (AUR RPC v5): add AUR packages, and the AUR packages they
depend on, as git targets, in build order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vieter_lite import aurdeps
from vieter_lite.aurdeps import Base, Official
from vieter_lite.client import Client, ClientError
from vieter_lite.commands.common import Context, print_json, print_table, runs, warn
from vieter_lite.commands.targets import check_schedule

SYNC_DIR = "/var/lib/pacman/sync"


def cmd_aur_search(ctx: Context) -> int:
    found = ctx.aur().search(ctx.args.term)
    if ctx.json:
        print_json(found)
        return 0
    print_table(["name", "version", "description"],
                [(p["Name"], p.get("Version", ""), p.get("Description") or "") for p in found])
    return 0


def official_packages(a: argparse.Namespace) -> Official:
    """--official FILE ('-': standard input), else the sync dbs in --sync-dir (not the db
    of REPO itself); empty when there are none. ValueError for a list it cannot read."""
    if a.official:
        try:
            text = sys.stdin.read() if a.official == "-" else Path(a.official).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {a.official}: {exc}") from None
        return aurdeps.official_from_list(text)
    packages = []
    for db in sorted(Path(a.sync_dir).glob("*.db")):
        if db.name == f"{a.repo}.db":
            continue
        try:
            packages += aurdeps.packages_in_db(db.read_bytes())
        except (OSError, ValueError) as exc:
            warn(f"warning: {db} is left out: {exc}")
    return Official(packages=tuple(packages))


def add_base(client: Client, url: str, a: argparse.Namespace) -> tuple[int | None, bool, str]:
    """(target id, whether it existed, error) for one package base."""
    existing = [t for t in client.list_targets(limit=0, repo=a.repo, query=url) if t["url"] == url]
    if existing:
        return existing[0]["id"], True, ""
    try:
        return client.add_target(url, a.repo, kind="git", arch=a.arch,
                                 schedule=a.schedule), False, ""
    except ClientError as exc:
        if exc.status in (0, 401):  # the server, not this package: stop here
            raise
        return None, False, exc.message


def cmd_aur_add(ctx: Context) -> int:
    """Add a git target per package base (the packages asked for and the AUR packages they
    need), dependencies first; exit 1 if any could not be added."""
    a = ctx.args
    check_schedule(a.schedule)
    client, aur = ctx.client(), ctx.aur()
    try:
        official = Official() if a.no_deps else official_packages(a)
    except ValueError as exc:
        warn(str(exc))
        return 2
    try:
        found = aurdeps.resolve(aur.info, a.packages, official, with_deps=not a.no_deps)
    except aurdeps.TooDeep as exc:
        warn(f"nothing added: {exc}")
        return 1
    order = aurdeps.build_order(found.found)
    wanted = list(dict.fromkeys(a.packages))
    results: list[dict[str, Any]] = [
        {"name": n, "package_base": None, "packages": [], "url": None, "target_id": None,
         "existed": False, "needed_by": None, "level": None, "error": "not found in the AUR"}
        for n in found.not_found]
    for level, bases in enumerate(order):
        for base in bases:
            results.append(_add(client, aur.git_url(base.name), base, level, wanted, found, a))
    failed = [r for r in results if r["error"]]
    if ctx.json:
        print_json(results)
        return 1 if failed else 0
    for r in results:
        why = f", needed by {r['needed_by']}" if r["needed_by"] else ""
        if r["error"]:
            print(f"Failed to add {r['name']}: {r['error']}", file=sys.stderr)
        elif r["existed"]:
            print(f"{r['name']} is already target {r['target_id']} of {a.repo}{why}")
        else:
            print(f"Added {r['name']} (target {r['target_id']}){why}")
    for dep, needed_by in found.missing:
        warn(f"warning: {dep} (needed by {needed_by}) is neither an official package nor "
             "in the AUR")
    for dep, needed_by in found.other_version:
        warn(f"warning: {needed_by} needs {dep}; the AUR has another version")
    if len(order) > 1 or len(order) == 1 and len(order[0]) > 1:
        print("Build order: " + " -> ".join(", ".join(b.name for b in level)
                                              for level in order))
    return 1 if failed else 0


def _add(client: Client, url: str, base: Base, level: int, wanted: list[str],
         found: aurdeps.Resolution, a: argparse.Namespace) -> dict[str, Any]:
    asked = [n for n in wanted if n in base.packages]
    name = asked[0] if asked else base.packages[0]
    target_id, existed, error = add_base(client, url, a)
    return {"name": name, "package_base": base.name, "packages": list(base.packages),
            "url": url, "target_id": target_id, "existed": existed,
            "needed_by": None if asked else found.needed_by.get(name), "level": level,
            "error": error or None}


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("aur", parents=[flags],
                                help="find AUR packages, add them as targets")
    sub = group.add_subparsers(dest="aur_command", required=True, metavar="COMMAND")
    p = sub.add_parser("search", parents=[flags], help="search the AUR by name and description")
    p.add_argument("term", metavar="TERM")
    p.set_defaults(func=runs(cmd_aur_search))
    p = sub.add_parser("add", parents=[flags], help="add AUR packages as git targets of REPO",
                       description="Look the packages up in the AUR, with the AUR packages "
                       "they depend on (depends, makedepends, checkdepends; level by level, at "
                       f"most {aurdeps.MAX_ROUNDS} levels), and add a git target <aur_url>/"
                       "<package base>.git to REPO for each, dependencies first; print the "
                       "build order. Dependencies that official packages meet are left out: "
                       "the official packages are read from --official, else from pacman's "
                       f"sync dbs in --sync-dir (default {SYNC_DIR}); without either, what "
                       "the AUR does not know is taken to be official. Exit status 1 if any "
                       "could not be added.")
    p.add_argument("packages", metavar="PKG", nargs="+")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("--arch", help="comma-separated archs (default: the server's default_arch)")
    p.add_argument("--schedule", help="cron expression (default: the server's global_schedule)")
    p.add_argument("--official", metavar="FILE",
                   help="the official packages' names, one a line ('pacman -Slq'; - for "
                   "standard input)")
    p.add_argument("--sync-dir", default=SYNC_DIR, metavar="DIR",
                   help=f"where pacman's sync dbs are (default {SYNC_DIR})")
    p.add_argument("--no-deps", action="store_true",
                   help="add only the packages named, not their AUR dependencies")
    p.set_defaults(func=runs(cmd_aur_add))
