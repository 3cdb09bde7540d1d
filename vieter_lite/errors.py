"""One exception hierarchy for the whole program; each class carries its HTTP status."""


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


class InvalidPackage(BadRequest):
    """An upload that is not a readable pacman package (400)."""


class ConfigError(Exception):
    """Invalid configuration: stops start-up with one line naming the key."""


class StartupError(Exception):
    """The server cannot start here (port taken, data dir not writable): one line, exit 1."""
