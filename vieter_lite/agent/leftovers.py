"""What an agent owns while it runs, recorded in its data dir, and what a killed run left.

While it runs, an agent keeps in its data dir:

- `podman-service.json`: its private Podman service (pid, the process's start time, dir);
- `owners`: the owner label (podman.OWNER_LABEL) of the containers its runs create, one line
  per run whose containers were not removed yet;
- `builds/<id>.json`: each build it runs, with the build's token (0600).

A clean stop removes them. An agent started after a SIGKILL finds them and removes what the
killed run left behind before it polls: the private Podman service's process group (only if
that pid is still the same process), the containers labelled with an owner of its earlier
runs (never another agent's: only owners listed in its own data dir), and it hands the
builds back to the server, which queues them again at once instead of after their lease.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVICE_FILE = "podman-service.json"
OWNERS_FILE = "owners"
BUILDS_DIR = "builds"
SERVICE_DIR_PREFIX = "vieter-podman-"  # PodmanService's private dirs (the only ones removed)


def process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live process, None for none or a zombie:
    with the pid it names one process, also after the pid is reused."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a small file atomically (a kill leaves the old content or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


class Leftovers:
    """The records of what the agent with data dir `state_dir` owns."""

    def __init__(self, state_dir: Path | str):
        self.dir = Path(state_dir)
        self.service_file = self.dir / SERVICE_FILE

    # the private podman service

    def record_service(self, pid: int, service_dir: Path | None) -> None:
        start = process_start(pid)
        _write(self.service_file, json.dumps({"pid": pid, "start": start,
                                              "dir": str(service_dir or "")}))

    def forget_service(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.service_file.unlink()

    def stop_service(self, timeout: float = 10.0) -> bool:
        """End the Podman service a killed run left (its process group: podman re-execs
        itself), remove its private dir and the record; True when one was still running."""
        try:
            record = json.loads(self.service_file.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            log.warning("%s is unreadable: ignored", self.service_file)
            self.forget_service()
            return False
        pid = record.get("pid") if isinstance(record, dict) else None
        stopped = False
        if isinstance(pid, int) and pid > 1 and record.get("start") is not None \
                and process_start(pid) == record.get("start") and _pgid(pid) == pid:
            log.warning("stopping the podman service (pid %d) a killed run left", pid)
            _end_group(pid, timeout)
            stopped = True
        service_dir = Path(str(record.get("dir") or "")) if isinstance(record, dict) else None
        if service_dir and service_dir.name.startswith(SERVICE_DIR_PREFIX) \
                and service_dir.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(service_dir, ignore_errors=True)
        self.forget_service()
        return stopped

    # the containers' owner labels

    def owners(self) -> list[str]:
        try:
            return [line for line in (self.dir / OWNERS_FILE).read_text().split() if line]
        except FileNotFoundError:
            return []

    def set_owners(self, owners: list[str]) -> None:
        _write(self.dir / OWNERS_FILE, "".join(f"{o}\n" for o in owners))

    def remove_containers(self, owner: str, remove: Callable[[str], int]) -> int:
        """Remove the containers of the earlier runs (`remove(owner)` kills and removes the
        ones labelled with that owner, returning how many) once `owner` (this run's) is
        recorded; returns how many were removed."""
        earlier = [o for o in self.owners() if o != owner]
        self.set_owners(earlier + [owner])  # a kill from here on leaves them all listed
        removed = 0
        for old in earlier:
            removed += remove(old)
        self.set_owners([owner])
        return removed

    # builds

    def _build_file(self, build_id: int) -> Path:
        return self.dir / BUILDS_DIR / f"{int(build_id)}.json"

    def add_build(self, build_id: int, token: str) -> None:
        _write(self._build_file(build_id), json.dumps({"build_id": build_id, "token": token}),
               0o600)

    def remove_build(self, build_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._build_file(build_id).unlink()

    def builds(self) -> list[dict[str, Any]]:
        """The builds recorded (by a killed run, when read before this run polls)."""
        found = []
        for path in sorted((self.dir / BUILDS_DIR).glob("*.json")):
            try:
                record = json.loads(path.read_text())
                found.append({"build_id": int(record["build_id"]),
                              "token": str(record["token"])})
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("%s is unreadable: removed", path)
                with contextlib.suppress(OSError):
                    path.unlink()
        return found


def _end_group(pgid: int, timeout: float) -> None:
    from vieter_lite.agent.podman import _group_alive, _signal_group

    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pgid):
        _signal_group(pgid, signal.SIGKILL)
