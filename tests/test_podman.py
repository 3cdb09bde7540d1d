"""agent/podman.py against real rootless Podman: a private `podman system service` run as the
agent user (as .ci/podman-setup configures it), images built by commit, and build containers
(output streaming, exit codes, timeouts, makepkg inside the image)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from vieter_lite.agent.podman import (
    BuildTimeout,
    Podman,
    PodmanError,
    PodmanService,
    platform_fields,
    split_ref,
)

ROOT = Path(__file__).resolve().parent.parent
AGENT_USER = os.environ.get("VIETER_AGENT_USER", "vieter-agent")
AGENT_PYTHON = os.environ.get("VIETER_AGENT_PYTHON", "/opt/vieter-lite-agent/bin/python")
BASE = os.environ.get("VIETER_TEST_BASE_IMAGE", "localhost/vieter-lite-test-base:latest")
# the same Debian for aarch64 (.ci/podman-setup builds it where qemu-user emulation works)
ARM64 = os.environ.get("VIETER_TEST_ARM64_IMAGE", "localhost/vieter-lite-test-base-arm64:latest")
BUILDER = f"localhost/vieter-lite-test-builder:{os.getpid()}"
MISSING = "localhost/vieter-lite-test-missing:0"

pytestmark = pytest.mark.integration


def _agent() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(AGENT_USER)
    except KeyError:
        return None


def _as_agent(*argv: str) -> list[str]:
    """argv run as the agent user the way the agent runs podman (its HOME, no XDG_RUNTIME_DIR)."""
    agent = _agent()
    assert agent is not None
    if os.getuid() == agent.pw_uid:
        return list(argv)
    return ["runuser", "-u", agent.pw_name, "--", "env", "-u", "XDG_RUNTIME_DIR",
            f"HOME={agent.pw_dir}", *argv]


def _why_skip() -> str | None:
    agent = _agent()
    if not shutil.which("podman"):
        return "podman is not installed (bash .ci/podman-setup)"
    if agent is None:
        return f"no user {AGENT_USER} (bash .ci/podman-setup)"
    if os.getuid() not in (0, agent.pw_uid):
        return f"runs as root (runuser) or as {AGENT_USER}"
    probe = subprocess.run(_as_agent("podman", "image", "exists", BASE), cwd=agent.pw_dir,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if probe.returncode != 0:
        return f"no base image {BASE} in {AGENT_USER}'s store (bash .ci/podman-setup)"
    return None


def _pause_pid(uid: int) -> int | None:
    """The rootless pause process (catatonit -P) of a user, when it is alive."""
    try:
        pid = int(Path(f"/tmp/podman-run-{uid}/libpod/tmp/pause.pid").read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError):
        return None
    return pid if state != "Z" else None


def _user_pids(uid: int) -> set[int]:
    """Live (non-zombie) processes owned by a user."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.parent.stat().st_uid == uid and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
                pids.add(int(stat.parent.name))
        except OSError:
            continue
    return pids


def _group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


# -- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def service():
    """The module's podman service, run as the agent user, started and stopped by PodmanService."""
    agent = _agent()
    pause_before = _pause_pid(agent.pw_uid) if agent else None  # before the probe makes one
    svc = None
    try:
        reason = _why_skip()
        if reason:
            pytest.skip(reason)
        svc = PodmanService(user=None if os.getuid() == agent.pw_uid else agent.pw_name)
        svc.start()
        yield svc
    finally:
        if svc is not None:
            svc.stop()
        # Rootless podman leaves a pause process behind: stop it if this module started it and
        # nothing else of the agent user (another test's agent, conmon) still runs in it.
        pause = _pause_pid(agent.pw_uid) if agent else None
        if pause is not None and pause != pause_before:
            deadline = time.monotonic() + 5  # conmon/cleanup of the last container linger briefly
            while _user_pids(agent.pw_uid) - {pause} and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _user_pids(agent.pw_uid) - {pause}:
                os.kill(pause, signal.SIGTERM)


@pytest.fixture(scope="module")
def pm(service):
    with Podman(service.url) as client:
        yield client
        assert client.containers() == [], "a container outlived its run()"


