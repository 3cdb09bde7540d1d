"""SQL for named API tokens: rows keep the sha256 of a secret, never the secret."""

from __future__ import annotations

import sqlite3

from vieter_lite.db.base import Base
from vieter_lite.models import Token, TokenSpec

_COLUMNS = ("id, name, user, scopes, repos, archs, created_at, expires_at, last_used_at, "
            "revoked_at")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _token(row: sqlite3.Row) -> Token:
    return Token(id=row["id"], name=row["name"], user=row["user"],
                 scopes=_words(row["scopes"]), repos=_words(row["repos"]),
                 archs=_words(row["archs"]), created_at=row["created_at"],
                 expires_at=row["expires_at"], last_used_at=row["last_used_at"],
                 revoked_at=row["revoked_at"])


class TokenQueries(Base):
    """Tokens: add, list, find by the hash of a secret, revoke, note their use."""

    def add_token(self, spec: TokenSpec, secret_hash: str, now: int) -> Token | None:
        """Insert a (validated) token; None when a token not revoked has its name."""
        with self.transaction():
            if self._one("SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL",
                         spec.name) is not None:
                return None
            with self._lock:
                cursor = self._conn.execute(
                    "INSERT INTO tokens (name, user, scopes, repos, archs, secret_hash, "
                    "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (spec.name, spec.user, " ".join(spec.scopes), " ".join(spec.repos),
                     " ".join(spec.archs), secret_hash, now, spec.expires_at))
            return self.token(int(cursor.lastrowid or 0))

    def token(self, token_id: int) -> Token | None:
        """A token by id, revoked ones included."""
        row = self._one(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", token_id)
        return None if row is None else _token(row)

    def tokens(self, revoked: bool = False) -> list[Token]:
        """Tokens by id: those not revoked (or, with revoked=True, all)."""
        where = "" if revoked else " WHERE revoked_at IS NULL"
        return [_token(r) for r in self._all(f"SELECT {_COLUMNS} FROM tokens{where} ORDER BY id")]

    def token_by_hash(self, secret_hash: str) -> tuple[Token, str] | None:
        """The token whose secret hashes to this, with the stored hash."""
        row = self._one(f"SELECT {_COLUMNS}, secret_hash FROM tokens WHERE secret_hash = ?",
                        secret_hash)
        return None if row is None else (_token(row), row["secret_hash"])

    def revoke_token(self, token_id: int, now: int) -> bool:
        """Revoke a token; False when there is no such token or it is revoked already."""
        return self._run("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                         now, token_id) == 1

    def touch_token(self, token_id: int, now: int, unless_after: int) -> bool:
        """Set last_used_at to now unless it is later than `unless_after` already (so
        concurrent requests write it once)."""
        return self._run("UPDATE tokens SET last_used_at = ? WHERE id = ? AND "
                         "(last_used_at IS NULL OR last_used_at <= ?)",
                         now, token_id, unless_after) == 1
