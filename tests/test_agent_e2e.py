"""End to end: a server and an agent (as a non-root user) build real PKGBUILDs in rootless
Podman from a git repository and a PKGBUILD URL, publish them, and pacman installs them."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import pwd
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent_env import AGENT_PYTHON, AGENT_USER, BASE_IMAGE, PREPARE, agent_ready  # noqa: F401
from conftest import API_KEY, ROOT, ServerProcess, free_port
from pacman_client import PacmanClient
from receivers import SmtpReceiver


def pkgbuild(base: str, version: str = "1.0", body: str = "", bin_arch: str = "x86_64") -> str:
    """A split package: a program (for bin_arch) and an any data package; build() talks
    slowly. A build for a test-only arch publishes only `any` packages (bin_arch="any"): a
    build token publishes its build's arch and `any` only."""
    return f"""pkgbase={base}
pkgname=({base}-bin {base}-data)
pkgver={version}
pkgrel=1
arch=('{bin_arch}')
options=(!debug !strip)
build() {{
    for step in 1 2 3; do echo "{base} build step $step"; sleep 1; done
    {body}
}}
package_{base}-bin() {{
    install -Dm755 /dev/stdin "$pkgdir/usr/bin/{base}" <<< 'echo {base} works'
}}
package_{base}-data() {{
    arch=('any')
    install -Dm644 /dev/stdin "$pkgdir/usr/share/{base}/data" <<< '{base} data'
}}
"""


pytestmark = pytest.mark.skipif(agent_ready() is not None, reason=str(agent_ready()))


class Api:
    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, object]:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers={"X-Api-Key": API_KEY})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)["data"]
        except (ValueError, KeyError):
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str) -> object:
        status, data = self.call(method, path)
        assert status == 200, (method, path, status, data)
        return data

    def build(self, build_id: int) -> dict:
        return self.ok("GET", f"/api/v1/builds/{build_id}")  # type: ignore[return-value]

    def log(self, build_id: int) -> str:
        status, data = self.call("GET", f"/api/v1/logs/{build_id}/content")
        return data if status == 200 else ""  # type: ignore[return-value]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Server, agent, a git daemon and a static file server, all on 127.0.0.1."""
    base = Path(tempfile.mkdtemp(prefix="vieter-e2e-", dir="/tmp"))
    base.chmod(0o755)
    procs: list[subprocess.Popen] = []
    stack = contextlib.ExitStack()
    try:
        # sources: a git repository (git daemon) and PKGBUILD files (HTTP)
        git_root = base / "git"
        repo = git_root / "gitpkg"
        repo.mkdir(parents=True)
        (repo / "sub").mkdir()
        (repo / "sub" / "PKGBUILD").write_text(pkgbuild("e2e-git"))
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run(git + ["add", "."], check=True)
        subprocess.run(git + ["commit", "-qm", "pkg"], check=True)
        git_port = free_port()
        procs.append(subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={git_root}",
             "--listen=127.0.0.1", f"--port={git_port}", str(git_root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        web_root = base / "web"
        web_root.mkdir()
        (web_root / "url.PKGBUILD").write_text(pkgbuild("e2e-url"))
        (web_root / "local.PKGBUILD").write_text(pkgbuild("e2e-local", bin_arch="any"))
        (web_root / "fail.PKGBUILD").write_text(pkgbuild("e2e-fail", body="echo boom; false"))
        (web_root / "slow.PKGBUILD").write_text(pkgbuild("e2e-slow", body="sleep 120"))
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=web_root)
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()

        # email triggers go to a real SMTP server in this process
        smtp = SmtpReceiver().__enter__()
        stack.callback(smtp.__exit__)
        server = ServerProcess(base / "server", env_extra={
            "VIETER_BASE_IMAGE": BASE_IMAGE, "VIETER_SMTP_HOST": "127.0.0.1",
            "VIETER_SMTP_PORT": str(smtp.port), "VIETER_SMTP_STARTTLS": "false",
            "VIETER_SMTP_FROM": "vieter@e2e.invalid"})
        server.start()
        assert server.proc is not None
        procs.append(server.proc)
        # the agent runs as the unprivileged user, from a copy of the code it can read
        code = base / "code"
        shutil.copytree(ROOT / "vieter_lite", code / "vieter_lite",
                        ignore=shutil.ignore_patterns("__pycache__"))
        agent = start_agent(base, server, "x86_64")
        procs.append(agent)
        api = Api(server.url)
        yield {"api": api, "server": server, "agent": agent, "base": base,
               "git_url": f"git://127.0.0.1:{git_port}/gitpkg",
               "web_url": f"http://127.0.0.1:{web.server_address[1]}",
               "agent_log": base / "agent-x86_64.log", "smtp": smtp}
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0, (base / "agent-x86_64.log").read_text()
        assert server.stop() == 0
        web.shutdown()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)
        stack.close()


