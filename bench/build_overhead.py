"""Bench: build overhead, queue-to-published for a trivial PKGBUILD minus makepkg's own time.

    python3 bench/build_overhead.py [--runs 5] [--makepkg-runs N] [--poll-interval 0.02]
                                    [--build-timeout 600]

Starts a real server and a real agent (`vieter-lite agent` as the unprivileged
`vieter-agent` user, rootless Podman, polling every second, one slot), the way
tests/test_agent_e2e.py does, plus a static HTTP server for the PKGBUILD of a url target:
one `any` package, no build(), package() writes one file. One warm-up build prepares the
builder image (timed separately); then each run rewrites the PKGBUILD with the next pkgrel,
queues a forced build and times from the queue request until
`GET /bench/x86_64/<name>-1.0-<pkgrel>` (the desc lookup) answers 200, and until the build
is recorded as a success. After each build, the same two makepkg calls the build script
makes (`makepkg --nobuild` and `makepkg --noextract`, with the agent's makepkg args) run in
the same builder image with `podman run --rm` as `vieter-agent`, timed inside the container.
Overhead = median queue-to-published - median makepkg-in-container. Prints figures; asserts
nothing about time. Needs root and what .ci/podman-setup sets up.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import http.server
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

AGENT_USER = os.environ.get("VIETER_AGENT_USER", "vieter-agent")
AGENT_PYTHON = os.environ.get("VIETER_AGENT_PYTHON", "/opt/vieter-lite-agent/bin/python")
BASE_IMAGE = os.environ.get("VIETER_TEST_BASE_IMAGE", "localhost/vieter-lite-test-base:latest")
MAKEPKG_ARGS = "--nodeps"
REPO = "bench"
ARCH = "x86_64"
PKGNAME = "vieter-bench-trivial"
PKGVER = "1.0"
OVERHEAD_TARGET_S = 3.0

# Builder image preparation for the Debian base image (as in tests/test_agent_e2e.py).
PREPARE = """set -e
id build >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash build
pacman -Q >/dev/null 2>&1 || true
test -f /var/lib/pacman/local/ALPM_DB_VERSION
sed -i "s/^PKGEXT=.*/PKGEXT='.pkg.tar.zst'/" /etc/makepkg.conf
"""

# The makepkg part of the agent's build script (vieter_lite/agent/script.py), alone: the
# same user, directory layout and makepkg calls, timed with bash's EPOCHREALTIME inside
# the container. The PKGBUILD comes in through the environment (no network).
REFERENCE_ROOT = r"""set -euo pipefail
install -d -o build -g build /build
cd /build
exec runuser -u build -- bash -c "$VL_REF_SCRIPT"
"""
REFERENCE_USER = r"""set -euo pipefail
mkdir repo
cd repo
printf '%s' "$VL_PKGBUILD" > PKGBUILD
t0=$EPOCHREALTIME
makepkg --nobuild --noconfirm $VL_MAKEPKG_ARGS
t1=$EPOCHREALTIME
MAKEFLAGS="-j$(nproc)" makepkg --noextract --noconfirm $VL_MAKEPKG_ARGS
t2=$EPOCHREALTIME
ls *.pkg.tar* >/dev/null
echo "::bench-times:: $t0 $t1 $t2"
"""


def pkgbuild(pkgrel: int) -> str:
    return f"""pkgname={PKGNAME}
