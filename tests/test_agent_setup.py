"""README's agent set-up, as written, for a fresh user, builds; `vieter-lite agent --check`
passes on a good set-up and names the fix for a missing subuid range or runroot."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import API_KEY, ROOT
from test_agent_e2e import AGENT_PYTHON, AGENT_USER, BASE_IMAGE, PREPARE, add_target, db_entries, pkgbuild, pytestmark  # noqa: F401
from test_agent_network import lan  # noqa: F401
from vieter_lite.agent import check

README_USER = "vieter-readme"
NOSUBID_USER = "vieter-nosubid"


def agent_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## The build agent")
    return text[start:text.index("\n## ", start + 1)]


def readme_blocks() -> tuple[str, str]:
    """(the root commands, the agent user's commands) of README's agent set-up."""
    blocks = re.findall(r"```sh\n(.*?)```", agent_section(), re.S)
    root = next(b for b in blocks if "useradd" in b)
    user = next(b for b in blocks if "storage.conf" in b)
    return root, user


def as_user(user: str, *argv: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """argv as `user` the way the agent runs: its HOME, no XDG_RUNTIME_DIR, a clean env."""
    home = pwd.getpwnam(user).pw_dir
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "env", "-i",
         f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin", *extra, *argv],
        cwd=home, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def remove_user(user: str) -> None:
    """Stop what rootless Podman left running for the user (by pid), then remove it."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.parent.stat().st_uid == uid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
    time.sleep(0.5)
    subprocess.run(["userdel", "-r", user], capture_output=True)
    for path in (f"/tmp/containers-user-{uid}", f"/tmp/podman-run-{uid}"):
        shutil.rmtree(path, ignore_errors=True)


def load_base_image(user: str) -> None:
    """The base image into the user's store (what `podman pull` would do with a registry)."""
    save = subprocess.Popen(
        ["runuser", "-u", AGENT_USER, "--", "env", "-u", "XDG_RUNTIME_DIR",
         f"HOME={pwd.getpwnam(AGENT_USER).pw_dir}", "podman", "save", BASE_IMAGE],
        cwd="/", stdout=subprocess.PIPE)
    home = pwd.getpwnam(user).pw_dir
    load = subprocess.run(["runuser", "-u", user, "--", "env", "-u", "XDG_RUNTIME_DIR",
                           f"HOME={home}", "podman", "load", "-q"], cwd=home,
                          stdin=save.stdout, capture_output=True, text=True)
    assert save.stdout is not None
    save.stdout.close()
    assert save.wait() == 0 and load.returncode == 0, load.stderr


@pytest.fixture(scope="module")
def code(lan):
    """The checkout's code where every test user can read it."""
    return lan["base"] / "code"


@pytest.fixture
def fresh_user():
    users: list[str] = []

    def make(name: str, root_block: str | None = None) -> pwd.struct_passwd:
        remove_user(name)
        users.append(name)
        if root_block is None:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
        else:  # README's useradd line, with this test's user name
            for line in root_block.splitlines():
                if line.startswith("useradd"):
                    subprocess.run(["bash", "-ec", line.replace("vieter-agent", name)],
                                   check=True)
        return pwd.getpwnam(name)

    yield make
    for name in users:
        remove_user(name)


def test_readme_set_up_as_written_builds_for_a_fresh_user(lan, code, fresh_user, tmp_path):
    root_block, user_block = readme_blocks()
    packages = root_block.split("apt-get install", 1)[1].splitlines()[0].split()
    for package in packages:  # (installing is the CI set-up's job; the list must be true)
        assert subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0, \
            f"README's apt-get line names {package}, which is not installed here"
    user = fresh_user(README_USER, root_block)
    done = as_user(user.pw_name, "bash", "-euc", user_block)
    assert done.returncode == 0, done.stderr
    load_base_image(user.pw_name)

    work = Path(user.pw_dir, "agent")
    work.mkdir()
    (work / "prepare.sh").write_text(PREPARE)
    shutil.chown(work, user.pw_name, user.pw_name)
    settings = {"PYTHONPATH": str(code), "VIETER_ADDRESS": lan["lan_url"],
                "VIETER_API_KEY": API_KEY, "VIETER_DATA_DIR": str(work),
                "VIETER_PREPARE_SCRIPT": str(work / "prepare.sh"),
                "VIETER_MAKEPKG_ARGS": "--nodeps"}  # build_network: the default
    checked = as_user(user.pw_name, AGENT_PYTHON, "-m", "vieter_lite", "agent", "--check",
                      "--image", BASE_IMAGE, env=settings)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the agent can build here" in checked.stdout

    (lan["web_root"] / "readme.PKGBUILD").write_text(pkgbuild("e2e-readme", bin_arch="any"))
    target = add_target(lan["api"], "url", lan["web_url"] + "/readme.PKGBUILD", arch="e2ereadme")
    built = as_user(user.pw_name, AGENT_PYTHON, "-m", "vieter_lite", "targets", "build",
                    str(target), "--arch", "e2ereadme", env=settings)
    assert built.returncode == 0, (built.stdout[-3000:], built.stderr[-3000:])
    assert "==> Finished making" in built.stdout and "+ publish e2e-readme-bin" in built.stdout
    assert "e2e-readme-bin-1.0-1" in db_entries(lan["api"])  # an any package: in every db


# -- agent --check -------------------------------------------------------------------------

def check_as(user: str, code: Path, address: str, **env: str) -> subprocess.CompletedProcess:
    return as_user(user, AGENT_PYTHON, "-m", "vieter_lite", "agent", "--check", "--image",
                   BASE_IMAGE, env={"PYTHONPATH": str(code), "VIETER_ADDRESS": address,
                                    "VIETER_API_KEY": API_KEY, **env})


def test_check_passes_on_the_ci_set_up(lan, code):
    done = check_as(AGENT_USER, code, lan["lan_url"])
    assert (done.returncode, done.stdout.splitlines()) == (
        0, ["the agent can build here: subordinate ids, storage, runtime, network and a test "
            "container are fine"]), done.stderr


def test_check_names_a_storage_conf_without_runroot(lan, code):
    agent = pwd.getpwnam(AGENT_USER)
    config_home = lan["base"] / "config"  # readable by the agent user
    (config_home / "containers").mkdir(parents=True)
    shutil.copy(Path(agent.pw_dir, ".config/containers/containers.conf"), config_home / "containers")
    (config_home / "containers/storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{agent.pw_dir}/.local/share/containers/storage"\n')
    subprocess.run(["chown", "-R", AGENT_USER, str(config_home)], check=True)
    done = check_as(AGENT_USER, code, lan["lan_url"], XDG_CONFIG_HOME=str(config_home))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{config_home}/containers/storage.conf sets no runroot: Podman then cannot commit the "
        f'builder image ("runroot must be set"); add runroot = "/tmp/containers-user-'
        f'{agent.pw_uid}/containers" under [storage]'], done.stdout + done.stderr


def test_check_names_a_missing_subuid_range(lan, code, fresh_user):
    user = fresh_user(NOSUBID_USER)
    for kind in ("uid", "gid"):
        for line in Path(f"/etc/sub{kind}").read_text().splitlines():
            name, start, count = line.split(":")
            if name == user.pw_name:
                end = int(start) + int(count) - 1
                subprocess.run(["usermod", f"--del-sub{kind}s", f"{start}-{end}", user.pw_name],
                               check=True)
    assert check.subid_count(Path("/etc/subuid"), user.pw_name, user.pw_uid) == 0
    done = check_as(user.pw_name, code, lan["lan_url"])
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for kind in ("uid", "gid"):
        assert (f"{user.pw_name} has no subordinate {kind} range of 65536 in /etc/sub{kind} "
                "(rootless Podman needs one): as root, run usermod --add-subuids 100000-165535 "
                f"--add-subgids 100000-165535 {user.pw_name} (with a range no other user has)"
                ) in lines, done.stdout


# -- the checks' parts, without Podman -------------------------------------------------------

def test_subid_count_by_name_or_uid(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n1001:200000:1000\nbob:1:x\n")
    assert check.subid_count(path, "alice", 1000) == 65536
    assert check.subid_count(path, "carol", 1001) == 1000
    assert check.subid_count(path, "bob", 5) == 0
    assert check.subid_count(tmp_path / "missing", "alice", 1000) == 0


def test_storage_problems(tmp_path):
    conf = tmp_path / "storage.conf"
    assert check.storage_problems(conf, 1000, "/home/a") == []  # no file: Podman's defaults
    conf.write_text('[storage]\ndriver = "overlay"\n')
    (line,) = check.storage_problems(conf, 1000, "/home/a")
    assert "sets no runroot and no graphroot" in line
    assert 'runroot = "/tmp/containers-user-1000/containers"' in line
    conf.write_text('[storage]\ndriver = "overlay"\nrunroot = "/r"\ngraphroot = "/g"\n')
    assert check.storage_problems(conf, 1000, "/home/a") == []
    conf.write_text("[storage\n")
    assert "cannot read" in check.storage_problems(conf, 1000, "/home/a")[0]


def test_network_problems():
    values = {"build_network": "private", "address": "http://localhost:8000"}
    assert any("loopback" in line for line in check.network_problems(values))
    assert not check.network_problems(dict(values, build_network="host"))
    assert not [line for line in check.network_problems(dict(values, address="http://10.1.2.3:8000"))
                if "loopback" in line]


def test_storage_conf_path_follows_xdg_config_home():
    assert check.storage_conf({}, "/home/a") == Path("/home/a/.config/containers/storage.conf")
    assert check.storage_conf({"XDG_CONFIG_HOME": "/x"}, "/home/a") == \
        Path("/x/containers/storage.conf")


@pytest.mark.parametrize("reason, fix", [
    ('slirp4netns failed: "open(\\"/dev/net/tun\\"): Permission denied', "chmod 0666 /dev/net/tun"),
    ("crun: cgroups in hybrid mode not supported", 'runtime = "runc"'),
    ("commit localhost/x:1: runroot must be set", "graphroot or runroot"),
    ("something else", "see Podman's message"),
])
def test_container_failures_get_their_fix(reason, fix):
    assert fix in check.container_hint(reason)