def start_agent(base: Path, server: ServerProcess, arch: str, network: str = "host",
                address: str | None = None, key: str = API_KEY,
                name: str | None = None, makepkg_args: str = "--nodeps",
                prepare: str = PREPARE) -> subprocess.Popen:
    """`vieter-lite agent` as the agent user, polling every second for `arch` (with `key`,
    registered as `name`: by default <host>-<arch>; makepkg given `makepkg_args`, the builder
    image prepared by `prepare`). The sources of these tests are served on 127.0.0.1, so
    builds share the host's network by default."""
    agent_dir = base / f"agent-{arch}"
    agent_dir.mkdir()
    (agent_dir / "prepare.sh").write_text(prepare)
    shutil.chown(agent_dir, AGENT_USER, AGENT_USER)
    home = pwd.getpwnam(AGENT_USER).pw_dir
    with open(base / f"agent-{arch}.log", "wb") as agent_log:
        return subprocess.Popen(
            # setpriv, not runuser: runuser kills its child 2 s after a SIGTERM
            ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--init-groups",
             "env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin",
             f"PYTHONPATH={base / 'code'}", f"VIETER_ADDRESS={address or server.url}",
             f"VIETER_API_KEY={key}", f"VIETER_ARCH={arch}", f"VIETER_DATA_DIR={agent_dir}",
             *([f"VIETER_AGENT_NAME={name}"] if name else []),
             f"VIETER_BUILD_NETWORK={network}",
             "VIETER_POLLING_FREQUENCY=1", "VIETER_MAX_CONCURRENT_BUILDS=2",
             f"VIETER_PREPARE_SCRIPT={agent_dir}/prepare.sh",
             f"VIETER_MAKEPKG_ARGS={makepkg_args}",
             "VIETER_LOG_LEVEL=INFO", AGENT_PYTHON, "-m", "vieter_lite", "agent"],
            cwd=agent_dir, stdout=agent_log, stderr=subprocess.STDOUT)


def add_target(api: Api, kind: str, url: str, **extra: str) -> int:
    query = "&".join(f"{k}={urllib.request.quote(v, safe='')}"
                     for k, v in {"kind": kind, "url": url, "repo": "e2e", "arch": "x86_64",
                                  **extra}.items())
    return api.ok("POST", f"/api/v1/targets?{query}")  # type: ignore[return-value]


def queue(api: Api, target: int, **params: str) -> int:
    query = "".join(f"&{k}={v}" for k, v in params.items())
    return api.ok("POST", f"/api/v1/jobs/queue?target={target}&arch=x86_64{query}")  # type: ignore


def wait_for(api: Api, build_ids: list[int], timeout: float = 240) -> tuple[dict, set[int]]:
    """Wait until the builds end; returns them and the ids whose log was seen mid-build."""
    seen_running_log: set[int] = set()
    deadline = time.monotonic() + timeout
    builds: dict[int, dict] = {}
    while time.monotonic() < deadline:
        builds = {b: api.build(b) for b in build_ids}
        for build_id, build in builds.items():
            if build["status"] == "running" and "build step" in api.log(build_id):
                seen_running_log.add(build_id)
        if all(b["status"] not in ("queued", "running") for b in builds.values()):
            return builds, seen_running_log
        time.sleep(0.3)
    raise AssertionError(f"builds did not finish: {builds}")


def db_entries(api: Api) -> set[str]:
    status, _ = api.call("GET", "/e2e/x86_64/e2e.db")
    assert status == 200
    with urllib.request.urlopen(api.url + "/e2e/x86_64/e2e.db") as resp:
        data = resp.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.split("/")[0] for m in tar.getmembers() if m.isfile()}


def tasks(build: dict) -> dict[str, str]:
    return {t["name"]: t["status"] for t in build["tasks"]}


