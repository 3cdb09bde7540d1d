"""The waitress server: JSON error pages for waitress's own errors, bodies refused from
their headers, connections that cannot starve the others, and a clean stop."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import Error

from vieter_lite.errors import full_disk
from vieter_lite.web.http import is_v2_path, key_of, normalise_path
from vieter_lite.web.room import (
    ROOM_GRACE,
    SendRate,
    address_key,
    hoarded,
    slow_readers,
    waiting_since,
)
from vieter_lite.web.sendfile import SendfileChannel
from vieter_lite.web.v2 import errors as v2_errors

log = logging.getLogger(__name__)


class _JsonErrorTask(ErrorTask):
    """waitress answers some bad requests itself (oversized body, bad headers): use the envelope."""

    def execute(self) -> None:
        error = self.request.error
        text = error.body if isinstance(error, _Refused) else f"{error.reason}: {error.body}"
        text = text.strip(": ")
        if is_v2_path(normalise_path(getattr(self.request, "path", None) or "")):
            body = v2_errors.body(error.code, text).encode()
        else:
            body = json.dumps({"message": text, "data": ""}, separators=(",", ":")).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Refused(Error):
    """A refusal decided from the headers: code and reason set per instance."""

    def __init__(self, code: int, body: str):
        super().__init__(body)
        self.code = code
        self.reason = HTTPStatus(code).phrase


class _BodyGuardParser(HTTPRequestParser):
    """Refuses a request body before a byte of it is read (or buffered to disk) when its
    headers already say it may not be sent: no known key, over the route's limit. A
    client without a key cannot fill the disk or memory with uploads. `refusal(path,
    key, length)` (None for a chunked body) is set by HttpServer."""

    refusal: Callable[[str, str, int | None], tuple[int, str] | None] | None = None

    def __init__(self, adj: Adjustments):
        super().__init__(adj)
        # waitress makes a parser when the first byte of a request arrives
        self.started = time.time()

    def received(self, data: bytes) -> int:
        """waitress spools a large body to a temp file on the data disk: when the disk fills
        up meanwhile, the request ends with a 507 instead of a dropped connection (waitress
        would close it without an answer); the partial temp file goes at once."""
        try:
            return int(super().received(data))
        except OSError as exc:
            full = full_disk(exc, "receiving the request body")
            if full is None:
                raise
            log.error("%s (%d of %d bytes received)", full.message,
                      int(getattr(self, "body_bytes_received", 0)),
                      int(getattr(self, "content_length", 0)))
            receiver = getattr(self, "body_rcv", None)
            if receiver is not None:
                try:
                    receiver.getbuf().close()
                except OSError:
                    pass  # its flush failed too; the file is closed (and gone) all the same
            self.error = _Refused(507, full.message)
            self.body_rcv = None
            self.completed = True
            self.expect_continue = False
            return len(data)

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # waitress's parser is untyped: read its fields through getattr
        length = int(getattr(self, "content_length", 0))
        has_body = getattr(self, "body_rcv", None) is not None and (self.chunked or length > 0)
        decide = type(self).refusal
        if not has_body or decide is None:
            return
        refused = decide(self.path, key_of(self.headers.get("X_API_KEY", ""),
                                   self.headers.get("AUTHORIZATION", "")),
                         None if self.chunked else length)
        if refused is not None:
            self.error = _Refused(*refused)
            self.body_rcv = None  # complete now: the body is never read
            self.content_length = 0
            # no "100 Continue" for a refused body (waitress would then wait for it)
            self.expect_continue = False


class _KeepAliveTask(WSGITask):
    """waitress closes an HTTP/1.1 connection after any response without a Content-Length,
    304 and 204 included, though those have no body by definition and so need no length to
    end (RFC 9112 6.3): pacman's and browsers' revalidations would each cost a new
    connection. Such a response keeps the connection unless the client asked to close."""

    _bodiless_keep_alive = False

    def build_response_header(self) -> bytes:
        connection = self.request.headers.get("CONNECTION", "").lower()
        self._bodiless_keep_alive = (not self.has_body and self.version == "1.1"
                                     and connection != "close" and not self.close_on_finish)
        try:
            return bytes(super().build_response_header())
        finally:
            self._bodiless_keep_alive = False

    def set_close_on_finish(self) -> None:
        if not self._bodiless_keep_alive:
            super().set_close_on_finish()


class _Channel(SendfileChannel, HTTPChannel):
    task_class = _KeepAliveTask
    error_task_class = _JsonErrorTask
    parser_class = _BodyGuardParser

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.send_rate = SendRate()


def _close_soon(channel: HTTPChannel) -> None:
    """Close a connection from the I/O loop's next write pass. Not at once: this runs while
    the loop gathers the sockets to poll, and a closed descriptor would break the poll."""
    channel.will_close = True


def _cut(channel: HTTPChannel) -> None:
    """End a connection that is being served: shut its socket down (the descriptor stays
    open, so the poll being gathered holds), so the next write fails and waitress closes it
    as it closes any connection its client dropped. A slow reader's full socket never gets
    to that write on its own."""
    try:
        channel.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    channel.will_close = True


class _GuardedServer(TcpWSGIServer):
    """waitress's listener with two rules, so that clients without a key cannot lock the
    others out by holding connections:

    - request headers must arrive within header_timeout of their first byte (a client
      that trickles a byte a second keeps waitress's idle timer fresh forever);
    - at connection_limit, instead of no longer accepting, connections give up their slot
      in the order of web/room.py: the one waiting longest on its client (idle or with
      incomplete headers); then, when one address holds more than half of the slots, its
      quietest downloads, down to half; then downloads whose client takes less than
      min_send_rate bytes a second, slowest first. Only when every connection is being
      served at a reasonable speed does waitress stop accepting until one ends.
    """

    header_timeout: float = 10.0
    min_send_rate: float = 4096.0
    _closed_slow = 0
    _closed_for_room = 0
    _cut_hoarded = 0
    _cut_slow_readers = 0
    _next_report = 0.0

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._make_room(len(self._map) - self.adj.connection_limit + 1)
        return bool(super().readable())

    def _make_room(self, count: int) -> None:
        channels = list(self.active_channels.values())
        count -= sum(1 for channel in channels if channel.will_close)  # already closing
        # a connection just accepted has had no time to send its request yet
        fresh = time.time() - ROOM_GRACE
        waiting = [(since, channel) for channel in channels
                   if (since := waiting_since(channel)) is not None and since < fresh]
        waiting.sort(key=lambda pair: pair[0])
        closing = waiting[:max(0, count)]
        for _, channel in closing:
            _close_soon(channel)
            self._closed_for_room += 1
        count -= len(closing)
        if count > 0:
            served = [channel for channel in channels
                      if not channel.will_close and waiting_since(channel) is None]
            keyed = [(address_key(str(channel.addr[0]) if channel.addr else ""),
                      float(channel.last_activity), channel) for channel in served]
            for channel in hoarded(keyed, self.adj.connection_limit, count):
                _cut(channel)
                self._cut_hoarded += 1
                count -= 1
            if count > 0:
                rated = [(channel.send_rate.rate, channel) for channel in served
                         if not channel.will_close]
                for channel in slow_readers(rated, self.min_send_rate, count):
                    _cut(channel)
                    self._cut_slow_readers += 1
        self._report(time.time())

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.header_timeout
        for channel in list(self.active_channels.values()):
            since = waiting_since(channel)
            # waiting on headers (an idle connection is channel_timeout's to close)
            if since is not None and channel.request is not None and since < cutoff:
                _close_soon(channel)
                self._closed_slow += 1
            channel.send_rate.update(now, channel.sent_total, channel.total_outbufs_len > 0)
        self._report(now)

    def _report(self, now: float) -> None:
        """One line a minute at most, however many connections an attack costs."""
        if not (self._closed_slow or self._closed_for_room or self._cut_hoarded
                or self._cut_slow_readers) or now < self._next_report:
            return
        log.warning("closed %d connections whose request headers took over %gs, %d idle "
                    "ones, %d downloads of an address holding over half the connections and "
                    "%d downloads slower than %g bytes/s to make room under "
                    "connection_limit=%d (within the last minute)",
                    self._closed_slow, self.header_timeout, self._closed_for_room,
                    self._cut_hoarded, self._cut_slow_readers, self.min_send_rate,
                    self.adj.connection_limit)
        self._closed_slow = self._closed_for_room = self._cut_hoarded = 0
        self._cut_slow_readers = 0
        self._next_report = now + 60


class HttpServer:
    """One waitress listener; run() blocks in the calling thread until stop()."""

    def __init__(self, app: Callable[..., Any], host: str, port: int, threads: int,
                 max_body: int,
                 refusal: Callable[[str, str, int | None], tuple[int, str] | None] | None = None,
                 connection_limit: int = 100, channel_timeout: int = 60,
                 header_timeout: float = 10.0, min_send_rate: float = 4096.0):
        adj = Adjustments(host=host, port=port, threads=threads,
                          max_request_body_size=max_body, ident="vieter-lite",
                          clear_untrusted_proxy_headers=True,
                          connection_limit=connection_limit, channel_timeout=channel_timeout,
                          # how often the timeouts are checked
                          cleanup_interval=1)
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(threads)
        parser = type("_Parser", (_BodyGuardParser,), {"refusal": staticmethod(refusal)}
                      if refusal else {})
        channel = type("_GuardedChannel", (_Channel,), {"parser_class": parser})
        server_class = type("_Server", (_GuardedServer,), {"channel_class": channel,
                                                            "header_timeout": header_timeout,
                                                            "min_send_rate": min_send_rate})
        # one listening socket: the first address the host resolves to
        self._server = server_class(app, {}, True, None, dispatcher=dispatcher, adj=adj,
                                    sockinfo=adj.listen[0])
        self._stopping = False

    @property
    def dispatcher(self) -> ThreadedTaskDispatcher:
        """The worker threads (a long request may lend itself one more: web/workers.py)."""
        return self._server.task_dispatcher

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def run(self) -> None:
        try:
            self._server.asyncore.loop(0.5, map=self._server._map)
        except OSError:
            if not self._stopping:
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish (up to timeout), close connections."""
        self._stopping = True
        # the listener first; the trigger only once the running requests are done (one
        # that ends pulls it to have its connection looked at)
        wasyncore.dispatcher.close(self._server)
        self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)
        self._server.trigger.close()
        for channel in list(self._server._map.values()):
            channel.handle_close()
