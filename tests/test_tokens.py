"""Named API tokens over a real sqlite database: add, list, revoke, resolve a secret into a
Principal; secrets kept as sha256 only; validation; scopes; last_used_at throttling."""

from __future__ import annotations

import base64
import hashlib

import pytest

from test_migrations import _first_release_db
from vieter_lite.db import Database
from vieter_lite.db.schema import MIGRATIONS
from vieter_lite.errors import Conflict, Invalid, NotFound
from vieter_lite.tokens import (
    ADMIN,
    LAST_USED_EVERY,
    PREFIX,
    SCOPES,
    Principal,
    Tokens,
    TokenSpec,
    new_secret,
    parse_time,
    validate,
)

API_KEY = "the-configured-api-key"
NOW = 1_800_000_000


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "vieter.sqlite")
    yield database
    database.close()


@pytest.fixture
def tokens(db) -> Tokens:
    return Tokens(db, API_KEY)


def spec(name: str = "pi4-agent", scopes: tuple[str, ...] = ("agent",), **kw) -> TokenSpec:
    return TokenSpec(name=name, scopes=scopes, **kw)


# -- add, list, remove, resolve ----------------------------------------------------------

def test_add_returns_the_token_and_a_secret_that_resolves_to_it(tokens):
    token, secret = tokens.add(spec(user="alice", scopes=("agent", "builds:read"),
                                    repos=("bur",), archs=("aarch64",),
                                    expires_at=NOW + 3600), NOW)
    assert (token.name, token.user, token.repos, token.archs) == \
        ("pi4-agent", "alice", ("bur",), ("aarch64",))
    assert token.scopes == ("builds:read", "agent")  # SCOPES order
    assert (token.created_at, token.expires_at, token.last_used_at, token.revoked_at) == \
        (NOW, NOW + 3600, None, None)
    who = tokens.resolve(secret, NOW + 1)
    assert who == Principal(name="pi4-agent", user="alice",
                            scopes=frozenset({"agent", "builds:read"}), repos=("bur",),
                            archs=("aarch64",), is_admin=False, token_id=token.id)
    assert tokens.get(token.id).last_used_at == NOW + 1


def test_list_by_id_without_revoked_tokens(tokens):
    ids = [tokens.add(spec(f"t{i}", ("builds:read",)), NOW)[0].id for i in range(3)]
    tokens.remove(ids[1], NOW + 5)
    assert [t.id for t in tokens.list()] == [ids[0], ids[2]]
    assert [t.name for t in tokens.list()] == ["t0", "t2"]


def test_user_defaults_to_the_token_name(tokens):
    token, _ = tokens.add(spec("ci"), NOW)
    assert token.user == "ci"


def test_secrets_are_prefixed_random_32_bytes():
    found = {new_secret() for _ in range(50)}
    assert len(found) == 50
    for secret in found:
        assert secret.startswith(PREFIX)
        raw = base64.urlsafe_b64decode(secret[len(PREFIX):] + "=")
        assert len(raw) == 32


def test_only_the_sha256_of_a_secret_is_stored(tmp_path):
    path = tmp_path / "vieter.sqlite"
    db = Database(path)
    token, secret = Tokens(db, API_KEY).add(spec(), NOW)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    row = db._one("SELECT * FROM tokens WHERE id = ?", token.id)
    assert row["secret_hash"] == digest
    assert not any(secret in str(value) for value in tuple(row))
    db.close()
    stored = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.is_file())
    assert digest.encode() in stored  # the files read are the ones holding the row
    assert secret.encode() not in stored
    assert secret[len(PREFIX):].encode() not in stored


@pytest.mark.parametrize("presented", [
    "", "vl_", "vl_unknown-secret", "not-a-token", API_KEY + "x", API_KEY[:-1], None, 42,
])
def test_unknown_secrets_resolve_to_nobody(tokens, presented):
    tokens.add(spec(), NOW)
    assert tokens.resolve(presented, NOW) is None


def test_the_api_key_is_the_admin(tokens):
    assert tokens.resolve(API_KEY, NOW) == tokens.admin_principal() == ADMIN
    assert ADMIN.is_admin and ADMIN.name == "api_key"


def test_without_an_api_key_nothing_is_the_admin(db):
    assert Tokens(db, "").resolve("", NOW) is None
    assert Tokens(db).resolve("anything", NOW) is None


def test_a_token_expires_at_its_expiry(tokens):
    _, secret = tokens.add(spec(expires_at=NOW + 60), NOW)
    assert tokens.resolve(secret, NOW + 59) is not None
    assert tokens.resolve(secret, NOW + 60) is None
    assert tokens.resolve(secret, NOW + 10_000) is None
    assert [t.name for t in tokens.list()] == ["pi4-agent"]  # listed until removed


def test_revocation_takes_effect_on_the_next_request(tokens):
    token, secret = tokens.add(spec(), NOW)
    assert tokens.resolve(secret, NOW) is not None
    tokens.remove(token.id, NOW + 1)
    assert tokens.resolve(secret, NOW + 1) is None
    with pytest.raises(NotFound):
        tokens.get(token.id)
    with pytest.raises(NotFound):
        tokens.remove(token.id, NOW + 2)


