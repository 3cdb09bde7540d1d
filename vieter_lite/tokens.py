"""Named API tokens: their scopes, validation, secrets (kept as sha256 only) and who calls."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vieter_lite import names
from vieter_lite.errors import Conflict, Invalid, NotFound
from vieter_lite.models import Token, TokenSpec

if TYPE_CHECKING:
    from vieter_lite.db.tokens import TokenQueries

# Scope -> what it lets a token do (the order is the order they are stored and shown in).
SCOPES: dict[str, str] = {
    "builds:read": "see builds and their logs",
    "builds:write": "submit, start, cancel and delete builds (and read them)",
    "targets:read": "see targets",
    "targets:write": "add, edit and remove targets (and read them)",
    "repos:read": "list repos and their packages (the pacman files themselves are public)",
    "repos:publish": "publish packages to its repos",
    "repos:delete": "remove packages and repos",
    "agent": "poll builds for its archs and report them",
    "admin": "everything, like the configured api_key",
}
# A scope that grants another: writing a resource includes reading it.
IMPLIES: dict[str, frozenset[str]] = {
    "builds:write": frozenset({"builds:read"}),
    "targets:write": frozenset({"targets:read"}),
    "repos:publish": frozenset({"repos:read"}),
    "repos:delete": frozenset({"repos:read"}),
}

PREFIX = "vl_"           # every token secret starts with it (easy to spot in a leaked file)
SECRET_BYTES = 32
MAX_NAME = 64
MAX_ITEMS = 100          # repos or archs on one token
LAST_USED_EVERY = 60     # seconds: last_used_at is written at most this often per token
ADMIN_NAME = "api_key"   # the Principal of the configured api_key
ANONYMOUS_NAME = "anonymous"   # a caller without a key, with public_dashboard = true

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9._@-]{1,64}", re.ASCII)
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named token or the configured api_key (is_admin)."""

    name: str
    user: str
    scopes: frozenset[str]
    repos: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()
    is_admin: bool = False
    token_id: int | None = None
    anonymous: bool = False   # no key at all (public_dashboard): reads only what is public

    def __post_init__(self) -> None:
        if "admin" in self.scopes:  # the admin scope is the admin, however it was built
            object.__setattr__(self, "is_admin", True)

    def allows(self, scope: str) -> bool:
        """Whether the caller holds `scope`, itself or through a scope implying it."""
        if self.is_admin:
            return True
        return scope in self.scopes or any(scope in IMPLIES.get(s, ()) for s in self.scopes)

    def may_use_repo(self, repo: str) -> bool:
        return self.is_admin or not self.repos or repo in self.repos

    def may_use_arch(self, arch: str) -> bool:
        return self.is_admin or not self.archs or arch in self.archs


ADMIN = Principal(name=ADMIN_NAME, user="admin", scopes=frozenset({"admin"}), is_admin=True)
# Its user '*' is no token's user (is_user refuses it): as a build's reader it matches
# exactly the builds whose access:read holds '*'.
ANONYMOUS = Principal(name=ANONYMOUS_NAME, user="*",
                      scopes=frozenset({"builds:read", "targets:read", "repos:read"}),
                      anonymous=True)


# -- pure rules --------------------------------------------------------------------------

def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    """PREFIX and 32 random bytes, URL-safe base64 without padding (46 characters)."""
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def is_user(name: str) -> bool:
    """A user name as tokens carry it (and builds' owners and access lists name them)."""
    return isinstance(name, str) and _USER.fullmatch(name) is not None


