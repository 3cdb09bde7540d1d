"""The build scripts: valid bash, job values only through the environment, marker lines,
the manifest's environment exported for makepkg, the source script's checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vieter_lite.agent import script

JOB = {"build_id": 7, "target_id": 3, "kind": "git", "url": "https://example.com/x.git",
       "branch": "main", "path": "sub dir", "repo": "bur", "arch": "x86_64", "force": False,
       "timeout": 60, "base_image": "archlinux:base-devel"}


@pytest.mark.parametrize("text", [script.ROOT_SCRIPT, script.USER_SCRIPT, script.ARCH_PREPARE,
                                  script.SOURCE_ROOT_SCRIPT, script.SOURCE_USER_SCRIPT])
def test_scripts_are_valid_bash(text):
    done = subprocess.run(["bash", "-n", "-c", text], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_job_values_reach_the_script_only_through_the_environment():
    hostile = dict(JOB, url="https://x/'$(touch /tmp/pwned)'.git", branch="a; rm -rf /",
                   path="../../etc", repo="bur")
    env = script.build_env(hostile, "http://127.0.0.1:8000/")
    assert env["VL_ADDRESS"] == "http://127.0.0.1:8000"
    assert env["VL_FORCE"] == "0" and env["PKGDEST"] == script.OUTPUT_DIR
    assert env["VL_USER_SCRIPT"] == script.USER_SCRIPT and env["VL_ENV"] == ""
    source = script.source_env(hostile)
    assert source["VL_URL"] == hostile["url"] and source["VL_BRANCH"] == "a; rm -rf /"
    assert source["VL_PATH"] == "../../etc" and source["VL_USER_SCRIPT"] == \
        script.SOURCE_USER_SCRIPT
    assert script.command() == ["/bin/bash", "-c", script.ROOT_SCRIPT]
    assert script.source_command() == ["/bin/bash", "-c", script.SOURCE_ROOT_SCRIPT]
    every = script.ROOT_SCRIPT + script.USER_SCRIPT + script.SOURCE_ROOT_SCRIPT + \
        script.SOURCE_USER_SCRIPT
    for value in ("touch", "rm -rf"):
        assert value not in every


def test_the_build_container_gets_no_source_address():
    """The build container builds the bundle's files: it is told nothing to fetch."""
    env = script.build_env(JOB, "http://h")
    assert not {"VL_URL", "VL_BRANCH", "VL_PATH", "VL_KIND"} & env.keys()
    assert "git clone" not in script.USER_SCRIPT + script.ROOT_SCRIPT
    assert "curl -fsSL" not in script.USER_SCRIPT + script.ROOT_SCRIPT


def test_force_and_defaults_in_the_environment():
    env = script.build_env(dict(JOB, force=True), "http://h", user="builder",
                           makepkg_args="--nodeps")
    assert (env["VL_FORCE"], env["VL_USER"], env["VL_MAKEPKG_ARGS"]) == ("1", "builder",
                                                                         "--nodeps")
    source = script.source_env(dict(JOB, branch=None, path=None), user="builder")
    assert (source["VL_BRANCH"], source["VL_PATH"], source["VL_USER"]) == ("", "", "builder")


@pytest.mark.parametrize("given, kept, dropped", [
    ({"CFLAGS": "-O2", "_X1": "", "N": 3}, {"CFLAGS": "-O2", "_X1": "", "N": "3"}, []),
    ({"VL_USER": "root", "VL_ENV": "PATH"}, {}, ["VL_USER: VL_", "VL_ENV: VL_"]),
    ({"lower": "x", "1ABC": "x", "A-B": "x", "A B": "x", "": "x"}, {},
     ["'lower'", "'1ABC'", "'A-B'", "'A B'", "''"]),
    ({"PKGDEST": "/tmp"}, {}, ["PKGDEST: the agent takes"]),
    ({"A": None, "B": ["x"], "C": True, "D": "a\0b"}, {},
     ["A: its value", "B: its value", "C: its value", "D: its value"]),
    (None, {}, []),
    (["A=1"], {}, ["the environment is not a mapping"]),
])
def test_environment_keeps_valid_names_only(given, kept, dropped):
    got, reasons = script.environment(given)
    assert got == kept
    assert len(reasons) == len(dropped)
    for reason, start in zip(reasons, dropped, strict=True):
        assert reason.startswith(start), (reason, start)


def test_the_environment_is_exported_as_given_and_never_evaluated(tmp_path):
    env, _ = script.environment({"FOO": "a b $(touch pwned) `touch pwned2` ;x",
                                 "EMPTY": "", "MAKEFLAGS": "-j1", "LINES": "one\ntwo"})
    given = script.build_env(JOB, "http://h", env=env)
    assert given["VL_ENV"] == "EMPTY FOO LINES MAKEFLAGS"
    shown = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script.EXPORT_ENV + "env -0"],
        env={"PATH": os.environ["PATH"], **given}, cwd=tmp_path, capture_output=True,
        check=True).stdout.decode()
    seen = dict(item.split("=", 1) for item in shown.split("\0") if item)
    assert {k: seen.get(k) for k in env} == env
    assert not [k for k in seen if k.startswith(script.ENV_PREFIX)]
    assert list(tmp_path.iterdir()) == []  # nothing ran


