"""The only module that talks to Podman.

A private rootless API service, and containers over podman-py.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

log = logging.getLogger(__name__)

OutputFn = Callable[[bytes], None]
CopyFn = Callable[[Iterable[bytes]], Any]  # receives the tar stream of a container path
LABEL = "io.vieter-lite.role"  # set on every container this module creates ("build", "image")
OWNER_LABEL = "io.vieter-lite.owner"  # which Podman instance created it
SERVICE_LOG = "service.log"  # the API service's output, in its private dir


class PodmanError(Exception):
    """Podman could not do what was asked.

    The message is a one-line reason (plus output, if any).
    """


class BuildTimeout(PodmanError):
    """The container ran past its timeout and was killed (and removed)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"killed after the timeout of {timeout:g}s")
        self.timeout = timeout


class ImageRef(NamedTuple):
    ref: str
    created: datetime  # UTC


def platform_fields(platform: str) -> dict[str, str]:
    """`linux/arm64[/v8]` as libpod's container spec names it (nothing for '')."""
    if not platform:
        return {}
    parts = platform.split("/")
    fields = {"image_os": parts[0], "image_arch": parts[1] if len(parts) > 1 else ""}
    if len(parts) > 2 and parts[2]:
        fields["image_variant"] = parts[2]
    return {k: v for k, v in fields.items() if v}


def prepare_body(body: dict[str, Any]) -> str:
    from podman.api import prepare_body as podman_body

    return str(podman_body(body))