def parse_time(value: Any, field: str = "expires_at") -> int | None:
    """The API's `YYYY-MM-DDThh:mm:ssZ` (UTC) or None -> Unix seconds or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise Invalid(field, "invalid", f"{field} must be a time like 2026-11-23T07:00:00Z "
                      "(UTC) or null")
    try:
        return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise Invalid(field, "invalid", f"{field} is not a real time: {value}") from None


def _names(field: str, values: Any, check: Any, what: str) -> tuple[str, ...]:
    """A list of distinct names, each passing `check` (a names.check_* function)."""
    if values is None:
        return ()
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise Invalid(field, "invalid", f"{field} must be a list of {what} names")
    result: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise Invalid(field, "invalid", f"{field} must be a list of {what} names")
        try:
            check(value)
        except ValueError as exc:
            raise Invalid(field, "invalid", f"{field}: {exc}") from None
        if value not in result:
            result.append(value)
    if len(result) > MAX_ITEMS:
        raise Invalid(field, "too_many", f"{field}: at most {MAX_ITEMS} names")
    return tuple(result)


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope '{scope}' (valid: {', '.join(SCOPES)})")
    return scope


def _text(field: str, value: Any, pattern: re.Pattern[str], allowed: str) -> str:
    if value is None or value == "":
        raise Invalid(field, "missing", f"{field} is required")
    if not isinstance(value, str):
        raise Invalid(field, "invalid", f"{field} must be a string")
    if len(value) > MAX_NAME:
        raise Invalid(field, "too_long", f"{field} is longer than {MAX_NAME} characters")
    if not pattern.fullmatch(value):
        raise Invalid(field, "invalid", f"{field} may hold only {allowed}")
    return value


def validate(spec: TokenSpec, now: int) -> TokenSpec:
    """The spec as it will be stored (user filled in, names deduplicated, scopes in SCOPES
    order), or Invalid naming the first field that breaks a rule."""
    name = _text("name", spec.name, _NAME, "letters, digits, '.', '_' and '-'")
    user = _text("user", spec.user or name, _USER, "letters, digits, '.', '_', '@' and '-'")
    scopes = _names("scopes", spec.scopes, _check_scope, "scope")
    if not scopes:
        raise Invalid("scopes", "missing", f"scopes: at least one of {', '.join(SCOPES)}")
    repos = _names("repos", spec.repos, names.check_repo, "repository")
    archs = _names("archs", spec.archs, names.check_arch, "architecture")
    if "admin" in scopes and (repos or archs):
        raise Invalid("repos" if repos else "archs", "invalid",
                      "an admin token may use every repo and arch: leave repos and archs empty")
    expires_at = spec.expires_at
    if expires_at is not None:
        if isinstance(expires_at, bool) or not isinstance(expires_at, int):
            raise Invalid("expires_at", "invalid", "expires_at must be a time or null")
        if expires_at <= now:
            raise Invalid("expires_at", "past", "expires_at must be in the future")
    return TokenSpec(name=name, user=user, scopes=tuple(s for s in SCOPES if s in scopes),
                     repos=repos, archs=archs, expires_at=expires_at)


def principal(token: Token) -> Principal:
    return Principal(name=token.name, user=token.user, scopes=frozenset(token.scopes),
                     repos=token.repos, archs=token.archs, token_id=token.id)


# -- the service -------------------------------------------------------------------------

class Tokens:
    """Named tokens over the database, and the configured api_key as the admin."""

    def __init__(self, db: TokenQueries, api_key: str = ""):
        self.db = db
        self._api_key_hash = hash_secret(api_key) if api_key else ""

    def add(self, spec: TokenSpec, now: int) -> tuple[Token, str]:
        """Create a token; it and its secret, which is not kept and cannot be shown again.
        Invalid for a bad field, Conflict when an active token has the name."""
        spec = validate(spec, now)
        secret = new_secret()
        token = self.db.add_token(spec, hash_secret(secret), now)
        if token is None:
            raise Conflict(f"A token named '{spec.name}' already exists.")
        return token, secret

    def list(self) -> list[Token]:
        """The tokens not revoked, by id (expired ones too, until removed)."""
        return self.db.tokens()

    def get(self, token_id: int) -> Token:
        token = self.db.token(token_id)
        if token is None or token.revoked_at is not None:
            raise NotFound("Token not found.")
        return token

    def remove(self, token_id: int, now: int) -> None:
        """Revoke a token: the next request with its secret is refused."""
        if not self.db.revoke_token(token_id, now):
            raise NotFound("Token not found.")

    def admin_principal(self) -> Principal:
        return ADMIN

    def resolve(self, secret: str, now: int) -> Principal | None:
        """Who a presented secret is: the admin for the api_key, a token's Principal, or
        None (unknown, expired, revoked). Secrets are compared as hashes, in constant time."""
        if not isinstance(secret, str) or not secret:
            return None
        if self._api_key_hash and hmac.compare_digest(hash_secret(secret),
                                                      self._api_key_hash):
            return ADMIN
        if not secret.startswith(PREFIX):
            return None
        digest = hash_secret(secret)
        found = self.db.token_by_hash(digest)
        if found is None:
            return None
        token, stored = found
        if not hmac.compare_digest(stored, digest) or not token.active(now):
            return None
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
            self.db.touch_token(token.id, now, now - LAST_USED_EVERY)
        return principal(token)
