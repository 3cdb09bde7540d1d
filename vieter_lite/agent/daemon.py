"""The build agent: poll for free slots, build each job in Podman, stream its log, report."""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vieter_lite.agent import bundle, script
from vieter_lite.agent.bundle import BundleError, SourceFile
from vieter_lite.agent.control import BuildControl, Stopped, gone
from vieter_lite.agent.leftovers import Leftovers
from vieter_lite.agent.output import OutputError, extract_packages
from vieter_lite.agent.podman import BuildTimeout, Podman, PodmanError
from vieter_lite.agent.poller import Identity, Poller
from vieter_lite.client import Client, ClientError

log = logging.getLogger(__name__)

LOG_FLUSH = 1.0        # seconds between log uploads while a build runs
MAX_SRCINFO = 64 * 1024  # bytes of .SRCINFO kept for the server (its max_api_body)
TIMEOUT_EXIT = 124     # exit code recorded for a build killed at its timeout
ERROR_EXIT = -1        # exit code recorded when the build could not run at all
RETRY_FOR = 90.0       # seconds a report is tried again while the server cannot be reached
                       # (a restart), well under its lease of 120 s
RETRY_WAIT = 1.0
TRANSIENT = frozenset({0, 502, 503})  # no answer, or the server is not ready: try again
BUILD_LABEL = "io.vieter-lite.build"  # the build id on each of its containers
TASK_LABEL = "io.vieter-lite.task"    # which of its containers: source or build


def again(call: Callable[[], Any], what: str, retry_for: float = RETRY_FOR,
          sleep: Callable[[float], object] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> Any:
    """call(), tried again for `retry_for` seconds while the server cannot be reached: a
    report (finish, hand-back, a package's upload) lost to a server restart would leave the
    build running until its lease runs out, and then build it again. Every call it wraps
    may be repeated (a repeated upload of the same file publishes it again, unchanged)."""
    deadline = clock() + retry_for
    while True:
        try:
            return call()
        except ClientError as exc:
            if exc.status not in TRANSIENT or clock() >= deadline:
                raise
            log.warning("%s: %s; trying again", what, exc)
            sleep(RETRY_WAIT)


class BuildFailed(Exception):
    """A step failed: the build ends with this exit code, its reason as a log line."""

    def __init__(self, code: int, line: str):
        super().__init__(line)
        self.code = code


@dataclass(frozen=True)
class AgentSettings:
    address: str
    api_key: str
    arch: str
    max_concurrent_builds: int = 1
    polling_frequency: int = 30
    image_rebuild_frequency: int = 1440
    prepare_script: str = script.ARCH_PREPARE
    build_user: str = "build"
    makepkg_args: str = "--syncdeps --needed"
    runner: str = ""    # the name it registers and polls as (empty: it does not register)
    build_network: str = "private"
    work_dir: str = ""  # where produced packages wait for their upload (empty: the temp dir)
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    platform: str = ""  # os/arch of its containers when it builds under emulation


class Images:
    """Builder images per base image: prepared once, refreshed when too old, old ones removed."""

    PREFIX = "localhost/vieter-lite-builder"

    def __init__(self, podman: Podman, prepare_script: str, rebuild_minutes: int,
                 clock: Callable[[], float] = time.time, network: str | None = None,
                 platform: str = ""):
        self.podman = podman
        # builder images of another platform (an emulated arch) get names of their own: an
        # agent of each arch may share one store
        self.platform = platform
        self.prepare_script = prepare_script
        self.network = network
        self.max_age = rebuild_minutes * 60
        self.clock = clock
        self._lock = threading.Lock()
        self._current: dict[str, tuple[str, float]] = {}

    def _stem(self, base: str) -> str:
        """Every builder image of `base` is tagged '<stem><time it was made>'."""
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:60] or "base"
        arch = re.sub(r"[^a-z0-9]+", "-", self.platform.lower().removeprefix("linux/"))
        return f"{self.PREFIX}:{slug}-{arch}-" if arch else f"{self.PREFIX}:{slug}-"

    def tag_for(self, base: str, when: float) -> str:
        return f"{self._stem(base)}{int(when)}"

    def builder_for(self, base: str, on_output: Callable[[bytes], None] | None = None) -> str:
        """The newest prepared image for `base`, made now if missing or too old (the
        preparation's output goes to on_output)."""
        with self._lock:
            current = self._current.get(base)
            now = self.clock()
            if current and now - current[1] < self.max_age and self.podman.image_exists(current[0]):
                return current[0]
            tag = self.tag_for(base, now)
            self.podman.build_image(base, tag, self.prepare_script, on_output=on_output,
                                    network=self.network)
            self._current[base] = (tag, now)
            self._remove_old(base, tag)
            return tag

    def _remove_old(self, base: str, keep: str) -> None:
        stem = self._stem(base)
        for ref, _created in self.podman.images(self.PREFIX):
            if ref != keep and ref.startswith(stem):
                try:
                    self.podman.remove_image(ref)
                except PodmanError as exc:  # still in use by a running build: next time
                    log.debug("keeping %s for now: %s", ref, exc)


