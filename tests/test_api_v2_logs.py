"""/api/v2/builds/:id/log: the log lifecycle (NEW/DONE, append, replace, keep lines,
close, delete), task parts, and following a log as server-sent events. The lifecycle runs
in-process (webtest); the events run against a real server, where they must arrive as
they are appended, resume without gaps, end with `event: done`, leave the worker threads
to everyone else, stay bounded by max_log_followers, and never hold up a stop."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, ServerProcess
from pkgfactory import make_synthetic_package
from vieter_lite.buildlogs import READ_MAX, LogChange, sendable, task_ranges, utf8_boundary
from vieter_lite.errors import Invalid
from vieter_lite.logs import tail_start
from vieter_lite.web.v2 import sse

KEY = {"X-Api-Key": API_KEY}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
WAIT = 20.0  # generous: a loaded machine is slow, a missing event is missing for good


# -- pure parts ---------------------------------------------------------------------------

@pytest.mark.parametrize("data,cut", [
    (b"", 0), (b"abc", 3), (b"caf\xc3\xa9", 5), (b"caf\xc3", 3), (b"\xe2\x82", 0),
    (b"x\xe2\x82\xac", 4), (b"x\xf0\x9f\x98", 1), (b"x\xf0\x9f\x98\x80", 5),
    (b"bad \xff", 5), (b"bad \x80\x80\x80\x80", 8)])
def test_utf8_boundary_holds_back_only_a_character_cut_off_at_the_end(data, cut):
    assert utf8_boundary(data) == cut


@pytest.mark.parametrize("data,final,flush,cut", [
    (b"one\ntwo\nthr", False, False, 8),      # whole lines at once
    (b"partial", False, False, 0),            # a last line waits for its newline...
    (b"partial", False, True, 7),             # ...until it has waited long enough
    (b"caf\xc3", False, True, 3),             # but never splits a character
    (b"caf\xc3", True, False, 4),             # the end of a DONE log goes out as it is
    (b"x" * READ_MAX, False, False, READ_MAX),  # a line longer than a read goes in pieces
])
def test_sendable(data, final, flush, cut):
    assert sendable(data, final, flush) == cut


@pytest.mark.parametrize("starts,size,expected", [
    ({"setup": None, "source": None, "build": None, "publish": None}, 10,
     {"setup": (0, 0), "source": (0, 0), "build": (0, 0), "publish": (0, 0)}),
    ({"setup": 0, "source": 4, "build": 9, "publish": None}, 12,
     {"setup": (0, 4), "source": (4, 9), "build": (9, 12), "publish": (0, 0)}),
    # what came before the first task began is that task's (an image being prepared)
    ({"setup": 5, "source": 7, "build": None, "publish": None}, 9,
     {"setup": (0, 7), "source": (7, 9), "build": (0, 0), "publish": (0, 0)}),
    # offsets past the end (a log cut since) are the end
    ({"setup": 0, "source": 50, "build": None, "publish": None}, 9,
     {"setup": (0, 9), "source": (9, 9), "build": (0, 0), "publish": (0, 0)}),
])
def test_task_ranges(starts, size, expected):
    assert task_ranges(starts, size) == expected


@pytest.mark.parametrize("text,lines,kept", [
    (b"a\nb\nc\n", 1, b"c\n"), (b"a\nb\nc\n", 2, b"b\nc\n"), (b"a\nb\nc\n", 5, b"a\nb\nc\n"),
    (b"a\nb", 1, b"b"), (b"a\nb", 0, b""), (b"", 3, b""), (b"\n\n\n", 2, b"\n\n"),
    (b"x" * 70000 + b"\n" + b"y" * 70000, 1, b"y" * 70000)])
def test_tail_start(text, lines, kept):
    assert text[tail_start(lambda s, n: text[s:s + n], len(text), lines):] == kept


@pytest.mark.parametrize("data,expected", [
    (b"one\n", "data: one\ndata: \nid: 9\n\n"),
    (b"no newline", "data: no newline\nid: 9\n\n"),
    (b"a\r\nb\rc\n", "data: a\ndata: b\ndata: c\ndata: \nid: 9\n\n"),
    (b"bad \xff\n", "data: bad \ufffd\ndata: \nid: 9\n\n"),
])
def test_an_event_has_a_data_field_per_line_and_the_offset_as_id(data, expected):
    assert sse.event(data, 9).decode() == expected


def parse_events(raw: str) -> list[dict[str, str]]:
    """What an EventSource makes of a stream (the WHATWG parsing rules)."""
    events, fields, data = [], {}, []
    for line in re.split("\r\n|\r|\n", raw):
        if line == "":
            if data:
                events.append({**fields, "data": "\n".join(data)})
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    return events


def test_a_client_joins_the_data_fields_back_into_the_text():
    text = b"line one\n\nline  three \ntail"
    events = parse_events(sse.event(text[:10], 10).decode() + sse.event(text[10:], 28).decode())
    assert "".join(e["data"] for e in events) == text.decode()
    assert [e["id"] for e in events] == ["10", "28"]


@pytest.mark.parametrize("fields,field", [
    ({"nope": 1}, "nope"), ({"append": 1}, "append"), ({"logs": ["x"]}, "logs"),
    ({"lines": "3"}, "lines"), ({"lines": -1}, "lines"), ({"lines": True}, "lines"),
    ({"status": "OPEN"}, "status"), ({"status": 1}, "status"),
    ({"append": "a", "logs": "b"}, "logs")])
def test_a_change_names_the_field_it_cannot_take(fields, field):
    with pytest.raises(Invalid) as caught:
        LogChange.of(fields)
    assert caught.value.field == field


def test_null_is_a_field_left_out():
    assert LogChange.of({"append": None, "lines": 2}) == LogChange(lines=2)


# -- in-process: the lifecycle ------------------------------------------------------------

def ok(resp) -> Any:
    assert resp.status_int in (200, 201), (resp.status, resp.body)
    body = json.loads(resp.body)
    return body.get("data", body) if isinstance(body, dict) and "message" in body else body


def cf_error(resp, status: int, title: str) -> str:
    assert resp.status_int == status, (resp.status, resp.body)
    assert resp.content_type == "application/json"
    (error,) = resp.json["errors"]
    assert error["title"] == title
    return str(error["detail"])


def claim(webapp, arch: str = "x86_64") -> dict:
    target = ok(webapp.post(f"/api/v1/targets?kind=git&url=https://example.org/p.git&repo=bur"
                            f"&arch={arch}", headers=KEY))
    build_id = ok(webapp.post(f"/api/v1/jobs/queue?target={target}&arch={arch}", headers=KEY))
    (job,) = ok(webapp.get(f"/api/v1/jobs/poll?arch={arch}&max=1&jobs=v2", headers=KEY))
    assert job["build_id"] == build_id
    return dict(job)


def agent_append(webapp, job: dict, data: bytes, status: int = 200):
    return webapp.post(f"/api/v1/builds/{job['build_id']}/log", data,
                       headers={"X-Api-Key": job["token"]}, status=status)


def task(webapp, job: dict, name: str, status: str) -> None:
    webapp.patch(f"/api/v1/builds/{job['build_id']}/tasks/{name}?status={status}",
                 headers={"X-Api-Key": job["token"]})


def finish(webapp, job: dict, code: int = 0) -> None:
    webapp.post(f"/api/v1/builds/{job['build_id']}/finish?exitCode={code}",
                headers={"X-Api-Key": job["token"]})


def patch(webapp, build_id: int, body: Any, headers: dict | None = None, status: int = 200):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return webapp.patch(f"/api/v2/builds/{build_id}/log", raw,
                        headers={**(headers or KEY), "Content-Type": "application/json"},
                        status=status)


def get_log(webapp, build_id: int, query: str = "") -> dict:
    return dict(webapp.get(f"/api/v2/builds/{build_id}/log{query}", headers=KEY).json)


def test_a_log_is_new_while_its_build_runs_and_done_once_it_ended(webapp):
    job = claim(webapp)
    build_id = job["build_id"]
    first = get_log(webapp, build_id)
    assert first["status"] == "NEW" and first["logs"] == "" and first["lines"] == 0
    assert UUID.fullmatch(first["id"]) and first["build_id"] == build_id
    assert RFC3339.fullmatch(first["created_at"]) and RFC3339.fullmatch(first["updated_at"])
    agent_append(webapp, job, b"one\ntwo\nthree")
    log = get_log(webapp, build_id)
    assert (log["logs"], log["lines"], log["status"], log["id"]) == \
        ("one\ntwo\nthree", 3, "NEW", first["id"])
    finish(webapp, job)
    done = get_log(webapp, build_id)
    assert (done["status"], done["id"], done["lines"]) == ("DONE", first["id"], 3)


def test_offset_gives_the_rest_and_lines_count_the_whole_log(webapp):
    job = claim(webapp)
    agent_append(webapp, job, b"abc\ndef\n")
    log = get_log(webapp, job["build_id"], "?offset=4")
    assert (log["logs"], log["lines"], log["offset"], log["next_offset"]) == ("def\n", 2, 4, 8)
    assert get_log(webapp, job["build_id"], "?offset=99")["logs"] == ""


def test_a_queued_build_has_a_new_empty_log(webapp):
    target = ok(webapp.post("/api/v1/targets?kind=git&url=https://e.org/q.git&repo=bur"
                            "&arch=x86_64", headers=KEY))
    build_id = ok(webapp.post(f"/api/v1/jobs/queue?target={target}&arch=x86_64", headers=KEY))
    log = get_log(webapp, build_id)
    assert (log["status"], log["logs"], log["lines"]) == ("NEW", "", 0)
    resp = webapp.get(f"/api/v2/builds/{build_id}/log/content", headers=KEY)
    assert resp.body == b"" and resp.content_type == "text/plain"


def test_patch_appends_replaces_keeps_lines_and_closes(webapp):
    build_id = claim(webapp)["build_id"]
    updated = patch(webapp, build_id, {"append": "a\nb\n"}).json["updated_at"]
    assert RFC3339.fullmatch(updated)
    patch(webapp, build_id, {"append": "c\nd\n"})
    assert get_log(webapp, build_id)["logs"] == "a\nb\nc\nd\n"
    patch(webapp, build_id, {"lines": 2})
    assert get_log(webapp, build_id)["logs"] == "c\nd\n"
    patch(webapp, build_id, {"logs": "new text\nwhole"})
    log = get_log(webapp, build_id)
    assert (log["logs"], log["lines"], log["status"]) == ("new text\nwhole", 2, "NEW")
    patch(webapp, build_id, {"status": "DONE"})
    assert get_log(webapp, build_id)["status"] == "DONE"


def test_nothing_is_appended_to_a_done_log_not_even_by_the_agent(webapp):
    job = claim(webapp)
    patch(webapp, job["build_id"], {"append": "kept\n", "status": "DONE"})
    detail = cf_error(patch(webapp, job["build_id"], {"append": "late\n"}, status=409),
                      409, "CF-Conflict")
    assert "DONE" in detail
    assert agent_append(webapp, job, b"late too\n", status=409).status_int == 409
    cf_error(patch(webapp, job["build_id"], {"status": "NEW"}, status=409), 409, "CF-Conflict")
    assert get_log(webapp, job["build_id"])["logs"] == "kept\n"


@pytest.mark.parametrize("body,status,title,named", [
    (b"not json", 400, "CF-InvalidRequest", ""),
    (b"[1, 2]", 400, "CF-InvalidRequest", ""),
    ({"colour": "red"}, 422, "CF-UnprocessableEntity", "colour"),
    ({"append": 5}, 422, "CF-UnprocessableEntity", "append"),
    ({"lines": "ten"}, 422, "CF-UnprocessableEntity", "lines"),
    ({"status": "FINISHED"}, 422, "CF-UnprocessableEntity", "status"),
])
def test_a_bad_patch_changes_nothing(webapp, body, status, title, named):
    build_id = claim(webapp)["build_id"]
    patch(webapp, build_id, {"append": "before\n"})
    detail = cf_error(patch(webapp, build_id, body, status=status), status, title)
    assert detail.startswith(named)
    assert get_log(webapp, build_id)["logs"] == "before\n"


def test_the_builds_own_token_patches_its_log_and_no_other(webapp):
    job, other = claim(webapp, "x86_64"), claim(webapp, "aarch64")
    patch(webapp, job["build_id"], {"append": "from the agent\n"},
          headers={"Authorization": f"Bearer {job['token']}"})
    assert get_log(webapp, job["build_id"])["logs"] == "from the agent\n"
    cf_error(patch(webapp, other["build_id"], {"append": "x"},
                   headers={"X-Api-Key": job["token"]}, status=403), 403, "CF-NotAuthorized")
    # nowhere else: a build token reads no log and deletes none
    resp = webapp.get(f"/api/v2/builds/{job['build_id']}/log",
                      headers={"X-Api-Key": job["token"]}, status=401)
    cf_error(resp, 401, "CF-NotAuthenticated")
    finish(webapp, job)
    cf_error(patch(webapp, job["build_id"], {"append": "x"},
                   headers={"X-Api-Key": job["token"]}, status=401), 401, "CF-NotAuthenticated")


def test_a_token_needs_builds_write_to_patch_and_builds_read_to_read(webapp):
    build_id = claim(webapp)["build_id"]
    reader = webapp.post("/api/v2/tokens", json.dumps({"name": "r", "scopes": ["builds:read"]}),
                         headers={**KEY, "Content-Type": "application/json"}).json["secret"]
    headers = {"Authorization": f"Bearer {reader}"}
    assert webapp.get(f"/api/v2/builds/{build_id}/log", headers=headers).json["status"] == "NEW"
    cf_error(patch(webapp, build_id, {"append": "x"}, headers=headers, status=403), 403,
             "CF-NotAuthorized")


def test_delete_empties_and_closes_the_log_of_a_finished_build_only(webapp):
    job = claim(webapp)
    build_id = job["build_id"]
    agent_append(webapp, job, b"secret output\n")
    detail = cf_error(webapp.delete(f"/api/v2/builds/{build_id}/log", headers=KEY, status=409),
                      409, "CF-Conflict")
    assert "running" in detail
    finish(webapp, job)
    body = webapp.delete(f"/api/v2/builds/{build_id}/log", headers=KEY).json
    assert body["deleted"] is True and RFC3339.fullmatch(body["deleted_at"])
    log = get_log(webapp, build_id)
    assert (log["logs"], log["lines"], log["status"]) == ("", 0, "DONE")
    assert webapp.get(f"/api/v2/builds/{build_id}/log/content", headers=KEY).body == b""
    build = ok(webapp.get(f"/api/v1/builds/{build_id}", headers=KEY))
    assert build["status"] == "success"


def test_each_task_has_its_part_of_the_log(webapp):
    job = claim(webapp)
    build_id = job["build_id"]
    parts = {"setup": b"pulling the image\n", "source": b"+ git clone\n",
             "build": b"+ makepkg\nbuilt \xff\n"}
    previous = None
    for name, text in parts.items():
        if previous:
            task(webapp, job, previous, "success")
        task(webapp, job, name, "running")
        agent_append(webapp, job, text)
        previous = name
    finish(webapp, job)
    for name, text in parts.items():
        resp = webapp.get(f"/api/v2/builds/{build_id}/tasks/{name}/log", headers=KEY)
        assert resp.body == text and resp.content_type == "text/plain"
    assert webapp.get(f"/api/v2/builds/{build_id}/tasks/publish/log", headers=KEY).body == b""
    cf_error(webapp.get(f"/api/v2/builds/{build_id}/tasks/deploy/log", headers=KEY,
                        status=404), 404, "CF-ResourceNotFound")


def test_keeping_the_last_lines_moves_the_task_parts_with_the_text(webapp):
    job = claim(webapp)
    task(webapp, job, "setup", "running")
    agent_append(webapp, job, b"s1\ns2\n")
    task(webapp, job, "source", "running")
    agent_append(webapp, job, b"c1\nc2\n")
    patch(webapp, job["build_id"], {"lines": 3})
    base = f"/api/v2/builds/{job['build_id']}/tasks"
    assert webapp.get(f"{base}/setup/log", headers=KEY).body == b"s2\n"
    assert webapp.get(f"{base}/source/log", headers=KEY).body == b"c1\nc2\n"


def test_content_is_text_with_ranges_and_not_modified(webapp):
    job = claim(webapp)
    agent_append(webapp, job, b"0123456789\n")
    path = f"/api/v2/builds/{job['build_id']}/log/content"
    whole = webapp.get(path, headers=KEY)
    assert whole.body == b"0123456789\n" and whole.content_type == "text/plain"
    part = webapp.get(path, headers={**KEY, "Range": "bytes=3-5"}, status=206)
    assert part.body == b"345"
    webapp.get(path, headers={**KEY, "If-Modified-Since": whole.headers["Last-Modified"]},
               status=304)


@pytest.mark.parametrize("path,status,title", [
    ("/api/v2/builds/999/log", 404, "CF-ResourceNotFound"),
    ("/api/v2/builds/999/log/content", 404, "CF-ResourceNotFound"),
    ("/api/v2/builds/999/log/content?follow=true", 404, "CF-ResourceNotFound"),
    ("/api/v2/builds/999/tasks/setup/log", 404, "CF-ResourceNotFound"),
    ("/api/v2/builds/x1/log", 400, "CF-InvalidRequest"),
    ("/api/v2/builds/1/log?offset=-1", 400, "CF-BadQueryParameter"),
    ("/api/v2/builds/1/log?offst=1", 400, "CF-BadQueryParameter"),
    ("/api/v2/builds/1/log/content?follow=maybe", 400, "CF-BadQueryParameter"),
])
def test_bad_reads_answer_in_the_cf_envelope(webapp, path, status, title):
    claim(webapp)
    cf_error(webapp.get(path, headers=KEY, status=status), status, title)


def test_followers_beyond_the_limit_are_refused_in_process(webapp, services):
    services.build_logs.followers.limit = 0
    build_id = claim(webapp)["build_id"]
    resp = webapp.get(f"/api/v2/builds/{build_id}/log/content",
                      headers={**KEY, "Accept": "text/event-stream"}, status=503)
    assert "max_log_followers" in cf_error(resp, 503, "CF-ServiceUnavailable")
    assert int(resp.headers["Retry-After"]) > 0


def test_a_done_log_streams_to_its_end_and_done_in_process(webapp):
    job = claim(webapp)
    agent_append(webapp, job, b"first\nsecond\n")
    finish(webapp, job)
    path = f"/api/v2/builds/{job['build_id']}/log/content?follow=true"
    resp = webapp.get(path, headers=KEY)
    assert resp.content_type == "text/event-stream"
    events = parse_events(resp.body.decode())
    assert events == [{"data": "first\nsecond\n", "id": "13"},
                      {"event": "done", "data": "", "id": "13"}]
    resumed = parse_events(webapp.get(path, headers={**KEY, "Last-Event-ID": "6"}).body.decode())
    assert resumed == [{"data": "second\n", "id": "13"}, {"event": "done", "data": "", "id": "13"}]


# -- against a real server: following ------------------------------------------------------

class Follower:
    """An EventSource over a socket: events as they come, in a thread of its own."""

    def __init__(self, proc: ServerProcess, build_id: int, headers: dict | None = None,
                 query: str = ""):
        self.conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=WAIT)
        self.conn.connect()
        self.sock = self.conn.sock  # the response takes it over (the stream ends the connection)
        self.conn.request("GET", f"/api/v2/builds/{build_id}/log/content{query}",
                          headers={**KEY, "Accept": "text/event-stream", **(headers or {})})
        self.resp = self.conn.getresponse()
        self.events: list[dict[str, str]] = []
        self.ended = threading.Event()
        self._new = threading.Condition()
        self.raw = ""
        if self.resp.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.ended.set()

    def _read(self) -> None:
        pending = ""
        try:
            while line := self.resp.readline():
                pending += line.decode()
                if pending.endswith("\n\n"):
                    with self._new:
                        self.raw += pending
                        self.events += parse_events(pending)
                        self._new.notify_all()
                    pending = ""
        except OSError:
            pass
        finally:
            self.ended.set()
            with self._new:
                self._new.notify_all()

    def wait_for(self, count: int) -> list[dict[str, str]]:
        with self._new:
            assert self._new.wait_for(lambda: len(self.events) >= count or self.ended.is_set(),
                                      WAIT), (count, self.events)
            assert len(self.events) >= count, (count, self.events)
            return self.events[:count]

    def text(self) -> str:
        return "".join(e["data"] for e in self.events if "event" not in e)

    def close(self) -> None:
        """Hang up (the reading thread holds the socket too: shut it down)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def call(proc: ServerProcess, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> Any:
    req = urllib.request.Request(proc.url + path, data=body, method=method,
                                 headers={**KEY, **(headers or {})})
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        payload = json.loads(resp.read())
    return payload.get("data", payload) if "message" in payload else payload


def claim_real(proc: ServerProcess) -> dict:
    target = call(proc, "POST", "/api/v1/targets?kind=git&url=https://e.org/p.git&repo=bur"
                                "&arch=x86_64&schedule=0+3+1+1")
    build_id = call(proc, "POST", f"/api/v1/jobs/queue?target={target}&arch=x86_64")
    (job,) = call(proc, "GET", "/api/v1/jobs/poll?arch=x86_64&max=1&jobs=v2")
    assert job["build_id"] == build_id
    return dict(job)


def append_real(proc: ServerProcess, job: dict, data: bytes) -> None:
    call(proc, "POST", f"/api/v1/builds/{job['build_id']}/log", data,
         {"X-Api-Key": job["token"]})


def finish_real(proc: ServerProcess, job: dict) -> None:
    call(proc, "POST", f"/api/v1/builds/{job['build_id']}/finish?exitCode=0", b"",
         {"X-Api-Key": job["token"]})


def start(tmp_path: Path, **settings: str) -> ServerProcess:
    extra = {f"VIETER_{k.upper()}": v for k, v in settings.items()}
    return ServerProcess(tmp_path / "data", env_extra=extra).start()


@pytest.fixture
def real(tmp_path: Path):
    proc = start(tmp_path)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        assert proc.stop() == 0


def test_a_follower_gets_each_chunk_as_it_is_appended_and_done_at_the_end(real):
    job = claim_real(real)
    follower = Follower(real, job["build_id"])
    try:
        append_real(real, job, b"one\n")
        assert follower.wait_for(1) == [{"data": "one\n", "id": "4"}]
        append_real(real, job, b"two\nthr")       # the partial line follows on its own
        assert follower.wait_for(3)[1:] == [{"data": "two\n", "id": "8"},
                                            {"data": "thr", "id": "11"}]
        append_real(real, job, b"ee \xff\xfe\n")  # not UTF-8: U+FFFD; ids count raw bytes
        assert follower.wait_for(4)[3] == {"data": "ee \ufffd\ufffd\n", "id": "17"}
        append_real(real, job, b"caf\xc3")        # a character cut in two waits for its end
        append_real(real, job, b"\xa9 ok\n")
        end = str(len(b"one\ntwo\nthree \xff\xfe\ncaf\xc3\xa9 ok\n"))
        assert follower.wait_for(5)[4] == {"data": "caf\u00e9 ok\n", "id": end}
        finish_real(real, job)
        assert follower.wait_for(6)[5] == {"event": "done", "data": "", "id": end}
        assert follower.ended.wait(WAIT)
    finally:
        follower.close()


def test_resuming_with_last_event_id_gets_exactly_the_rest(real):
    job = claim_real(real)
    first = Follower(real, job["build_id"])
    try:
        append_real(real, job, b"alpha\n")
        append_real(real, job, b"beta\n")
        seen = first.wait_for(1)
    finally:
        first.close()
    last_id = seen[-1]["id"]
    append_real(real, job, b"gamma\n")
    append_real(real, job, b"delta")
    finish_real(real, job)
    again = Follower(real, job["build_id"], {"Last-Event-ID": last_id})
    try:
        again.wait_for(1)
        assert again.ended.wait(WAIT)
        whole = b"alpha\nbeta\ngamma\ndelta"
        assert "".join(e["data"] for e in seen) + again.text() == whole.decode()
        assert again.events[-1] == {"event": "done", "data": "", "id": str(len(whole))}
    finally:
        again.close()
    by_query = Follower(real, job["build_id"], query=f"?follow=true&offset={last_id}")
    try:
        assert by_query.ended.wait(WAIT) and by_query.text() == again.text()
    finally:
        by_query.close()


def publish_package(proc: ServerProcess, tmp_path: Path) -> Any:
    info = {"pkgname": "hello", "pkgbase": "hello", "pkgver": "1.0-1", "arch": "x86_64",
            "pkgdesc": "follower test", "builddate": "1700000000", "size": "1",
            "packager": "Tests <t@example.org>"}
    path = make_synthetic_package(tmp_path / "hello.pkg.tar.zst", info,
                                  {"usr/share/hello/README": b"hi\n"})
    return call(proc, "POST", "/bur/publish", path.read_bytes())


def test_twenty_followers_leave_the_workers_to_everyone_else(tmp_path):
    proc = start(tmp_path, threads="2")  # without lent threads, 2 followers would starve all
    followers: list[Follower] = []
    try:
        job = claim_real(proc)
        followers = [Follower(proc, job["build_id"]) for _ in range(20)]
        assert all(f.resp.status == 200 for f in followers)
        with urllib.request.urlopen(proc.url + "/health", timeout=WAIT) as resp:
            assert resp.status == 200
        assert publish_package(proc, tmp_path)["name"] == "hello"
        append_real(proc, job, b"to all\n")
        finish_real(proc, job)
        for follower in followers:
            assert follower.wait_for(2) == [{"data": "to all\n", "id": "7"},
                                            {"event": "done", "data": "", "id": "7"}]
    finally:
        for follower in followers:
            follower.close()
        assert proc.stop() == 0


def test_followers_beyond_max_log_followers_get_a_503(tmp_path):
    proc = start(tmp_path, max_log_followers="2")
    followers: list[Follower] = []
    try:
        job = claim_real(proc)
        followers = [Follower(proc, job["build_id"]) for _ in range(3)]
        assert [f.resp.status for f in followers] == [200, 200, 503]
        refused = followers[2]
        assert int(refused.resp.getheader("Retry-After") or 0) > 0
        (error,) = json.loads(refused.resp.read())["errors"]
        assert (error["code"], error["title"]) == (10015, "CF-ServiceUnavailable")
        # the plain text is no follower: it is served as ever
        with urllib.request.urlopen(urllib.request.Request(
                f"{proc.url}/api/v2/builds/{job['build_id']}/log/content", headers=KEY),
                timeout=WAIT) as resp:
            assert resp.status == 200
    finally:
        for follower in followers:
            follower.close()
        assert proc.stop() == 0


def test_a_stop_with_followers_connected_ends_them_and_exits_0(tmp_path):
    proc = start(tmp_path)
    job = claim_real(proc)
    followers = [Follower(proc, job["build_id"]) for _ in range(3)]
    try:
        append_real(proc, job, b"running\n")
        for follower in followers:
            follower.wait_for(1)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        # well within the 5 s the worker pool would wait for requests that never end
        assert proc.proc.wait(timeout=WAIT) == 0
        for follower in followers:
            assert follower.ended.wait(WAIT)
            assert not any(e.get("event") == "done" for e in follower.events)  # resumable
        assert "thread(s) still running" not in proc.log() and "ERROR" not in proc.log()
    finally:
        for follower in followers:
            follower.close()


def test_a_client_that_goes_away_gives_its_place_back(tmp_path):
    proc = start(tmp_path, max_log_followers="1")
    try:
        job = claim_real(proc)
        first = Follower(proc, job["build_id"])
        assert first.resp.status == 200
        first.close()
        append_real(proc, job, b"noticed on the next write\n")
        again: Follower | None = None
        for _ in range(100):
            again = Follower(proc, job["build_id"])
            if again.resp.status == 200:
                break
            again.close()
            threading.Event().wait(0.2)
        assert again is not None and again.resp.status == 200
        again.close()
    finally:
        assert proc.stop() == 0