def test_a_revoked_tokens_name_can_be_used_again_and_its_secret_stays_dead(tokens):
    old, old_secret = tokens.add(spec(), NOW)
    tokens.remove(old.id, NOW + 1)
    new, new_secret_ = tokens.add(spec(), NOW + 2)
    assert new.id != old.id
    assert tokens.resolve(old_secret, NOW + 3) is None
    assert tokens.resolve(new_secret_, NOW + 3).token_id == new.id
    assert tokens.db.token(old.id).revoked_at == NOW + 1


@pytest.mark.parametrize("token_id", [0, 1, 999, -1])
def test_removing_an_unknown_token_is_not_found(tokens, token_id):
    with pytest.raises(NotFound, match="Token not found."):
        tokens.remove(token_id, NOW)


def test_a_duplicate_name_is_a_conflict_and_stores_nothing(tokens):
    tokens.add(spec("ci", ("builds:read",)), NOW)
    with pytest.raises(Conflict, match="'ci' already exists"):
        tokens.add(spec("ci", ("targets:read",)), NOW + 1)
    assert [(t.name, t.scopes) for t in tokens.list()] == [("ci", ("builds:read",))]


def test_last_used_at_is_written_at_most_once_a_minute(tokens):
    token, secret = tokens.add(spec(), NOW)
    seen = []
    for offset in (0, 1, LAST_USED_EVERY - 1, LAST_USED_EVERY, LAST_USED_EVERY + 30,
                   2 * LAST_USED_EVERY + 5):
        assert tokens.resolve(secret, NOW + offset) is not None
        seen.append(tokens.get(token.id).last_used_at - NOW)
    assert seen == [0, 0, 0, LAST_USED_EVERY, LAST_USED_EVERY, 2 * LAST_USED_EVERY + 5]


def test_last_used_at_is_not_written_by_a_refused_secret(tokens):
    token, secret = tokens.add(spec(expires_at=NOW + 10), NOW)
    assert tokens.resolve(secret, NOW + 10) is None
    assert tokens.get(token.id).last_used_at is None


def test_a_first_release_database_gets_an_empty_tokens_table(tmp_path):
    path = tmp_path / "vieter.sqlite"
    _first_release_db(path)
    db = Database(path)
    try:
        assert db._one("PRAGMA user_version")[0] == len(MIGRATIONS)
        tokens = Tokens(db, API_KEY)
        assert tokens.list() == []
        token, secret = tokens.add(spec(), NOW)
        assert tokens.resolve(secret, NOW).token_id == token.id
        assert db.target(1) is not None  # the rows of before are still there
    finally:
        db.close()


# -- validation --------------------------------------------------------------------------

@pytest.mark.parametrize("scopes, stored", [
    (("agent",), ("agent",)),
    (["admin"], ("admin",)),
    (("repos:publish", "builds:read", "repos:publish"), ("builds:read", "repos:publish")),
    (tuple(reversed(list(SCOPES))), tuple(SCOPES)),
])
def test_valid_scopes_are_stored_once_in_table_order(scopes, stored):
    assert validate(spec(scopes=scopes), NOW).scopes == stored


@pytest.mark.parametrize("scopes, code, fragment", [
    ((), "missing", "at least one of builds:read"),
    (None, "missing", "at least one"),
    (("root",), "invalid", "unknown scope 'root'"),
    (("agent", "Agent"), "invalid", "unknown scope 'Agent'"),
    (("builds:*",), "invalid", "unknown scope"),
    ("admin", "invalid", "must be a list"),
    (("agent", 3), "invalid", "must be a list"),
    ({"agent": 1}.keys(), None, None),  # any iterable of names will do
])
def test_scopes_validation(scopes, code, fragment):
    if code is None:
        assert validate(spec(scopes=scopes), NOW).scopes == ("agent",)
        return
    with pytest.raises(Invalid) as info:
        validate(spec(scopes=scopes), NOW)
    assert (info.value.field, info.value.code) == ("scopes", code)
    assert fragment in info.value.message


