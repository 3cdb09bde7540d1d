"""The client commands (targets, logs, builds, repos, tokens, aur) run as `python -m
vieter_lite ...` against a real server process and a fake AUR RPC; client config loading;
one-line errors."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import API_KEY, ROOT, ServerProcess, free_port
from fake_aur import FakeAur
from pkgfactory import make_synthetic_package
from vieter_lite import config
from vieter_lite.client import Client, ClientError
from vieter_lite.errors import ConfigError

pytestmark = pytest.mark.integration

# The CLI runs in a fixed zone without tzdata, +05:30 (POSIX TZ signs are inverted), so
# "local time" is checked independently of the machine's zone.
TZ = "XYZ-5:30"
LOCAL = timezone(timedelta(hours=5, minutes=30))
QUIET_SCHEDULE = "0 3 1 1"


def local_epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=LOCAL).timestamp())


def local_text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, LOCAL).strftime("%Y-%m-%d %H:%M:%S")


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("cli-client") / "data",
                         env_extra={"VIETER_GLOBAL_SCHEDULE": QUIET_SCHEDULE}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def aur():
    with FakeAur() as fake:
        yield fake


@pytest.fixture(scope="module")
def admin(srv) -> Client:
    return Client(srv.url, API_KEY, timeout=10)


_counter = itertools.count()


@pytest.fixture
def u() -> str:
    """A suffix no other test uses: repo names, archs and URLs on the shared server."""
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
    env.update({"HOME": str(home), "TZ": TZ, "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


class Cli:
    """Runs `python -m vieter_lite ARGS` with an environment of its own."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 drop: tuple[str, ...] = (), input: bytes | None = None
                 ) -> subprocess.CompletedProcess:
        run_env = {k: v for k, v in {**self.env, **(env or {})}.items() if k not in drop}
        return subprocess.run([sys.executable, "-m", "vieter_lite", *args], env=run_env,
                              capture_output=True, timeout=30, input=input)

    def ok(self, *args: str, **kw: Any) -> str:
        result = self(*args, **kw)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert result.stderr == b"", result.stderr
        return result.stdout.decode()

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def cli(srv, aur, home) -> Cli:
    return Cli(base_env(home, VIETER_ADDRESS=srv.url, VIETER_API_KEY=API_KEY,
                        VIETER_AUR_URL=aur.url))


def one_error(result: subprocess.CompletedProcess, code: int) -> str:
    """The command failed with `code`, printed nothing and exactly one stderr line."""
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, result.stdout, err)
    assert result.stdout == b""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err.strip()


def rows(table: str) -> list[list[str]]:
    """A printed table as cells (columns are two or more spaces apart), header first."""
    return [re.split(r" {2,}", line.strip()) for line in table.splitlines()]


def add_target(admin: Client, u: str, **kw: Any) -> int:
    return admin.add_target(kw.pop("url", f"https://example.org/{u}.git"),
                            kw.pop("repo", f"r{u}"), **kw)


# -- client config ---------------------------------------------------------------------------