@pytest.fixture(scope="module")
def builder(pm):
    """A builder image made from the base image by build_image: a `build` user, /work, a marker."""
    script = textwrap.dedent("""\
        set -e
        useradd -m -u 1000 -s /bin/bash build
        mkdir -p /work && chown build:build /work
        echo "prepared by vieter-lite" > /etc/vieter-marker
        pacman -Q >/dev/null 2>&1 || true   # creates the local db (ALPM_DB_VERSION)
        sed -i "s/^PKGEXT=.*/PKGEXT='.pkg.tar.zst'/" /etc/makepkg.conf
        echo prepared
        """)
    output: list[bytes] = []
    started = time.monotonic()
    pm.build_image(BASE, BUILDER, script, timeout=120, on_output=output.append)
    print(f"build_image took {time.monotonic() - started:.2f}s")
    assert b"prepared" in b"".join(output)
    yield BUILDER
    assert pm.remove_image(BUILDER) is True
    assert pm.remove_image(BUILDER) is False


def run_collect(pm: Podman, image: str, command: list[str], **kwargs) -> tuple[int, str]:
    chunks: list[bytes] = []
    code = pm.run(image, command, on_output=chunks.append, **kwargs)
    return code, b"".join(chunks).decode()


# -- pure ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ref, expected", [
    ("localhost/vieter-build:20240101", ("localhost/vieter-build", "20240101")),
    ("registry:5000/img:tag", ("registry:5000/img", "tag")),
    ("registry:5000/img", ("registry:5000/img", "latest")),
    ("archlinux", ("archlinux", "latest")),
])
def test_split_ref(ref, expected):
    assert split_ref(ref) == expected


# -- the service --------------------------------------------------------------------------


def test_service_starts_answers_and_stops_its_process_group(service):
    agent = _agent()
    with PodmanService(user=service.user) as svc:
        assert svc.url.startswith("unix:///") and svc.dir is not None
        sock_dir, pgid = svc.dir, svc.proc.pid
        owner = {p: Path(f"/proc/{p}").stat().st_uid for p in _group_pids(pgid)}
        assert agent.pw_uid in owner.values(), f"no podman process runs as {AGENT_USER}: {owner}"
        with Podman(svc.url) as client:
            client.ping()
            assert client.version()
            assert client.image_exists(BASE)
    assert not sock_dir.exists()
    assert _group_pids(pgid) == [], "a podman service process outlived stop()"
    with (Podman(f"unix://{sock_dir}/podman.sock") as dead,
          pytest.raises(PodmanError, match="cannot connect")):
        dead.ping()


def test_service_gets_none_of_the_agents_settings(service, monkeypatch):
    """The agent's VIETER_* settings (its api_key among them) stay out of Podman's environment."""
    monkeypatch.setenv("VIETER_API_KEY", "agent-secret-key")
    monkeypatch.setenv("VIETER_ADDRESS", "http://server")
    with PodmanService(user=service.user) as svc:
        environs = []
        for pid in _group_pids(svc.proc.pid):
            try:
                environs.append(Path(f"/proc/{pid}/environ").read_bytes())
            except OSError:
                continue
        assert environs and not [e for e in environs if b"VIETER_" in e or b"agent-secret" in e]


def test_service_with_a_configured_url_starts_nothing(service, tmp_path):
    svc = PodmanService(service.url)
    assert svc.start() == service.url and svc.proc is None
    svc.stop()
    with Podman(service.url) as client:
        client.ping()  # the module's service is untouched
    with pytest.raises(PodmanError, match="did not answer within"):
        PodmanService(f"unix://{tmp_path}/none.sock", start_timeout=0.3).start()


def test_service_reports_a_podman_that_cannot_start(service):
    svc = PodmanService(user=service.user, podman="/nonexistent/podman", start_timeout=10)
    with pytest.raises(PodmanError, match="cannot start podman|podman service exited"):
        svc.start()
    assert svc.proc is None and svc.dir is None


