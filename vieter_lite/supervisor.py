"""Owns every thread of the server: one stop Event, signals only set it, clean shutdown."""

from __future__ import annotations

import logging
import signal
import socket
import tempfile
import threading
from collections.abc import Callable

from vieter_lite import __version__, preflight, triggers
from vieter_lite.config import ServerConfig
from vieter_lite.datalock import DataDirLock
from vieter_lite.repo import signing
from vieter_lite.repo.signature_sync import SignatureSync
from vieter_lite.services import build_services
from vieter_lite.web.app import make_app
from vieter_lite.web.auth import body_refusal
from vieter_lite.web.server import HttpServer
from vieter_lite.web.v2.deliveries import webhook_renderer
from vieter_lite.web.workers import ThreadLender

log = logging.getLogger(__name__)

# An api_key shorter than this is guessable by a patient client on the network.
MIN_API_KEY_LENGTH = 16


class Supervisor:
    """Starts the services' threads, waits for stop, and stops them in order."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.stop_event = threading.Event()
        self.failed: list[str] = []
        self.signalled = False
        # Nothing is created before the checks pass: the dirs are checked, then the
        # address is bound (waitress binds at construction; requests wait in the backlog
        # until run()), and only then is the data dir opened.
        preflight.check_dirs(config)
        try:
            self.http = HttpServer(self._app, config.host, config.port,
                                   config.threads, config.max_upload_size,
                                   refusal=self._refusal,
                                   connection_limit=config.connection_limit,
                                   channel_timeout=config.channel_timeout,
                                   header_timeout=config.header_timeout,
                                   min_send_rate=config.min_send_rate)
        except (OSError, ValueError) as exc:
            raise preflight.listen_error(exc, config.host, config.port) from None
        # one server per data dir; restore and check --repair look for this lock
        self.lock = DataDirLock(config.data_dir)
        try:
            self.lock.acquire()
        except BaseException:
            self.http.stop()
            raise
        try:
            self.services = build_services(config)
        except BaseException:
            self.http.stop()
            self.lock.release()
            raise
        self._wsgi = make_app(self.services)
        # a log follower lasts as long as its build: it brings a worker thread of its own
        self.lender = ThreadLender(self.http.dispatcher, config.threads)
        self.services.build_logs.followers.capacity = self.lender
        # and so does a poll while it waits for a build to come
        self.services.queue.waiting.capacity = self.lender
        # what notifications link to (the port bound, when the config said 0) and the
        # webhook body: the build's /api/v2 JSON, which the domain cannot shape itself
        deliveries = self.services.deliveries
        deliveries.base_url = triggers.public_base(config.public_url, config.host,
                                                   self.http.port, socket.gethostname())
        deliveries.render = webhook_renderer(deliveries.base_url)
        # waitress buffers request bodies in temp files: keep them on the data disk
        # (a Pi's /tmp is often a small tmpfs).
        tempfile.tempdir = str(self.services.store.tmp_dir)
        self._threads: list[threading.Thread] = []

    def _app(self, environ: dict, start_response: Callable) -> object:
        return self._wsgi(environ, start_response)

    def _refusal(self, path: str, key: str, length: int | None) -> tuple[int, str] | None:
        return body_refusal(self.services, path, key, length)

    def _spawn(self, name: str, target: Callable[[], None], once: bool = False) -> None:
        """Run `target` on a thread of its own; when it crashes (or, unless it runs `once`,
        ends) the server stops."""
        def guarded() -> None:
            try:
                target()
                if once:
                    return
                if not self.stop_event.is_set():
                    log.error("thread %s ended unexpectedly; stopping", name)
                    self.failed.append(name)
            except BaseException:
                log.exception("thread %s crashed; stopping", name)
                self.failed.append(name)
            self.stop_event.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def install_signal_handlers(self) -> None:
        """The handler only notes the signal: setting an Event takes a lock, which the main
        thread may hold at that moment inside Event.wait(), and would deadlock."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._note_signal)

    def _note_signal(self, *_: object) -> None:
        self.signalled = True

    def run(self) -> int:
        """Serve until a signal or a crashed thread; 0 on a clean stop, 1 after a crash."""
        if len(self.config.api_key) < MIN_API_KEY_LENGTH:
            log.warning("api_key is shorter than %d characters: anyone who guesses it may "
                        "publish and delete packages (e.g. VIETER_API_KEY=$(openssl rand -hex "
                        "16))", MIN_API_KEY_LENGTH)
        repos = self.services.store.repos()
        log.info("vieter-lite %s serving on http://%s:%d, data in %s, repos: %s", __version__,
                 self.http.host, self.http.port, self.config.data_dir,
                 ", ".join(f"{name} ({', '.join(sorted(archs))})"
                           for name, archs in sorted(repos.items())) or "none yet")
        # the address is bound already: the line is true before the first request
        self._spawn("http", self.http.run)
        self._spawn("scheduler", lambda: self.services.scheduler.run(self.stop_event))
        self._spawn("deliveries", lambda: self.services.deliveries.run(self.stop_event))
        self._spawn("signatures", self._sync_signatures, once=True)
        # db archives a full disk held back are written once there is room again
        self._spawn("archives", lambda: self.services.store.run(self.stop_event))
        while not self.signalled and not self.stop_event.wait(0.2):
            pass
        self.stop_event.set()
        self.services.deliveries.wake()
        log.info("stopping")
        # followers end at once (they would hold the worker pool's shutdown up)
        self.lender.close()
        self.services.build_logs.stop()
        self.services.queue.stop_waiting()
        self.http.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.services.signer is not None:
            self.services.signer.close()
        self.services.db.close()
        self.lock.release()
        return 1 if self.failed else 0

    def _sync_signatures(self) -> None:
        """Sign what an existing repo holds (sign = true), or remove the server's
        signatures (sign = false), in the background."""
        signer = self.services.signer
        own = signer.own if signer is not None else \
            signing.own_fingerprints(self.config.data_dir / signing.HOME)
        SignatureSync(self.services.store, signer, own).run(self.stop_event)
