"""At start, on a thread of its own: makes what the repos hold match `sign` (signs an
existing repo, or removes the server's signatures when signing was turned off)."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from vieter_lite import pgp
from vieter_lite.errors import NO_SPACE, InsufficientStorage, full_disk
from vieter_lite.gpg import GpgError
from vieter_lite.repo.signing import SIG, Signer, signature_path
from vieter_lite.repo.store import RETRY_INTERVAL, RepoStore

T = TypeVar("T")

log = logging.getLogger(__name__)


class SignatureSync:
    """At start, on its own thread: makes the repos match `sign`. Signing on: the db
    archives of every arch-repo are rewritten with signatures, then every package without
    a signature is signed (files shared by several arch-repos once). Signing off: the db
    archives are rewritten without, and the package signatures the server's keys made are
    removed (those uploaded with a package stay). Progress goes to the log. A full disk
    holds the signing up (logged once; tried again every RETRY_INTERVAL s) until there is
    room; db archives it held back are the store's archive writer's."""

    BATCH = 4  # gpg processes at once

    def __init__(self, store: RepoStore, signer: Signer | None, own: set[str],
                 report_every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.signer = signer
        self.own = own
        self.report_every = report_every
        self.clock = clock
        self.done = threading.Event()

    def run(self, stop: threading.Event) -> None:
        try:
            started = self.clock()
            rewritten = self._archives(stop)
            counts = self._packages(stop)
            if not stop.is_set():
                what = "signed" if self.signer is not None else "removed the signatures of"
                log.info("signatures: done in %.1f s: %s the db archives of %d arch-repos and "
                         "%d packages", self.clock() - started, what, rewritten, counts)
        finally:
            self.done.set()

    def _archives(self, stop: threading.Event) -> int:
        count = 0
        for repo, arch in self.store.db.arch_repos():
            if stop.is_set():
                break
            try:
                if self.store.write_archives(repo, arch):
                    count += 1
            except InsufficientStorage:
                continue  # pending: the store's archive writer writes it once there is room
        return count

    def _todo(self) -> list[tuple[str, str, str]]:
        """(repo, arch, filename) of the packages whose signature state is not the wanted
        one: unsigned ones (signing), server-signed ones (not signing)."""
        found = []
        for repo, arch in self.store.db.arch_repos():
            for filename in sorted(self.store.db.filenames(repo, arch)):
                sig = signature_path(self.store.package_file(repo, arch, filename))
                wrong = not sig.exists() if self.signer is not None \
                    else sig.exists() and self._made_here(sig)
                if wrong:
                    found.append((repo, arch, filename))
        return found

    def _made_here(self, sig: Path) -> bool:
        try:
            return pgp.parse_signature(sig.read_bytes()).issued_by(self.own)
        except (OSError, ValueError):
            return False

    def _packages(self, stop: threading.Event) -> int:
        todo = self._todo()
        if not todo:
            return 0
        verb = "signing" if self.signer is not None else "removing the signatures of"
        log.info("signatures: %s %d packages", verb, len(todo))
        done = 0
        next_report = self.clock() + self.report_every
        scratch = self._with_room(stop, functools.partial(tempfile.mkdtemp,
                                                          dir=self.store.tmp_dir))
        if scratch is None:
            return 0
        try:
            signed: dict[tuple[int, int], Path] = {}
            for start in range(0, len(todo), self.BATCH):
                batch = todo[start:start + self.BATCH]
                count = self._batch(stop, batch, Path(scratch), signed)
                if count is None:
                    log.info("signatures: stopped after %d of %d packages", done, len(todo))
                    break
                done += count
                if self.clock() >= next_report:
                    log.info("signatures: %d of %d packages", start + len(batch), len(todo))
                    next_report = self.clock() + self.report_every
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return done

    def _batch(self, stop: threading.Event, batch: list[tuple[str, str, str]], scratch: Path,
               signed: dict[tuple[int, int], Path]) -> int | None:
        """Sign a batch of packages (or remove their signatures): how many; None when
        stopped."""
        if stop.is_set():
            return None
        if self.signer is None:
            return sum(self.store.detach_signature(*item, self.own) for item in batch)
        return self._with_room(stop, functools.partial(self._sign_batch, batch, scratch,
                                                       signed))

    def _with_room(self, stop: threading.Event, action: Callable[[], T]) -> T | None:
        """action(), done again every RETRY_INTERVAL s while the disk is full (logged once);
        None when `stop` is set first."""
        waiting = False
        while True:
            try:
                result = action()
            except Exception as exc:
                if full_disk(exc) is None:
                    raise
                if not waiting:
                    log.error("signatures: %s: going on once there is room (%s)",
                              NO_SPACE, exc)
                    waiting = True
                if stop.wait(RETRY_INTERVAL):
                    return None
                continue
            if waiting:
                log.info("signatures: there is room again: going on")
            return result

    def _sign_batch(self, batch: list[tuple[str, str, str]], scratch: Path,
                    signed: dict[tuple[int, int], Path]) -> int:
        assert self.signer is not None
        files: dict[tuple[str, str, str], tuple[int, int]] = {}
        wanted: dict[tuple[int, int], Path] = {}
        for item in batch:
            path = self.store.package_file(*item)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                continue  # removed meanwhile
            inode = (info.st_dev, info.st_ino)
            files[item] = inode
            if inode not in signed and inode not in wanted:
                wanted[inode] = path
        if wanted:
            pairs = [(path, scratch / f"{inode[0]}-{inode[1]}{SIG}")
                     for inode, path in wanted.items()]
            try:
                self.signer.sign(pairs)
            except GpgError as exc:
                if full_disk(exc) is not None:
                    raise  # the batch is tried again once there is room
                log.warning("signatures: could not sign %s: %s",
                            ", ".join(p.name for p, _ in pairs), exc)
                return 0
            signed.update({inode: out for inode, (_, out) in zip(wanted, pairs, strict=True)})
        return sum(self.store.attach_signature(*item, signed[inode])
                   for item, inode in files.items())
