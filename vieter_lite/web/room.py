"""Which connections give up their slot when the server is at connection_limit: pure rules
over a connection's state, applied by web/server.py's listener.

In this order: connections waiting on their client (idle, or headers still incomplete),
longest waiting first; then the downloads of one address holding more than half of the
slots, its quietest first; then downloads whose client takes less than `min_send_rate`
bytes a second while the server has output waiting for it, slowest first. A download whose
client reads at a reasonable speed keeps its connection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
# seconds a new connection has to send its first request before it may be closed for room:
# at the limit, the connection just accepted would otherwise be the one closed
ROOM_GRACE = 1.0
# seconds over which a download's speed is measured: long enough that a client on a slow,
# bursty link (TCP window stalls, a Wi-Fi hiccup) is judged by its average, short enough
# that slow readers holding every slot are found while new clients wait to be accepted
SEND_RATE_WINDOW = 10.0


def waiting_since(channel: Any) -> float | None:
    """When a connection began waiting on its client for a request (time.time()): the
    first byte of headers still incomplete, or the end of its last exchange when idle.
    None while the server owes it something: a request running, a response being sent, or
    a request body being received (only a known key gets that far)."""
    if channel.requests or channel.total_outbufs_len or channel.will_close \
            or channel.close_when_flushed:
        return None
    request = channel.request
    if request is None:
        return float(channel.last_activity)
    if request.headers_finished:
        return None
    return float(getattr(request, "started", channel.last_activity))


def address_key(host: str) -> str:
    """Whose connection this is, for sharing connection slots: an IPv4 address, or an IPv6
    address's /64 (one machine commonly holds a whole /64); an IPv4-mapped IPv6 address is
    its IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host  # a Unix socket's path, or anything else: itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def hoarded(served: list[tuple[str, float, T]], limit: int, count: int) -> list[T]:
    """Which of the connections being served (address key, last activity, connection) to
    cut so that `count` others can be accepted: only those of an address that holds more
    than half of `limit` slots, its quietest first, never leaving it fewer than half."""
    by_address: dict[str, list[tuple[float, T]]] = {}
    for key, last_activity, channel in served:
        by_address.setdefault(key, []).append((last_activity, channel))
    if not by_address:
        return []
    share = limit // 2
    heaviest = max(by_address.values(), key=len)
    if len(heaviest) <= share:
        return []
    heaviest.sort(key=lambda pair: pair[0])
    return [channel for _, channel in heaviest[:min(count, len(heaviest) - share)]]


@dataclass
class SendRate:
    """A connection's send speed: bytes its client took per second over the last whole
    window in which the server had output waiting for it (None until one has passed).
    `update` is called about once a second with the connection's bytes sent so far."""

    window: float = SEND_RATE_WINDOW
    since: float | None = None
    sent_then: int = 0
    rate: float | None = None

    def update(self, now: float, sent: int, pending: bool) -> None:
        if not pending:  # nothing to send: the client cannot be slow
            self.since, self.rate = None, None
        elif self.since is None:
            self.since, self.sent_then = now, sent
        elif now - self.since >= self.window:
            self.rate = (sent - self.sent_then) / (now - self.since)
            self.since, self.sent_then = now, sent


def slow_readers(served: list[tuple[float | None, T]], min_rate: float,
                 count: int) -> list[T]:
    """Which of the connections being served (send rate, connection) to cut so that
    `count` others can be accepted: those measured below `min_rate`, slowest first."""
    slow = [(rate, channel) for rate, channel in served if rate is not None and rate < min_rate]
    slow.sort(key=lambda pair: pair[0])
    return [channel for _, channel in slow[:max(0, count)]]
