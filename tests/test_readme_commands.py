"""README's two set-up commands: taken from README.md the way .ci/run takes them, and the
server command run as written with Debian's /usr/bin/python3 in a copy of the checkout
(the slow test here: it makes a venv and pip-installs the project)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT, ServerProcess, free_port

SYSTEM_PYTHON = "/usr/bin/python3"


def ci_awk_program() -> str:
    """The awk program .ci/run extracts README's test command with."""
    match = re.search(r"^test_command=\$\(awk '([^']*)' README\.md\)$",
                      (ROOT / ".ci" / "run").read_text(), re.M)
    assert match, ".ci/run no longer takes its test command from README.md with awk"
    return match.group(1)


def readme_command(lead_in: str) -> str:
    """The first line of the ```sh block after README's line starting with `lead_in`,
    extracted with .ci/run's own awk program (its lead-in swapped)."""
    program = ci_awk_program().replace("/^Run the tests:/", f"/^{lead_in}/")
    done = subprocess.run(["awk", program, "README.md"], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_ci_run_finds_readme_test_command():
    command = readme_command("Run the tests:")
    assert command.startswith("python3 -m venv .venv && ") and "-m pytest" in command
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")]).returncode == 0


def test_readme_has_exactly_two_set_up_commands():
    """The server's and the tests', each in the first ```sh block after its lead-in."""
    text = (ROOT / "README.md").read_text()
    leads = re.findall(r"^(Run the (?:server|tests)\b.*:)$", text, re.M)
    assert [lead.split()[2].rstrip(":") for lead in leads] == ["server", "tests"], leads
    server = readme_command("Run the server")
    assert server.startswith("python3 -m venv .venv && ") and server.endswith(" server")


def copy_checkout(dest: Path) -> None:
    """The project's files as a fresh clone has them (no venv, caches or data)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.decode().split("\0"):
            if name and (ROOT / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dest / name)
    else:
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache"))


@pytest.mark.integration
@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"needs {SYSTEM_PYTHON}")
def test_readme_server_command_serves_as_written(tmp_path):
    """SLOW (a venv and a pip install, 10-60 s): README's server command, literally, via bash
    with /usr/bin first on PATH; only VIETER_PORT is added (a free port)."""
    command = readme_command("Run the server")
    work = tmp_path / "checkout"
    work.mkdir()
    copy_checkout(work)
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIETER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"PATH": "/usr/bin:/bin:" + env.get("PATH", ""), "VIETER_PORT": str(port),
                "HOME": str(tmp_path)})  # no ~/.vieterrc of this machine's
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", "-c", command], cwd=work, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # pip may fetch from PyPI
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    body = (resp.status, json.loads(resp.read()))
                    break
            except OSError:
                time.sleep(0.5)
        assert body == (200, {"message": "Healthy.", "data": ""}), log_path.read_text()
        assert (work / ".venv" / "bin" / "vieter-lite").is_file()
        assert (work / "data" / "vieter.sqlite").is_file()  # the embedded default ./data
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "stopping" in log_path.read_text()


def first_steps_block() -> str:
    """README's ```sh block that adds a target and watches it build."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    found = [b for b in blocks if "vieter-lite targets add" in b and "export " in b]
    assert len(found) == 1, found
    return found[0]


def test_readme_first_steps_run_against_a_server(server):
    """Each client line of README's first steps against a real server; a comment that
    starts with a capital letter is the line's output. `logs tail` waits for an agent, so
    it is only parsed."""
    from vieter_lite.cli import build_parser

    lines = first_steps_block().strip().splitlines()
    assert lines[0].startswith("export VIETER_ADDRESS=") and "VIETER_API_KEY=" in lines[0]
    env = ServerProcess(server.data_dir).env()
    env.update({"VIETER_ADDRESS": server.url, "VIETER_API_KEY": API_KEY})
    ran = 0
    for line in lines[1:]:
        command, _, comment = line.partition("#")
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/vieter-lite", line
        build_parser().parse_args(argv[1:])  # exits 2 on an argument the CLI does not take
        if argv[1:3] == ["logs", "tail"]:
            continue
        done = subprocess.run([sys.executable, "-m", "vieter_lite", *argv[1:]], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (line, done.stderr)
        expected = comment.strip()
        if expected[:1].isupper():
            assert done.stdout.strip() == expected, line
        ran += 1
    assert ran == 3
    listed = subprocess.run([sys.executable, "-m", "vieter_lite", "builds", "list", "--json"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert [b["status"] for b in json.loads(listed.stdout)] == ["queued"]
