"""Prometheus metrics: opt-in, labelled by route template, with build/queue/package gauges."""

from __future__ import annotations

import re

import pytest
import webtest

from conftest import API_KEY, make_config
from vieter_lite.services import build_services
from vieter_lite.web.app import make_app
from vieter_lite.web.metrics import Metrics, route_label

KEY = {"X-Api-Key": API_KEY}


@pytest.fixture
def metrics_app(tmp_path, monkeypatch):
    from vieter_lite import config
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "none.toml")
    services = build_services(make_config(tmp_path, collect_metrics="true"))
    yield webtest.TestApp(make_app(services))
    services.db.close()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in exposition text, or None."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_are_off_by_default(webapp):
    for path in ("/metrics", "/api/v1/metrics"):
        res = webapp.get(path, status=404)
        assert res.json["data"] == ""


def test_requests_are_counted_by_route_template_and_real_status(metrics_app):
    metrics_app.get("/bur/x86_64/foo-1.0-1-x86_64.pkg.tar.zst", status=404)
    metrics_app.get("/bur/x86_64/bar-2.0-1-x86_64.pkg.tar.zst", status=404)
    metrics_app.get("/api/v1/targets", status=401)
    metrics_app.get("/api/v1/targets", headers=KEY)
    metrics_app.get("/a/b/c/d", status=404)
    text = metrics_app.get("/api/v1/metrics").text
    assert sample(text, "vieter_http_requests_total", method="GET",
                  path="/:repo/:arch/:filename", status="404") == 2
    assert sample(text, "vieter_http_requests_total", path="/api/v1/targets", status="401") == 1
    assert sample(text, "vieter_http_requests_total", path="/api/v1/targets", status="200") == 1
    assert sample(text, "vieter_http_requests_total", path="(unmatched)", status="404") == 1
    assert "foo-1.0-1" not in text  # no raw paths, so no unbounded label values
    assert sample(text, "vieter_http_requests_duration_seconds_count",
                  path="/:repo/:arch/:filename", status="404") == 2
    assert sample(text, "vieter_http_requests_duration_seconds_bucket",
                  path="/api/v1/targets", status="200", le="+Inf") == 1


def test_gauges_for_builds_queues_and_packages(metrics_app, tmp_path):
    from pkgfactory import make_synthetic_package
    pkg = make_synthetic_package(tmp_path / "p.pkg.tar.zst",
                                 {"pkgname": "p", "pkgver": "1-1", "arch": "x86_64"})
    metrics_app.post("/bur/publish", pkg.read_bytes(), headers=KEY)
    metrics_app.post("/api/v1/targets?kind=git&url=https://x/y.git&repo=bur&arch=x86_64,aarch64",
                     headers=KEY)
    metrics_app.post("/api/v1/jobs/queue?target=1&arch=x86_64", headers=KEY)
    metrics_app.post("/api/v1/jobs/queue?target=1&arch=aarch64", headers=KEY)
    metrics_app.get("/api/v1/jobs/poll?arch=aarch64&max=1", headers=KEY)
    text = metrics_app.get("/metrics").text
    assert sample(text, "vieter_packages", repo="bur", arch="x86_64") == 1
    assert sample(text, "vieter_queue_depth", arch="x86_64") == 1
    assert sample(text, "vieter_queue_depth", arch="aarch64") is None
    assert sample(text, "vieter_builds", status="queued") == 1
    assert sample(text, "vieter_builds", status="running") == 1


@pytest.mark.parametrize("rule, label", [
    ("/<repo>/<arch>/<filename>", "/:repo/:arch/:filename"),
    ("/api/v1/targets/<target_id>", "/api/v1/targets/:target_id"),
    ("/api/v1/builds/<build_id:int>/log", "/api/v1/builds/:build_id/log"),
    ("/health", "/health"),
])
def test_route_labels(rule, label):
    assert route_label(rule) == label


def test_histogram_buckets_are_cumulative():
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.2, 20.0):
        metrics.observe("GET", "/x", 200, seconds)
    text = metrics.render({})
    assert sample(text, "vieter_http_requests_duration_seconds_bucket", le="0.001") == 1
    assert sample(text, "vieter_http_requests_duration_seconds_bucket", le="0.005") == 2
    assert sample(text, "vieter_http_requests_duration_seconds_bucket", le="0.5") == 3
    assert sample(text, "vieter_http_requests_duration_seconds_bucket", le="10.0") == 3
    assert sample(text, "vieter_http_requests_duration_seconds_bucket", le="+Inf") == 4
    assert sample(text, "vieter_http_requests_duration_seconds_count") == 4
