"""A real server and a real agent (rootless Podman, as the agent user) that can be killed and
started again, and the soak that runs clients against them while it injects faults.

Used by tests/test_soak.py (90 s, asserted), tests/test_agent_leftovers.py and
bench/soak.py (10 minutes, printed). Plain Python: no pytest here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from agent_env import AGENT_PYTHON, AGENT_USER, BASE_IMAGE, PREPARE, agent_env, agent_ready, podman  # noqa: E402,F401,E501
from pacman_client import PacmanClient  # noqa: E402
from pkgfactory import make_synthetic_package  # noqa: E402
from vieter_lite.client import Client, ClientError  # noqa: E402

API_KEY = "soak-secret"
OWNER_LABEL = "io.vieter-lite.owner"
BUILD_LABEL = "io.vieter-lite.build"
FINAL = ("success", "failed", "cancelled", "timeout")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




def containers(label: str) -> list[str]:
    """Ids of the agent user's containers (any state) with `label` (key=value)."""
    return podman("ps", "-a", "-q", "--filter", f"label={label}").stdout.split()



def proc_status(pid: int, key: str) -> int | None:
    """A number field of /proc/PID/status (VmRSS in kB), None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def pkgbuild(name: str, version: str, seconds: int) -> str:
    """One small `any` package whose build() talks for `seconds` seconds."""
    return f"""pkgname={name}
pkgver={version}
pkgrel=1
arch=('any')
options=(!debug !strip)
build() {{
    for i in $(seq {seconds}); do echo "{name} step $i"; sleep 1; done
}}
package() {{
    install -Dm644 /dev/stdin "$pkgdir/usr/share/{name}/data" <<< '{name} {version}'
}}
"""


# --- the processes ---------------------------------------------------------------------------

@dataclass
class Server:
    """`python -m vieter_lite server` on a fixed port and data dir, started again at will."""

    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    lives: int = 0

    @property
    def data_dir(self) -> Path:
        return self.base / "server"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    def start(self, timeout: float = 180.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
        env.update({"VIETER_API_KEY": API_KEY, "VIETER_DATA_DIR": str(self.data_dir),
                    "VIETER_PORT": str(self.port), "VIETER_HOST": "127.0.0.1",
                    "VIETER_DEFAULT_ARCH": "x86_64", "VIETER_LOG_LEVEL": "WARNING",
                    "VIETER_BASE_IMAGE": BASE_IMAGE, "PYTHONPATH": str(ROOT)})
        with open(self.log_path, "ab") as out:
            out.write(f"--- life {self.lives + 1}\n".encode())
            out.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "vieter_lite", "server"],
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.base)
        self.lives += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not come up")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


@dataclass
class AgentProcess:
    """`vieter-lite agent` as the agent user, with one data dir across its lives."""

    base: Path
    server_url: str
    arch: str = "x86_64"
    name: str = "soak-agent"
    slots: int = 2
    proc: subprocess.Popen | None = None
    lives: int = 0
    owners_seen: set[str] = field(default_factory=set)  # its lives' container owner labels
    services_seen: list[dict[str, Any]] = field(default_factory=list)  # their podman services

    @property
    def data_dir(self) -> Path:
        return self.base / f"agent-{self.name}"

    @property
    def log_path(self) -> Path:
        return self.base / f"agent-{self.name}.log"

    def start(self) -> None:
        code = self.base / "code"
        if not code.exists():  # a copy the agent user can read
            shutil.copytree(ROOT / "vieter_lite", code / "vieter_lite",
                            ignore=shutil.ignore_patterns("__pycache__"))
        if not self.data_dir.exists():
            self.data_dir.mkdir()
            (self.data_dir / "prepare.sh").write_text(PREPARE)
            shutil.chown(self.data_dir, AGENT_USER, AGENT_USER)
        with open(self.log_path, "ab") as out:
            out.write(f"--- life {self.lives + 1}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [*agent_env(), f"PYTHONPATH={code}", f"VIETER_ADDRESS={self.server_url}",
                 f"VIETER_API_KEY={API_KEY}", f"VIETER_ARCH={self.arch}",
                 f"VIETER_DATA_DIR={self.data_dir}", f"VIETER_AGENT_NAME={self.name}",
                 "VIETER_BUILD_NETWORK=host", "VIETER_POLLING_FREQUENCY=2",
                 f"VIETER_MAX_CONCURRENT_BUILDS={self.slots}",
                 f"VIETER_PREPARE_SCRIPT={self.data_dir}/prepare.sh",
                 "VIETER_MAKEPKG_ARGS=--nodeps", "VIETER_LOG_LEVEL=INFO",
                 AGENT_PYTHON, "-m", "vieter_lite", "agent"],
                cwd=self.data_dir, stdout=out, stderr=subprocess.STDOUT)
        self.lives += 1

    def service(self) -> dict[str, Any] | None:
        """The private Podman service it recorded (pid, start, dir), if any."""
        try:
            return json.loads((self.data_dir / "podman-service.json").read_text())
        except (OSError, ValueError):
            return None

    def owner(self) -> str | None:
        """The owner label of this life's containers."""
        try:
            return (self.data_dir / "owners").read_text().split()[-1]
        except (OSError, IndexError):
            return None

    def note(self) -> None:
        """Note this life's owner label and podman service (before it is killed)."""
        owner, service = self.owner(), self.service()
        if owner:
            self.owners_seen.add(owner)
        if service and service not in self.services_seen:
            self.services_seen.append(service)

    def kill(self) -> None:
        assert self.proc is not None
        self.note()
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        self.note()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)  # second signal: hand back
                return self.proc.wait(timeout=60)
        return self.proc.returncode


