"""Status badges (GET /badge/<target id or repo>.svg): which status a target's builds
give, and the SVG of a two-part badge ("build | passing"), as pure functions.

The SVG is in the style of shields.io's flat badges: each part as wide as its text
(estimated from a table of Verdana 11 px advance widths) plus 5 px padding on each side;
every text is XML-escaped."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

PASSING, FAILING, RUNNING, UNKNOWN = "passing", "failing", "running", "unknown"
COLOURS: dict[str, str] = {PASSING: "#4c1", FAILING: "#e05d44", RUNNING: "#007ec6",
                           UNKNOWN: "#9f9f9f"}
LABEL_COLOUR = "#555"
INFO_COLOUR = "#007ec6"      # a repo's package count
PADDING = 5
MAX_TEXT = 64                # longer texts are cut (a repo name may have 128 characters)
CONTENT_TYPE = "image/svg+xml; charset=utf-8"

# Verdana 11 px advance widths, rounded (as shields.io measures its texts); other
# characters count as DEFAULT_WIDTH
_WIDTHS: dict[str, float] = {
    **dict.fromkeys("ijl|'", 3.1), **dict.fromkeys("ft!.,:;()[]{} ", 4.0),
    **dict.fromkeys("r-", 4.7), **dict.fromkeys("Iszcvxyk", 5.7),
    **dict.fromkeys("abdeghnopqu0123456789_$#", 7.0), **dict.fromkeys("JLFTZ", 6.8),
    **dict.fromkeys("ABCEKPRSVXY", 7.5), **dict.fromkeys("DGHNOQU", 8.4),
    **dict.fromkeys("mw", 10.7), **dict.fromkeys("MW", 11.5), "@": 11.0, "%": 12.0,
}
DEFAULT_WIDTH = 7.0


def text_width(text: str) -> int:
    """The width in pixels of `text` in Verdana 11 px (rounded up)."""
    return int(-(-sum(_WIDTHS.get(c, DEFAULT_WIDTH) for c in text) // 1))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def target_status(running: bool, latest: Iterable[str]) -> str:
    """A target's badge status: running while one of its builds runs; otherwise from the
    latest finished (success, failed or timeout) build of each of its archs: failing if
    any failed or timed out, passing if all succeeded; unknown before any finished."""
    if running:
        return RUNNING
    states = set(latest)
    if not states:
        return UNKNOWN
    return FAILING if states & {"failed", "timeout"} else PASSING


def packages_text(count: int) -> str:
    return f"{count} package" if count == 1 else f"{count} packages"


def render(label: str, message: str, colour: str) -> str:
    """A flat two-part badge: `label` on grey, `message` on `colour`."""
    label, message = _cut(label), _cut(message)
    left = text_width(label) + 2 * PADDING
    right = text_width(message) + 2 * PADDING
    width = left + right
    title = escape(f"{label}: {message}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label={quoteattr(f"{label}: {message}")}>'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill={quoteattr(colour)}/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,'
        'sans-serif" font-size="11">'
        f'<text x="{left / 2:g}" y="14">{escape(label)}</text>'
        f'<text x="{left + right / 2:g}" y="14">{escape(message)}</text></g></svg>\n')


def etag(body: str) -> str:
    """A strong ETag of a badge's body."""
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'