@pytest.fixture
def no_machine_files(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "absent" / "system.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "absent" / ".vieterrc")


def test_client_config_defaults(no_machine_files):
    cfg = config.load_client(None, {})
    assert cfg == config.ClientConfig("http://localhost:8000", "", "https://aur.archlinux.org")


def test_client_config_sources_in_order(monkeypatch, tmp_path):
    rc = tmp_path / ".vieterrc"
    # a file shared with the server: the server's keys are tolerated, and ignored
    rc.write_text('address = "http://pi:8000/"\napi_key = "from-file"\n'
                  'aur_url = "http://aur.local/"\ndata_dir = "/srv/vieter"\nport = 8000\n')
    system = tmp_path / "system.toml"
    system.write_text('api_key = "from-system"\n')
    monkeypatch.setattr(config, "USER_CONFIG", rc)
    monkeypatch.setattr(config, "SYSTEM_CONFIG", system)
    cfg = config.load_client(None, {})
    assert cfg == config.ClientConfig("http://pi:8000", "from-file", "http://aur.local")
    secret = tmp_path / "key"
    secret.write_text("from-secret\n")
    env = {"VIETER_ADDRESS": "https://vieter.example.org", "VIETER_API_KEY_FILE": str(secret)}
    assert config.load_client(None, env) == config.ClientConfig(
        "https://vieter.example.org", "from-secret", "http://aur.local")
    assert config.load_client(None, env, {"api_key": "flag", "address": "http://x:1/"}) == \
        config.ClientConfig("http://x:1", "flag", "http://aur.local")
    other = tmp_path / "other.toml"
    other.write_text('api_key = "other"\n')
    assert config.load_client(str(other), {}).api_key == "other"


@pytest.mark.parametrize("environ, overrides, named", [
    ({"VIETER_ADDRESS": "ftp://pi"}, {}, "'address' (VIETER_ADDRESS)"),
    ({"VIETER_AUR_URL": "aur.archlinux.org"}, {}, "'aur_url' (VIETER_AUR_URL)"),
    ({}, {"address": "pi:8000"}, "'address' (--address)"),
    ({"VIETER_API_KEY": "a", "VIETER_API_KEY_FILE": "/x"}, {}, "not both"),
])
def test_client_config_errors_name_the_key(no_machine_files, environ, overrides, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        config.load_client(None, environ, overrides)


def test_client_and_server_share_one_file(no_machine_files, tmp_path):
    shared = tmp_path / "vieter.toml"
    shared.write_text('api_key = "k"\naddress = "http://pi:8000"\naur_url = "http://a.b"\n'
                      'data_dir = "/tmp/x"\ndefault_arch = "x86_64"\n')
    assert config.load_server(str(shared), {}).api_key == "k"
    assert config.load_client(str(shared), {}).address == "http://pi:8000"
    shared.write_text('api_key = "k"\nadress = "typo"\n')
    with pytest.raises(ConfigError, match="unknown config key 'adress'"):
        config.load_client(str(shared), {})


def test_vieterrc_and_config_file_are_read(srv, home, tmp_path, u):
    env = base_env(home)
    (home / ".vieterrc").write_text(f'address = "{srv.url}"\napi_key = "{API_KEY}"\n')
    run = Cli(env)
    assert run.ok("targets", "list", "--repo", f"none{u}").startswith("ID")
    elsewhere = tmp_path / "client.toml"
    elsewhere.write_text(f'address = "{srv.url}"\napi_key = "wrong"\n')
    assert one_error(run("targets", "list", "-f", str(elsewhere)), 1) == \
        "vieter-lite: unauthorized: check api_key"
    assert one_error(run("-f", str(elsewhere), "targets", "list"), 1) == \
        "vieter-lite: unauthorized: check api_key"
    key_file = tmp_path / "secret"
    key_file.write_text(API_KEY + "\n")
    assert run.ok("targets", "list", "-f", str(elsewhere),
                  env={"VIETER_API_KEY_FILE": str(key_file)}).startswith("ID")
    assert run.ok("--api-key", API_KEY, "targets", "list", "-f", str(elsewhere)).startswith("ID")


# -- targets ---------------------------------------------------------------------------------

def test_targets_add_list_info(cli, admin, u):
    repo = f"r{u}"
    out = cli.ok("targets", "add", f"https://example.org/a{u}.git", repo, "--arch",
                 "x86_64,aarch64", "--schedule", "*/30 4", "--branch", "main", "--path", "pkg")
    first = int(re.fullmatch(r"Target added with id (\d+)\n", out).group(1))
    second = cli.json("targets", "add", f"https://example.org/PKGBUILD-{u}", repo,
                      "--kind", "url")
    assert isinstance(second, int) and second > first
    target = admin.get_target(first)
    assert (target["branch"], target["path"], target["schedule"]) == ("main", "pkg", "*/30 4")
    assert [a["value"] for a in target["arch"]] == ["x86_64", "aarch64"]
    assert admin.get_target(second)["kind"] == "url"

    table = cli.ok("targets", "list", "--repo", repo)
    lines = table.splitlines()
    assert rows(table) == [
        ["ID", "KIND", "URL", "REPO", "ARCH", "SCHEDULE"],
        [str(first), "git", f"https://example.org/a{u}.git", repo, "x86_64,aarch64", "*/30 4"],
        [str(second), "url", f"https://example.org/PKGBUILD-{u}", repo, "x86_64"]]
    column = lines[0].index("REPO")  # aligned: every row's repo starts under the header
    assert all(line[column:].startswith(repo) for line in lines[1:])

    listed = cli.json("targets", "list", "--repo", repo)
    assert [t["id"] for t in listed] == [first, second]
    assert listed[0] == target

    plan = admin.target_schedule(first)
    assert (plan["schedule"], plan["global"]) == ("*/30 4", False)
    runs = {a["arch"]: a["next_run"] for a in plan["archs"]}
    assert list(runs) == ["x86_64", "aarch64"] and all(runs.values())
    assert cli.ok("targets", "info", str(first)) == (
        f"id: {first}\nkind: git\nurl: https://example.org/a{u}.git\nbranch: main\n"
        f"path: pkg\nrepo: {repo}\nschedule: */30 4\narch: x86_64, aarch64\n"
        "review: never\nlabels:\nlast build:\nrebuild on dependency: no\n"
        f"next run (x86_64): {local_text(runs['x86_64'])}\n"
        f"next run (aarch64): {local_text(runs['aarch64'])}\n")
    assert cli.json("targets", "info", str(first)) == {
        **target, "schedule_effective": "*/30 4", "schedule_global": False,
        "next_runs": plan["archs"], "review": "never", "labels": {}, "last_build": None,
        "rebuild_on_dependency": False, "dependencies": []}


def test_targets_info_shows_review_labels_and_the_last_build(cli, admin, u):
    target_id = add_target(admin, u)
    admin.call_v2("PATCH", f"/api/v2/targets/{target_id}",
                  body={"review": "always", "metadata": {"labels": {"u": u, "env": "home"}}})
    build_id = claim_build(admin, target_id, "x86_64")["build_id"]
    admin.finish_build(build_id, 1)
    info = cli.ok("targets", "info", str(target_id)).splitlines()
    assert info[info.index("arch: x86_64") + 1:][:3] == [
        "review: always", f"labels: env=home, u={u}", f"last build: {build_id} (failed)"]
    shown = cli.json("targets", "info", str(target_id))
    assert (shown["review"], shown["labels"], shown["last_build"]) == \
        ("always", {"env": "home", "u": u}, {"id": build_id, "status": "failed"})


def test_targets_list_filters(cli, admin, u):
    repo = f"r{u}"
    ids = [add_target(admin, u, url=f"https://example.org/{name}-{u}.git", repo=repo, arch=arch)
           for name, arch in (("one", "x86_64"), ("two", f"arm{u}"), ("three", "x86_64"))]

    def listed(*flags: str) -> list[int]:
        return [t["id"] for t in cli.json("targets", "list", "--repo", repo, *flags)]

    assert listed() == ids
    assert listed("-q", f"two-{u}") == [ids[1]]
    assert listed("--arch", f"arm{u}") == [ids[1]]
    assert listed("--limit", "1", "--offset", "1") == [ids[1]]
    assert listed("-l", "0", "-o", "2") == [ids[2]]


def test_targets_edit_sends_only_the_given_flags(cli, admin, u):
    target_id = add_target(admin, u, branch="main", schedule="0 5", arch="x86_64")
    out = cli.ok("targets", "edit", str(target_id), "--branch", "dev", "--schedule", "")
    assert "branch: dev\n" in out and "schedule: \n" not in out and "schedule:\n" in out
    target = admin.get_target(target_id)
    assert (target["branch"], target["schedule"], target["url"]) == \
        ("dev", "", f"https://example.org/{u}.git")
    edited = cli.json("targets", "edit", str(target_id), "--arch", "aarch64, x86_64",
                      "--path", "sub", "--repo", f"other{u}")
    assert [a["value"] for a in edited["arch"]] == ["aarch64", "x86_64"]
    assert (edited["path"], edited["repo"], edited["branch"]) == ("sub", f"other{u}", "dev")

    assert one_error(cli("targets", "edit", str(target_id)), 2).startswith(
        "vieter-lite: targets edit: nothing to change")
    assert "Invalid cron expression" in one_error(
        cli("targets", "edit", str(target_id), "--schedule", "61"), 2)
    assert one_error(cli("targets", "edit", str(target_id), "--kind", "svn"), 1) == \
        "vieter-lite: Invalid kind."
    assert admin.get_target(target_id) == edited


def test_targets_remove(cli, admin, u):
    first, second = add_target(admin, u), add_target(admin, u)
    assert cli.ok("targets", "remove", str(first)) == f"Target {first} removed\n"
    assert cli.json("targets", "remove", str(second)) == {"id": second, "removed": True}
    with pytest.raises(ClientError) as info:
        admin.get_target(first)
    assert info.value.status == 404
    assert one_error(cli("targets", "remove", str(first)), 1) == "vieter-lite: Target not found."


def test_targets_build_remote_queues_one_build_per_arch(cli, admin, u):
    a, b = f"a{u}", f"b{u}"
    target_id = add_target(admin, u, arch=f"{a},{b}")
    out = cli.ok("targets", "build", str(target_id), "--remote")
    found = re.findall(rf"^Queued build (\d+) of target {target_id} for (\w+)$", out, re.M)
    assert [arch for _, arch in found] == [a, b]
    [job_a] = admin.poll_jobs(a, 5)
    [job_b] = admin.poll_jobs(b, 5)
    assert [str(job_a["build_id"]), str(job_b["build_id"])] == [bid for bid, _ in found]
    assert job_a["force"] is False and job_a["target_id"] == target_id
    for job in (job_a, job_b):  # a target/arch builds one at a time
        Client(admin.address, job["token"]).finish_build(job["build_id"], 0)

    queued = cli.json("targets", "build", str(target_id), "--remote", "--arch", b, "--force",
                      "--timeout", "600")
    assert [(q["arch"], q["target_id"]) for q in queued] == [(b, target_id)]
    assert admin.poll_jobs(a, 5) == []
    [job] = admin.poll_jobs(b, 5)
    assert job["build_id"] == queued[0]["build_id"] and job["force"] is True
    assert (job["timeout"], job_a["timeout"]) == (600, 3600)


def test_a_local_build_is_for_one_arch(cli, admin, u):
    target_id = add_target(admin, u, arch=f"loc{u},loc{u}b")
    message = one_error(cli("targets", "build", str(target_id)), 2)
    assert "one arch" in message and "--arch" in message
    assert admin.poll_jobs(f"loc{u}", 5) == []


# -- logs ------------------------------------------------------------------------------------

@pytest.fixture
def log_set(admin, u):
    """Four finished builds of one target around the local day 2024-03-10, and one today."""
    target_id = add_target(admin, u)
    starts = ["2024-03-09 23:59:59", "2024-03-10 00:00:00", "2024-03-10 23:59:59",
              "2024-03-11 00:00:00"]
    ids = [admin.add_log(target_id, "x86_64", local_epoch(s), local_epoch(s) + 65, code,
                         f"log {i}\n".encode())
           for i, (s, code) in enumerate(zip(starts, (0, 1, 2, 0), strict=True))]
    now = int(time.time())
    ids.append(admin.add_log(target_id, f"arm{u}", now - 10, now, 0, b"today\n"))
    return target_id, ids


def test_logs_list_table_in_local_time(cli, log_set):
    target_id, ids = log_set
    table = rows(cli.ok("logs", "list", "--target", str(target_id)))
    assert table[0] == ["ID", "TARGET", "START TIME", "END TIME", "ARCH", "EXIT CODE"]
    assert table[1] == [str(ids[0]), str(target_id), "2024-03-09 23:59:59",
                        "2024-03-10 00:01:04", "x86_64", "0"]
    assert [r[0] for r in table[1:]] == [str(i) for i in ids]
    listed = cli.json("logs", "list", "--target", str(target_id))
    assert [b["id"] for b in listed] == ids
    assert listed[0]["start_time"] == local_epoch("2024-03-09 23:59:59")


@pytest.mark.parametrize("flags, keep", [
    (["--failed"], [1, 2]),
    (["--code", "1", "--code", "2"], [1, 2]),
    (["--code", "!0"], [1, 2]),
    (["--code", "!1", "--code", "!2"], [0, 3, 4]),
    (["--code", "1", "--failed"], [1, 2]),
    (["--day", "2024-03-10"], [1, 2]),
    (["-d", "2024-03-09"], [0]),
    (["--after", "2024-03-10 00:00:00"], [2, 3, 4]),
    (["--before", "2024-03-11 00:00:00", "--after", "2024-03-09 23:59:59"], [1, 2]),
    (["--before", "2024-03-10"], [0]),
    (["--today"], [4]),
    (["-t", "--arch", "x86_64"], []),
    (["--limit", "2", "--offset", "1"], [1, 2]),
    (["--arch", "x86_64", "--failed", "--day", "2024-03-10"], [1, 2]),
])
def test_logs_list_filters(cli, log_set, flags, keep):
    target_id, ids = log_set
    found = cli.json("logs", "list", "--target", str(target_id), *flags)
    assert [b["id"] for b in found] == [ids[i] for i in keep]


def test_logs_info_content_remove(cli, admin, log_set):
    target_id, ids = log_set
    assert cli.ok("logs", "info", str(ids[1])) == (
        f"id: {ids[1]}\ntarget id: {target_id}\nstart time: 2024-03-10 00:00:00\n"
        "end time: 2024-03-10 00:01:05\nduration: 1m05s\narch: x86_64\nexit code: 1\n")
    assert cli.json("logs", "info", str(ids[1]))["exit_code"] == 1
    raw = b"caf\xc3\xa9 \xff not utf-8\n\x1b[1mbold\x1b[0m\n"
    log_id = admin.add_log(target_id, "x86_64", 1700000000, 1700000001, 0, raw)
    result = cli("logs", "content", str(log_id))
    assert result.returncode == 0 and result.stdout == raw and result.stderr == b""
    assert cli.ok("logs", "remove", str(log_id)) == f"Build log {log_id} removed\n"
    assert one_error(cli("logs", "content", str(log_id)), 1) == "vieter-lite: Build log not found."
    assert one_error(cli("logs", "info", str(log_id)), 1) == "vieter-lite: Build log not found."


class Reader(threading.Thread):
    """Collects a pipe's bytes as they come."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.data, self.changed = pipe, b"", threading.Condition()

    def run(self) -> None:
        while chunk := self.pipe.read1(65536):
            with self.changed:
                self.data += chunk
                self.changed.notify_all()

    def wait_for(self, expected: bytes, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.data == expected, timeout), self.data


def test_logs_tail_follows_a_running_build_until_it_ends(cli, admin, srv, u):
    arch = f"tail{u}"
    target_id = add_target(admin, u, arch=arch)
    build_id = admin.queue_build(target_id, arch)
    tail = subprocess.Popen([sys.executable, "-m", "vieter_lite", "logs", "tail", str(build_id),
                             "--interval", "0.1"], env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out = Reader(tail.stdout)
        out.start()
        time.sleep(0.5)  # it waits while the build is queued
        assert tail.poll() is None
        [job] = admin.poll_jobs(arch, 1)
        agent = Client(srv.url, job["token"], timeout=10)  # the in-test agent: its token only
        chunks = [b"==> Making package: hello 1.0-1\n", b"compiling... ",
                  b"50%\n\xe2\x9c\x93 done\n", b"==> Finished\n"]
        for i, chunk in enumerate(chunks):
            agent.append_log(build_id, chunk)
            out.wait_for(b"".join(chunks[:i + 1]))  # printed while the build still runs
            assert tail.poll() is None
        agent.append_log(build_id, b"last words\n")
        agent.finish_build(build_id, 0)
        assert tail.wait(timeout=10) == 0
        out.join(timeout=5)
        assert out.data == b"".join(chunks) + b"last words\n"
        assert tail.stderr.read().decode() == \
            f"vieter-lite: build {build_id} is queued; waiting for an agent to start it\n"
    finally:
        if tail.poll() is None:
            tail.kill()
        tail.wait()


def test_logs_tail_of_a_failed_build_prints_the_log_and_exits_1(cli, admin, srv, u):
    arch = f"fail{u}"
    target_id = add_target(admin, u, arch=arch)
    build_id = admin.queue_build(target_id, arch)
    [job] = admin.poll_jobs(arch, 1)
    agent = Client(srv.url, job["token"], timeout=10)
    agent.append_log(build_id, b"==> ERROR: A failure occurred in build().\n")
    agent.finish_build(build_id, 4)
    result = cli("logs", "tail", str(build_id))
    assert result.returncode == 1
    assert result.stdout == b"==> ERROR: A failure occurred in build().\n"
    assert result.stderr.decode() == f"vieter-lite: build {build_id} failed with exit code 4\n"
    assert one_error(cli("logs", "tail", "999999"), 1) == "vieter-lite: build 999999 not found"


# -- repos -----------------------------------------------------------------------------------

def publish(admin: Client, tmp_path: Path, repo: str, name: str, arch: str = "x86_64") -> None:
    pkginfo = {"pkgname": name, "pkgbase": name, "pkgver": "1.0-1", "pkgdesc": "cli test",
               "builddate": "1700000000", "packager": "Tests <t@example.org>", "size": "1",
               "arch": arch}
    path = make_synthetic_package(tmp_path / f"{name}-{arch}.pkg.tar.zst", pkginfo,
                                  {f"usr/share/{name}/README": b"hi\n"})
    assert admin.publish(repo, path)["name"] == name


def test_repos_remove(cli, admin, srv, tmp_path, u):
    repo = f"r{u}"
    for name in ("keep", "drop"):
        publish(admin, tmp_path, repo, name)
    publish(admin, tmp_path, repo, "arm", "aarch64")
    assert cli.ok("repos", "remove", repo, "x86_64", "drop") == \
        f"Package 'drop' removed from {repo}/x86_64.\n"
    assert one_error(cli("repos", "remove", repo, "x86_64", "drop"), 1) == \
        f"vieter-lite: package 'drop' not found in {repo}/x86_64"
    assert "very destructive" in one_error(cli("repos", "remove", repo, "aarch64"), 2)
    assert "very destructive" in one_error(cli("repos", "remove", repo), 2)
    assert cli.json("repos", "remove", repo, "aarch64", "--force") == \
        {"repo": repo, "arch": "aarch64", "package": None, "removed": True}
    assert cli.ok("repos", "remove", repo, "--force") == f"Repository '{repo}' removed.\n"
    assert one_error(cli("repos", "remove", repo, "--force"), 1) == \
        f"vieter-lite: repository '{repo}' not found"


def test_targets_info_shows_the_global_schedule_and_next_run(cli, admin, u):
    target_id = add_target(admin, u)
    plan = admin.target_schedule(target_id)
    assert (plan["schedule"], plan["global"]) == (QUIET_SCHEDULE, True)
    next_run = plan["archs"][0]["next_run"]
    assert time.time() < next_run <= time.time() + 367 * 86400  # once a year
    info = cli.ok("targets", "info", str(target_id)).splitlines()
    assert f"schedule: {QUIET_SCHEDULE} (global_schedule)" in info
    assert info[-1] == f"next run (x86_64): {local_text(next_run)}"


def claim_build(admin: Client, target_id: int, arch: str) -> dict[str, Any]:
    build_id = admin.queue_build(target_id, arch)
    jobs = admin.poll_jobs(arch, 1, build=build_id)
    assert [j["build_id"] for j in jobs] == [build_id]
    return jobs[0]


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_builds_list_shows_what_is_waiting(cli, admin, srv, u):
    arch, other = f"a{u}", f"b{u}"
    target_id = add_target(admin, u, arch=[arch, other])
    queued = admin.queue_build(target_id, other)
    running = claim_build(admin, target_id, arch)["build_id"]
    queued_at = {b["id"]: b for b in (admin.get_build(queued), admin.get_build(running))}

    table = rows(cli.ok("builds", "list", "--target", str(target_id)))
    assert table == [
        ["ID", "TARGET", "REPO/ARCH", "STATUS", "QUEUED", "STARTED", "BLOCKED BY"],
        [str(queued), str(target_id), f"r{u}/{other}", "queued",
         local_text(queued_at[queued]["created_at"]), "-", "-"],
        [str(running), str(target_id), f"r{u}/{arch}", "running",
         local_text(queued_at[running]["created_at"]),
         local_text(queued_at[running]["started_at"]), "-"]]
    # --json prints /api/v2/builds' resources: RFC 3339 times, links
    [one] = cli.json("builds", "list", "--target", str(target_id), "--status", "queued")
    assert (one["id"], one["status"], one["created_at"], one["started_at"]) == \
        (queued, "queued", rfc3339(queued_at[queued]["created_at"]), None)
    assert one["links"]["self"] == {"href": f"{srv.url}/api/v2/builds/{queued}"}
    # finished builds are left out unless asked for; a timed-out one is 'timeout'
    admin.finish_build(running, 0, timed_out=True)
    assert [b["id"] for b in cli.json("builds", "list", "--target", str(target_id))] == \
        [queued]
    done = cli.json("builds", "list", "--target", str(target_id), "--status", "all")
    assert [(b["id"], b["status"]) for b in done] == [(queued, "queued"), (running, "timeout")]
    assert [r[3] for r in rows(cli.ok("builds", "list", "--target", str(target_id),
                                      "--status", "timeout, failed"))] == ["STATUS", "timeout"]
    assert one_error(cli("builds", "list", "--status", "waiting"), 1) == (
        "vieter-lite: states: 'waiting' is not one of 'pending', 'queued', 'running', "
        "'success', 'failed', 'timeout', 'cancelled'")


@pytest.mark.parametrize("limit, offset", [(0, 0), (0, 3), (2, 0), (2, 4), (3, 1), (4, 5),
                                           (9, 2), (2, 9)])
def test_builds_list_pages_through_limit_and_offset(admin, u, limit, offset):
    """Pages of 2 on the wire: every (limit, offset) gives the same slice of the builds."""
    target_id = add_target(admin, u, arch=[f"a{u}{i}" for i in range(7)])
    ids = [admin.queue_build(target_id, f"a{u}{i}") for i in range(7)]
    found = admin.list_v2("/api/v2/builds", {"target_ids": target_id}, per_page=2,
                          limit=limit, offset=offset)
    assert [b["id"] for b in found] == ids[offset:offset + limit if limit else None]
    assert [b["id"] for b in admin.list_builds(target_ids=[target_id], limit=limit,
                                               offset=offset)] == \
        ids[offset:offset + limit if limit else None]


def test_repos_list_and_show_with_owners(cli, admin, srv, tmp_path, u):
    repo = f"r{u}"
    publish(admin, tmp_path, repo, "admins")
    publish(admin, tmp_path, repo, "arm", "aarch64")
    target_id = add_target(admin, u)
    job = claim_build(admin, target_id, "x86_64")
    publish(Client(srv.url, job["token"]), tmp_path, repo, "built")
    admin.finish_build(job["build_id"], 0)

    # --json prints /api/v2/repos' resources
    [listed_repo] = [r for r in cli.json("repos", "list") if r["name"] == repo]
    assert [(a["arch"], a["packages"], a["links"]["packages"]["href"])
            for a in listed_repo["archs"]] == [
        ("aarch64", 1, f"{srv.url}/api/v2/repos/{repo}/aarch64/packages"),
        ("x86_64", 2, f"{srv.url}/api/v2/repos/{repo}/x86_64/packages")]
    assert listed_repo["pacman_conf"] == f"[{repo}]\nServer = {srv.url}/$repo/$arch\n"
    assert [r for r in rows(cli.ok("repos", "list")) if r[0] in ("REPO", repo)] == [
        ["REPO", "ARCH", "PACKAGES"], [repo, "aarch64", "1"], [repo, "x86_64", "2"]]

    listed = cli.json("repos", "show", repo, "x86_64")
    files = {p["name"]: srv.data_dir / "pkgs" / repo / "x86_64" / p["filename"] for p in listed}
    # /api/v2's packages: RFC 3339 times; the api_key's names are {"target_id": null, "user": null}
    assert [(p["name"], p["version"], p["owner"], p["size"]) for p in listed] == [
        ("admins", "1.0-1", {"target_id": None, "user": None}, files["admins"].stat().st_size),
        ("built", "1.0-1", {"target_id": target_id, "user": None},
         files["built"].stat().st_size)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed[0]["published_at"])
    table = rows(cli.ok("repos", "show", repo))
    assert table[0] == ["NAME", "VERSION", "ARCH", "SIZE", "PUBLISHED", "OWNER", "KEPT"]
    assert [(r[0], r[2], r[5]) for r in table[1:]] == [
        ("arm", "aarch64", "admin"), ("admins", "x86_64", "admin"),
        ("built", "x86_64", f"target {target_id}")]
    published = datetime.strptime(listed[0]["published_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert table[2][4] == local_text(int(published.replace(tzinfo=UTC).timestamp()))
    assert [p["name"] for p in cli.json("repos", "show", repo)] == ["arm", "admins", "built"]
    assert re.fullmatch(r"\d+ B|\d+\.\d (KiB|MiB)", table[2][3])
    assert one_error(cli("repos", "show", f"n{u}"), 1) == \
        f"vieter-lite: repository 'n{u}' not found"
    assert one_error(cli("repos", "show", repo, "riscv64"), 1) == \
        f"vieter-lite: arch-repo {repo}/riscv64 not found"


# -- tokens ----------------------------------------------------------------------------------

def fields(text: str) -> dict[str, str]:
    """`key: value` lines as a dict."""
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_a_token_made_with_the_cli_works_for_its_scope_until_removed(cli, admin, srv, u):
    target_id = add_target(admin, u)
    build_id = admin.queue_build(target_id, "x86_64")
    made = cli("tokens", "add", f"ci{u}", "--scope", "builds:read")
    assert made.returncode == 0, made.stderr
    assert made.stderr.decode() == \
        "vieter-lite: the secret is shown only this once: keep it now\n"
    shown = fields(made.stdout.decode())
    secret, token_id = shown["secret"], shown["id"]
    assert (shown["name"], shown["scopes"], shown["repos"], shown["last used"]) == \
        (f"ci{u}", "builds:read", "all", "-")

    as_token = {"VIETER_API_KEY": secret}
    table = rows(cli.ok("builds", "list", "--target", str(target_id), env=as_token))
    assert [r[:4] for r in table] == [["ID", "TARGET", "REPO/ARCH", "STATUS"],
                                      [str(build_id), str(target_id), f"r{u}/x86_64", "queued"]]
    [build] = cli.json("builds", "list", "--target", str(target_id), env=as_token)
    assert build["links"]["self"] == {"href": f"{srv.url}/api/v2/builds/{build_id}"}
    for args, scope in ((["targets", "list"], "targets:read"), (["repos", "list"], "repos:read"),
                        (["tokens", "list"], "admin")):
        assert one_error(cli(*args, env=as_token), 1) == \
            f"vieter-lite: Forbidden: this token lacks the scope '{scope}'."

    # listed (used now), never with its secret
    listed = cli.ok("tokens", "list")
    assert secret not in listed
    [row] = [r for r in rows(listed) if r[1] == f"ci{u}"]
    assert row[:6] == [token_id, f"ci{u}", f"ci{u}", "builds:read", "all", "all"]
    assert row[7] == "never" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[8])
    [listed_json] = [t for t in cli.json("tokens", "list") if t["name"] == f"ci{u}"]
    assert "secret" not in listed_json and secret not in json.dumps(listed_json)

    assert cli.ok("tokens", "remove", token_id) == f"Token {token_id} revoked\n"
    assert one_error(cli("builds", "list", env=as_token), 1) == \
        "vieter-lite: unauthorized: check api_key"
    assert not [t for t in cli.json("tokens", "list") if t["name"] == f"ci{u}"]
    assert one_error(cli("tokens", "remove", token_id), 1) == "vieter-lite: Token not found."


# -- aur -------------------------------------------------------------------------------------

def test_aur_search(cli, aur):
    table = rows(cli.ok("aur", "search", "yay", drop=("VIETER_API_KEY", "VIETER_ADDRESS")))
    assert table == [["NAME", "VERSION", "DESCRIPTION"],
                     ["yay", "12.3.5-1",
                      "Yet another yogurt. Pacman wrapper and AUR helper written in go."],
                     ["yay-bin", "12.3.5-1", "Yet another yogurt (binary release)."]]
    found = cli.json("aur", "search", "foo")
    assert [p["Name"] for p in found] == ["python-foo-docs"]
    assert ("/rpc", {"v": ["5"], "type": ["search"], "arg": ["foo"]}) in aur.requests
    assert cli.ok("aur", "search", "nothing-like-it") == "NAME  VERSION  DESCRIPTION\n"
    assert one_error(cli("aur", "search", "y"), 1) == "vieter-lite: AUR: Query arg too small."
    port = free_port()
    assert one_error(cli("aur", "search", "yay", env={"VIETER_AUR_URL": f"http://127.0.0.1:{port}"}),
                     1) == f"vieter-lite: AUR: cannot reach http://127.0.0.1:{port}: Connection refused"


def test_aur_add(cli, admin, aur, u):
    repo = f"aur{u}"
    result = cli("aur", "add", "yay", f"missing{u}", repo)
    assert result.returncode == 1
    [target] = admin.list_targets(repo=repo)
    assert (target["kind"], target["url"]) == ("git", f"{aur.url}/yay.git")
    assert result.stdout.decode() == f"Added yay (target {target['id']})\n"
    assert result.stderr.decode() == f"Failed to add missing{u}: not found in the AUR\n"
    info_query = [q for path, q in aur.requests if q.get("type") == ["info"]][-1]
    assert info_query["arg[]"] == ["yay", f"missing{u}"]

    added = cli.json("aur", "add", "yay-bin", "python-foo-docs", "yay", repo, "--arch",
                     "x86_64,aarch64")
    by_name = {r["name"]: r for r in added}
    assert by_name["yay"]["existed"] is True and by_name["yay"]["target_id"] == target["id"]
    assert by_name["python-foo-docs"]["url"] == f"{aur.url}/python-foo.git"
    targets = {t["url"]: t for t in admin.list_targets(repo=repo)}
    assert set(targets) == {f"{aur.url}/{b}.git" for b in ("yay", "yay-bin", "python-foo")}
    assert [a["value"] for a in targets[f"{aur.url}/yay-bin.git"]["arch"]] == ["x86_64", "aarch64"]
    assert cli.ok("aur", "add", "yay", repo) == f"yay is already target {target['id']} of {repo}\n"
    assert one_error(cli("aur", "add", "yay", repo, "--api-key", "nope"), 1) == \
        "vieter-lite: unauthorized: check api_key"


# -- errors: one line, the right exit status -------------------------------------------------

def test_unreachable_server(cli):
    port = free_port()
    for args in (["targets", "list"], ["logs", "tail", "1"], ["repos", "remove", "r", "a", "p"]):
        assert one_error(cli(*args, env={"VIETER_ADDRESS": f"http://127.0.0.1:{port}"}), 1) == \
            f"vieter-lite: cannot reach http://127.0.0.1:{port}: Connection refused"


@pytest.mark.parametrize("args", [
    ["targets", "list"], ["targets", "info", "1"], ["targets", "add", "https://x.org/y.git", "r"],
    ["targets", "build", "1", "--remote"], ["logs", "list"], ["logs", "content", "1"],
    ["repos", "remove", "r", "x86_64", "p"],
])
def test_wrong_key_is_one_line(cli, args):
    assert one_error(cli(*args, env={"VIETER_API_KEY": "wrong"}), 1) == \
        "vieter-lite: unauthorized: check api_key"


@pytest.mark.parametrize("args, message", [
    (["targets", "info", "999999"], "Target not found."),
    (["targets", "edit", "999999", "--branch", "x"], "Target not found."),
    (["targets", "build", "999999", "--remote"], "Target not found."),
    (["targets", "build", "999999", "--remote", "--arch", "x86_64"], "Unknown target id."),
    (["logs", "info", "999999"], "Build log not found."),
    (["logs", "remove", "999999"], "Build log not found."),
])
def test_unknown_ids_are_one_line(cli, args, message):
    assert one_error(cli(*args), 1) == f"vieter-lite: {message}"


@pytest.mark.parametrize("args, fragment", [
    (["targets", "info", "abc"], "argument ID: 'abc' is not an id"),
    (["targets", "info", "0"], "is not an id"),
    (["targets", "add", "https://x.org/y.git"], "required: REPO"),
    (["targets", "add", "u", "r", "--kind", "svn"], "invalid choice: 'svn'"),
    (["targets", "list", "--limit", "-1"], "argument -l/--limit"),
    (["targets", "frobnicate"], "invalid choice: 'frobnicate'"),
    (["logs", "list", "--before", "yesterday"], "is not a local time"),
    (["logs", "list", "--day", "2024-13-01"], "is not a date"),
    (["logs", "list", "--today", "--day", "2024-01-01"], "not allowed with argument"),
    (["logs", "list", "--code", "1,2"], "is not an exit code"),
    (["logs", "tail", "1", "--interval", "0"], "is not a number of seconds"),
    (["repos", "remove"], "required: REPO"),
    (["aur", "add", "yay"], "required: REPO"),
    (["targets", "list", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_are_one_usage_line(cli, args, fragment):
    message = one_error(cli(*args), 2)
    assert message.startswith("vieter-lite") and ": error: " in message and fragment in message


@pytest.mark.parametrize("args, env, fragment", [
    (["logs", "list", "--today", "--after", "2024-01-01"], {}, "cannot be combined"),
    (["targets", "add", "u", "r", "--schedule", "0 0 30 2"], {}, "Invalid cron expression"),
    (["targets", "list"], {"VIETER_API_KEY": ""}, "config key 'api_key' is required"),
    (["targets", "list"], {"VIETER_ADDRESS": "localhost:8000"}, "config key 'address'"),
    (["targets", "list", "--address", "pi"], {}, "'address' (--address)"),
    (["targets", "list", "-f", "/nonexistent.toml"], {}, "does not exist"),
])
def test_refusals_and_config_errors_exit_2(cli, args, env, fragment):
    assert fragment in one_error(cli(*args, env=env), 2)


def test_top_level_flags(cli, admin, srv, u):
    target_id = add_target(admin, u)
    port = free_port()
    env = {"VIETER_ADDRESS": f"http://127.0.0.1:{port}", "VIETER_API_KEY": "wrong"}
    info = json.loads(cli.ok("--json", "--address", srv.url, "--api-key", API_KEY,
                             "targets", "info", str(target_id), env=env))
    assert info["id"] == target_id
    assert json.loads(cli.ok("targets", "--json", "info", str(target_id)))["id"] == target_id


def test_client_methods_raise_client_errors_with_status(srv, admin, u):
    with pytest.raises(ClientError) as info:
        Client(srv.url, "wrong").list_targets()
    assert (info.value.status, info.value.message) == (401, "unauthorized: check api_key")
    with pytest.raises(ClientError) as info:
        admin.add_target("https://x.org/y.git", f"r{u}", kind="svn")
    assert (info.value.status, info.value.message) == (400, "Invalid kind.")
    assert admin.health() == "Healthy."
    target_id = add_target(admin, u)
    log_id = admin.add_log(target_id, "x86_64", 1700000000, 1700000002, 0, b"0123456789")
    assert admin.log_content(log_id) == (b"0123456789", 10)
    assert admin.log_content(log_id, 4) == (b"456789", 10)
    assert admin.log_content(log_id, 10) == (b"", 10)
    with pytest.raises(ClientError, match="invalid server address"):
        Client("localhost:8000").health()


def test_the_client_side_never_imports_the_server():
    """Of vieter_lite.repo, only the pure pacman formats `aur add` reads (dependencies,
    versions, sync dbs' desc entries) are imported."""
    code = ("import sys, vieter_lite.cli, vieter_lite.client, vieter_lite.aur, "
            "vieter_lite.commands; "
            "formats = ('vieter_lite.repo', 'vieter_lite.repo.desc', 'vieter_lite.repo.srcinfo', "
            "'vieter_lite.repo.vercmp'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bottle', 'waitress') "
            "or m.startswith(('vieter_lite.db', 'vieter_lite.web', 'vieter_lite.repo', "
            "'vieter_lite.queue', 'vieter_lite.supervisor')) and m not in formats))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert result.stdout == "[]\n"