def service_processes(record: dict[str, Any] | None) -> list[int]:
    """The live processes of a recorded Podman service's process group."""
    if not record:
        return []
    pgid = int(record["pid"])
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


# --- the soak --------------------------------------------------------------------------------

REPO = "soak"
CLIENTS = 8
VERSIONS = 4  # versions of each name a client publishes before it takes a new name


def retrying(stop: threading.Event, call: Any, tries: int = 200) -> Any:
    """call(), tried again while the server cannot be reached (it is being restarted)."""
    for _ in range(tries):
        try:
            return call()
        except ClientError as exc:
            if exc.status not in (0, 502, 503) or stop.is_set():
                raise
        time.sleep(0.3)
    return call()


def desc_sha256(desc: str) -> str | None:
    match = re.search(r"%SHA256SUM%\n([0-9a-f]{64})", desc)
    return match.group(1) if match else None


def parse_db(data: bytes) -> dict[str, str]:
    """{name-version: sha256} of a repo .db archive (any compression tarfile reads; else
    bsdtar): raises on a broken archive."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data))  # noqa: SIM115 - closed below
    except tarfile.ReadError:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["bsdtar", "-xf", "-", "-C", tmp], input=data, check=True,
                           capture_output=True)
            found = {}
            for desc in Path(tmp).glob("*/desc"):
                found[desc.parent.name] = desc_sha256(desc.read_text()) or ""
            return found
    entries: dict[str, str] = {}
    with tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith("/desc"):
                handle = tar.extractfile(member)
                text = handle.read().decode() if handle else ""
                if "%NAME%" not in text:
                    raise ValueError(f"{member.name} holds no %NAME%")
                entries[member.name.split("/")[0]] = desc_sha256(text) or ""
    return entries


@dataclass
class Report:
    ops: Counter = field(default_factory=Counter)      # operations done, per kind
    faults: Counter = field(default_factory=Counter)   # faults injected, per kind
    errors: Counter = field(default_factory=Counter)   # expected errors (server down, ...)
    lost: list[str] = field(default_factory=list)      # anything lost or broken: must be empty
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds, kB) of the server
    fds: dict[str, int | None] = field(default_factory=dict)
    builds: Counter = field(default_factory=Counter)   # final states

    def figures(self) -> str:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.ops.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        builds = ", ".join(f"{k} {v}" for k, v in sorted(self.builds.items()))
        kb = [k for _t, k in self.rss] or [0]
        lines = [f"operations: {ops}", f"faults: {faults or 'none'}",
                 f"expected errors while the server was down: {errors or 'none'}",
                 f"builds: {builds}",
                 f"server RSS (kB): start {kb[0]}, peak {max(kb)}, end {kb[-1]}",
                 "server fds (last life): " + ", ".join(f"{k} {v}" for k, v in self.fds.items()),
                 f"lost: {len(self.lost)}"]
        lines += [f"  LOST: {what}" for what in self.lost[:30]]
        if len(self.lost) > 30:
            lines.append(f"  ... and {len(self.lost) - 30} more")
        return "\n".join(lines)


class Soak:
    """Clients and faults against one server and one agent for `seconds`, then the checks."""

    def __init__(self, base: Path, seconds: float, seed: int | None = None,
                 build_seconds: int = 3, fault_every: float = 12.0):
        self.base = base
        self.seconds = seconds
        self.random = random.Random(seed)
        self.build_seconds = build_seconds
        self.fault_every = fault_every
        self.server = Server(base)
        self.agent = AgentProcess(base, self.server.url)
        self.report = Report()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[str, tuple[int, str]] = {}  # name -> (newest acked version, sha256)
        self.sent_after: dict[str, int] = {}  # name -> newest version sent (acked or not)
        self.build_ids: list[int] = []
        self.expected_build: dict[int, str] = {}  # build id -> name-version it publishes
        self.container_killed: set[int] = set()   # builds whose container was killed
        self.agent_killed: set[int] = set()       # builds running when the agent was killed
        self.followed: dict[int, str] = {}        # build id -> the log a follower saw
        self.db_copies = base / "dbs"
        self.published = [0] * CLIENTS  # publishes sent, per client
        self.submitted = 0  # builds submitted

    # helpers

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.server.url, API_KEY, timeout=timeout)

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.report.ops[kind] += n

    def expected_error(self, kind: str) -> None:
        with self.lock:
            self.report.errors[kind] += 1

    def lose(self, what: str) -> None:
        with self.lock:
            self.report.lost.append(what)

    def loop(self, name: str, body: Any) -> None:
        """Run body() until the stop; an unexpected exception is a finding."""
        while not self.stop.is_set():
            try:
                body()
            except ClientError as exc:
                if exc.status in (0, 502, 503):
                    self.expected_error(name)
                    self.stop.wait(0.2)
                else:
                    self.lose(f"{name}: the server answered {exc.status}: {exc}")
                    self.stop.wait(1)
            except Exception as exc:  # noqa: BLE001 - recorded, the soak goes on
                self.lose(f"{name}: {type(exc).__name__}: {exc}")
                self.stop.wait(1)

    # the clients

    def publisher(self, index: int) -> None:
        work = self.base / f"publisher-{index}"
        work.mkdir(exist_ok=True)
        api = self.client()

        def one() -> None:
            n = self.published[index]
            self.published[index] += 1
            name = f"soak-c{index}-{n // VERSIONS}"
            version = f"{n % VERSIONS + 1}-1"
            path = make_synthetic_package(
                work / f"{name}-{version}-any.pkg.tar.zst",
                {"pkgname": name, "pkgbase": name, "pkgver": version, "arch": "any",
                 "pkgdesc": f"soak package {n}", "size": "1", "builddate": str(int(time.time())),
                 "packager": "Soak <soak@example.invalid>"},
                {f"usr/share/{name}/data": os.urandom(self.random.randrange(10, 20000))})
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            with self.lock:
                self.sent_after[name] = n % VERSIONS + 1
            for attempt in range(400):
                try:
                    api.publish(REPO, path)
                except ClientError as exc:
                    if exc.status in (0, 502, 503) and not self.stop.is_set():
                        self.expected_error("publish")
                        time.sleep(0.3)
                        continue
                    if exc.status == 409 and attempt:
                        # an earlier try was stored but its answer lost: not acknowledged
                        self.count("publish (stored, answer lost)")
                        break
                    raise
                with self.lock:
                    self.acked[name] = (n % VERSIONS + 1, sha)
                self.count("publish")
                break
            path.unlink()

        self.loop(f"publisher {index}", one)

    def syncer(self) -> None:
        root = self.base / "pacman"
        pacman = PacmanClient(root, {REPO: f"{self.server.url}/$repo/$arch"})
        self.db_copies.mkdir(exist_ok=True)
        synced = root / "var/lib/pacman/sync" / f"{REPO}.db"

        def one() -> None:
            done = pacman.run("-Syy", check=False)
            if done.returncode != 0:
                self.expected_error("pacman sync")
                self.stop.wait(0.5)
                return
            data = synced.read_bytes()
            try:
                parse_db(data)
            except Exception as exc:  # noqa: BLE001 - a broken db is a finding
                copy = self.db_copies / f"broken-{time.time():.3f}.db"
                copy.write_bytes(data)
                self.lose(f"pacman downloaded a db that does not parse ({exc}): {copy}")
            self.count("pacman sync")
            self.stop.wait(0.3)

        self.loop("pacman", one)

    def builder(self) -> None:
        api = self.client()

        def one() -> None:
            queued = [b for b in api.list_v2("/api/v2/builds", {"states": "queued"})]
            if len(queued) >= 2:
                self.stop.wait(1)
                return
            self.submitted += 1
            n = self.submitted
            name = f"soak-build-{n}"
            text = json.dumps({"repo": REPO, "arch": "x86_64",
                               "source": {"pkgbuild": pkgbuild(name, "1", self.build_seconds)}})
            try:
                build = api.submit_build({"manifest": text, "execute": True, "note": name})
            except ClientError as exc:
                if exc.status == 0:  # maybe created: found by its note at the end
                    self.expected_error("build submit")
                    with self.lock:
                        self.expected_build[-n] = name
                    return
                raise
            with self.lock:
                self.build_ids.append(int(build["id"]))
                self.expected_build[int(build["id"])] = f"{name}-1-1"
            self.count("build queued")

        self.loop("builder", one)

    def follower(self) -> None:
        api = self.client()

        def one() -> None:
            running = api.list_v2("/api/v2/builds", {"states": "running"})
            candidates = [b["id"] for b in running if b["id"] not in self.followed]
            if not candidates:
                self.stop.wait(0.5)
                return
            build_id = candidates[0]
            text = ""
            self.followed[build_id] = ""
            for event in api.follow_log(build_id, sleep=lambda s: self.stop.wait(min(s, 1))):
                if event.name == "reset":
                    text = ""
                elif event.name == "done":
                    break
                elif not event.name and event.data:
                    text += event.data
                if self.stop.is_set():
                    return
            self.followed[build_id] = text
            self.count("log followed")

        self.loop("follower", one)

    def lister(self) -> None:
        api = self.client()
        queries = [("/api/v2/builds", {"order_by": "-id"}),
                   ("/api/v2/builds", {"states": "success,failed"}),
                   ("/api/v2/builds", {"label_selector": "x"}),
                   ("/api/v2/agents", {}),
                   ("/api/v2/builds", {"states": "running"})]

        def one() -> None:
            path, params = self.random.choice(queries)
            try:
                api.call_v2("GET", path, {**params, "per_page": 20})
            except ClientError as exc:
                if exc.status != 400:  # a query this server does not know: a clear 400
                    raise
            self.count("v2 list")
            self.stop.wait(0.2)

        self.loop("lister", one)

    def sampler(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(1.0):
            if self.server.proc is None or self.server.proc.poll() is not None:
                continue
            rss = proc_status(self.server.pid, "VmRSS")
            if rss is not None:
                with self.lock:
                    self.report.rss.append((time.monotonic() - start, rss))

    # the faults

    def running_builds(self) -> list[int]:
        with contextlib.suppress(ClientError):
            return [b["id"] for b in self.client(10).list_v2("/api/v2/builds",
                                                                 {"states": "running"})]
        return []

    KINDS = ("server", "agent", "server", "container")

    def fault(self, kind: str) -> None:
        if kind == "server":
            with self.lock:
                self.report.faults["server SIGKILL"] += 1
            self.report.fds[f"life {self.server.lives} end"] = fd_count(self.server.pid)
            self.server.kill()
            self.server.start()
            self.report.fds[f"life {self.server.lives} start"] = fd_count(self.server.pid)
            return
        running: list[int] = []
        for _ in range(30):  # a build that runs in a container, if one comes soon
            running = [b for b in self.running_builds()
                       if containers(f"{BUILD_LABEL}={b}")]
            if running or self.stop.wait(1):
                break
        if not running:
            return
        build_id = self.random.choice(running)
        if kind == "agent":
            with self.lock:
                self.report.faults["agent SIGKILL"] += 1
                self.agent_killed.update(running)
            self.agent.kill()
            self.agent.start()
        else:
            for cid in containers(f"{BUILD_LABEL}={build_id}"):
                if podman("kill", cid, check=False).returncode == 0:
                    with self.lock:
                        self.report.faults["container kill"] += 1
                        self.container_killed.add(build_id)

    def faults(self) -> None:
        turn = self.random.randrange(len(self.KINDS))
        while not self.stop.wait(self.random.uniform(0.5, 1.5) * self.fault_every):
            turn += 1
            try:
                self.fault(self.KINDS[turn % len(self.KINDS)])
            except Exception as exc:  # noqa: BLE001
                self.lose(f"fault injection: {type(exc).__name__}: {exc}")

    # the run

    def phase(self, seconds: float, faults: bool) -> None:
        """The clients (and the faults) for `seconds`."""
        self.stop.clear()
        threads = [threading.Thread(target=self.publisher, args=(i,), name=f"publisher-{i}")
                   for i in range(CLIENTS)]
        threads += [threading.Thread(target=f, name=f.__name__) for f in
                    (self.syncer, self.builder, self.follower, self.lister, self.sampler)]
        if faults:
            threads.append(threading.Thread(target=self.faults, name="faults"))
        for thread in threads:
            thread.start()
        try:
            self.stop.wait(seconds)
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=300)

    def run(self, coda: float = 15.0) -> Report:
        """The soak with faults; then a last server life without faults (its fds are
        counted: at its start, after a first request of each kind, and after a quiet
        period at its end); then a last SIGKILL and restart, and the checks."""
        self.server.start()
        self.agent.start()
        try:
            self.phase(self.seconds, faults=True)
            self.server.kill()
            self.server.start()
            self.report.faults["server SIGKILL"] += 1
            self.phase(2.0, faults=False)  # a first request of each kind (threads, dbs)
            self.quiet(self.client())
            self.report.fds["start of last life"] = fd_count(self.server.pid)
            self.phase(coda, faults=False)
            self.quiet(self.client())
            self.check_fds()
            self.agent.stop()
            self.check_agent_left_nothing()
            self.server.kill()  # a last crash: the restart must leave no temp or orphan file
            self.server.start()
            self.check_builds(self.client())
            self.check_publishes()
        finally:
            with contextlib.suppress(Exception):
                self.agent.stop()
            with contextlib.suppress(Exception):
                self.server.stop()
        return self.report

    def quiet(self, api: Client) -> None:
        """The builds end, the clients' connections close."""
        self.settle(api)
        time.sleep(2)

    def settle(self, api: Client, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            open_ = retrying(self.stop, lambda: api.list_v2("/api/v2/builds",
                                                            {"states": "queued,running"}))
            if not open_:
                return
            time.sleep(1)
        self.lose(f"builds still open after {timeout:g} s of quiet")

    def check_fds(self) -> None:
        """The last life's fd count at its start came back after a quiet period."""
        pid = self.server.pid
        self.report.fds["now"] = fd_count(pid)
        baseline = self.report.fds.get("start of last life")
        if baseline is None:
            return
        for _ in range(120):  # keep-alive connections of the stopped clients close
            if (fd_count(pid) or 0) <= baseline:
                break
            time.sleep(0.5)
        self.report.fds["after quiet"] = fd_count(pid)
        if (self.report.fds["after quiet"] or 0) > baseline:
            self.lose(f"server fds: {baseline} at the start of its life, "
                      f"{self.report.fds['after quiet']} after a quiet minute")

    def check_agent_left_nothing(self) -> None:
        """After its last (clean) stop: none of the containers any of its lives made, no
        process of any of its podman services."""
        for owner in self.agent.owners_seen:
            for cid in containers(f"{OWNER_LABEL}={owner}"):
                self.lose(f"container {cid} of agent run {owner} is left")
        for record in self.agent.services_seen:
            if service_processes(record):
                self.lose(f"the podman service {record['pid']} of an agent run is left")

    def check_builds(self, api: Client) -> None:
        builds = api.list_v2("/api/v2/builds")
        by_id = {b["id"]: b for b in builds}
        notes = Counter(b.get("note") for b in builds)
        for build in builds:
            self.report.builds[build["status"]] += 1
            if build["status"] not in FINAL:
                self.lose(f"build {build['id']} is {build['status']} after the quiet")
        for note, n in notes.items():
            if n > 1 and note not in {v for k, v in self.expected_build.items() if k < 0}:
                self.lose(f"{n} builds of {note}")
        for build_id in self.build_ids:
            build = by_id.get(build_id)
            if build is None:
                self.lose(f"build {build_id} is gone")
                continue
            if build_id in self.container_killed:
                continue  # its container was killed: it may fail
            tasks = {t["name"]: t["status"] for t in build.get("tasks", [])}
            if build["status"] == "success" and set(tasks.values()) != {"success"}:
                # a build handed back after its killed run had published ends at the skip
                # check (every package is published at its version): build, publish skipped
                skipped = b"::vieter-skip::" in api.build_log(build_id) and \
                    tasks.get("build") == tasks.get("publish") == "skipped"
                if skipped:
                    self.report.ops["builds skipped (published before their agent's kill)"] += 1
                else:
                    self.lose(f"build {build_id} succeeded with tasks {tasks}")
            if build["status"] != "success":
                self.lose(f"build {build_id} ended {build['status']}"
                          + (" (its agent had been killed)" if build_id in self.agent_killed
                             else ""))
        handed_back = 0
        for build_id in sorted(by_id):
            v1 = api.get_build(build_id)
            if v1.get("expiries"):  # its agent lived, yet it stopped reporting: built twice
                self.lose(f"build {build_id} lost its lease {v1['expiries']} time(s): it ran "
                          "again from the start")
            if build_id in self.agent_killed and \
                    b"handed the build back" in api.build_log(build_id):
                handed_back += 1
        self.report.ops["builds handed back after an agent kill"] = handed_back
        for build_id, text in self.followed.items():
            if not text:
                continue
            final = api.build_log(build_id).decode(errors="replace")
            if text.rstrip("\n") != final.rstrip("\n"):
                self.lose(f"the follower of build {build_id} saw {len(text)} chars, the log "
                          f"holds {len(final)}")

    def check_publishes(self) -> None:
        data = self.server.data_dir
        tmp = [p for p in (data / "tmp").iterdir()] if (data / "tmp").exists() else []
        for path in tmp:
            self.lose(f"temp file left after a restart: {path}")
        for path in data.rglob(".tmp.*"):
            self.lose(f"temp file left after a restart: {path}")
        db = sqlite3.connect(f"file:{data / 'vieter.sqlite'}?mode=ro", uri=True)
        rows = {name: (version, data / "pkgs" / REPO / arch / filename, desc)
                for name, arch, version, filename, desc in
                db.execute("SELECT name, arch, version, filename, desc FROM packages "
                           "WHERE repo = ?", (REPO,))}
        db.close()
        files = set((data / "pkgs" / REPO).glob("*/*"))
        wanted = {path for _v, path, _d in rows.values()}
        for orphan in sorted(files - wanted - {p.with_name(p.name + ".sig") for p in wanted}):
            self.lose(f"orphan package file after a restart: {orphan}")
        for name, (version, sha) in self.acked.items():
            row = rows.get(name)
            if row is None:
                self.lose(f"acknowledged {name} {version} is not in the db")
                continue
            db_version = int(row[0].split("-")[0])
            if db_version < version:
                self.lose(f"acknowledged {name} {version} was replaced by {row[0]}")
            elif db_version == version:
                path = row[1]
                if desc_sha256(row[2]) != sha:
                    self.lose(f"{name} {version}: the db's sha256 is not the published one")
                if not path.exists():
                    self.lose(f"{name} {version}: its file {path.name} is missing")
                elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                    self.lose(f"{name} {version}: its file's sha256 is not the published one")
        self.report.ops["names checked"] = len(self.acked)