def test_agent_builds_publishes_and_pacman_installs(world, tmp_path):
    api = world["api"]
    git_target = add_target(api, "git", world["git_url"], branch="main", path="sub")
    url_target = add_target(api, "url", world["web_url"] + "/url.PKGBUILD")
    ids = [queue(api, git_target), queue(api, url_target)]
    builds, seen_mid_way = wait_for(api, ids)
    for build_id, build in builds.items():
        log = api.log(build_id)
        assert build["status"] == "success", (build, log, world["agent_log"].read_text())
        assert build["exit_code"] == 0
        assert tasks(build) == {"setup": "success", "source": "success", "build": "success",
                                "publish": "success"}
        assert "==> Finished making" in log and "build step 3" in log
    assert seen_mid_way == set(ids), "the log was not readable while the build ran"
    assert {"e2e-git-bin-1.0-1", "e2e-git-data-1.0-1", "e2e-url-bin-1.0-1",
            "e2e-url-data-1.0-1"} <= db_entries(api)

    pacman = PacmanClient(tmp_path / "root", {"e2e": world["server"].url + "/$repo/$arch"})
    pacman.sync_db()
    pacman.install("e2e-git-bin", "e2e-git-data", "e2e-url-bin", "e2e-url-data")
    assert (tmp_path / "root/usr/share/e2e-git/data").read_text() == "e2e-git data\n"
    ran = subprocess.run(["sh", str(tmp_path / "root/usr/bin/e2e-url")], capture_output=True,
                         text=True)
    assert ran.stdout.strip() == "e2e-url works"

    # again without force: skipped as already built; with force: built again
    again, _ = wait_for(api, [queue(api, git_target)])
    (skipped,) = again.values()
    assert skipped["status"] == "success"
    assert tasks(skipped)["build"] == "skipped" and tasks(skipped)["publish"] == "skipped"
    assert "already published" in api.log(skipped["id"])
    forced, _ = wait_for(api, [queue(api, git_target, force="true")])
    (rebuilt,) = forced.values()
    assert rebuilt["status"] == "success" and tasks(rebuilt)["build"] == "success"
    assert "==> Finished making" in api.log(rebuilt["id"])


def test_failing_and_timed_out_builds_are_recorded(world):
    api = world["api"]
    failing = add_target(api, "url", world["web_url"] + "/fail.PKGBUILD")
    slow = add_target(api, "url", world["web_url"] + "/slow.PKGBUILD")
    ids = [queue(api, failing), queue(api, slow, timeout="15")]
    builds, _ = wait_for(api, ids, timeout=180)
    failed, timed_out = builds[ids[0]], builds[ids[1]]
    assert failed["status"] == "failed" and failed["exit_code"] not in (0, None)
    assert tasks(failed)["build"] == "failed" and tasks(failed)["publish"] == "skipped"
    assert "boom" in api.log(ids[0])
    assert timed_out["status"] == "timeout" and timed_out["exit_code"] == 124, \
        (api.log(ids[1]), world["agent_log"].read_text()[-3000:])
    assert "timeout of 15 s" in api.log(ids[1])
    assert not {e for e in db_entries(api) if e.startswith(("e2e-fail", "e2e-slow"))}


def test_a_second_signal_hands_running_builds_back(world):
    api = world["api"]
    agent = start_agent(world["base"], world["server"], "e2ehard")
    try:
        target = add_target(api, "url", world["web_url"] + "/slow.PKGBUILD", arch="e2ehard")
        build_id = api.ok("POST", f"/api/v1/jobs/queue?target={target}&arch=e2ehard")
        deadline = time.monotonic() + 120
        while "build step" not in api.log(build_id):  # type: ignore[arg-type]
            assert time.monotonic() < deadline and agent.poll() is None
            time.sleep(0.3)
        agent.send_signal(signal.SIGTERM)  # first: would wait for the build
        time.sleep(1)
        assert agent.poll() is None
        agent.send_signal(signal.SIGTERM)  # second: kill it and hand it back
        assert agent.wait(timeout=60) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
    build = api.build(build_id)  # type: ignore[arg-type]
    assert (build["status"], build["expiries"], build["runner"]) == ("queued", 0, "")
    assert "handed the build back" in api.log(build_id)  # type: ignore[arg-type]
    api.ok("DELETE", f"/api/v1/targets/{target}")


