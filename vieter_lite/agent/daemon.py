"""The build agent: poll for free slots, build each job in Podman, stream its log, report."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vieter_lite.agent import script
from vieter_lite.agent.output import OutputError, extract_packages
from vieter_lite.agent.podman import BuildTimeout, Podman, PodmanError
from vieter_lite.client import Client, ClientError

log = logging.getLogger(__name__)

LEASE_RENEW = 30.0     # seconds between lease renewals (the server's lease is 120 s)
LOG_FLUSH = 1.0        # seconds between log uploads while a build runs
TIMEOUT_EXIT = 124     # exit code recorded for a build killed at its timeout
ERROR_EXIT = -1        # exit code recorded when the build could not run at all


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
    runner: str = ""
    build_network: str = "private"
    work_dir: str = ""  # where produced packages wait for their upload (empty: the temp dir)


class Images:
    """Builder images per base image: prepared once, refreshed when too old, old ones removed."""

    PREFIX = "localhost/vieter-lite-builder"

    def __init__(self, podman: Podman, prepare_script: str, rebuild_minutes: int,
                 clock: Callable[[], float] = time.time, network: str | None = None):
        self.podman = podman
        self.prepare_script = prepare_script
        self.network = network
        self.max_age = rebuild_minutes * 60
        self.clock = clock
        self._lock = threading.Lock()
        self._current: dict[str, tuple[str, float]] = {}

    def _stem(self, base: str) -> str:
        """Every builder image of `base` is tagged '<stem><time it was made>'."""
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:60] or "base"
        return f"{self.PREFIX}:{slug}-"

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
    marker lines into task status updates."""

    def __init__(self, api: Client, build_id: int, echo: Callable[[bytes], None] | None = None):
        self.api = api
        self.build_id = build_id
        self.echo = echo
        self.task: str | None = None
        self.skipped = False
        self._pending = bytearray()
        self._partial = b""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name=f"log-{build_id}",
                                        daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        if self.echo:
            self.echo(data)
        with self._lock:
            self._pending += data
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
        for line in lines:
            found = script.marker(line.decode("utf-8", "replace").strip())
            if found and found[0] == "task":
                self.start_task(found[1])
            elif found:
                self.skipped = True

    def line(self, text: str) -> None:
        self.feed(("\n" + text + "\n").encode())

    def start_task(self, name: str) -> None:
        if name == self.task:
            return
        try:
            if self.task:
                self.api.set_task(self.build_id, self.task, "success")
            self.api.set_task(self.build_id, name, "running")
        except ClientError as exc:
            log.warning("build %d: could not report task %s: %s", self.build_id, name, exc)
        self.task = name

    def flush(self) -> None:
        with self._lock:
            chunk, self._pending = bytes(self._pending), bytearray()
        if chunk:
            try:
                self.api.append_log(self.build_id, chunk)
            except ClientError as exc:
                log.warning("build %d: could not send log: %s", self.build_id, exc)
                with self._lock:
                    self._pending[:0] = chunk

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
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.api = Client(settings.address, settings.api_key)
        self.podman = podman
        self.images = images
        self.clock = clock
        self._workers: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._freed = threading.Event()
        self.hard_stop = threading.Event()

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
            free = self.free_slots()
            due = self.clock() - last_poll >= self.settings.polling_frequency
            if free > 0 and (due or self._freed.is_set()):
                self._freed.clear()
                last_poll = self.clock()
                try:
                    jobs = self.api.poll_jobs(self.settings.arch, free, self.settings.runner)
                except ClientError as exc:
                    log.warning("poll failed: %s", exc)
                    jobs = []
                for job in jobs:
                    self.start(job)
            stop.wait(1.0)
        log.warning("stopping: waiting for %d running build(s) (signal again to hand them "
                    "back)", len(self._workers))
        while any(t.is_alive() for t in list(self._workers.values())):
            if self.hard_stop.wait(0.5):
                self.podman.kill_all()
                break
        for thread in list(self._workers.values()):
            thread.join()

    def start(self, job: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=self._build, args=(job,), name=f"build-{job['build_id']}",
                                  daemon=True)
        with self._lock:
            self._workers[job["build_id"]] = thread
        thread.start()
        return thread

    def _build(self, job: dict[str, Any], echo: Callable[[bytes], None] | None = None) -> int:
        try:
            return self.build(job, echo)
        finally:
            self._freed.set()

    def build(self, job: dict[str, Any], echo: Callable[[bytes], None] | None = None) -> int:
        """Run one claimed job to the end and report it; returns the exit code."""
        build_id, token = job["build_id"], job["token"]
        api = Client(self.settings.address, token)
        stream = LogStream(api, build_id, echo)
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(api, build_id, done), daemon=True)
        renewer.start()
        started = int(self.clock())
        exit_code = ERROR_EXIT
        try:
            stream.start_task("setup")
            stream.line(f"vieter-lite agent: build {build_id} of target {job['target_id']} "
                        f"({job['kind']} {job['url']}) for {job['repo']}/{job['arch']}")
            image = self.images.builder_for(job["base_image"], stream.feed)
            exit_code = self._build_and_publish(job, image, api, stream)
        except BuildTimeout:
            exit_code = TIMEOUT_EXIT
            stream.line(f"vieter-lite agent: build killed after its timeout of {job['timeout']} s")
        except OutputError as exc:
            exit_code = 1
            stream.line(f"vieter-lite agent: nothing published: {exc}")
        except PodmanError as exc:
            stream.line(f"vieter-lite agent: the build could not run: {exc}")
        except Exception as exc:  # report every failure as a failed build; keep the agent
            log.exception("build %d failed unexpectedly", build_id)
            stream.line(f"vieter-lite agent: internal error: {exc}")
        finally:
            done.set()
            handed_back = self.hard_stop.is_set() and exit_code != 0
            if handed_back:
                stream.line("vieter-lite agent: stopped; the build goes back to the queue")
            stream.close()
            try:
                if handed_back:
                    api.release_build(build_id)
                else:
                    api.finish_build(build_id, exit_code, start_time=started,
                                     end_time=int(self.clock()),
                                     timed_out=exit_code == TIMEOUT_EXIT)
            except ClientError as exc:
                log.error("build %d: could not report the result: %s", build_id, exc)
        return exit_code

    def _build_and_publish(self, job: dict[str, Any], image: str, api: Client,
                           stream: LogStream) -> int:
        """Build in a container; after it exited 0, copy its packages out and publish them."""
        env = script.build_env(job, self.settings.address, self.settings.build_user,
                               self.settings.makepkg_args)
        if self.settings.work_dir:
            Path(self.settings.work_dir).mkdir(parents=True, exist_ok=True)
        outdir = Path(tempfile.mkdtemp(prefix=f"build-{job['build_id']}-",
                                       dir=self.settings.work_dir or None))
        try:
            packages: list[Path] = []

            def receive(chunks: Iterable[bytes]) -> None:
                packages.extend(extract_packages(chunks, outdir))

            exit_code = self.podman.run(
                image, script.command(), env=env, user="root", workdir="/",
                timeout=float(job["timeout"]), on_output=stream.feed,
                network=self.settings.build_network, copy_out=(script.OUTPUT_DIR, receive))
            if exit_code != 0:
                stream.line(f"vieter-lite agent: the build exited with {exit_code}")
                return exit_code
            if stream.skipped:
                return 0
            return self._publish(api, job["repo"], packages, stream)
        finally:
            shutil.rmtree(outdir, ignore_errors=True)

    @staticmethod
    def _publish(api: Client, repo: str, packages: list[Path], stream: LogStream) -> int:
        """Upload the packages from here with the build token (the container never had
        it); 0 when every one was published."""
        stream.start_task("publish")
        if not packages:
            stream.line("error: makepkg produced no package")
            return 1
        failed = 0
        for package in packages:
            stream.line(f"+ publish {package.name}")
            try:
                api.publish(repo, package)
            except ClientError as exc:
                stream.line(f"error: publishing {package.name} failed: {exc}")
                failed = 1
        return failed

    @staticmethod
    def _renew(api: Client, build_id: int, done: threading.Event) -> None:
        while not done.wait(LEASE_RENEW):
            try:
                api.renew_lease(build_id)
            except ClientError as exc:
                log.warning("build %d: lease renewal failed: %s", build_id, exc)