class LogStream:
    """Collects a build's output, sends it every LOG_FLUSH seconds, and turns the script's
    marker lines into task status updates. Everything fed before a task starts (its marker
    line, or the agent's own start_task) is sent before the task is reported, so each
    task's part of the log holds its own output."""

    def __init__(self, api: Client, build_id: int, echo: Callable[[bytes], None] | None = None,
                 on_gone: Callable[[ClientError], None] | None = None,
                 on_srcinfo: Callable[[str], None] | None = None):
        self.api = api
        self.build_id = build_id
        self.echo = echo
        self.on_gone = on_gone  # told when an answer says the build is over on the server
        # told the first .SRCINFO the build container prints between its marker lines
        self.on_srcinfo = on_srcinfo
        self._srcinfo: list[str] | None = None  # its lines while they come
        self._srcinfo_seen = False
        self.task: str | None = None
        self.skipped = False
        self.abandoned = False  # nothing more goes to the server (the build is over there)
        self._pending = bytearray()  # fed, not sent yet
        self._base = 0  # how many bytes were fed before _pending[0]
        self._partial = b""
        self._lock = threading.Lock()  # the buffer
        self._sending = threading.Lock()  # one upload or task report at a time, in order
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name=f"log-{build_id}",
                                        daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        if self.echo:
            self.echo(data)
        with self._lock:
            at = self._base + len(self._pending) - len(self._partial)  # where a line begins
            self._pending += data
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace")
            found = script.marker(text.strip())
            if found and found[0] == "task":
                self._start_at(found[1], at)
            elif found and found[0] == "srcinfo":
                self._srcinfo_mark(found[1])
            elif found:
                self.skipped = True
            elif self._srcinfo is not None:
                self._srcinfo.append(text)
                if sum(len(x) + 1 for x in self._srcinfo) > MAX_SRCINFO:
                    self._srcinfo_mark("end")
            at += len(line) + 1

    def _srcinfo_mark(self, which: str) -> None:
        """The first 'begin' starts collecting the .SRCINFO; its 'end' hands it over."""
        if which == "begin" and not self._srcinfo_seen:
            self._srcinfo_seen = True
            self._srcinfo = []
        elif which == "end" and self._srcinfo is not None:
            text, self._srcinfo = "\n".join(self._srcinfo) + "\n", None
            if self.on_srcinfo is not None:
                self.on_srcinfo(text)

    def line(self, text: str) -> None:
        self.feed(("\n" + text + "\n").encode())

    def start_task(self, name: str) -> None:
        """Start a task here: what was fed so far belongs to the one before."""
        with self._lock:
            at = self._base + len(self._pending)
        self._start_at(name, at)

    def _start_at(self, name: str, at: int) -> None:
        with self._sending:
            if name == self.task:
                return
            self._send(at)
            try:  # (a report lost to a server restart would leave the task pending)
                if self.task and not self.abandoned:
                    again(functools.partial(self.api.set_task, self.build_id, self.task,
                                            "success"),
                          f"build {self.build_id}: report task {self.task}")
                if not self.abandoned:
                    again(functools.partial(self.api.set_task, self.build_id, name, "running"),
                          f"build {self.build_id}: report task {name}")
            except ClientError as exc:
                self._failed(exc, f"could not report task {name}")
            self.task = name

    def flush(self) -> None:
        with self._sending:
            self._send(None)

    def _send(self, until: int | None) -> None:
        """Upload what was fed before byte `until` (None: all of it)."""
        with self._lock:
            n = len(self._pending) if until is None else \
                max(0, min(len(self._pending), until - self._base))
            chunk = bytes(self._pending[:n])
            del self._pending[:n]
            self._base += n
        if chunk and not self.abandoned:
            try:
                self.api.append_log(self.build_id, chunk)
            except ClientError as exc:
                if not self._failed(exc, "could not send log"):
                    with self._lock:  # kept for the next try
                        self._pending[:0] = chunk
                        self._base -= n

    def _failed(self, exc: ClientError, what: str) -> bool:
        """A report failed; True when the build is over on the server (the stream then
        sends nothing more)."""
        if gone(exc):
            self.abandon()
            if self.on_gone is not None:
                self.on_gone(exc)
            return True
        log.warning("build %d: %s: %s", self.build_id, what, exc)
        return False

    def abandon(self) -> None:
        """Send nothing more (what comes is still echoed)."""
        self.abandoned = True

    def _flusher(self) -> None:
        while not self._done.wait(LOG_FLUSH):
            self.flush()

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.flush()


