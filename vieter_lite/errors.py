"""One exception hierarchy for the whole program; each class carries its HTTP status."""

import errno
import sqlite3


class VieterError(Exception):
    """Base class: a message meant for the client, and the HTTP status that goes with it."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(VieterError):
    status = 400


class Unauthorized(VieterError):
    status = 401


class Forbidden(VieterError):
    status = 403


class NotFound(VieterError):
    status = 404


class MethodNotAllowed(VieterError):
    status = 405


class Conflict(VieterError):
    status = 409


class LengthRequired(VieterError):
    status = 411


class PayloadTooLarge(VieterError):
    status = 413


class RangeNotSatisfiable(VieterError):
    status = 416


class ServiceUnavailable(VieterError):
    """Busy for now (too many log followers): try again after `retry_after` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int = 10):
        super().__init__(message)
        self.retry_after = retry_after


class InsufficientStorage(VieterError):
    """The data disk is full (or the quota spent): nothing of the request was kept unless
    the message says so (507 in every API)."""

    status = 507


# what every full-disk answer says first; full_disk() adds what was being written
NO_SPACE = "no space left on the data disk"
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = 13


def full_disk(exc: BaseException, doing: str = "") -> InsufficientStorage | None:
    """The InsufficientStorage a low-level error stands for: OSError ENOSPC or EDQUOT, or
    sqlite's SQLITE_FULL ("database or disk is full"); None for any other error.
    `doing` says what was being written ("writing the package")."""
    if isinstance(exc, InsufficientStorage):
        return exc
    full = isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        full = getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL \
            or "database or disk is full" in str(exc)
    if not full:
        return None
    what = f" ({doing})" if doing else ""
    return InsufficientStorage(f"{NO_SPACE}{what}; free some space and try again")


class InvalidPackage(BadRequest):
    """An upload that is not a readable pacman package (400)."""


class ConfigError(Exception):
    """Invalid configuration: stops start-up with one line naming the key."""


class StartupError(Exception):
    """The server cannot start here (port taken, data dir not writable): one line, exit 1."""


class Invalid(BadRequest):
    """A value that breaks a rule, naming its field (`kind`, `source.git`) and a short code
    (`missing`, `invalid`, `too_long`, ...). Each API renders it in its own words: v1 as
    Vieter's 400 text (the message), v2 as a 422 that names the field."""

    def __init__(self, field: str, code: str, message: str):
        super().__init__(message)
        self.field = field
        self.code = code


class Malformed(BadRequest):
    """A body or query that cannot be read at all (not JSON, not an object, an unknown
    query parameter): 400 in every API."""


class BadQueryParameter(Malformed):
    """A query parameter that is unknown, repeated or has an invalid value (a list's
    `page`, `per_page`, `order_by`, timestamp filters, `label_selector`, resource filters):
    400 in every API (v2: CF-BadQueryParameter). `parameter` names the parameter."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
