"""HTTP client for a vieter-lite (or Vieter) server's API: used by the CLI and the agent."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from vieter_lite import eventstream
from vieter_lite.errors import VieterError
from vieter_lite.eventstream import Event
from vieter_lite.lists import MAX_PER_PAGE

DEFAULT_TIMEOUT = 30.0
# following a log: the server sends something at least every 15 s, so a minute of silence
# is a dead connection; a dropped one is tried again after the server's `retry` (capped)
FOLLOW_TIMEOUT = 60.0
FOLLOW_RETRY = 3.0
MAX_FOLLOW_RETRY = 30.0
FOLLOW_ATTEMPTS = 20
MAX_EVENT_LINE = 1 << 20  # bytes of one line of an event stream (the server sends <= 64 KiB)
POLL_WAIT_HEADER = "X-Vieter-Poll-Wait"  # a poll's answer: the server waited for a build
Params = Mapping[str, Any]


class ClientError(VieterError):
    """A request that did not succeed, as one line for a person.

    `status` is the HTTP status, or 0 when no HTTP answer came (unreachable server,
    timeout, an answer that is not the API's JSON); `retry_after` the seconds a 503 asked
    to wait (None when it did not say)."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _reason(exc: BaseException) -> str:
    """'Connection refused', 'timed out', ... from what urllib raises."""
    while isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return exc.strerror or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, http.client.HTTPException):
        return f"a broken HTTP answer ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


def _query(params: Params | None) -> str:
    """Query string of the values that are not None (bools as true/false)."""
    if not params:
        return ""
    pairs = [(k, ("true" if v else "false") if isinstance(v, bool) else str(v))
             for k, v in params.items() if v is not None]
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def v2_error_detail(errors: list[Any]) -> str:
    """The details of an /api/v2 {"errors": [{code, title, detail}]} body, '; '-joined."""
    return "; ".join(str(e.get("detail") or e.get("title") or "") for e in errors
                     if isinstance(e, dict))


def _comma(values: Any) -> str | None:
    """A comma list parameter from a string, a number or several; None for none."""
    if values is None or isinstance(values, (str, int)):
        return None if values in (None, "") else str(values)
    return ",".join(str(v) for v in values) or None


def _segment(value: Any) -> str:
    return urllib.parse.quote(str(value), safe="")