class Agent:
    """Polls for at most its free slots; each job builds in its own thread."""

    def __init__(self, settings: AgentSettings, podman: Podman, images: Images,
                 clock: Callable[[], float] = time.time, state: Leftovers | None = None):
        self.settings = settings
        # the records of the builds it runs (in its data dir); the builds a killed run
        # left there are handed back before the first poll
        self.state = state
        self._left = state.builds() if state is not None else []
        self.api = Client(settings.address, settings.api_key)
        self.podman = podman
        self.images = images
        self.clock = clock
        self._workers: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._freed = threading.Event()
        self.hard_stop = threading.Event()
        self.poller = Poller(self.api, Identity(
            name=settings.runner, arch=settings.arch, labels=dict(settings.labels),
            version=settings.version, slots=settings.max_concurrent_builds,
            poll_period=settings.polling_frequency))
        if not settings.runner:
            self.poller.anonymous = True

    def free_slots(self) -> int:
        with self._lock:
            for build_id in [b for b, t in self._workers.items() if not t.is_alive()]:
                del self._workers[build_id]
            return self.settings.max_concurrent_builds - len(self._workers)

    def run(self, stop: threading.Event, hard_stop: threading.Event | None = None) -> None:
        """Poll and build until stop; then wait for the running builds to end, or, once
        hard_stop is set too, kill them and hand them back to the server."""
        self.hard_stop = hard_stop or threading.Event()
        last_poll = float("-inf")
        while not stop.is_set():
            if self._left:
                self.hand_back_left()
            free = self.free_slots()
            due = self.clock() - last_poll >= self.settings.polling_frequency
            # a free slot polls when due, when a build ended, or at once again while the
            # server waits for builds; with every slot busy it polls (for none) when due,
            # so that the server sees it
            if due or (free > 0 and (self._freed.is_set() or self.poller.waits)):
                self._freed.clear()
                last_poll = self.clock()
                for job in self.poller.poll(free, stop):
                    self.start(job)
                if self.poller.waits and self.free_slots() > 0:
                    continue
            stop.wait(1.0)
        log.warning("stopping: waiting for %d running build(s) (signal again to hand them "
                    "back)", len(self._workers))
        while any(t.is_alive() for t in list(self._workers.values())):
            if self.hard_stop.wait(0.5):
                self.podman.kill_all()
                break
        for thread in list(self._workers.values()):
            thread.join()

    def hand_back_left(self) -> None:
        """Hand back the builds a killed run of this agent left running on the server: they
        are queued again at once (not when their lease runs out). A server that cannot be
        reached is asked again on the next turn; a build that is over there is forgotten."""
        for job in list(self._left):
            build_id = job["build_id"]
            try:
                Client(self.settings.address, job["token"]).release_build(build_id)
                log.warning("build %d was left running by a killed run: handed back", build_id)
            except ClientError as exc:
                if not gone(exc):
                    log.warning("build %d, left by a killed run: cannot hand it back yet: %s",
                                build_id, exc)
                    continue
                log.info("build %d, left by a killed run, is over on the server", build_id)
            self._left.remove(job)
            if self.state is not None:
                self.state.remove_build(build_id)

    def start(self, job: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=self._build, args=(job,), name=f"build-{job['build_id']}",
                                  daemon=True)
        with self._lock:
            self._workers[job["build_id"]] = thread
        if self.state is not None:
            self.state.add_build(job["build_id"], job["token"])
        thread.start()
        return thread

    def _build(self, job: dict[str, Any], echo: Callable[[bytes], None] | None = None) -> int:
        try:
            return self.build(job, echo)
        finally:
            if self.state is not None:
                self.state.remove_build(job["build_id"])
            self._freed.set()

    def build(self, job: dict[str, Any], echo: Callable[[bytes], None] | None = None) -> int:
        """Run one claimed job to the end and report it; returns the exit code.

        Steps: the job's details, the builder image (task setup); the source, fetched in a
        container and handed to the server, which may hold the build for review, or the
        server's bundle (task source); makepkg in a second container (tasks source, build);
        the packages uploaded from here (publish). Once the server has ended the build
        (cancelled, timed out, lease lost) its container is killed, and nothing more is
        published or reported."""
        build_id, token = job["build_id"], job["token"]
        api = Client(self.settings.address, token)
        control = BuildControl(api, build_id, self.podman.kill).start()
        stream = LogStream(api, build_id, echo, on_gone=control.stop_if_gone,
                           on_srcinfo=lambda text: self._srcinfo(api, build_id, text, stream,
                                                                 control))
        started = int(self.clock())
        exit_code = ERROR_EXIT
        held = False
        try:
            stream.start_task("setup")
            job = {**job, **api.build_job(build_id)}
            deadline = time.monotonic() + float(job["timeout"])
            stream.line(self._describe(job))
            env, dropped = script.environment(job.get("environment"))
            for reason in dropped:
                stream.line(f"vieter-lite agent: an environment variable is left out: {reason}")
            image = self.images.builder_for(job.get("image") or job["base_image"], stream.feed)
            control.check()
            files = self._source(job, image, api, stream, control, deadline)
            if files is None:
                held = True
            else:
                exit_code = self._build_and_publish(job, image, files, env, api, stream,
                                                    control, deadline)
        except Stopped:
            pass
        except BuildFailed as exc:
            exit_code = exc.code
            stream.line(f"vieter-lite agent: {exc}")
        except BuildTimeout:
            exit_code = TIMEOUT_EXIT
            stream.line(f"vieter-lite agent: build killed after its timeout of {job['timeout']} s")
        except OutputError as exc:
            exit_code = 1
            stream.line(f"vieter-lite agent: nothing published: {exc}")
        except BundleError as exc:
            exit_code = 1
            stream.line(f"vieter-lite agent: the source is refused: {exc}")
        except PodmanError as exc:
            stream.line(f"vieter-lite agent: the build could not run: {exc}")
        except ClientError as exc:  # the job, the source: the build cannot go on
            control.stop_if_ended(exc)
            stream.line(f"vieter-lite agent: the server refused a step of the build: {exc}")
        except Exception as exc:  # report every failure as a failed build; keep the agent
            log.exception("build %d failed unexpectedly", build_id)
            stream.line(f"vieter-lite agent: internal error: {exc}")
        finally:
            control.close()
            self._end(api, build_id, stream, control, held, exit_code, started)
        return exit_code

    def _end(self, api: Client, build_id: int, stream: LogStream, control: BuildControl,
             held: bool, exit_code: int, started: int) -> None:
        """Report the end: finish, or hand the build back; nothing when the server has
        ended it or holds it (its token is dead then)."""
        if held or control.stopped.is_set():
            stream.abandon()
            if held:
                stream.line(f"vieter-lite agent: build {build_id} waits for a review of its "
                            f"source (POST /api/v2/builds/{build_id}/start approves it)")
                log.warning("build %d waits for a review of its source", build_id)
            else:
                stream.line(f"vieter-lite agent: build {build_id} stopped: {control.reason}; "
                            "its container was killed, nothing more is published")
                log.warning("build %d stopped (%s): container killed, nothing more published, "
                            "no result reported", build_id, control.reason)
            stream.close()
            return
        handed_back = self.hard_stop.is_set() and exit_code != 0
        if handed_back:
            stream.line("vieter-lite agent: stopped; the build goes back to the queue")
        stream.close()
        try:
            if handed_back:
                again(lambda: api.release_build(build_id), f"build {build_id}: hand back")
            else:
                ended = int(self.clock())
                again(lambda: api.finish_build(build_id, exit_code, start_time=started,
                                               end_time=ended,
                                               timed_out=exit_code == TIMEOUT_EXIT),
                      f"build {build_id}: report the result")
        except ClientError as exc:
            log.error("build %d: could not report the result: %s", build_id, exc)

    @staticmethod
    def _srcinfo(api: Client, build_id: int, text: str, stream: LogStream,
                 control: BuildControl) -> None:
        """Tell the server what makepkg read of the PKGBUILD. When it answers 'wait' it has
        sent the build back to the queue (to wait for builds of its dependencies): the
        container is killed, nothing is reported. A refusal leaves the build going on (the
        watch notices a build that is over)."""
        stream.flush()  # the log so far (the .SRCINFO too) reaches the server first
        try:
            answer = api.put_srcinfo(build_id, text)
        except ClientError as exc:
            stream.line(f"vieter-lite agent: the server did not take what makepkg read of the "
                        f"PKGBUILD: {exc}")
            return
        if answer.get("action") == "wait":
            waits = ", ".join(str(i) for i in answer.get("blocked_by") or []) or "?"
            control.stop(f"the server sent it back to the queue to wait for build(s) {waits} "
                         "of its dependencies")

    @staticmethod
    def _describe(job: dict[str, Any]) -> str:
        what = f"of target {job['target_id']} " if job.get("target_id") else ""
        source = ("an inline PKGBUILD" if job["kind"] == "pkgbuild"
                  else f"{job['kind']} {job['url']}")
        return (f"vieter-lite agent: build {job['build_id']} {what}({source}) for "
                f"{job['repo']}/{job['arch']}")

    def _run(self, job: dict[str, Any], image: str, task: str, command: list[str],
             env: dict[str, str], stream: LogStream, control: BuildControl, deadline: float,
             **files: Any) -> int:
        """One container of the build, killed at the build's deadline or when the server
        ends the build; its exit code."""
        control.check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BuildTimeout(float(job["timeout"]))
        try:
            code = self.podman.run(
                image, command, env=env, user="root", workdir="/", timeout=remaining,
                on_output=stream.feed, network=self.settings.build_network,
                labels={BUILD_LABEL: str(job["build_id"]), TASK_LABEL: task},
                on_create=control.register, **files)
        finally:
            control.release()
        control.check()
        return code

    def _source(self, job: dict[str, Any], image: str, api: Client, stream: LogStream,
                control: BuildControl, deadline: float) -> list[SourceFile] | None:
        """The source's files; None when the server holds the build for a review."""
        stream.start_task("source")
        build_id = job["build_id"]
        if job.get("source") == "server":
            data = api.get_source(build_id)
            given = bundle.read(data)
            stream.line(f"vieter-lite agent: the source from the server: "
                        f"{bundle.summary(given, data)}")
            return given
        if job.get("source") != "fetch":
            raise BuildFailed(1, f"the server asks for a source {job.get('source')!r} (not "
                                 "'fetch' or 'server')")
        files: list[SourceFile] = []

        def receive(chunks: Iterable[bytes]) -> None:
            files.extend(bundle.from_container(chunks))

        code = self._run(job, image, "source", script.source_command(),
                         script.source_env(job, self.settings.build_user), stream, control,
                         deadline, copy_out=(script.SOURCE_OUT, receive))
        if code != 0:
            raise BuildFailed(code, f"fetching the source failed (exit {code})")
        data = bundle.make(files)
        stream.line(f"vieter-lite agent: the source: {bundle.summary(files, data)}; sending it "
                    "to the server, which holds the build if it needs a review")
        stream.flush()
        answer = api.put_source(build_id, data)
        if answer.get("action") == "hold":  # the build token is dead from here on
            return None
        if answer.get("action") != "build":
            raise BuildFailed(1, f"the server answered the source with {answer!r}")
        control.check()
        return files

    def _build_and_publish(self, job: dict[str, Any], image: str, files: list[SourceFile],
                           env: dict[str, str], api: Client, stream: LogStream,
                           control: BuildControl, deadline: float) -> int:
        """makepkg in a container given the source's files; after it exited 0, copy its
        packages out and publish them."""
        build_env = script.build_env(job, self.settings.address, self.settings.build_user,
                                     self.settings.makepkg_args, env)
        if self.settings.work_dir:
            Path(self.settings.work_dir).mkdir(parents=True, exist_ok=True)
        outdir = Path(tempfile.mkdtemp(prefix=f"build-{job['build_id']}-",
                                       dir=self.settings.work_dir or None))
        try:
            packages: list[Path] = []

            def receive(chunks: Iterable[bytes]) -> None:
                packages.extend(extract_packages(chunks, outdir))

            exit_code = self._run(job, image, "build", script.command(), build_env, stream,
                                  control, deadline, copy_out=(script.OUTPUT_DIR, receive),
                                  copy_in=("/", bundle.for_container(files, script.SOURCE_IN)))
            if exit_code != 0:
                stream.line(f"vieter-lite agent: the build exited with {exit_code}")
                return exit_code
            if stream.skipped:
                return 0
            return self._publish(api, job["repo"], packages, stream, control)
        finally:
            shutil.rmtree(outdir, ignore_errors=True)

    @staticmethod
    def _publish(api: Client, repo: str, packages: list[Path], stream: LogStream,
                 control: BuildControl | None = None) -> int:
        """Upload the packages from here with the build token (the container never had
        it); 0 when every one was published. Once the server has ended the build, nothing
        more is uploaded (Stopped)."""
        stream.start_task("publish")
        if not packages:
            stream.line("error: makepkg produced no package")
            return 1
        failed = 0
        for package in packages:
            if control is not None:
                control.check()
            stream.line(f"+ publish {package.name}")
            try:
                again(functools.partial(api.publish, repo, package), f"publish {package.name}")
            except ClientError as exc:
                if control is not None:
                    control.stop_if_ended(exc)
                    control.check()
                stream.line(f"error: publishing {package.name} failed: {exc}")
                failed = 1
        return failed
