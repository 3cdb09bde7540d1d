"""Target fields that are not text (bytes that are not UTF-8, a NUL) get a 400 and are not saved."""

from __future__ import annotations

import pytest

from conftest import API_KEY

KEY = {"X-Api-Key": API_KEY}


@pytest.mark.parametrize("url", ["https%3A%2F%2Fexample.com%2Fa%00b",
                                 "https%3A%2F%2Fexample.com%2F%FF%FE",
                                 "%C3%28"])
def test_a_target_url_that_is_not_text_is_refused(webapp, url):
    before = webapp.get("/api/v1/targets", headers=KEY).json["data"]
    resp = webapp.post(f"/api/v1/targets?kind=git&repo=r&url={url}", headers=KEY,
                       expect_errors=True)
    assert resp.status_int == 400
    assert "url" in resp.json["message"]
    assert webapp.get("/api/v1/targets", headers=KEY).json["data"] == before


def test_editing_a_url_to_bytes_that_are_not_text_changes_nothing(webapp):
    created = webapp.post("/api/v1/targets?kind=git&repo=r&url=https://example.com/a.git",
                          headers=KEY).json["data"]
    resp = webapp.patch(f"/api/v1/targets/{created}?url=%FF", headers=KEY, expect_errors=True)
    assert resp.status_int == 400
    target = webapp.get(f"/api/v1/targets/{created}", headers=KEY).json["data"]
    assert target["url"] == "https://example.com/a.git"
