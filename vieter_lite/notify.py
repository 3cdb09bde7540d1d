"""Sending notifications over the network: a webhook's POST (urllib) and an email
(smtplib). Each call makes one attempt and says what came back; the rules about what
that means are in triggers.py."""

from __future__ import annotations

import http.client
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from vieter_lite import triggers

DEFAULT_TIMEOUT = 10.0   # seconds for each network operation of an attempt


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the status (HTTP status, SMTP reply code; None when no
    answer came), the answer's first bytes, or the error, and the outcome (triggers.*)."""

    status: int | None
    response: str
    error: str
    outcome: str


@dataclass(frozen=True)
class SmtpSettings:
    """Where email triggers go out (host empty: email is not configured)."""

    host: str = ""
    port: int = 587
    user: str = ""
    password: str = ""
    sender: str = ""
    starttls: bool = True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook is POSTed to its URL only: a redirect is an answer (3xx, not retried)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _read(source: object) -> bytes:
    read = getattr(source, "read", None)
    try:
        return read(triggers.EXCERPT_BYTES) if read is not None else b""
    except (OSError, http.client.HTTPException):
        return b""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return str(getattr(reason, "strerror", None) or reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return getattr(exc, "strerror", None) or text


def post_webhook(url: str, body: bytes, headers: dict[str, str],
                 timeout: float = DEFAULT_TIMEOUT) -> Answer:
    """POST the body to the URL once."""
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with _OPENER.open(request, timeout=timeout) as resp:
            status = resp.status
            data = _read(resp)
    except urllib.error.HTTPError as exc:
        status, data = exc.code, _read(exc)
        exc.close()
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Answer(None, "", _reason(exc), triggers.webhook_outcome(None))
    return Answer(status, triggers.excerpt(data), "", triggers.webhook_outcome(status))


def _smtp_error(exc: smtplib.SMTPResponseException) -> Answer:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
        else str(exc.smtp_error)
    return Answer(exc.smtp_code, "", f"{exc.smtp_code} {text}",
                  triggers.smtp_outcome(exc.smtp_code))


def send_email(settings: SmtpSettings, recipients: list[str], message: bytes,
               timeout: float = DEFAULT_TIMEOUT) -> Answer:
    """Hand the message to the SMTP server once (STARTTLS and login as configured)."""
    if not settings.host:
        return Answer(None, "", "email is not configured (smtp_host is empty)", triggers.FAILED)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password)
            refused = smtp.sendmail(settings.sender, recipients, message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        worst = max(codes) if codes else 550
        detail = "; ".join(f"{rcpt}: {code} {text.decode('utf-8', 'replace')}"
                           for rcpt, (code, text) in exc.recipients.items())
        return Answer(worst, "", f"every recipient was refused: {detail}",
                      triggers.smtp_outcome(min(codes) if codes else worst))
    except smtplib.SMTPResponseException as exc:
        return _smtp_error(exc)
    except smtplib.SMTPNotSupportedError as exc:
        return Answer(None, "", f"{exc} (smtp_starttls)", triggers.FAILED)
    except (OSError, smtplib.SMTPException) as exc:
        return Answer(None, "", _reason(exc), triggers.smtp_outcome(None))
    accepted = [r for r in recipients if r not in refused]
    note = f"accepted for {', '.join(accepted)}"
    if refused:
        note += "; refused: " + "; ".join(f"{rcpt}: {code} {text.decode('utf-8', 'replace')}"
                                          for rcpt, (code, text) in refused.items())
    return Answer(250, triggers.excerpt(note.encode()), "", triggers.DELIVERED)