def test_service_started_by_the_agent_user_itself(service, tmp_path):
    """The production path: the agent runs as the build user and starts its own service (no
    setpriv), here with the agent venv's python (.ci/podman-setup) and a readable copy of the code."""
    agent = _agent()
    if os.getuid() == agent.pw_uid:
        python, prefix = sys.executable, []
    else:
        python = AGENT_PYTHON
        # env -i: a clean environment, plus root's XDG_RUNTIME_DIR leaked on purpose
        # (PodmanService must drop a runtime dir that is not the user's own).
        prefix = ["runuser", "-u", agent.pw_name, "--", "env", "-i", f"HOME={agent.pw_dir}",
                  "PATH=/usr/local/bin:/usr/bin:/bin", "XDG_RUNTIME_DIR=/run/user/0"]
        if not os.access(python, os.X_OK):
            pytest.skip(f"{python} is missing (bash .ci/podman-setup creates it)")
    script = textwrap.dedent(f"""\
        import json, os
        from vieter_lite.agent.podman import Podman, PodmanService
        with PodmanService() as svc:
            with Podman(svc.url) as pm:
                out = []
                code = pm.run({BASE!r}, ["id", "-u"], on_output=out.append)
                info = dict(url=svc.url, dir=str(svc.dir), pgid=svc.proc.pid, uid=os.getuid(),
                            exists=pm.image_exists({BASE!r}), code=code,
                            out=b"".join(out).decode())
        print(json.dumps(info))
        """)
    work = Path(tempfile.mkdtemp(prefix="vieter-podman-test-"))  # tmp_path is root's 0700
    try:
        work.chmod(0o755)
        shutil.copytree(ROOT / "vieter_lite", work / "vieter_lite",
                        ignore=shutil.ignore_patterns("__pycache__"))
        proc = subprocess.run([*prefix, f"PYTHONPATH={work}", python, "-c", script] if prefix
                              else [python, "-c", script], cwd=work, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120,
                              env=None if prefix else {**os.environ, "PYTHONPATH": str(work)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["uid"] == agent.pw_uid and info["exists"] is True
    assert info["code"] == 0 and info["out"].strip() == "0"  # root in the container = the user outside
    assert not Path(info["dir"]).exists()
    assert _group_pids(info["pgid"]) == []


# -- images -------------------------------------------------------------------------------

def test_image_exists(pm):
    assert pm.image_exists(BASE) is True
    assert pm.image_exists(MISSING) is False


def test_build_image_commits_the_prepared_container(pm, builder):
    assert pm.image_exists(builder)
    listed = pm.images("localhost/vieter-lite-test-builder:")
    assert builder in [i.ref for i in listed]
    assert BASE not in [i.ref for i in listed]
    code, out = run_collect(pm, builder, ["sh", "-c", "cat /etc/vieter-marker; id -un; pwd"],
                            user="build", workdir="/work")
    assert (code, out) == (0, "prepared by vieter-lite\nbuild\n/work\n")
    code, out = run_collect(pm, builder, ["sh", "-c", "id -un; pwd"])  # the image's defaults
    assert (code, out) == (0, "root\n/\n")


def test_build_image_fails_with_the_script_output(pm):
    tag = f"localhost/vieter-lite-test-doomed:{os.getpid()}"
    with pytest.raises(PodmanError, match="exited with 4") as err:
        pm.build_image(BASE, tag, "echo step one; echo 'it broke' >&2; exit 4")
    assert "it broke" in str(err.value)
    assert not pm.image_exists(tag)
    assert pm.containers() == []


def test_build_image_from_a_missing_base(pm):
    with pytest.raises(PodmanError, match="image not known"):
        pm.build_image(MISSING, "localhost/vieter-lite-test-never:0", "true")


# -- containers ---------------------------------------------------------------------------

def test_run_streams_output_while_the_container_runs(pm):
    started = time.monotonic()
    seen: list[tuple[float, bytes]] = []
    code = pm.run(BASE, ["sh", "-c", "for i in 1 2 3 4 5; do echo $i; sleep 0.2; done"],
                  on_output=lambda chunk: seen.append((time.monotonic(), chunk)))
    returned = time.monotonic()
    assert code == 0
    assert b"".join(c for _, c in seen) == b"1\n2\n3\n4\n5\n"
    first = next(t for t, c in seen if c.startswith(b"1"))
    assert first < returned - 0.6, f"first output {returned - first:.2f}s before the end"
    times = [t for t, _ in seen]
    assert times[-1] - times[0] >= 0.5, "output came in one burst at the end"
    print(f"run with streaming: {returned - started:.2f}s, chunks at",
          [round(t - started, 2) for t in times])


def test_run_passes_env_user_and_workdir_and_mixes_stderr(pm):
    code, out = run_collect(pm, BASE, ["sh", "-c", 'echo "$GREETING"; echo oops >&2; pwd; id -u'],
                            env={"GREETING": "hello world"}, user="nobody", workdir="/tmp")
    assert code == 0
    lines = out.splitlines()  # stdout and stderr are separate pipes: "oops" may come anywhere
    assert sorted(lines) == sorted(["hello world", "oops", "/tmp", "65534"])
    assert [line for line in lines if line != "oops"] == ["hello world", "/tmp", "65534"]


def test_run_returns_the_exit_code(pm):
    assert pm.run(BASE, ["sh", "-c", "exit 3"]) == 3
    assert pm.run(BASE, ["true"]) == 0
    assert pm.containers() == []


def test_run_kills_and_removes_the_container_at_the_timeout(pm):
    started = time.monotonic()
    seen: list[bytes] = []
    with pytest.raises(BuildTimeout, match="timeout of 2s") as err:
        pm.run(BASE, ["sh", "-c", "echo going to sleep; sleep 30"], timeout=2, on_output=seen.append)
    elapsed = time.monotonic() - started
    assert isinstance(err.value, PodmanError) and err.value.timeout == 2
    assert 2 <= elapsed < 6, elapsed
    assert b"going to sleep" in b"".join(seen)
    assert pm.containers() == []


def test_run_with_a_missing_image_or_command(pm):
    with pytest.raises(PodmanError, match=f"{MISSING}.*image not known"):
        pm.run(MISSING, ["true"])
    with pytest.raises(PodmanError, match="start container"):
        pm.run(BASE, ["/no/such/program"])
    assert pm.containers() == []


def test_run_on_a_dead_socket(tmp_path):
    with Podman(f"unix://{tmp_path}/podman.sock") as dead:
        for call in (lambda: dead.run(BASE, ["true"]), lambda: dead.image_exists(BASE),
                     lambda: dead.images(), lambda: dead.build_image(BASE, "x:y", "true")):
            with pytest.raises(PodmanError, match="cannot connect to the podman service") as err:
                call()
            assert "\n" not in str(err.value)


def test_an_on_output_error_reaches_the_caller_and_the_container_goes(pm):
    def explode(chunk: bytes) -> None:
        raise ValueError("log sink full")

    with pytest.raises(ValueError, match="log sink full"):
        pm.run(BASE, ["echo", "hi"], on_output=explode)
    assert pm.containers() == []


def test_runs_in_parallel(pm):
    results: dict[int, int] = {}

    def one(n: int) -> None:
        results[n] = pm.run(BASE, ["sh", "-c", f"sleep 0.5; exit {n}"])

    threads = [threading.Thread(target=one, args=(n,)) for n in (1, 2, 3)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {1: 1, 2: 2, 3: 3}
    assert time.monotonic() - started < 5


PKGBUILD = textwrap.dedent("""\
    pkgname=hello-podman
    pkgver=1.2.3
    pkgrel=1
    pkgdesc='built by makepkg in a vieter-lite builder container'
    arch=('any')
    license=('MIT')
    depends=('bash')
    package() {
        install -Dm755 /dev/stdin "$pkgdir/usr/bin/hello-podman" <<'EOS'
    #!/bin/sh
    echo hello from podman
    EOS
    }
    """)


def test_makepkg_builds_a_package_as_build_in_the_builder_image(pm, builder):
    script = (f"mkdir /work/b && cd /work/b && cat > PKGBUILD <<'EOF'\n{PKGBUILD}EOF\n"
              "makepkg --nodeps --noconfirm && ls *.pkg.tar.zst && bsdtar -xOf *.pkg.tar.zst .PKGINFO")
    started = time.monotonic()
    code, out = run_collect(pm, builder, ["bash", "-ec", script], user="build", workdir="/work",
                            env={"LANG": "C.UTF-8"}, timeout=120)
    print(f"makepkg in the container: {time.monotonic() - started:.2f}s")
    assert code == 0, out
    assert "hello-podman-1.2.3-1-any.pkg.tar.zst" in out
    assert "pkgname = hello-podman" in out and "pkgver = 1.2.3-1" in out
    assert "depend = bash" in out


# -- copying the output out, network modes -------------------------------------------------

def test_copy_out_reads_a_directory_of_the_stopped_container(pm, tmp_path):
    from vieter_lite.agent.output import extract_packages

    taken: list[Path] = []
    code = pm.run(BASE, ["sh", "-c", "mkdir -p /o/sub && echo pkg > /o/a-1-1-any.pkg.tar.zst"
                         " && ln -s /etc/passwd /o/b-1-1-any.pkg.tar.zst"
                         " && echo x > /o/sub/c-1-1-any.pkg.tar.zst"],
                  copy_out=("/o", lambda chunks: taken.extend(extract_packages(chunks, tmp_path))))
    assert code == 0
    assert [p.name for p in taken] == ["a-1-1-any.pkg.tar.zst"]
    assert (tmp_path / "a-1-1-any.pkg.tar.zst").read_text() == "pkg\n"
    assert pm.containers() == []


def test_copy_out_is_not_called_after_a_failure(pm):
    called: list[object] = []
    assert pm.run(BASE, ["sh", "-c", "mkdir /o; exit 2"], copy_out=("/o", called.append)) == 2
    assert called == [] and pm.containers() == []


def test_copy_out_of_a_missing_path_is_a_podman_error(pm):
    with pytest.raises(PodmanError, match="copy /nowhere out of container"):
        pm.run(BASE, ["true"], copy_out=("/nowhere", lambda chunks: b"".join(chunks)))
    assert pm.containers() == []


def test_network_none_has_only_loopback(pm):
    code, out = run_collect(pm, BASE, ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"],
                            network="none")
    assert code == 0 and out.split() == ["lo"]
    code, out = run_collect(pm, BASE, ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"],
                            network="host")
    assert code == 0 and "lo" in out.split() and len(out.split()) > 1


# -- one container: files in before the start, killed by id --------------------------------

def test_copy_in_gives_files_to_the_created_container_before_it_starts(pm):
    from vieter_lite.agent import bundle

    files = [bundle.SourceFile("PKGBUILD", b"pkgname=in\n", bundle.REGULAR),
             bundle.SourceFile("sub/run.sh", b"echo ran\n", bundle.EXECUTABLE)]
    code, out = run_collect(pm, BASE, ["sh", "-c", "cat /vieter-source/PKGBUILD; "
                                       "sh /vieter-source/sub/run.sh; "
                                       "stat -c '%U %a %n' /vieter-source/sub/run.sh "
                                       "/vieter-source/PKGBUILD /vieter-source/sub"],
                            user="root", copy_in=("/", bundle.for_container(files,
                                                                            "vieter-source")))
    assert (code, out) == (0, "pkgname=in\nran\nroot 755 /vieter-source/sub/run.sh\n"
                              "root 644 /vieter-source/PKGBUILD\nroot 755 /vieter-source/sub\n")
    with pytest.raises(PodmanError, match="copy into / of container"):
        pm.run(BASE, ["true"], copy_in=("/", b"not a tar archive" * 64))
    assert pm.containers() == []


def test_on_create_sees_the_labelled_container_and_may_refuse_its_start(pm):
    seen: list[dict] = []

    def refuse(cid: str) -> None:
        seen.append(pm._client.containers.get(cid).labels)
        raise RuntimeError("not this one")

    with pytest.raises(RuntimeError, match="not this one"):
        pm.run(BASE, ["sh", "-c", "echo ran"], labels={"io.vieter-lite.build": "42"},
               on_create=refuse)
    assert seen[0]["io.vieter-lite.build"] == "42" and seen[0]["io.vieter-lite.role"] == "build"
    assert pm.containers() == []


def test_kill_ends_one_container_and_leaves_the_others(pm):
    ids: dict[str, str] = {}
    results: dict[str, int] = {}
    output: list[bytes] = []

    def run(name: str, command: str) -> None:
        results[name] = pm.run(BASE, ["sh", "-c", command], on_output=output.append,
                               on_create=lambda cid: ids.__setitem__(name, cid))

    victim = threading.Thread(target=run, args=("victim", "echo victim up; sleep 60"))
    other = threading.Thread(target=run, args=("other", "echo other up; sleep 4; exit 7"))
    victim.start()
    other.start()
    deadline = time.monotonic() + 60
    while b"victim up" not in b"".join(output) or b"other up" not in b"".join(output):
        assert time.monotonic() < deadline, b"".join(output)
        time.sleep(0.05)
    started = time.monotonic()
    assert pm.kill(ids["victim"]) is True
    killed = time.monotonic()
    gone_at = None
    while ids["victim"] in pm.containers():
        time.sleep(0.05)
    gone_at = time.monotonic()
    victim.join(30)
    returned = time.monotonic()
    assert not victim.is_alive() and results["victim"] != 0
    assert other.is_alive(), "the other container was stopped as well"
    other.join(30)
    assert results["other"] == 7
    assert pm.containers() == []
    assert pm.kill(ids["victim"]) is False  # no such container any more
    print(f"kill: {killed - started:.2f}s, gone after {gone_at - started:.2f}s, run() returned "
          f"after {returned - started:.2f}s (exit {results['victim']})")


def test_kill_of_a_created_container_removes_it_and_its_run_fails(pm):
    def kill_it(cid: str) -> None:
        assert pm.kill(cid) is True

    with pytest.raises(PodmanError, match="start container"):
        pm.run(BASE, ["sh", "-c", "echo ran"], on_create=kill_it)
    assert pm.containers() == []
    assert pm.kill("vieter-lite-no-such-container") is False


# -- platforms (an arch built under qemu-user emulation) -----------------------------------

@pytest.mark.parametrize("platform, fields", [
    ("", {}),
    ("linux/arm64", {"image_os": "linux", "image_arch": "arm64"}),
    ("linux/arm/v7", {"image_os": "linux", "image_arch": "arm", "image_variant": "v7"}),
])
def test_platform_fields(platform, fields):
    assert platform_fields(platform) == fields


def test_the_platform_goes_into_each_containers_spec(service):
    sent: list[dict] = []
    with Podman(service.url, platform="linux/amd64") as pm:
        post = pm._client.api.post

        def spy(path, *args, **kwargs):
            if path == "/containers/create":
                sent.append(json.loads(kwargs["data"]))
            return post(path, *args, **kwargs)

        pm._client.api.post = spy
        assert run_collect(pm, BASE, ["uname", "-m"], network="host") == (0, "x86_64\n")
    assert [(s["image_os"], s["image_arch"], s["image"]) for s in sent] == \
        [("linux", "amd64", BASE)]


def test_the_platform_picks_its_arch_from_a_manifest_list(service, pm):
    """One image name for every arch (as a registry's multi-arch image): each agent's
    platform picks its own; builder images made from it keep that arch."""
    probe = subprocess.run(_as_agent("podman", "image", "exists", ARM64), cwd="/",
                           capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"no {ARM64} (.ci/podman-setup builds it where qemu-user emulation works)")
    multi = f"localhost/vieter-lite-test-multi:{os.getpid()}"
    for argv in (["manifest", "create", multi],
                 ["manifest", "add", multi, f"containers-storage:{BASE}"],
                 ["manifest", "add", multi, f"containers-storage:{ARM64}"]):
        subprocess.run(_as_agent("podman", *argv), cwd="/", check=True, capture_output=True,
                       timeout=60)
    built = f"localhost/vieter-lite-test-built-arm64:{os.getpid()}"
    try:
        with Podman(service.url, platform="linux/arm64") as arm:
            assert run_collect(arm, multi, ["uname", "-m"], network="host") == (0, "aarch64\n")
            arm.build_image(multi, built, "uname -m > /built-on", timeout=300)
            assert run_collect(arm, built, ["cat", "/built-on"]) == (0, "aarch64\n")
        assert run_collect(pm, multi, ["uname", "-m"], network="host") == (0, "x86_64\n")
    finally:
        pm.remove_image(built)
        subprocess.run(_as_agent("podman", "manifest", "rm", multi), cwd="/",
                       capture_output=True, timeout=60)