pkgver={PKGVER}
pkgrel={pkgrel}
pkgdesc='vieter-lite build overhead bench: a trivial package'
arch=('any')
license=('MIT')
options=(!debug !strip)
package() {{
    install -Dm644 /dev/stdin "$pkgdir/usr/share/{PKGNAME}/data" <<< '{PKGNAME} {pkgrel}'
}}
"""


def log(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def as_agent(argv: list[str], home: str) -> list[str]:
    """argv run as the agent user the way the agent runs (its HOME, no XDG_RUNTIME_DIR)."""
    return ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--init-groups",
            "env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin", *argv]


def missing_prerequisite(home: str | None) -> str | None:
    if os.geteuid() != 0:
        return "needs root (runs the agent as another user)"
    for tool in ("podman", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/podman-setup installs it)"
    if home is None:
        return f"user {AGENT_USER} is missing (.ci/podman-setup creates it)"
    if not os.access(AGENT_PYTHON, os.X_OK):
        return f"{AGENT_PYTHON} is missing (.ci/podman-setup creates it)"
    exists = subprocess.run(as_agent(["podman", "image", "exists", BASE_IMAGE], home),
                            cwd=home, capture_output=True)
    if exists.returncode != 0:
        return f"image {BASE_IMAGE} is missing (.ci/podman-setup builds it)"
    return None


class Api:
    """One keep-alive connection to the server (reopened when the server closes it)."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, headers={"X-Api-Key": c.API_KEY})
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, body
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def data(self, method: str, path: str) -> object:
        status, body = self.call(method, path)
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)["data"]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def timed_build(api: Api, target: int, pkgrel: int, poll: float, timeout: float) -> dict:
    """Queue a forced build; time it to the desc lookup answering 200 and to success."""
    desc = f"/{REPO}/{ARCH}/{PKGNAME}-{PKGVER}-{pkgrel}"
    t0 = time.monotonic()
    build_id = int(api.data("POST", f"/api/v1/jobs/queue?target={target}&arch={ARCH}"
                                    "&force=true"))  # type: ignore[arg-type]
    queued = time.monotonic() - t0
    claimed = published = done = None
    claimed_wall = 0.0
    build: dict = {}
    checks = 0
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if published is None and claimed is not None:
            status, _ = api.call("HEAD", desc)
            if status == 200:
                published = time.monotonic() - t0
        # the build's state: every time until an agent claimed it, then every 10th time
        if claimed is None or published is not None or checks % 10 == 0:
            build = api.data("GET", f"/api/v1/builds/{build_id}")  # type: ignore[assignment]
            if claimed is None and build["status"] != "queued":
                claimed = time.monotonic() - t0
                claimed_wall = time.time()
                continue
            if build["status"] not in ("queued", "running"):
                done = time.monotonic() - t0
                if published is None:  # a last look: published just before it ended?
                    status, _ = api.call("HEAD", desc)
                    if status == 200:
                        published = done
                break
        checks += 1
        time.sleep(poll)
    if done is None:
        raise RuntimeError(f"build {build_id} did not end within {timeout:g} s: {build}")
    if build["status"] != "success" or published is None:
        status, body = api.call("GET", f"/api/v1/logs/{build_id}/content")
        text = json.loads(body).get("data", "") if status == 200 else ""
        raise RuntimeError(f"build {build_id} (pkgrel {pkgrel}) ended {build['status']} "
                           f"(exit {build.get('exit_code')}), published: {published is not None}"
                           f"\n--- build log (tail) ---\n{str(text)[-3000:]}")
    return {"build_id": build_id, "pkgrel": pkgrel, "queue_request": queued,
            "claimed": claimed, "claimed_wall": claimed_wall, "published": published,
            "success": done,
            "tasks": {t["name"]: t["status"] for t in build["tasks"]}}


