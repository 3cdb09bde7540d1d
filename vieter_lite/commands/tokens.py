"""vieter-lite tokens add | list | remove: named API tokens with scopes (/api/v2/tokens)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from vieter_lite.commands.common import (
    Context,
    local_time,
    positive_id,
    print_fields,
    print_json,
    print_table,
    runs,
    shown_time,
    warn,
)
from vieter_lite.errors import Invalid
from vieter_lite.tokens import SCOPES, parse_time

ALL = "all"     # shown for empty repos / archs
NEVER = "never"  # shown for no expiry


def expiry(text: str) -> str:
    """--expires: 'YYYY-MM-DD[ HH:MM[:SS]]' local time or 'YYYY-MM-DDThh:mm:ssZ' (UTC)
    -> the API's RFC 3339 UTC."""
    try:
        epoch = parse_time(text.strip())
    except Invalid:
        try:
            epoch = local_time(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not a time like '2026-11-23 07:00' (local) or "
                "2026-11-23T07:00:00Z") from None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def token_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /api/v2/tokens body from `tokens add`'s arguments (user None: the name)."""
    return {"name": args.name, "user": args.user, "scopes": list(dict.fromkeys(args.scope)),
            "repos": list(dict.fromkeys(args.repo or ())),
            "archs": list(dict.fromkeys(args.arch or ())), "expires_at": args.expires}


def names(values: Any) -> str:
    return ",".join(values) if values else ALL


def token_fields(token: dict[str, Any]) -> list[tuple[str, Any]]:
    """`key: value` lines of one token (without its secret)."""
    return [("id", token["id"]), ("name", token["name"]), ("user", token["user"]),
            ("scopes", " ".join(token["scopes"])), ("repos", names(token["repos"])),
            ("archs", names(token["archs"])), ("created", shown_time(token["created_at"])),
            ("expires", shown_time(token.get("expires_at"), NEVER)),
            ("last used", shown_time(token.get("last_used_at")))]


TABLE_HEADERS = ("id", "name", "user", "scopes", "repos", "archs", "created", "expires",
                 "last used")


def token_rows(tokens: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(t["id"], t["name"], t["user"], ",".join(t["scopes"]), names(t["repos"]),
             names(t["archs"]), shown_time(t["created_at"]),
             shown_time(t.get("expires_at"), NEVER), shown_time(t.get("last_used_at")))
            for t in tokens]


def cmd_add(ctx: Context) -> int:
    token = ctx.client().add_token(token_body(ctx.args))
    if ctx.json:
        print_json(token)
        return 0
    print_fields(token_fields(token) + [("secret", token["secret"])])
    warn("the secret is shown only this once: keep it now")
    return 0


def cmd_list(ctx: Context) -> int:
    found = ctx.client().list_tokens()
    if ctx.json:
        print_json(found)
    else:
        print_table(TABLE_HEADERS, token_rows(found))
    return 0


def cmd_remove(ctx: Context) -> int:
    ctx.client().remove_token(ctx.args.id)
    if ctx.json:
        print_json({"id": ctx.args.id, "removed": True})
    else:
        print(f"Token {ctx.args.id} revoked")
    return 0


def register(commands: argparse._SubParsersAction, flags: argparse.ArgumentParser) -> None:
    group = commands.add_parser("tokens", parents=[flags], help="manage named API tokens",
                                description="Manage the server's named API tokens (needs the "
                                "api_key or a token with the admin scope).")
    sub = group.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")

    p = sub.add_parser("add", parents=[flags], help="create a token and print its secret once",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Create a named token. Its secret is printed only this "
                       "once; the server keeps a hash of it.\n\nscopes:\n"
                       + "\n".join(f"  {name:15} {text}" for name, text in SCOPES.items()))
    p.add_argument("name", metavar="NAME", help="1-64 letters, digits, '.', '_', '-'")
    p.add_argument("--scope", action="append", required=True, choices=list(SCOPES),
                   metavar="SCOPE", help="a scope (repeat for more; the scopes are listed above)")
    p.add_argument("--user", help="the user it acts for (default: NAME)")
    p.add_argument("--repo", action="append", metavar="REPO",
                   help="only this repo (repeat for more; default: all)")
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help="only this arch (repeat for more; default: all)")
    p.add_argument("--expires", type=expiry, metavar="TIME",
                   help="when it stops working: local 'YYYY-MM-DD[ HH:MM[:SS]]' or "
                   "YYYY-MM-DDThh:mm:ssZ (default: never)")
    p.set_defaults(func=runs(cmd_add))

    p = sub.add_parser("list", parents=[flags], help="list tokens (never their secrets)")
    p.set_defaults(func=runs(cmd_list))

    p = sub.add_parser("remove", parents=[flags], help="revoke a token (at once)")
    p.add_argument("id", metavar="ID", type=positive_id)
    p.set_defaults(func=runs(cmd_remove))
