"""vieter-lite tokens add | list | remove: the request each command line builds, the output of
the API's answers, and usage errors (the commands against a server: test_cli_client)."""

from __future__ import annotations

import json
import time

import pytest

from vieter_lite.cli import build_parser
from vieter_lite.client import Client, v2_error_detail
from vieter_lite.commands.tokens import TABLE_HEADERS, shown_time, token_body, token_fields, token_rows

ZONE = "XYZ-5:30"  # +05:30 without tzdata (POSIX TZ signs are inverted)


@pytest.fixture
def zone(monkeypatch):
    """Local time is +05:30 for the test, whatever the machine's zone."""
    monkeypatch.setenv("TZ", ZONE)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


BASE = {"name": "pi4-agent", "user": None, "scopes": ["agent"], "repos": [], "archs": [],
        "expires_at": None}


@pytest.mark.parametrize("argv, changes", [
    ([], {}),
    (["--user", "alice"], {"user": "alice"}),
    (["--scope", "builds:read", "--scope", "agent"], {"scopes": ["agent", "builds:read"]}),
    (["--repo", "bur", "--repo", "extra", "--repo", "bur"], {"repos": ["bur", "extra"]}),
    (["--arch", "aarch64", "--arch", "armv7h"], {"archs": ["aarch64", "armv7h"]}),
    (["--expires", "2026-11-23T07:00:00Z"], {"expires_at": "2026-11-23T07:00:00Z"}),
    (["--expires", "2026-11-23 12:30:00"], {"expires_at": "2026-11-23T07:00:00Z"}),
    (["--expires", "2026-11-23 12:30"], {"expires_at": "2026-11-23T07:00:00Z"}),
    (["--expires", "2026-11-24"], {"expires_at": "2026-11-23T18:30:00Z"}),
])
def test_tokens_add_builds_the_request_body(zone, argv, changes):
    args = parse("tokens", "add", "pi4-agent", "--scope", "agent", *argv)
    body = token_body(args)
    assert body == {**BASE, **changes}
    assert json.loads(json.dumps(body)) == body


@pytest.mark.parametrize("argv, fragment", [
    (["tokens", "add", "x"], "the following arguments are required: --scope"),
    (["tokens", "add", "x", "--scope", "root"], "invalid choice: 'root'"),
    (["tokens", "add", "x", "--scope", "agent", "--expires", "next week"],
     "'next week' is not a time"),
    (["tokens", "add", "x", "--scope", "agent", "--expires", "2026-11-23T07:00:00+01:00"],
     "is not a time"),
    (["tokens", "add", "--scope", "agent"], "required: NAME"),
    (["tokens", "remove", "0"], "is not an id"),
    (["tokens", "remove", "x"], "is not an id"),
    (["tokens", "list", "extra"], "unrecognized arguments: extra"),
    (["tokens", "revoke", "1"], "invalid choice: 'revoke'"),
])
def test_bad_token_arguments_are_usage_errors(capsys, argv, fragment):
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_tokens_remove_and_list_parse():
    args = parse("tokens", "remove", "7")
    assert (args.id, args.func.__name__) == (7, "cmd_remove")
    assert parse("tokens", "--json", "list").func.__name__ == "cmd_list"


TOKEN = {"id": 3, "name": "pi4-agent", "user": "alice", "scopes": ["builds:read", "agent"],
         "repos": ["bur"], "archs": ["aarch64", "armv7h"], "created_at": "2026-11-23T07:00:00Z",
         "expires_at": None, "last_used_at": "2026-11-23T08:15:30Z"}


@pytest.mark.parametrize("value, empty, shown", [
    ("2026-11-23T07:00:00Z", "-", "2026-11-23 12:30:00"),
    ("1999-12-31T23:59:59Z", "-", "2000-01-01 05:29:59"),
    (None, "-", "-"),
    (None, "never", "never"),
    ("yesterday", "-", "yesterday"),   # an unexpected value is shown as sent
    (1795417200, "-", "1795417200"),
])
def test_shown_time_is_local(zone, value, empty, shown):
    assert shown_time(value, empty) == shown


def test_token_fields(zone):
    assert token_fields(TOKEN) == [
        ("id", 3), ("name", "pi4-agent"), ("user", "alice"), ("scopes", "builds:read agent"),
        ("repos", "bur"), ("archs", "aarch64,armv7h"), ("created", "2026-11-23 12:30:00"),
        ("expires", "never"), ("last used", "2026-11-23 13:45:30")]


@pytest.mark.parametrize("token, row", [
    (TOKEN, (3, "pi4-agent", "alice", "builds:read,agent", "bur", "aarch64,armv7h",
             "2026-11-23 12:30:00", "never", "2026-11-23 13:45:30")),
    ({**TOKEN, "repos": [], "archs": [], "expires_at": "2027-01-01T00:00:00Z",
      "last_used_at": None},
     (3, "pi4-agent", "alice", "builds:read,agent", "all", "all", "2026-11-23 12:30:00",
      "2027-01-01 05:30:00", "-")),
])
def test_token_rows(zone, token, row):
    assert token_rows([token]) == [row]
    assert len(row) == len(TABLE_HEADERS)


def test_no_secret_in_the_list_output(zone):
    listed = {**TOKEN, "secret": "vl_should-never-be-listed"}
    assert "vl_should-never-be-listed" not in repr(token_rows([listed]))
    assert "vl_should-never-be-listed" not in repr(token_fields(listed))


@pytest.mark.parametrize("errors, detail", [
    ([{"code": 10008, "title": "CF-UnprocessableEntity", "detail": "scopes: unknown scope"}],
     "scopes: unknown scope"),
    ([{"code": 10009, "title": "CF-Conflict", "detail": "A token named 'x' already exists."}],
     "A token named 'x' already exists."),
    ([{"code": 10003, "title": "CF-NotAuthorized"}], "CF-NotAuthorized"),
    ([{"detail": "a"}, {"detail": "b"}, "junk"], "a; b"),
    ([], ""),
])
def test_v2_errors_become_one_line(errors, detail):
    assert v2_error_detail(errors) == detail
    body = json.dumps({"errors": errors}).encode()
    error = Client("http://pi:8000")._http_error(422, "Unprocessable Entity", body)
    assert (error.status, error.message) == (422, detail or "422 Unprocessable Entity")