@pytest.mark.parametrize("line, expected", [
    ("::vieter-task:: source", ("task", "source")),
    ("::vieter-task::build", ("task", "build")),
    ("::vieter-skip:: every package is already published at 1:2-1",
     ("skip", "every package is already published at 1:2-1")),
    ("::vieter-srcinfo:: begin", ("srcinfo", "begin")),
    ("::vieter-srcinfo:: end", ("srcinfo", "end")),
    ("+ makepkg", None),
    ("echo ::vieter-task:: build", None),
])
def test_markers(line, expected):
    assert script.marker(line) == expected


def test_the_containers_mark_source_then_build():
    """setup is the agent's own (job, image); the source container marks source, the build
    container marks build only after the already-published check (a skipped build's build
    task stays pending: skipped)."""
    text = script.SOURCE_USER_SCRIPT + script.ROOT_SCRIPT + script.USER_SCRIPT
    marks = [line.split(script.TASK_MARKER)[1].strip(' "') for line in text.splitlines()
             if script.TASK_MARKER in line]
    assert marks == ["source", "build"]
    assert script.USER_SCRIPT.index(script.SKIP_MARKER) < \
        script.USER_SCRIPT.index(f'{script.TASK_MARKER} build')


def test_the_build_container_prints_the_srcinfo_before_it_updates_the_system():
    """What makepkg reads of the PKGBUILD goes to the server before the slow steps, so a
    build sent back to wait for a dependency has spent little; it is read as the build user,
    from the source's files."""
    text = script.ROOT_SCRIPT
    begin = text.index(f"{script.SRCINFO_MARKER} begin")
    end = text.index(f"{script.SRCINFO_MARKER} end")
    assert text.index("cp -r") < begin < text.index('-- makepkg --printsrcinfo') < end \
        < text.index("pacman -Syu")


def test_no_secret_and_no_publishing_in_the_container():
    """The agent publishes from the host: the containers get no token and never upload."""
    env = {**script.build_env(JOB, "http://h"), **script.source_env(JOB)}
    assert not [k for k in env if "TOKEN" in k or "KEY" in k]
    text = script.ROOT_SCRIPT + script.USER_SCRIPT + script.SOURCE_USER_SCRIPT
    assert "/publish" not in text and "X-Api-Key" not in text and "-T " not in text


# -- the source script, run here (git, tar, realpath) in a scratch dir as /build ---------

def git_repo(root: Path) -> Path:
    repo = root / "upstream"
    (repo / "sub" / "deeper").mkdir(parents=True)
    (repo / "PKGBUILD").write_text("pkgname=top\n")
    (repo / "sub" / "PKGBUILD").write_text("pkgname=sub\n")
    (repo / "sub" / "fix.patch").write_text("patch\n")
    (repo / "sub" / "deeper" / "note").write_text("deep\n")
    (repo / "sub" / ".git").write_text("gitdir: elsewhere\n")  # a submodule's link file
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(git + ["add", "-f", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    return repo


def run_source(work: Path, **values: str) -> subprocess.CompletedProcess:
    job = dict(JOB, **values)
    env = {"PATH": os.environ["PATH"], "HOME": str(work), **script.source_env(job)}
    return subprocess.run(["bash", "-c", script.SOURCE_USER_SCRIPT], env=env, cwd=work,
                          capture_output=True, text=True, timeout=60)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@needs_git
def test_the_source_script_leaves_the_pkgbuilds_directory_without_git(tmp_path):
    repo = git_repo(tmp_path)
    work = tmp_path / "build"
    work.mkdir()
    done = run_source(work, kind="git", url=str(repo), branch="main", path="sub")
    assert done.returncode == 0, done.stdout + done.stderr
    assert files_under(work / "bundle") == ["PKGBUILD", "deeper/note", "fix.patch"]
    assert "source: 3 file(s) in sub" in done.stdout


@pytest.mark.parametrize("path, message", [
    ("../..", "leads out of the repository"),
    ("nowhere", "has no directory 'nowhere'"),
    ("sub/deeper", "no PKGBUILD in sub/deeper"),
])
@needs_git
def test_the_source_script_refuses_a_path_it_cannot_use(tmp_path, path, message):
    repo = git_repo(tmp_path)
    work = tmp_path / "build"
    work.mkdir()
    done = run_source(work, kind="git", url=str(repo), branch="", path=path)
    assert done.returncode == 1 and message in done.stdout, done.stdout + done.stderr
    assert not (work / "bundle").exists()


def test_the_source_script_fetches_no_other_kind(tmp_path):
    done = run_source(tmp_path, kind="pkgbuild", url="", path="")
    assert done.returncode == 1 and "a pkgbuild source is not fetched" in done.stdout