def test_targets_build_runs_one_build_here_and_prints_its_log(world):
    """`vieter-lite targets build ID` (no --remote), as the agent user with its own Podman."""
    api = world["api"]
    target = add_target(api, "url", world["web_url"] + "/local.PKGBUILD", arch="e2elocal")
    agent_dir = world["base"] / "agent-x86_64"
    home = pwd.getpwnam(AGENT_USER).pw_dir
    done = subprocess.run(
        ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--init-groups",
         "env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin",
         f"PYTHONPATH={world['base'] / 'code'}", f"VIETER_ADDRESS={world['server'].url}",
         f"VIETER_API_KEY={API_KEY}", f"VIETER_DATA_DIR={agent_dir}",
         f"VIETER_PREPARE_SCRIPT={agent_dir}/prepare.sh", "VIETER_MAKEPKG_ARGS=--nodeps",
         "VIETER_BUILD_NETWORK=host",
         AGENT_PYTHON, "-m", "vieter_lite", "targets", "build", str(target), "--force"],
        cwd=agent_dir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "e2e-local build step 3" in done.stdout and "==> Finished making" in done.stdout
    build_id = int(done.stdout.strip().splitlines()[-1].split()[1].rstrip(":"))
    build = api.build(build_id)
    assert (build["status"], build["arch"], build["runner"].startswith("local:")) == \
        ("success", "e2elocal", True)
    assert "==> Finished making" in api.log(build_id)


# makepkg --syncdeps installs what a PKGBUILD needs with pacman as root: through the setuid
# bash, made root in full (pacman looks at the real uid)
SYNCDEPS_PREPARE = PREPARE + """echo "PACMAN_AUTH=(/usr/local/bin/rootbash -p -c 'exec setpriv --reuid=0 --regid=0 --clear-groups -- \\"\\$@\\"' as-root)" >> /etc/makepkg.conf
"""  # noqa: E501

DEP_A = """pkgname=e2e-dep-a
pkgver=1.0
pkgrel=1
arch=(any)
package() {
    install -Dm644 /dev/stdin "$pkgdir/usr/share/e2e-dep-a/data" <<< 'made by a'
}
"""
DEP_B = """pkgname=e2e-dep-b
pkgver=1.0
pkgrel=1
arch=(any)
makedepends=('e2e-dep-a>=1.0')
build() {
    echo "b finds: $(cat /usr/share/e2e-dep-a/data)"
}
package() {
    install -Dm644 /dev/stdin "$pkgdir/usr/share/e2e-dep-b/data" <<< 'made by b'
}
"""


def test_a_target_that_makedepends_on_another_builds_after_it_with_its_package(world):
    """Neither PKGBUILD was read before. b's build is queued (and claimed) first; it learns
    from its .SRCINFO that it needs what a, not read yet, may offer, and goes back to the
    queue; a builds and publishes; b builds after, and makepkg --syncdeps installs a's
    package from the server's repo inside b's build container."""
    api, arch = world["api"], "e2edeps"
    web = world["base"] / "web"
    (web / "dep-a.PKGBUILD").write_text(DEP_A)
    (web / "dep-b.PKGBUILD").write_text(DEP_B)
    agent = start_agent(world["base"], world["server"], arch, makepkg_args="--syncdeps",
                        prepare=SYNCDEPS_PREPARE)
    try:
        a, b = (add_target(api, "url", f"{world['web_url']}/dep-{x}.PKGBUILD", arch=arch,
                           repo="e2edeps") for x in ("a", "b"))
        build_b = api.ok("POST", f"/api/v1/jobs/queue?target={b}&arch={arch}")
        build_a = api.ok("POST", f"/api/v1/jobs/queue?target={a}&arch={arch}")
        builds, _ = wait_for(api, [build_b, build_a])  # type: ignore[list-item]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
    log_a, log_b = api.log(build_a), api.log(build_b)  # type: ignore[arg-type]
    agent_log = (world["base"] / f"agent-{arch}.log").read_text()
    assert builds[build_a]["status"] == "success", (log_a, agent_log)
    assert builds[build_b]["status"] == "success", (log_b, agent_log)
    assert f"waits for build {build_a} of target {a}" in log_b
    assert builds[build_b]["started_at"] >= builds[build_a]["ended_at"]
    assert "Installing missing dependencies" in log_b and "e2e-dep-a" in log_b
    assert "b finds: made by a" in log_b
