"""The build log as a resource of its own (Calyptia's pipeline-log lifecycle): NEW while its
build is queued or runs, DONE once delivered; read, append, replace, trim, close, delete,
each task's part of it, and following it as it grows."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from vieter_lite.db import Database
from vieter_lite.errors import Conflict, Invalid, NotFound, ServiceUnavailable
from vieter_lite.logs import BuildLogs
from vieter_lite.models import ACTIVE_STATES, TASK_NAMES, LogRecord

NEW, DONE = "NEW", "DONE"
CHANGE_FIELDS = ("append", "logs", "lines", "status")
MAX_VIEW = 8 * 1024 * 1024   # the most text one GET of a log returns (page on with offset)
HEARTBEAT = 15.0             # a follower hears something at least this often
PARTIAL_WAIT = 1.0           # a last line without its newline waits this long for it
READ_MAX = 64 * 1024         # the most bytes one follower update carries
RETRY_AFTER = 10             # seconds a refused follower is told to wait
HANG_UP_CHECK = 2.0          # how often a waiting follower looks whether its client went


# -- pure parts -------------------------------------------------------------------------

def utf8_boundary(data: bytes) -> int:
    """How much of `data` ends on a whole UTF-8 character: a multi-byte character cut off
    at the end is left for later (bytes that are no UTF-8 at all are not held back)."""
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 \
                else 4 if byte & 0xF8 == 0xF0 else 1
            return end - back if back < need else end
    return end


def sendable(data: bytes, final: bool, flush_partial: bool) -> int:
    """How many bytes of `data` (the unsent tail of a log) a follower sends now: whole
    lines at once; a last line without its newline once it has waited `flush_partial`
    (or fills a whole read), up to a whole UTF-8 character; everything once `final`."""
    if final:
        return len(data)
    lines = data.rfind(b"\n") + 1
    if lines:
        return lines
    if flush_partial or len(data) >= READ_MAX:
        return utf8_boundary(data)
    return 0


def task_ranges(starts: dict[str, int | None], size: int) -> dict[str, tuple[int, int]]:
    """Each task's part of a log of `size` bytes from where each task began (None: it
    never ran): up to where the next task began, the last one up to the end. What came
    before the first task began belongs to it (image preparation is part of setup)."""
    order = {name: i for i, name in enumerate(TASK_NAMES)}
    begun = sorted(((min(start, size), order.get(name, 99), name)
                    for name, start in starts.items() if start is not None))
    ranges = {name: (0, 0) for name in starts}
    for i, (start, _, name) in enumerate(begun):
        end = begun[i + 1][0] if i + 1 < len(begun) else size
        ranges[name] = (0 if i == 0 else start, end)
    return ranges


@dataclass(frozen=True)
class LogChange:
    """A PATCH of a log: append text, replace it, keep its last lines, set its status."""

    append: str | None = None
    logs: str | None = None
    lines: int | None = None
    status: str | None = None

    @classmethod
    def of(cls, fields: dict[str, Any]) -> LogChange:
        """From a JSON object: unknown fields and wrong types are Invalid, naming the
        field (null is the same as leaving a field out)."""
        for name in sorted(fields):
            if name not in CHANGE_FIELDS:
                raise Invalid(name, "unknown",
                              f"unknown field; the fields are {', '.join(CHANGE_FIELDS)}")
        given = {k: v for k, v in fields.items() if v is not None}
        for name in ("append", "logs", "status"):
            if name in given and not isinstance(given[name], str):
                raise Invalid(name, "invalid", "must be a string")
        lines = given.get("lines")
        if lines is not None and (isinstance(lines, bool) or not isinstance(lines, int)
                                  or lines < 0):
            raise Invalid("lines", "invalid", "must be an integer of at least 0")
        if "append" in given and "logs" in given:
            raise Invalid("logs", "invalid", "append and logs exclude each other")
        status = given.get("status")
        if status is not None and status not in (NEW, DONE):
            raise Invalid("status", "invalid", f"must be {NEW} or {DONE}")
        return cls(append=given.get("append"), logs=given.get("logs"), lines=lines,
                   status=status)


@dataclass(frozen=True)
class LogView:
    """A log as GET shows it: `text` from byte `offset` (at most MAX_VIEW bytes)."""

    id: str
    build_id: int
    text: bytes
    offset: int
    lines: int
    status: str
    created_at: int
    updated_at: int


# -- what a follower hears ---------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    """Bytes of the log; `end` is the offset just after them."""

    data: bytes
    end: int


@dataclass(frozen=True)
class Reset:
    """The log was rewritten (replaced, cut, deleted): the follower starts over at 0."""


@dataclass(frozen=True)
class Idle:
    """Nothing happened for HEARTBEAT seconds."""


@dataclass(frozen=True)
class Done:
    """The log is DONE and the follower has all of it (`end` bytes)."""

    end: int


Update = Chunk | Reset | Idle | Done


class Capacity(Protocol):
    """What the HTTP server lends a follower for its lifetime (a worker thread)."""

    def grow(self) -> None: ...

    def shrink(self) -> None: ...


class Followers:
    """At most `limit` followers at once; each borrows capacity while it follows."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0
        self.capacity: Capacity | None = None
        self._idle = threading.Condition(threading.Lock())

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no follower is left (True), or the timeout (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self.count == 0, timeout)

    def acquire(self) -> Callable[[], None]:
        """A follower's place, or ServiceUnavailable; returns its release (idempotent)."""
        with self._idle:
            if self.count >= self.limit:
                raise ServiceUnavailable(
                    f"{self.limit} clients follow build logs already (max_log_followers); "
                    f"try again later", retry_after=RETRY_AFTER)
            self.count += 1
            capacity = self.capacity
        if capacity is not None:
            capacity.grow()
        released = threading.Event()

        def release() -> None:
            with self._idle:
                if released.is_set():
                    return
                released.set()
                self.count -= 1
                self._idle.notify_all()
            if capacity is not None:
                capacity.shrink()

        return release


