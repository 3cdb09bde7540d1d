"""Prometheus metrics: requests by route template (not raw path), builds, queues, packages."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from bottle import HTTPError, HTTPResponse, request, response

BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
UNMATCHED = "(unmatched)"
_PARAM = re.compile(r"<(\w+)[^>]*>")


def route_label(rule: str) -> str:
    """bottle's '/<repo>/<arch>' as Vieter writes routes: '/:repo/:arch'."""
    return _PARAM.sub(r":\1", rule)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


class Metrics:
    """Request counters and duration histograms, keyed by (method, route template, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [count, sum, *buckets]
        self._requests: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        with self._lock:
            series = self._requests.setdefault(key, [0.0] * (2 + len(BUCKETS)))
            series[0] += 1
            series[1] += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    series[2 + i] += 1

    def plugin(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """A bottle plugin (installed first, so outermost) that times every routed request."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            status = 500
            try:
                result = callback(*args, **kwargs)
                status = result.status_code if isinstance(result, HTTPResponse) \
                    else response.status_code
                return result
            except (HTTPResponse, HTTPError) as exc:
                status = exc.status_code
                raise
            finally:
                route = route_label(request.route.rule) if request.route else UNMATCHED
                self.observe(request.method, route, status, time.perf_counter() - started)
        return wrapper

    def render(self, gauges: dict[str, tuple[str, dict[tuple[tuple[str, str], ...], int]]]) -> str:
        """The text exposition format; `gauges` maps a name to (help, {labels: value})."""
        lines = ["# HELP vieter_http_requests_total HTTP requests by route template and status.",
                 "# TYPE vieter_http_requests_total counter"]
        with self._lock:
            snapshot = {k: list(v) for k, v in sorted(self._requests.items())}
        for (method, route, status), series in snapshot.items():
            label_text = _labels(method=method, path=route, status=status)
            lines.append(f"vieter_http_requests_total{label_text} {int(series[0])}")
        lines += ["# HELP vieter_http_requests_duration_seconds HTTP request durations.",
                  "# TYPE vieter_http_requests_duration_seconds histogram"]
        for (method, route, status), series in snapshot.items():
            base = dict(method=method, path=route, status=status)
            for i, bound in enumerate(BUCKETS):
                lines.append(f"vieter_http_requests_duration_seconds_bucket"
                             f"{_labels(**base, le=bound)} {int(series[2 + i])}")
            lines.append(f"vieter_http_requests_duration_seconds_bucket{_labels(**base, le='+Inf')}"
                         f" {int(series[0])}")
            lines.append(f"vieter_http_requests_duration_seconds_sum{_labels(**base)} "
                         f"{series[1]:.6f}")
            lines.append(f"vieter_http_requests_duration_seconds_count{_labels(**base)} "
                         f"{int(series[0])}")
        for name, (help_text, values) in gauges.items():
            lines += [f"# HELP vieter_{name} {help_text}", f"# TYPE vieter_{name} gauge"]
            for labels, value in sorted(values.items()):
                lines.append(f"vieter_{name}{_labels(**dict(labels))} {value}")
        return "\n".join(lines) + "\n"