class Client:
    """One server: its address and key. Methods follow the API routes; each returns the
    envelope's `data` (or bytes for file routes) and raises ClientError otherwise."""

    def __init__(self, address: str, api_key: str = "", timeout: float = DEFAULT_TIMEOUT):
        self.address = address.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    # -- plumbing ---------------------------------------------------------------------

    def request(self, method: str, path: str, params: Params | None = None,
                body: bytes | BinaryIO | None = None, length: int | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Send one request; (status, lower-cased headers, body) for a 2xx answer or 416.
        Every other answer and every transport failure is a ClientError."""
        resp = self.open(method, path, params, body, length, headers)
        try:
            with resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot reach {self.address}: {_reason(exc)}") from None

    def open(self, method: str, path: str, params: Params | None = None,
             body: bytes | BinaryIO | None = None, length: int | None = None,
             headers: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        """Send one request; the open answer (to read and close) when it is a 2xx or a 416.
        Every other answer and every transport failure is a ClientError."""
        try:
            scheme = urllib.parse.urlsplit(self.address).scheme
            req = urllib.request.Request(self.address + path + _query(params), method=method,
                                         data=body)
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise ClientError(f"invalid server address {self.address!r}: "
                              "expected http://HOST[:PORT]")
        if self.api_key:
            req.add_header("X-Api-Key", self.api_key)
        if body is not None:
            req.add_header("Content-Type", "application/octet-stream")
            req.add_header("Content-Length", str(len(body) if isinstance(body, bytes) else length))
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416:
                return exc  # reads like an answer: status, headers, read()
            try:
                data = exc.read()
            except OSError:
                data = b""
            finally:
                exc.close()
            error = self._http_error(exc.code, exc.reason, data)
            retry_after = str(exc.headers.get("Retry-After") or "") if exc.headers else ""
            if retry_after.isascii() and retry_after.isdigit():
                error.retry_after = float(retry_after)
            raise error from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot reach {self.address}: {_reason(exc)}") from None
        except UnicodeError:
            raise ClientError("the api_key or a value cannot be sent in an HTTP header") from None
        except ValueError:  # urllib's "unknown url type", http.client.InvalidURL
            raise ClientError(f"invalid server address {self.address!r}") from None

    def _http_error(self, status: int, reason: str, body: bytes) -> ClientError:
        if status == 401:
            return ClientError("unauthorized: check api_key", status)
        message = ""
        try:
            decoded = json.loads(body)
            if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
                message = decoded["message"]
            elif isinstance(decoded, dict) and isinstance(decoded.get("errors"), list):
                message = v2_error_detail(decoded["errors"])
        except ValueError:
            message = body.decode("utf-8", "replace").strip() if len(body) < 200 else ""
        message = " ".join(message.split())  # one line, whatever the server sent
        if status >= 500:
            return ClientError(f"server error {status} ({reason})"
                               + (f": {message}" if message else ""), status)
        return ClientError(message or f"{status} {reason}", status)

    def call(self, method: str, path: str, params: Params | None = None,
             body: bytes | BinaryIO | None = None, length: int | None = None) -> Any:
        """A JSON route: the `data` of the {message, data} envelope."""
        _, _, raw = self.request(method, path, params, body, length)
        if not raw:
            return None
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise ClientError(f"{self.address} did not answer with JSON: is it a "
                              "vieter-lite server?") from None
        if not isinstance(decoded, dict) or "data" not in decoded:
            raise ClientError(f"{self.address} answered JSON without a 'data' field")
        return decoded["data"]

    # -- server -----------------------------------------------------------------------

    def _message(self, raw: bytes) -> str:
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            return ""
        return str(decoded.get("message", "")) if isinstance(decoded, dict) else ""

    def health(self) -> str:
        """The server's health message ("Healthy.")."""
        return self._message(self.request("GET", "/health")[2])

    # -- targets ----------------------------------------------------------------------

    def list_targets(self, limit: int | None = None, offset: int | None = None,
                     repo: str | None = None, query: str | None = None,
                     arch: str | None = None) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/targets", {"limit": limit, "offset": offset,
                                                     "repo": repo, "query": query,
                                                     "arch": arch})

    def get_target(self, target_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/targets/{_segment(target_id)}")

    def add_target(self, url: str, repo: str, kind: str = "git", branch: str | None = None,
                   path: str | None = None, arch: str | Iterable[str] | None = None,
                   schedule: str | None = None) -> int:
        if arch is not None and not isinstance(arch, str):
            arch = ",".join(arch)
        return int(self.call("POST", "/api/v1/targets", {
            "kind": kind, "url": url, "repo": repo, "branch": branch, "path": path,
            "arch": arch, "schedule": schedule}))

    def edit_target(self, target_id: int, **fields: str | None) -> dict[str, Any]:
        """PATCH the fields given (None: left alone; "": cleared)."""
        return self.call("PATCH", f"/api/v1/targets/{_segment(target_id)}", fields)

    def remove_target(self, target_id: int) -> None:
        self.call("DELETE", f"/api/v1/targets/{_segment(target_id)}")

    def target_schedule(self, target_id: int) -> dict[str, Any]:
        """{schedule (the effective one), global, archs: [{arch, next_run}]}."""
        return self.call("GET", f"/api/v1/targets/{_segment(target_id)}/schedule")

    # -- build logs -------------------------------------------------------------------

    def list_logs(self, limit: int | None = None, offset: int | None = None,
                  target: int | None = None, before: int | None = None,
                  after: int | None = None, arch: str | None = None,
                  exit_codes: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
        if exit_codes is not None and not isinstance(exit_codes, str):
            exit_codes = ",".join(exit_codes)
        return self.call("GET", "/api/v1/logs", {
            "limit": limit, "offset": offset, "target": target, "before": before,
            "after": after, "arch": arch, "exit_codes": exit_codes or None})

    def get_log(self, build_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/logs/{_segment(build_id)}")

    def log_content(self, build_id: int, start: int = 0) -> tuple[bytes, int | None]:
        """The log from byte `start` on, and the log's whole size when the server said
        (b"" when there is nothing past `start`)."""
        headers = {"Range": f"bytes={start}-"} if start else None
        status, head, data = self.request("GET", f"/api/v1/logs/{_segment(build_id)}/content",
                                          headers=headers)
        total: int | None = None
        content_range = head.get("content-range", "")
        if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
            total = int(content_range.rsplit("/", 1)[1])
        if status == 416:
            return b"", total
        if status == 200:
            total = len(data)
            data = data[start:]  # a server that ignored the Range header
        return data, total

    def add_log(self, target: int, arch: str, start_time: int, end_time: int,
                exit_code: int, content: bytes) -> int:
        """Record a finished build with its log (what a Vieter agent sends)."""
        return int(self.call("POST", "/api/v1/logs", {
            "target": target, "arch": arch, "startTime": start_time, "endTime": end_time,
            "exitCode": exit_code}, body=content))

    def remove_log(self, build_id: int) -> None:
        self.call("DELETE", f"/api/v1/logs/{_segment(build_id)}")

    # -- jobs and builds --------------------------------------------------------------

    def queue_build(self, target: int, arch: str, force: bool = False,
                    timeout: int | None = None) -> int:
        """Queue a build now; its id. `force` is sent only when true; `timeout` (seconds)
        defaults to the server's default_build_timeout."""
        return int(self.call("POST", "/api/v1/jobs/queue",
                             {"target": target, "arch": arch, "force": True if force else None,
                              "timeout": timeout}))

    def poll_jobs(self, arch: str, max_jobs: int, runner: str | None = None,
                  build: int | None = None) -> list[dict[str, Any]]:
        """Claim queued builds (only build `build`, when given); jobs=v2 says this agent
        runs every kind of job (manifests, review)."""
        return self.call("GET", "/api/v1/jobs/poll", {"arch": arch, "max": max_jobs,
                                                       "runner": runner, "build": build,
                                                       "jobs": "v2"})

    def poll_waiting(self, arch: str, max_jobs: int, agent: str | None = None,
                     wait: int = 0) -> tuple[list[dict[str, Any]], bool]:
        """Claim queued builds as a registered agent (`agent`: its name) and, with `wait`,
        let the server wait up to that many seconds for one; (the jobs, whether the server
        waited: False for a server that does not wait, so the agent sleeps between polls)."""
        params = {"arch": arch, "max": max_jobs, "agent": agent, "jobs": "v2",
                  "wait": wait or None}
        resp = self.open("GET", "/api/v1/jobs/poll", params, timeout=self.timeout + wait)
        try:
            with resp:
                waited = bool(resp.headers.get(POLL_WAIT_HEADER)) if wait else False
                raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ClientError(f"cannot reach {self.address}: {_reason(exc)}") from None
        try:
            jobs = json.loads(raw)["data"]
        except (ValueError, TypeError, KeyError):
            raise ClientError(f"{self.address} answered a poll without a JSON 'data' "
                              "field") from None
        if not isinstance(jobs, list):
            raise ClientError(f"{self.address} answered a poll without a list of jobs")
        return jobs, waited

    def register_agent(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/v2/agents ({name, archs, labels, version, slots, poll_period}): the
        agent as registered."""
        return self.call_v2("POST", "/api/v2/agents", body=dict(body))

    def list_agents(self) -> list[dict[str, Any]]:
        return self.list_v2("/api/v2/agents")

    def list_builds(self, states: str | Iterable[str] | None = None,
                    target_ids: int | str | Iterable[int] | None = None, limit: int = 0,
                    offset: int = 0) -> list[dict[str, Any]]:
        """/api/v2 builds by id: of these states (any when None), of these targets;
        `limit` of them (0: all) after the first `offset`."""
        return self.list_v2("/api/v2/builds", {"states": _comma(states),
                                               "target_ids": _comma(target_ids),
                                               "order_by": "id"},
                            limit=limit, offset=offset)

    def get_build(self, build_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/builds/{_segment(build_id)}")

    def renew_lease(self, build_id: int) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/builds/{_segment(build_id)}/lease")

    def append_log(self, build_id: int, chunk: bytes) -> int:
        """Append to a running build's log; the log's new size."""
        return int(self.call("POST", f"/api/v1/builds/{_segment(build_id)}/log",
                             body=chunk)["size"])

    def set_task(self, build_id: int, name: str, status: str) -> dict[str, Any]:
        return self.call("PATCH", f"/api/v1/builds/{_segment(build_id)}/tasks/{_segment(name)}",
                         {"status": status})

    def release_build(self, build_id: int) -> dict[str, Any]:
        """Hand a running build back to the queue (the agent is stopping)."""
        return self.call("POST", f"/api/v1/builds/{_segment(build_id)}/release")

    def finish_build(self, build_id: int, exit_code: int, start_time: int | None = None,
                     end_time: int | None = None, timed_out: bool = False) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/builds/{_segment(build_id)}/finish", {
            "exitCode": exit_code, "startTime": start_time, "endTime": end_time,
            "status": "timeout" if timed_out else None})

    # -- repositories -----------------------------------------------------------------

    def list_repos(self) -> list[dict[str, Any]]:
        """/api/v2 repos by name: [{name, archs: [{arch, packages, db_last_modified,
        links}], pacman_conf}]."""
        return self.list_v2("/api/v2/repos", {"order_by": "name"})

    def list_packages(self, repo: str, arch: str) -> list[dict[str, Any]]:
        """/api/v2 packages of one arch-repo by name: [{name, version, arch (the
        package's), filename, size, sha256, published_at, owner, signed, kept_versions,
        hold, links}]."""
        return self.list_v2(f"/api/v2/repos/{_segment(repo)}/{_segment(arch)}/packages",
                            {"order_by": "name"})

    def publish(self, repo: str, package: Path, force: bool = False) -> dict[str, Any]:
        """Upload a package file (streamed); {name, version, archs}."""
        size = package.stat().st_size
        with open(package, "rb") as fh:
            return self.call("POST", f"/{_segment(repo)}/publish",
                             {"force": True if force else None}, body=fh, length=size)

    def rollback(self, repo: str, arch: str, name: str, version: str,
                 hold: bool = False) -> dict[str, Any]:
        """Roll a package back to a kept version (held there with `hold`); the package as
        /api/v2 shows it then: {name, version, kept_versions, hold, versions, ...}."""
        return self.call_v2("POST", f"{self._package_path(repo, arch, name)}/rollback",
                            body={"version": version, "hold_version": hold})

    def release_hold(self, repo: str, arch: str, name: str) -> None:
        """Release a rollback's hold: newer versions of the name are published again."""
        self.call_v2("DELETE", f"{self._package_path(repo, arch, name)}/hold")

    @staticmethod
    def _package_path(repo: str, arch: str, name: str) -> str:
        return f"/api/v2/repos/{_segment(repo)}/{_segment(arch)}/packages/{_segment(name)}"

    def remove_repo(self, repo: str, arch: str | None = None, package: str | None = None) -> str:
        """DELETE a package (all three), an arch-repo (repo, arch) or a whole repo; the
        server's message."""
        if package is not None and arch is None:
            raise ValueError("a package is removed from one arch-repo: give its arch")
        path = "/" + "/".join(_segment(p) for p in (repo, arch, package) if p is not None)
        return self._message(self.request("DELETE", path)[2])

    # -- /api/v2 ----------------------------------------------------------------------

    def call_v2(self, method: str, path: str, params: Params | None = None,
                body: Any = None) -> Any:
        """An /api/v2 route: `body` sent as JSON (when not None); the decoded answer, or
        None for an empty one (204)."""
        data = None if body is None else json.dumps(body).encode()
        headers = None if data is None else {"Content-Type": "application/json"}
        _, _, raw = self.request(method, path, params, data, headers=headers)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(f"{self.address} did not answer with JSON: is it a "
                              "vieter-lite server?") from None

    def list_v2(self, path: str, params: Params | None = None, per_page: int = MAX_PER_PAGE,
                limit: int = 0, offset: int = 0) -> list[dict[str, Any]]:
        """The resources of a Cloud Foundry style list, page after page: every one, or
        `limit` of them (0: no limit) after the first `offset`."""
        if limit:
            per_page = min(per_page, limit)
        page, skip = divmod(offset, per_page)
        page += 1
        found: list[dict[str, Any]] = []
        while True:
            answer = self.call_v2("GET", path, {**(params or {}), "page": page,
                                                "per_page": per_page})
            try:
                resources = answer["resources"]
                pages = int(answer["pagination"]["total_pages"])
            except (TypeError, KeyError, ValueError):
                raise ClientError(f"{self.address} answered {path} without "
                                  "'resources' and 'pagination'") from None
            found += resources[skip:]
            skip = 0
            if limit and len(found) >= limit:
                return found[:limit]
            if page >= pages or not resources:
                return found
            page += 1

    # -- /api/v2 builds ---------------------------------------------------------------

    def get_build_v2(self, build_id: int) -> dict[str, Any]:
        """A build as /api/v2 shows it: status, tasks, note, owner, hold, ..."""
        return self.call_v2("GET", f"/api/v2/builds/{_segment(build_id)}")

    def submit_build(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/v2/builds ({manifest, note, tags, execute, ...}): the new build."""
        return self.call_v2("POST", "/api/v2/builds", body=dict(body))

    def start_build(self, build_id: int) -> dict[str, Any]:
        """A pending build (not executed yet, or held for review) goes to the queue."""
        return self.call_v2("POST", f"/api/v2/builds/{_segment(build_id)}/start")

    def cancel_build(self, build_id: int) -> dict[str, Any]:
        return self.call_v2("POST", f"/api/v2/builds/{_segment(build_id)}/cancel")

    def build_log(self, build_id: int) -> bytes:
        """The whole log as it is now."""
        return self.request("GET", f"/api/v2/builds/{_segment(build_id)}/log/content")[2]

    def follow_log(self, build_id: int, sleep: Callable[[float], object] = time.sleep,
                   attempts: int = FOLLOW_ATTEMPTS) -> Iterator[Event]:
        """A build's log as the server streams it (server-sent events): its chunks, `reset`
        when the log was replaced (it starts again from byte 0), and last `done`. A dropped
        connection (or a 503: too many followers) is resumed from the last event's id
        (Last-Event-ID), so nothing is missed or repeated, after the server's `retry`
        delay (or its Retry-After); `attempts` tries in a row that bring no event give up
        with the last error. Any other HTTP error ends it at once."""
        path = f"/api/v2/builds/{_segment(build_id)}/log/content"
        last_id: str | None = None
        delay, failures = FOLLOW_RETRY, 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                resp = self.open("GET", path, {"follow": True}, headers=headers,
                                 timeout=FOLLOW_TIMEOUT)
            except ClientError as exc:
                if exc.status not in (0, 503):
                    raise
                error = exc
                if exc.retry_after is not None:
                    delay = min(exc.retry_after, MAX_FOLLOW_RETRY)
            else:
                with resp:
                    if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                        raise ClientError(f"{self.address} does not stream build logs (no "
                                          "server-sent events): is it a vieter-lite server "
                                          "with /api/v2?")
                    lines = iter(functools.partial(resp.readline, MAX_EVENT_LINE), b"")
                    try:
                        for event in eventstream.parse(lines):
                            if event.retry is not None:
                                delay = min(event.retry / 1000, MAX_FOLLOW_RETRY)
                            if event.id is not None:
                                last_id = event.id
                            if event.data is None and not event.name:
                                continue
                            failures = 0
                            yield event
                            if event.name == "done":
                                return
                        error = ClientError(f"{self.address} ended the log stream before "
                                            "the log was done")
                    except (OSError, http.client.HTTPException) as exc:
                        error = ClientError(f"cannot reach {self.address}: {_reason(exc)}")
            failures += 1
            if failures >= attempts:
                raise error
            sleep(delay)

    def get_target_v2(self, target_id: int) -> dict[str, Any]:
        """/api/v2's target: also labels (metadata), triggers, review, next_run_at,
        schedule_effective and last_build."""
        return self.call_v2("GET", f"/api/v2/targets/{_segment(target_id)}")

    # -- tokens -----------------------------------------------------------------------

    def add_token(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a named token ({name, user, scopes, repos, archs, expires_at}); the
        token with its `secret`, which the server shows only this once."""
        return self.call_v2("POST", "/api/v2/tokens", body=dict(body))

    def list_tokens(self) -> list[dict[str, Any]]:
        return self.list_v2("/api/v2/tokens")

    def remove_token(self, token_id: int) -> None:
        self.call_v2("DELETE", f"/api/v2/tokens/{_segment(token_id)}")

    # -- a build's job and source (/api/v2, with the build token: the agent) ----------

    def build_job(self, build_id: int) -> dict[str, Any]:
        """What to build: {build_id, kind, url, branch, path, repo, arch, image, timeout,
        force, environment, source ("fetch": fetch it, then put_source; "server":
        get_source)}."""
        answer = self.call_v2("GET", f"/api/v2/builds/{_segment(build_id)}/job")
        if not isinstance(answer, dict):
            raise ClientError(f"{self.address} answered the job of build {build_id} "
                              "without an object")
        return answer

    def get_source(self, build_id: int) -> bytes:
        """The build's source bundle (an uncompressed tar)."""
        return self.request("GET", f"/api/v2/builds/{_segment(build_id)}/source")[2]

    def put_source(self, build_id: int, bundle: bytes) -> dict[str, Any]:
        """Hand the fetched source bundle to the server: {"action": "build"} (go on) or
        {"action": "hold", "diff": ...} (held for review; the build token is dead now)."""
        _, _, raw = self.request("PUT", f"/api/v2/builds/{_segment(build_id)}/source",
                                 body=bundle, headers={"Content-Type": "application/x-tar"})
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ClientError(f"{self.address} answered the source of build {build_id} "
                              "without a JSON object")
        return answer

    def put_srcinfo(self, build_id: int, text: str) -> dict[str, Any]:
        """Tell the server what `makepkg --printsrcinfo` said in a running build:
        {"action": "build"} (go on) or {"action": "wait", "blocked_by": [ids]} (the build is
        back in the queue, waiting for builds of its dependencies; its token is dead)."""
        _, _, raw = self.request("PUT", f"/api/v2/builds/{_segment(build_id)}/srcinfo",
                                 body=text.encode(),
                                 headers={"Content-Type": "text/plain; charset=utf-8"})
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ClientError(f"{self.address} answered the .SRCINFO of build {build_id} "
                              "without a JSON object")
        return answer
