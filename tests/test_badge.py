"""Badges (vieter_lite/badge.py): the status rule, text widths, escaping, colours and
ETags, as tables; the SVG parses as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from vieter_lite import badge
from vieter_lite.web.http import etag_matches

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("running, latest, status", [
    (False, [], "unknown"),
    (True, [], "running"),
    (True, ["failed"], "running"),
    (False, ["success"], "passing"),
    (False, ["success", "success"], "passing"),
    (False, ["success", "failed"], "failing"),     # one arch broken: failing
    (False, ["timeout"], "failing"),
])
def test_target_status(running, latest, status):
    assert badge.target_status(running, latest) == status


@pytest.mark.parametrize("text, width", [
    # sums of the table's widths, rounded up: b 7 + u 7 + i 3.1 + l 3.1 + d 7 = 27.2 -> 28
    ("", 0), ("i", 4), ("m", 11), ("build", 28), ("passing", 43), ("WWW", 35),
    ("12 packages", 71), ("€", 7),
])
def test_text_width(text, width):
    assert badge.text_width(text) == width


def test_a_longer_text_is_wider():
    assert badge.text_width("failing") < badge.text_width("passing") \
        < badge.text_width("passing passing")


@pytest.mark.parametrize("count, text", [(0, "0 packages"), (1, "1 package"),
                                         (12, "12 packages")])
def test_packages_text(count, text):
    assert badge.packages_text(count) == text


def parts(svg: str) -> tuple[list[int], list[str], list[str], str]:
    """(rect widths of the two parts, their fills, the two texts, the title)."""
    root = ET.fromstring(svg)
    rects = root.findall(f"{SVG}g/{SVG}rect")
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    return ([int(r.get("width", "0")) for r in rects[:2]], [r.get("fill", "") for r in rects[:2]],
            texts, root.findtext(f"{SVG}title") or "")


@pytest.mark.parametrize("label, message, colour", [
    ("build", "passing", badge.COLOURS["passing"]),
    ("build", "failing", badge.COLOURS["failing"]),
    ("build", "running", badge.COLOURS["running"]),
    ("build", "unknown", badge.COLOURS["unknown"]),
    ("bur", "12 packages", badge.INFO_COLOUR),
])
def test_render_widths_texts_and_colours(label, message, colour):
    svg = badge.render(label, message, colour)
    widths, fills, texts, title = parts(svg)
    assert widths == [badge.text_width(label) + 10, badge.text_width(message) + 10]
    assert fills == [badge.LABEL_COLOUR, colour]
    assert texts == [label, message] and title == f"{label}: {message}"
    root = ET.fromstring(svg)
    assert int(root.get("width", "0")) == sum(widths) and root.get("height") == "20"


@pytest.mark.parametrize("label", ['<script>alert(1)</script>', 'a&b', 'x"y', "it's"])
def test_texts_are_escaped(label):
    svg = badge.render(label, "passing", badge.COLOURS["passing"])
    assert "<script>" not in svg
    _, _, texts, title = parts(svg)     # parses, and reads back as given
    assert texts[0] == label and title == f"{label}: passing"
    assert ET.fromstring(svg).get("aria-label") == f"{label}: passing"


def test_a_long_name_is_cut():
    svg = badge.render("r" * 128, "1 package", badge.INFO_COLOUR)
    _, _, texts, _ = parts(svg)
    assert len(texts[0]) == badge.MAX_TEXT and texts[0].endswith("…")


def test_etag_follows_the_body():
    one, other = badge.render("build", "passing", "#4c1"), badge.render("build", "failing", "#e05d44")
    assert badge.etag(one) == badge.etag(one) != badge.etag(other)
    assert badge.etag(one).startswith('"') and badge.etag(one).endswith('"')


@pytest.mark.parametrize("header, result", [
    ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True),
    ('"abd"', False), ("", False), ("abc", False),
])
def test_etag_matches(header, result):
    assert etag_matches(header, '"abc"') is result
