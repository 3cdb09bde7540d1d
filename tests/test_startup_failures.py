"""A server that cannot start says why in one line on stderr, exits 1, and creates nothing:
the port is taken, the data dir cannot be written, a previous run left files it cannot write."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, ServerProcess

TEST_USER = os.environ.get("VIETER_TEST_USER", "vieter-test")
# A python that the test user can run, with the server's dependencies (.ci/podman-setup).
USER_PYTHON = os.environ.get("VIETER_AGENT_PYTHON", "/opt/vieter-lite-agent/bin/python")


def run_server(env: dict[str, str], cwd: Path, *args: str,
               prefix: tuple[str, ...] = (), python: str = sys.executable,
               ) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, python, "-m", "vieter_lite", "server", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_port_in_use_is_one_line_exit_1_and_no_data_dir(tmp_path):
    """README's case: the default data dir ./data must not appear when the port is taken."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = ServerProcess(tmp_path / "data", port=port).env()
    del env["VIETER_DATA_DIR"]  # the default: ./data in the working directory
    try:
        done = run_server(env, tmp_path)
    finally:
        taken.close()
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"vieter-lite: cannot listen on 127.0.0.1:{port}: address already "
                           "in use (set port or VIETER_PORT)\n")
    assert tree(tmp_path) == []


def test_an_address_not_on_this_machine_is_one_line(tmp_path):
    if Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text().strip() != "0":
        pytest.skip("this machine lets a process bind any address (ip_nonlocal_bind)")
    # 192.0.2.0/24 is TEST-NET-1: documentation only, never a local address
    env = ServerProcess(tmp_path / "data", env_extra={"VIETER_HOST": "192.0.2.1"}).env()
    done = run_server(env, tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"vieter-lite: cannot listen on 192.0.2.1:{env['VIETER_PORT']}: no "
                           "such address on this machine (set host or VIETER_HOST)\n")
    assert tree(tmp_path) == []


@pytest.fixture
def as_other_user():
    """(prefix, python, user, base): run the server as a user that may not write a root-owned
    0755 dir `base` (root may write anywhere, so as root it is TEST_USER via setpriv, with a
    copy of the code that user can read)."""
    base = Path(tempfile.mkdtemp(prefix="vieter-startup-"))  # tmp_path is root's 0700
    base.chmod(0o755)
    try:
        if os.geteuid() != 0:
            yield (), sys.executable, pwd.getpwuid(os.geteuid()).pw_name, base, ROOT
        else:
            try:
                pwd.getpwnam(TEST_USER)
            except KeyError:
                pytest.skip(f"no user {TEST_USER}")
            if not os.access(USER_PYTHON, os.X_OK):
                pytest.skip(f"{USER_PYTHON} is missing (bash .ci/podman-setup creates it)")
            code = base / "code"
            shutil.copytree(ROOT / "vieter_lite", code / "vieter_lite",
                            ignore=shutil.ignore_patterns("__pycache__"))
            prefix = ("setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}",
                      "--init-groups", "env", f"HOME={pwd.getpwnam(TEST_USER).pw_dir}")
            yield prefix, USER_PYTHON, TEST_USER, base, code
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def _env(data_dir: Path, code: Path) -> dict[str, str]:
    env = ServerProcess(data_dir).env()
    env.update({"PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def test_a_data_dir_the_user_cannot_create_is_one_line(as_other_user):
    prefix, python, user, base, code = as_other_user
    work = base / "work"
    work.mkdir()
    if not prefix:
        work.chmod(0o555)
    before = tree(base)
    done = run_server(_env(work / "data", code), base, prefix=prefix, python=python)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"vieter-lite: data dir {work}/data cannot be created: {work} is not "
                           f"writable by {user} (set data_dir or VIETER_DATA_DIR)\n")
    assert tree(base) == before


def test_a_data_dir_the_user_cannot_write_is_one_line(as_other_user):
    prefix, python, user, base, code = as_other_user
    data = base / "data"
    data.mkdir()
    if not prefix:
        data.chmod(0o555)
    before = tree(base)
    done = run_server(_env(data, code), base, prefix=prefix, python=python)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"vieter-lite: data dir {data} is not writable by {user} "
                           "(set data_dir or VIETER_DATA_DIR)\n")
    assert tree(base) == before


def test_a_database_left_by_another_user_is_one_line(as_other_user):
    """The server once ran as root, now as its own user: the data dir is the user's to write,
    the sqlite file is not."""
    prefix, python, user, base, code = as_other_user
    data = base / "data"
    data.mkdir()
    data.chmod(0o777)
    (data / "vieter.sqlite").write_bytes(b"")
    (data / "vieter.sqlite").chmod(0o644 if prefix else 0o444)
    before = tree(base)
    done = run_server(_env(data, code), base, prefix=prefix, python=python)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"vieter-lite: data dir {data}: vieter.sqlite is not writable by "
                           f"{user} (was the server run as another user?) (set data_dir or "
                           "VIETER_DATA_DIR)\n")
    assert tree(base) == before


@pytest.mark.parametrize("relative, problem", [
    ("new/nested/data", None),
    ("file", "{path} is not a directory"),
    ("file/data", "{path} cannot be created: {base}/file is not a directory"),
])
def test_dir_problem_creates_nothing(tmp_path, relative, problem):
    from vieter_lite.preflight import dir_problem
    (tmp_path / "file").write_text("")
    path = tmp_path / relative
    expected = problem and problem.format(path=path, base=tmp_path)
    assert dir_problem(path) == expected
    assert tree(tmp_path) == ["file"]