@pytest.mark.parametrize("changes, field, code", [
    ({"name": ""}, "name", "missing"),
    ({"name": None}, "name", "missing"),
    ({"name": "a" * 65}, "name", "too_long"),
    ({"name": "pi 4"}, "name", "invalid"),
    ({"name": "pi/4"}, "name", "invalid"),
    ({"name": "pi4\n"}, "name", "invalid"),
    ({"name": "caf\u00e9"}, "name", "invalid"),
    ({"name": 7}, "name", "invalid"),
    ({"user": "u" * 65}, "user", "too_long"),
    ({"user": "*"}, "user", "invalid"),
    ({"user": "alice bob"}, "user", "invalid"),
    ({"user": ["alice"]}, "user", "invalid"),
    ({"repos": ("api",)}, "repos", "invalid"),
    ({"repos": ("a/b",)}, "repos", "invalid"),
    ({"repos": ("",)}, "repos", "invalid"),
    ({"repos": "bur"}, "repos", "invalid"),
    ({"repos": tuple(f"r{i}" for i in range(101))}, "repos", "too_many"),
    ({"archs": ("x86-64",)}, "archs", "invalid"),
    ({"archs": ("a" * 33,)}, "archs", "invalid"),
    ({"archs": (None,)}, "archs", "invalid"),
    ({"expires_at": NOW}, "expires_at", "past"),
    ({"expires_at": NOW - 1}, "expires_at", "past"),
    ({"expires_at": True}, "expires_at", "invalid"),
    ({"expires_at": "2030-01-01T00:00:00Z"}, "expires_at", "invalid"),
    ({"scopes": ("admin",), "repos": ("bur",)}, "repos", "invalid"),
    ({"scopes": ("admin",), "archs": ("x86_64",)}, "archs", "invalid"),
])
def test_invalid_fields_are_named(tokens, changes, field, code):
    fields = {"name": "pi4-agent", "scopes": ("agent",), **changes}
    with pytest.raises(Invalid) as info:
        tokens.add(TokenSpec(**fields), NOW)
    assert (info.value.field, info.value.code) == (field, code)
    assert tokens.list() == []


@pytest.mark.parametrize("changes", [
    {"name": "a" * 64}, {"name": "A.b_c-9"}, {"user": "u" * 64},
    {"user": "alice@example.org"}, {"repos": ("bur", "my-repo.x")},
    {"archs": ("x86_64", "aarch64", "any")}, {"expires_at": NOW + 1},
])
def test_valid_fields_are_kept(tokens, changes):
    token, _ = tokens.add(TokenSpec(**{"name": "n", "scopes": ("agent",), **changes}), NOW)
    for key, value in changes.items():
        assert getattr(token, key) == value


@pytest.mark.parametrize("text, epoch", [
    (None, None),
    ("1970-01-01T00:00:00Z", 0),
    ("2026-11-23T07:00:00Z", 1795417200),
    ("2024-02-29T23:59:59Z", 1709251199),
])
def test_parse_time(text, epoch):
    assert parse_time(text) == epoch


@pytest.mark.parametrize("text", [
    "2026-11-23", "2026-11-23T07:00:00", "2026-11-23T07:00:00+00:00", "2026-11-23 07:00:00Z",
    "2026-11-23T07:00:00.5Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", 1795417200, "",
])
def test_parse_time_refuses_anything_else(text):
    with pytest.raises(Invalid) as info:
        parse_time(text, "expires_at")
    assert (info.value.field, info.value.code) == ("expires_at", "invalid")


# -- Principal ---------------------------------------------------------------------------

READER = Principal("r", "alice", frozenset({"builds:read"}))
WRITER = Principal("w", "alice", frozenset({"builds:write", "targets:write"}))
AGENT = Principal("a", "pi", frozenset({"agent"}), archs=("aarch64",))
ADMIN_TOKEN = Principal("t", "root", frozenset({"admin"}))


@pytest.mark.parametrize("who, scope, allowed", [
    (READER, "builds:read", True),
    (READER, "builds:write", False),
    (READER, "targets:read", False),
    (WRITER, "builds:read", True),       # write implies read
    (WRITER, "builds:write", True),
    (WRITER, "targets:read", True),
    (WRITER, "repos:publish", False),
    (WRITER, "admin", False),
    (AGENT, "agent", True),
    (AGENT, "builds:read", False),
    (Principal("p", "u", frozenset({"repos:publish"})), "repos:delete", False),
    (Principal("p", "u", frozenset({"repos:delete"})), "repos:publish", False),
    (ADMIN, "admin", True),
    (ADMIN, "repos:delete", True),
    (ADMIN, "no:such-scope", True),      # admin allows everything
    (ADMIN_TOKEN, "agent", True),        # the admin scope is the admin
    (ADMIN_TOKEN, "no:such-scope", True),
])
def test_principal_allows(who, scope, allowed):
    assert who.allows(scope) is allowed


@pytest.mark.parametrize("who, repo, arch, allowed", [
    (Principal("p", "u", frozenset({"repos:publish"}), repos=("bur",)), "bur", "x86_64",
     (True, True)),
    (Principal("p", "u", frozenset({"repos:publish"}), repos=("bur",)), "other", "x86_64",
     (False, True)),
    (AGENT, "bur", "aarch64", (True, True)),
    (AGENT, "bur", "x86_64", (True, False)),
    (ADMIN, "any-repo", "any-arch", (True, True)),
    (Principal("p", "u", frozenset({"admin"}), repos=("bur",), archs=("x",)),
     "other", "y", (True, True)),
])
def test_principal_repos_and_archs(who, repo, arch, allowed):
    assert (who.may_use_repo(repo), who.may_use_arch(arch)) == allowed


def test_a_token_with_the_admin_scope_resolves_to_an_admin(tokens):
    _, secret = tokens.add(spec("root", ("admin",)), NOW)
    who = tokens.resolve(secret, NOW)
    assert who.is_admin and who.allows("repos:delete") and who.name == "root"
    _, secret = tokens.add(spec("reader", ("builds:read",)), NOW)
    assert not tokens.resolve(secret, NOW).is_admin