def makepkg_in_container(image: str, pkgrel: int, home: str) -> dict:
    """The build script's two makepkg calls in a fresh container of the builder image."""
    argv = as_agent(["podman", "run", "--rm", "--user", "root", "--workdir", "/",
                     "-e", "VL_PKGBUILD", "-e", "VL_REF_SCRIPT", "-e", "VL_MAKEPKG_ARGS",
                     "-e", "LANG=C.UTF-8", image, "/bin/bash", "-c", REFERENCE_ROOT], home)
    # setpriv's `env -i` drops our environment: hand the values over as NAME=value words
    cut = argv.index("podman")
    argv[cut:cut] = [f"VL_PKGBUILD={pkgbuild(pkgrel)}", f"VL_REF_SCRIPT={REFERENCE_USER}",
                     f"VL_MAKEPKG_ARGS={MAKEPKG_ARGS}"]
    t0 = time.monotonic()
    ran = subprocess.run(argv, cwd=home, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    found = re.search(r"::bench-times:: ([\d.]+) ([\d.]+) ([\d.]+)", ran.stdout)
    if ran.returncode != 0 or not found:
        raise RuntimeError(f"makepkg in {image} failed (exit {ran.returncode}):\n"
                           f"{(ran.stdout + ran.stderr)[-3000:]}")
    a, b, e = (float(x) for x in found.groups())
    return {"makepkg": e - a, "nobuild": b - a, "package": e - b, "podman_run": wall}


def agent_log_events(path: Path) -> tuple[list[tuple[float, str]], list[int]]:
    """(epoch, tag) of every 'built image' line and the pids of the podman services."""
    text = path.read_text(errors="replace") if path.exists() else ""
    images = []
    for m in re.finditer(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ \S+: built image (\S+) "
                         r"from", text, re.M):
        when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        images.append((when, m.group(2)))
    pids = [int(p) for p in re.findall(r"started podman service pid (\d+)", text)]
    return images, pids



def main(argv: list[str] | None = None) -> int:
    c.unwind_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5,
                        help="timed builds after the warm-up (default: %(default)s)")
    parser.add_argument("--makepkg-runs", type=int, default=None,
                        help="makepkg reference containers (default: as many as --runs; "
                             "they alternate with the builds)")
    parser.add_argument("--poll-interval", type=float, default=0.02,
                        help="seconds between desc lookups while a build runs "
                             "(default: %(default)s)")
    parser.add_argument("--build-timeout", type=float, default=600,
                        help="seconds to wait for one build (default: %(default)s)")
    args = parser.parse_args(argv)
    ref_runs = args.runs if args.makepkg_runs is None else args.makepkg_runs
    if args.runs < 1 or ref_runs < 1 or args.poll_interval <= 0:
        parser.error("--runs and --makepkg-runs must be at least 1, --poll-interval > 0")

    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])), flush=True)
    try:
        home: str | None = pwd.getpwnam(AGENT_USER).pw_dir
    except KeyError:
        home = None
    problem = missing_prerequisite(home)
    if problem:
        print(f"build_overhead: {problem}", file=sys.stderr)
        return 2
    assert home is not None
    version = subprocess.run(as_agent(["podman", "--version"], home), cwd=home,
                             capture_output=True, text=True).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# python {sys.version.split()[0]}, {version}, {os.cpu_count()} CPUs, "
          f"load average {load} at start; base image {BASE_IMAGE}")
    print(f"# agent as {AGENT_USER}: polling every 1 s, 1 slot, makepkg args {MAKEPKG_ARGS}; "
          f"target: overhead < {OVERHEAD_TARGET_S:g} s", flush=True)

    base = Path(tempfile.mkdtemp(prefix="vieter-bench-overhead-", dir="/tmp"))
    base.chmod(0o755)
    server: c.Server | None = None
    agent: subprocess.Popen | None = None
    agent_log_file = None
    web: http.server.ThreadingHTTPServer | None = None
    api: Api | None = None
    agent_log = base / "agent.log"
    agent_killed = False
    try:
        # the PKGBUILD, served over HTTP
        web_root = base / "web"
        web_root.mkdir()
        pkgbuild_path = web_root / "trivial.PKGBUILD"
        pkgbuild_path.write_text(pkgbuild(1))
        handler = functools.partial(_QuietHandler, directory=str(web_root))
        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        pkgbuild_url = f"http://127.0.0.1:{web.server_address[1]}/trivial.PKGBUILD"

        # the server
        data_dir = base / "server" / "data"
        data_dir.mkdir(parents=True)
        port = c.free_port()
        config_path = c.write_config(base / "server" / "vieter-lite.toml", data_dir, port)
        with open(config_path, "a") as cfg:
            cfg.write(f'base_image = "{BASE_IMAGE}"\n')
        server = c.Server(config_path, port, base / "server" / "server.log").start()
        api = Api(port)

        # the agent, as the unprivileged user, from a copy of the code it can read
        code = base / "code"
        shutil.copytree(c.ROOT / "vieter_lite", code / "vieter_lite",
                        ignore=shutil.ignore_patterns("__pycache__"))
        agent_dir = base / "agent"
        agent_dir.mkdir()
        (agent_dir / "prepare.sh").write_text(PREPARE)
        shutil.chown(agent_dir, AGENT_USER, AGENT_USER)
        # closed in the finally below, after the agent has exited
        agent_log_file = open(agent_log, "wb")  # noqa: SIM115
        agent = subprocess.Popen(
            # setpriv, not runuser: runuser kills its child 2 s after a SIGTERM
            as_agent([f"PYTHONPATH={code}", f"VIETER_ADDRESS={server.url}",
                      f"VIETER_API_KEY={c.API_KEY}", f"VIETER_ARCH={ARCH}",
                      f"VIETER_DATA_DIR={agent_dir}", "VIETER_POLLING_FREQUENCY=1",
                      "VIETER_MAX_CONCURRENT_BUILDS=1",
                      f"VIETER_PREPARE_SCRIPT={agent_dir}/prepare.sh",
                      f"VIETER_MAKEPKG_ARGS={MAKEPKG_ARGS}", "VIETER_LOG_LEVEL=INFO",
                      "VIETER_BUILD_NETWORK=host",  # the server and the PKGBUILD are on 127.0.0.1
                      AGENT_PYTHON, "-m", "vieter_lite", "agent"], home),
            cwd=agent_dir, stdout=agent_log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C reaches us only

        query = urllib.parse.urlencode({"kind": "url", "url": pkgbuild_url, "repo": REPO,
                                        "arch": ARCH})
        target = int(api.data("POST", f"/api/v1/targets?{query}"))  # type: ignore[arg-type]

        # warm-up: the first build prepares the builder image
        log(f"warm-up build (pkgrel 1); the agent prepares its builder image from {BASE_IMAGE}")
        warm = timed_build(api, target, 1, args.poll_interval, max(args.build_timeout, 1800))
        images, _ = agent_log_events(agent_log)
        if not images:
            raise RuntimeError(f"no 'built image' line in the agent log:\n"
                               f"{agent_log.read_text(errors='replace')[-3000:]}")
        image_prep = images[0][0] - warm["claimed_wall"]
        image = images[-1][1]
        log(f"warm-up: published after {warm['published']:.2f} s; builder image {image}")

        runs: list[dict] = []
        refs: list[dict] = []
        for i in range(max(args.runs, ref_runs)):
            pkgrel = i + 2
            pkgbuild_path.write_text(pkgbuild(pkgrel))
            if i < args.runs:
                run = timed_build(api, target, pkgrel, args.poll_interval, args.build_timeout)
                runs.append(run)
                log(f"run {i + 1}/{args.runs}: build {run['build_id']} pkgrel {pkgrel}: "
                    f"published {run['published']:.3f} s, success {run['success']:.3f} s")
            if i < ref_runs:
                image = agent_log_events(agent_log)[0][-1][1]  # prepared again, if removed
                ref = makepkg_in_container(image, pkgrel, home)
                refs.append(ref)
                log(f"makepkg reference {i + 1}/{ref_runs}: {ref['makepkg']:.3f} s in the "
                    f"container, podman run {ref['podman_run']:.3f} s")
        images, _ = agent_log_events(agent_log)

        # report
        pub = c.median([r["published"] for r in runs])
        ok = c.median([r["success"] for r in runs])
        mk = c.median([r["makepkg"] for r in refs])
        overhead = pub - mk
        print(f"PKGBUILD {PKGNAME} {PKGVER} (url target, one 'any' package, no build()); "
              f"{args.runs} timed builds after 1 warm-up, {ref_runs} makepkg reference "
              f"containers; desc polled every {args.poll_interval * 1000:g} ms")
        print(f"warm-up build {warm['build_id']} (pkgrel 1): queue -> published "
              f"{warm['published']:.2f} s, -> success {warm['success']:.2f} s")
        print(f"  builder image preparation: {image_prep:.2f} s (from the agent claiming the "
              f"build to the agent logging 'built image {image}'); the warm-up took "
              f"{warm['published'] - pub:.2f} s longer than the median warm build")
        print()
        print("  ".join(("run", "build", "pkgrel", "queue->claimed s", "queue->published s",
                         "queue->success s", "makepkg in container s", "(--nobuild + package)",
                         "podman run wall s")))
        for i in range(max(len(runs), len(refs))):
            run = runs[i] if i < len(runs) else None
            ref = refs[i] if i < len(refs) else None
            cols = [f"{i + 1:>3}",
                    f"{run['build_id']:>5}" if run else f"{'':>5}",
                    f"{(run or {'pkgrel': i + 2})['pkgrel']:>6}",
                    f"{run['claimed']:>16.3f}" if run else f"{'':>16}",
                    f"{run['published']:>18.3f}" if run else f"{'':>18}",
                    f"{run['success']:>16.3f}" if run else f"{'':>16}",
                    f"{ref['makepkg']:>22.3f}" if ref else f"{'':>22}",
                    f"{ref['nobuild']:>9.3f} + {ref['package']:>9.3f}" if ref else f"{'':>21}",
                    f"{ref['podman_run']:>17.3f}" if ref else f"{'':>17}"]
            print("  ".join(cols))
        print()
        print(f"median queue -> published         {pub:7.3f} s   "
              f"(min {min(r['published'] for r in runs):.3f}, "
              f"max {max(r['published'] for r in runs):.3f})")
        print(f"median makepkg in the container   {mk:7.3f} s   "
              f"(min {min(r['makepkg'] for r in refs):.3f}, "
              f"max {max(r['makepkg'] for r in refs):.3f})")
        print(f"overhead (difference)             {overhead:7.3f} s   "
              f"[target < {OVERHEAD_TARGET_S:g} s: "
              f"{'ok' if overhead < OVERHEAD_TARGET_S else 'MISSED'}]")
        print(f"median queue -> claimed by agent  "
              f"{c.median([r['claimed'] for r in runs]):7.3f} s   "
              f"(the agent polls once a second; part of the overhead)")
        print(f"median queue -> build success     {ok:7.3f} s   "
              f"(the build recorded as ended, {ok - pub:.3f} s after publishing)")
        print(f"median podman run (reference)     "
              f"{c.median([r['podman_run'] for r in refs]):7.3f} s   "
              f"(podman CLI wall time around the makepkg container)")
        if len(images) != 1:
            print(f"note: the agent prepared a builder image {len(images)} times "
                  f"({', '.join(t for _, t in images)}); another agent of this user may have "
                  f"removed it mid-way, which slows the run that rebuilt it")
        print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
        return 0
    finally:
        if api is not None:
            api.close()
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=90)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
                agent_killed = True
        if agent_log_file is not None:
            agent_log_file.close()
        images, service_pids = agent_log_events(agent_log)
        for pid in service_pids if agent_killed else []:  # its podman service is left
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        for _, tag in images:  # the builder image(s) this agent made
            subprocess.run(as_agent(["podman", "rmi", "--ignore", tag], home),
                           cwd=home, capture_output=True)
        if server is not None:
            server.stop()
        if web is not None:
            web.shutdown()
            web.server_close()
        shutil.rmtree(base, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:  # everything is cleaned up by now
        print(f"build_overhead: interrupted ({exc or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        sys.exit(130)