class Follower:
    """One client following one log: an iterator of updates that ends after Done, when
    the server stops, or when closed; close() gives its place back."""

    def __init__(self, service: BuildLogService, build_id: int, offset: int,
                 release: Callable[[], None], gone: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.gone = gone
        self.build_id = build_id
        self.offset = offset
        self._release = release
        self._clock = clock
        self._updates = self._follow()

    def __iter__(self) -> Iterator[Update]:
        return self

    def __next__(self) -> Update:
        return next(self._updates)

    def close(self) -> None:
        try:
            self._updates.close()
        finally:
            self._release()

    def _follow(self) -> Generator[Update, None, None]:
        logs, db, build_id = self.service.logs, self.service.db, self.build_id
        generation = logs.generation(build_id)
        offset = self.offset
        last_heard = self._clock()
        waiting_since: float | None = None  # when an unsent partial line was first seen
        while not logs.stopping and not self.gone():
            version = logs.version  # read first: a change after it is not missed
            size = logs.size(build_id)
            if logs.generation(build_id) != generation or offset > size:
                generation, offset, waiting_since = logs.generation(build_id), 0, None
                last_heard = self._clock()
                yield Reset()
            record = db.log_record(build_id)
            done = record is None or record.done
            now = self._clock()
            if size > offset:
                data = logs.read(build_id, offset, min(size - offset, READ_MAX))
                waiting_since = now if waiting_since is None else waiting_since
                cut = sendable(data, done and offset + len(data) >= size,
                               now - waiting_since >= PARTIAL_WAIT)
                if cut:
                    offset += cut
                    waiting_since = None
                    last_heard = now
                    yield Chunk(data[:cut], offset)
                    continue
            if done and offset >= size:
                yield Done(offset)
                return
            timeout = HEARTBEAT - (now - last_heard)
            if timeout <= 0:
                last_heard = now
                yield Idle()
                continue
            if waiting_since is not None:
                timeout = min(timeout, max(0.01, PARTIAL_WAIT - (now - waiting_since)))
            logs.wait(version, min(timeout, HANG_UP_CHECK))


class BuildLogService:
    """Build logs as resources: the rules of their lifecycle, over the log files and the
    build records."""

    def __init__(self, db: Database, logs: BuildLogs, max_followers: int,
                 clock: Callable[[], float] = time.time):
        self.db = db
        self.logs = logs
        self.followers = Followers(max_followers)
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    def record(self, build_id: int) -> LogRecord:
        record = self.db.log_record(build_id)
        if record is None:
            raise NotFound(f"Build {build_id} not found.")
        return record

    def view(self, build_id: int, offset: int = 0) -> LogView:
        record = self.record(build_id)
        log_id = record.log_id or self.db.give_log_id(build_id, str(uuid.uuid4()))
        size = self.logs.size(build_id)
        text = self.logs.read(build_id, offset, min(MAX_VIEW, size - offset)) \
            if offset < size else b""
        # a log older than the record of its changes: the build's creation
        updated = record.updated_at or record.created_at
        return LogView(id=str(log_id), build_id=build_id, text=text, offset=offset,
                       lines=self.logs.line_count(build_id),
                       status=DONE if record.done else NEW,
                       created_at=record.created_at, updated_at=int(updated))

    def task_part(self, build_id: int, name: str) -> bytes:
        """The part of the log a task wrote (empty for a task that never ran)."""
        self.record(build_id)
        if name not in TASK_NAMES:
            raise NotFound(f"Task '{name}' not found (the tasks are {', '.join(TASK_NAMES)}).")
        starts = self.db.task_log_starts(build_id)
        start, end = task_ranges(starts, self.logs.size(build_id)).get(name, (0, 0))
        return self.logs.read(build_id, start, end - start)

    def change(self, build_id: int, change: LogChange) -> int:
        """Apply a PATCH: the text first (append or replace), then `lines`, then the
        status. Appending to a DONE log, or reopening one, is a Conflict. Returns the
        time of the change."""
        record = self.record(build_id)
        if change.append is not None:
            if record.done:
                raise Conflict(f"the log of build {build_id} is DONE: nothing can be appended")
            # the record first: when sqlite cannot write (a full disk), nothing was
            # appended and the same PATCH can be sent again
            self.db.touch_log(build_id, self.now())
            data = change.append.encode()
            self.logs.append(build_id, io.BytesIO(data).read, len(data))
        if change.logs is not None:
            self.logs.replace(build_id, change.logs.encode())
            self.db.cut_task_logs(build_id, None)
        if change.lines is not None:
            cut = self.logs.keep_last_lines(build_id, change.lines)
            if cut:
                self.db.cut_task_logs(build_id, cut)
        if change.status == NEW and record.done:
            raise Conflict(f"the log of build {build_id} is DONE and cannot be reopened")
        now = self.now()
        if change.status == DONE:
            self.db.close_log(build_id, now)
        self.db.touch_log(build_id, now)
        self.logs.changed()
        return now

    def delete(self, build_id: int) -> int:
        """Empty a finished build's log and close it (the build stays); a build that is
        still queued or running keeps its log (Conflict). Returns the time of deletion."""
        record = self.record(build_id)
        if record.build_status in ("pending", *ACTIVE_STATES):
            raise Conflict(f"build {build_id} is {record.build_status}: its log is in use")
        self.logs.remove(build_id)
        self.db.cut_task_logs(build_id, None)
        now = self.now()
        self.db.close_log(build_id, now)
        self.db.touch_log(build_id, now)
        self.logs.changed()
        return now

    def follow(self, build_id: int, offset: int,
               gone: Callable[[], bool] = lambda: False) -> Follower:
        """Follow a log from byte `offset` until it is DONE or `gone()` says the client
        went away: NotFound, or ServiceUnavailable past max_log_followers, before
        anything is sent."""
        self.record(build_id)
        return Follower(self, build_id, offset, self.followers.acquire(), gone)

    def stop(self, timeout: float = 3.0) -> None:
        """The server stops: followers end now (waits up to `timeout` for them to)."""
        self.logs.stop()
        self.followers.wait_idle(timeout)