def split_ref(ref: str) -> tuple[str, str]:
    """`registry:5000/name:tag` -> (`registry:5000/name`, `tag`); the tag defaults to `latest`."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


# --- the service -----------------------------------------------------------------------------

class PodmanService:
    """A private `podman system service` on a unix socket in a fresh 0700 temp dir.

    With `url` set, nothing is started: `start()` only checks that the service answers.
    `user` (root only) runs the service as that user (setpriv), the way the agent's
    podman must run (its HOME, no XDG_RUNTIME_DIR); normally the agent already runs as the
    build user and leaves it None.
    """

    def __init__(self, url: str | None = None, *, user: str | None = None,
                 podman: str = "podman", start_timeout: float = 30.0,
                 on_start: Callable[[int, Path], None] | None = None) -> None:
        self.configured_url = url
        self.on_start = on_start  # told the service's pid and dir once it started
        self.user = user
        self.podman = podman
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self.url = url or ""

    @property
    def log_path(self) -> Path | None:
        return self.dir / SERVICE_LOG if self.dir else None

    def start(self) -> str:
        if self.configured_url:
            wait_for_ping(self.configured_url, self.start_timeout)
            return self.configured_url
        if self.proc is not None:
            return self.url
        argv, env, cwd, owner = self._command()
        self.dir = Path(tempfile.mkdtemp(prefix="vieter-podman-"))
        log_path = self.dir / SERVICE_LOG
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        sock = self.dir / "podman.sock"
        self.url = f"unix://{sock}"
        with open(log_path, "wb") as out:
            try:
                self.proc = subprocess.Popen(
                    argv + [self.podman, "system", "service", "--time=0", self.url],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env, cwd=cwd, start_new_session=True)
            except OSError as exc:
                self._remove_dir()
                raise PodmanError(f"cannot start podman ({self.podman}): {exc}") from exc
        log.info("started podman service pid %d at %s", self.proc.pid, self.url)
        if self.on_start is not None:
            self.on_start(self.proc.pid, self.dir)
        try:
            wait_for_ping(self.url, self.start_timeout, self.proc, sock)
        except PodmanError as exc:
            output = log_path.read_text(errors="replace").strip()[-2000:]
            self.stop()
            raise PodmanError(f"{exc}; service output: {output or '(none)'}") from None
        return self.url

    def _command(self) -> tuple[list[str], dict[str, str], str | None, pwd.struct_passwd | None]:
        # The service needs none of the agent's own settings (its api_key among them).
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
        env.pop("CONTAINER_HOST", None)
        me = pwd.getpwuid(os.getuid())
        if self.user is None or self.user in (me.pw_name, str(me.pw_uid)):
            # A runtime dir that is not our own 0700 dir breaks rootless podman; without one
            # podman falls back to /tmp/podman-run-<uid>.
            rt = env.get("XDG_RUNTIME_DIR")
            if rt:
                try:
                    st = os.stat(rt)
                    if st.st_uid != os.getuid() or st.st_mode & 0o077:
                        env.pop("XDG_RUNTIME_DIR")
                except OSError:
                    env.pop("XDG_RUNTIME_DIR")
            return [], env, None, None
        if os.getuid() != 0:
            raise PodmanError(f"only root can run the podman service as {self.user!r}")
        try:
            owner = pwd.getpwnam(self.user)
        except KeyError:
            raise PodmanError(f"no such user {self.user!r}") from None
        # setpriv execs (runuser forks and, on SIGTERM, sleeps 2 s before it returns).
        prefix = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups",
                  "env", "-u", "XDG_RUNTIME_DIR", f"HOME={owner.pw_dir}", f"USER={owner.pw_name}",
                  f"LOGNAME={owner.pw_name}"]
        return prefix, env, owner.pw_dir, owner

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the service and its process group (podman re-execs itself in a child)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
            deadline = time.monotonic() + timeout
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _group_alive(proc.pid):
                _signal_group(proc.pid, signal.SIGKILL)
            log.info("stopped podman service pid %d", proc.pid)
        self._remove_dir()

    def _remove_dir(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PodmanService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group is left."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_for_ping(url: str, timeout: float, proc: subprocess.Popen | None = None,
                  sock: Path | None = None) -> None:
    """Wait until the service at `url` answers a ping; PodmanError after `timeout` seconds."""
    from podman import PodmanClient

    if sock is None and url.startswith("unix://"):
        sock = Path(url[len("unix://"):])
    deadline = time.monotonic() + timeout
    last = "no answer"
    with PodmanClient(base_url=url, timeout=5) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                raise PodmanError(f"podman service exited with {proc.returncode}")
            if sock is not None and not sock.exists():
                last = f"no socket {sock}"  # (podman-py leaks a socket per failed connect)
            else:
                try:
                    if client.ping():
                        return
                    last = "ping was not OK"
                except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                    last = _reason(exc)
            if time.monotonic() >= deadline:
                raise PodmanError(
                    f"podman service at {url} did not answer within {timeout:g}s: {last}")
            time.sleep(0.05)


# --- the API ---------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    """One line saying why a podman-py call failed."""
    chain, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for e in chain:  # a dead or missing socket: requests wraps the OSError several times
        if type(e).__name__ in ("ConnectionError", "ConnectionRefusedError", "FileNotFoundError"):
            errno = re.search(r"\[Errno \d+\] ([^'\")\]]+)", " ".join(str(x) for x in chain))
            return f"cannot connect to the podman service ({errno.group(1) if errno else e})"
    explanation = getattr(exc, "explanation", None)
    text = explanation or str(exc) or type(exc).__name__
    status = getattr(exc, "status_code", None)
    text = " ".join(str(text).split())
    return f"{text} (HTTP {status})" if status else text


class Podman:
    """Images and build containers through a Podman API socket (`unix:///.../podman.sock`)."""

    def __init__(self, url: str, timeout: float = 600.0, platform: str = "") -> None:
        from podman import PodmanClient

        self.url = url
        # os/arch[/variant] of every container and image made here (an arch built under
        # qemu-user emulation, e.g. linux/arm64 on x86_64); empty: the machine's own
        self.platform = platform
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # OWNER_LABEL of its containers
        self._client = PodmanClient(base_url=url, timeout=timeout)
        # Log streams can stay silent for long (a quiet compile): no read timeout there.
        self._stream_client = PodmanClient(base_url=url)

    def close(self) -> None:
        self._client.close()
        self._stream_client.close()

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except PodmanError:
            raise
        except Exception as exc:  # podman-py and requests errors -> one-line PodmanError
            raise PodmanError(f"{what}: {_reason(exc)}") from exc

    @staticmethod
    def _status(exc: BaseException | None) -> int | None:
        response = getattr(exc, "response", None)
        return getattr(exc, "status_code", None) or getattr(response, "status_code", None)

    def ping(self) -> None:
        with self._call(f"ping {self.url}"):
            if not self._client.ping():
                raise PodmanError(f"ping {self.url}: the service did not answer OK")

    def info(self) -> dict[str, Any]:
        """`podman info` of the service (host, store, ... in libpod's lowerCamel keys)."""
        with self._call("info"):
            return dict(self._client.info())

    def version(self) -> str:
        with self._call("version"):
            return str(self._client.version().get("Version", ""))

    # images

    def image_exists(self, ref: str) -> bool:
        with self._call(f"check image {ref}"):
            return bool(self._client.images.exists(ref))

    def images(self, prefix: str = "") -> list[ImageRef]:
        """Tagged images whose reference starts with `prefix`, oldest first."""
        found = []
        with self._call("list images"):
            for image in self._client.images.list():
                created = datetime.fromtimestamp(int(image.attrs.get("Created") or 0), UTC)
                names = image.attrs.get("Names") or image.attrs.get("RepoTags") or []
                found += [ImageRef(n, created) for n in names if n.startswith(prefix)]
        return sorted(found, key=lambda i: (i.created, i.ref))

    def remove_image(self, ref: str, force: bool = False) -> bool:
        """Remove a tag/image; False when it does not exist. An image in use raises PodmanError."""
        from podman.errors import NotFound

        try:
            with self._call(f"remove image {ref}"):
                self._client.images.remove(ref, force=force)
        except PodmanError as exc:
            if isinstance(exc.__cause__, NotFound) or self._status(exc.__cause__) == 404:
                return False
            raise
        return True

    def build_image(self, base_ref: str, tag: str, prepare_script: str,
                    timeout: float | None = 3600.0, on_output: OutputFn | None = None,
                    network: str | None = None) -> None:
        """Run `sh -c prepare_script` as root in `base_ref` and commit the result as `tag`."""
        tail: collections.deque[bytes] = collections.deque(maxlen=200)

        def collect(chunk: bytes) -> None:
            tail.append(chunk)
            if on_output is not None:
                on_output(chunk)

        container = self._create(base_ref, ["sh", "-c", prepare_script], None, "root", "/", "image",
                                 network)
        try:
            code = self._supervise(container, timeout, collect)
            if code != 0:
                lines = b"".join(tail).decode(errors="replace").rstrip().splitlines()[-20:]
                raise PodmanError(f"preparing {tag} from {base_ref}: the script exited with {code}"
                                  + "".join(f"\n  {line}" for line in lines))
            repository, version = split_ref(tag)
            with self._call(f"commit {tag}"):
                container.commit(repository=repository, tag=version,
                                 changes=['CMD ["/bin/bash"]', "WORKDIR /"])
        finally:
            self._remove_container(container)
        log.info("built image %s from %s", tag, base_ref)

    # containers

    def run(self, image: str, command: list[str], env: dict[str, str] | None = None,
            user: str | None = None, workdir: str | None = None, timeout: float | None = None,
            on_output: OutputFn | None = None, network: str | None = None,
            copy_out: tuple[str, CopyFn] | None = None,
            copy_in: tuple[str, bytes] | None = None, labels: dict[str, str] | None = None,
            on_create: Callable[[str], None] | None = None) -> int:
        """Run `command` in a fresh container and return its exit code.

        Output (stdout and stderr, in arrival order) goes to `on_output` while it runs. Past
        `timeout` seconds the container is killed and BuildTimeout raised. `network` is the
        network mode (None: containers.conf's). With `copy_in=(path, tar)`, the tar is
        unpacked at `path` in the created container before it starts. `on_create` gets the
        container's id before it starts (so another thread can kill() it; an exception it
        raises ends the run before the start). With `copy_out=(path, receive)`, after an
        exit 0 `receive` gets the tar stream of `path` in the stopped container: nothing
        runs in it any more while the files are read, and no host directory is shared
        with it (a bind mount would have to be writable by the build user, a subordinate
        uid on the host, and the build could plant links in it or fill the host's disk
        while it runs). The container is always removed; a container that kill() removed
        while it ran ends the run with the exit code -1.
        """
        container = self._create(image, list(command), env, user, workdir, "build", network,
                                 labels)
        try:
            if copy_in is not None:
                path, data = copy_in
                with self._call(f"copy into {path} of container {container.id[:12]}"):
                    response = self._client.api.put(f"/containers/{container.id}/archive",
                                                    params={"path": path}, data=data)
                    response.raise_for_status()
            if on_create is not None:
                on_create(container.id)
            code = self._supervise(container, timeout, on_output)
            if code == 0 and copy_out is not None:
                path, receive = copy_out
                what = f"copy {path} out of container {container.id[:12]}"
                with self._call(what):
                    chunks, _stat = container.get_archive(path)
                receive(self._guarded(chunks, what))  # receive's own errors pass unchanged
            return code
        finally:
            self._remove_container(container)

    def _guarded(self, chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
        """The chunks, with transport errors while reading them as PodmanError."""
        it = iter(chunks)
        while True:
            with self._call(what):
                chunk = next(it, None)
            if chunk is None:
                return
            yield chunk

    def _create(self, image: str, command: list[str], env: dict[str, str] | None,
                user: str | None, workdir: str | None, role: str,
                network: str | None = None, labels: dict[str, str] | None = None) -> Any:
        kwargs: dict[str, Any] = {"image": image, "command": command,
                                  "environment": dict(env or {}),
                                  "labels": {**(labels or {}), LABEL: role,
                                             OWNER_LABEL: self.owner},
                                  "log_config": {"Type": "json-file"}}
        if network:
            kwargs["network_mode"] = network
        if user:
            kwargs["user"] = user
        if workdir:
            kwargs["working_dir"] = workdir
        with self._call(f"create a container from {image}"):
            # podman-py drops `platform`: the body is podman-py's own, with libpod's
            # image_os/image_arch/image_variant added (the image is looked up for them)
            body = self._client.containers._render_payload(kwargs)
            body.update(platform_fields(self.platform))
            response = self._client.api.post("/containers/create", data=prepare_body(body),
                                             headers={"content-type": "application/json"})
            response.raise_for_status()
            return self._client.containers.get(response.json()["Id"])

    def _supervise(self, container: Any, timeout: float | None, on_output: OutputFn | None) -> int:
        with self._call(f"start container {container.id[:12]}"):
            container.start()
        started = time.monotonic()
        failure: list[BaseException] = []
        reader = threading.Thread(target=self._pump, args=(container.id, on_output, failure),
                                  name=f"podman-logs-{container.id[:12]}", daemon=True)
        reader.start()
        while True:
            # The log stream ends when the container exits, so a live reader means "still
            # running": inspect once a second then, and quickly once the stream has ended.
            remaining = None if timeout is None else started + timeout - time.monotonic()
            wait = 1.0 if reader.is_alive() else 0.05
            reader.join(wait if remaining is None else max(0.0, min(wait, remaining)))
            state = self._state(container)
            if not state.get("Running") and state.get("Status") not in ("created", "configured"):
                break
            if timeout is not None and time.monotonic() >= started + timeout:
                self._kill(container)
                reader.join(5)
                raise BuildTimeout(timeout)
        reader.join(30)  # drain what is left of the output
        if reader.is_alive():
            log.warning("output of container %s did not end", container.id[:12])
        if failure and state.get("Status") != "removed":  # a removed one's stream breaks off
            raise failure[0]
        return int(state.get("ExitCode", -1))

    def _pump(self, cid: str, on_output: OutputFn | None, failure: list[BaseException]) -> None:
        from podman.api import stream_frames

        what = f"read the output of container {cid[:12]}"
        response = None
        try:
            with self._call(what):
                response = self._stream_client.api.get(
                    f"/containers/{cid}/logs", stream=True,
                    params={"follow": True, "stdout": True, "stderr": True})
                response.raise_for_status()
                # stdout and stderr frames in arrival order; bytes only without demux
                frames = cast(Iterator[bytes], stream_frames(response))
            while True:
                with self._call(what):
                    chunk = next(frames, None)
                if chunk is None:
                    return
                if on_output is not None and chunk:
                    on_output(chunk)  # its own errors reach run()'s caller unchanged
        except BaseException as exc:  # noqa: BLE001 - handed to the supervising thread
            failure.append(exc)
        finally:
            if response is not None:
                response.close()

    def _state(self, container: Any) -> dict[str, Any]:
        """The container's state; one that is gone (kill() removed it) has exited."""
        try:
            with self._call(f"inspect container {container.id[:12]}"):
                container.reload()
        except PodmanError as exc:
            if self._status(exc.__cause__) == 404:
                return {"Running": False, "Status": "removed", "ExitCode": -1}
            raise
        return container.attrs.get("State") or {}

    def _kill(self, container: Any) -> None:
        with contextlib.suppress(PodmanError), self._call(f"kill container {container.id[:12]}"):
            container.kill(signal="SIGKILL")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(PodmanError):
                if not self._state(container).get("Running"):
                    return
            time.sleep(0.1)

    def _remove_container(self, container: Any) -> None:
        try:
            with self._call(f"remove container {container.id[:12]}"):
                container.remove(force=True, v=True)
        except PodmanError as exc:
            if self._status(exc.__cause__) != 404:
                log.warning("%s", exc)

    def kill(self, name_or_id: str) -> bool:
        """Kill one container at once (SIGKILL) and remove it, whatever its state; False
        when there is no such container. A run() of it then returns."""
        try:
            with self._call(f"find container {name_or_id}"):
                container = self._client.containers.get(name_or_id)
        except PodmanError as exc:
            if self._status(exc.__cause__) == 404:
                return False
            raise
        # a container that does not run (created, exited) refuses the signal: removed below
        with contextlib.suppress(PodmanError), self._call(f"kill container {name_or_id}"):
            container.kill(signal="SIGKILL")
        self._remove_container(container)
        return True

    def kill_all(self) -> None:
        """Kill every container this instance started (a hard stop); run() then returns."""
        for cid in self.containers():
            with contextlib.suppress(PodmanError), self._call(f"kill container {cid[:12]}"):
                self._client.containers.get(cid).kill(signal="SIGKILL")

    def remove_owned(self, owner: str) -> int:
        """Kill and remove every container labelled with `owner` (another instance's: one
        of a run that was killed); returns how many there were."""
        with self._call("list containers"):
            found = self._client.containers.list(all=True,
                                                 filters={"label": f"{OWNER_LABEL}={owner}"})
        for container in found:
            log.warning("removing container %s (%s) that a killed run left", container.id[:12],
                        ", ".join(f"{k}={v}" for k, v in sorted(
                            (container.labels or {}).items()) if k != OWNER_LABEL))
            with contextlib.suppress(PodmanError), \
                    self._call(f"kill container {container.id[:12]}"):
                container.kill(signal="SIGKILL")
            self._remove_container(container)
        return len(found)

    def containers(self, mine: bool = True) -> list[str]:
        """Ids of the containers (any state) this instance (or, with mine=False, any instance
        of this module) created and has not removed yet."""
        label = f"{OWNER_LABEL}={self.owner}" if mine else LABEL
        with self._call("list containers"):
            found = self._client.containers.list(all=True, filters={"label": label})
        return [c.id for c in found]
