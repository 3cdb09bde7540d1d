"""Bench: how long after a build ends its webhook arrives, against a direct POST.

    python3 bench/triggers.py [--rounds 50] [--tmpdir DIR]

Starts a real server process on a fresh data dir and a loopback HTTP receiver in this
process. A target has a webhook trigger (condition always) to the receiver. Each round
queues a build of it, claims it as an agent does (GET /api/v1/jobs/poll) and ends it
(POST /api/v1/builds/:id/finish); the time from sending that finish to the webhook's
arrival at the receiver (its handler starting) is the delivery time. In the same run:

- reference: a direct POST of a build's JSON from this process to the same receiver,
  from sending to its arrival;
- finish: the finish request's own round trip (what the agent waits for).

Phase 2 does the same while a second receiver, which never answers, holds one sender of
the server's pool (the first build of the phase also has a webhook to it; the server
waits out its 10 s timeout): the other deliveries should not wait behind it.

Prints medians and p95 in milliseconds and the ratios to the reference; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from _common import API_KEY, Server, free_port, median, request, write_config  # noqa: E402
from tests.receivers import HANG, WebhookReceiver  # noqa: E402

KEY = {"X-Api-Key": API_KEY, "Content-Type": "application/json"}


def call(port: int, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    status, answer = request(port, method, path, data, headers or KEY, timeout=60)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {answer[:200]!r}")
    return json.loads(answer) if answer else None


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def add_target(port: int, repo: str, urls: list[str]) -> int:
    triggers = [{"action": "webhook", "condition": "always", "url": u} for u in urls]
    made = call(port, "POST", "/api/v2/targets",
                {"kind": "git", "url": f"https://example.invalid/{repo}.git", "repo": repo,
                 "arch": ["x86_64"], "schedule": "0 3 1 1", "triggers": triggers})
    assert isinstance(made, dict)
    return int(made["id"])


def end_build(port: int, target_id: int) -> tuple[int, float, float]:
    """(build id, when the finish was sent, its round trip in s)."""
    queued = call(port, "POST", f"/api/v1/jobs/queue?target={target_id}&arch=x86_64&force=true")
    assert isinstance(queued, dict)
    build_id = int(queued["data"])
    polled = call(port, "GET",
                  f"/api/v1/jobs/poll?arch=x86_64&max=1&build={build_id}&jobs=v2")
    assert isinstance(polled, dict)
    token = polled["data"][0]["token"]
    sent = time.monotonic()
    call(port, "POST", f"/api/v1/builds/{build_id}/finish?exitCode=0",
         headers={"Authorization": f"Bearer {token}"})
    return build_id, sent, time.monotonic() - sent


def direct_post(receiver: WebhookReceiver, body: bytes) -> float:
    """A POST from here to the receiver: seconds from sending to its arrival."""
    before = len(receiver.requests)
    host, port = receiver.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=30)
    try:
        sent = time.monotonic()
        conn.request("POST", "/direct", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
    finally:
        conn.close()
    return receiver.wait_for(before + 1)[before].at - sent


def phase(port: int, receiver: WebhookReceiver, target: int, rounds: int,
          first_target: int | None = None) -> tuple[list[float], list[float], list[float]]:
    direct, finish, delivery = [], [], []
    for i in range(rounds):
        body = json.dumps(call(port, "GET", "/api/v2/builds?per_page=1")).encode()
        direct.append(direct_post(receiver, body))
        before = len(receiver.requests)
        build_id, sent, trip = end_build(port, first_target if i == 0 and first_target
                                         else target)
        got = receiver.wait_for(before + 1)[before]
        if json.loads(got.body)["id"] != build_id:
            raise RuntimeError("the webhook of another build arrived")
        finish.append(trip)
        delivery.append(got.at - sent)
    return direct, finish, delivery


def report(name: str, direct: list[float], finish: list[float], delivery: list[float]) -> None:
    ref = median(direct)
    print(f"{name}")
    print(f"  {'':24} {'median ms':>10} {'p95 ms':>10} {'ratio':>8}")
    for label, values in (("direct POST (reference)", direct), ("finish round trip", finish),
                          ("end -> webhook arrives", delivery)):
        print(f"  {label:24} {median(values) * 1000:10.2f} {p95(values) * 1000:10.2f} "
              f"{median(values) / ref:8.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--tmpdir", default=None)
    a = parser.parse_args()
    print("+", " ".join(sys.argv))
    with tempfile.TemporaryDirectory(dir=a.tmpdir) as tmp, WebhookReceiver() as receiver, \
            WebhookReceiver(then=HANG) as hanging:
        port = free_port()
        config = write_config(Path(tmp) / "vieter.toml", Path(tmp) / "data", port)
        with open(config, "a") as fh:
            fh.write(f'public_url = "http://127.0.0.1:{port}"\n')
        server = Server(config, port, Path(tmp) / "server.log").start()
        try:
            target = add_target(port, "bench", [receiver.url])
            report("phase 1: one webhook per build", *phase(port, receiver, target, a.rounds))
            stuck = add_target(port, "stuck", [hanging.url, receiver.url])
            report("phase 2: a receiver that never answers holds one sender",
                   *phase(port, receiver, target, a.rounds, first_target=stuck))
            print(f"  (the hanging receiver got {len(hanging.requests)} request(s))")
        finally:
            hanging.released.set()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
