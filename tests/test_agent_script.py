"""The build script: valid bash, job values only through the environment, marker lines."""

from __future__ import annotations

import subprocess

import pytest

from vieter_lite.agent import script

JOB = {"build_id": 7, "target_id": 3, "kind": "git", "url": "https://example.com/x.git",
       "branch": "main", "path": "sub dir", "repo": "bur", "arch": "x86_64", "force": False,
       "timeout": 60, "base_image": "archlinux:base-devel"}


@pytest.mark.parametrize("text", [script.ROOT_SCRIPT, script.USER_SCRIPT, script.ARCH_PREPARE])
def test_scripts_are_valid_bash(text):
    done = subprocess.run(["bash", "-n", "-c", text], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_job_values_reach_the_script_only_through_the_environment():
    hostile = dict(JOB, url="https://x/'$(touch /tmp/pwned)'.git", branch="a; rm -rf /",
                   path="../../etc", repo="bur")
    env = script.build_env(hostile, "http://127.0.0.1:8000/")
    assert env["VL_URL"] == hostile["url"] and env["VL_BRANCH"] == "a; rm -rf /"
    assert env["VL_ADDRESS"] == "http://127.0.0.1:8000"
    assert env["VL_FORCE"] == "0" and env["PKGDEST"] == script.OUTPUT_DIR
    assert env["VL_USER_SCRIPT"] == script.USER_SCRIPT
    command = script.command()
    assert command[:2] == ["/bin/bash", "-c"] and command[2] == script.ROOT_SCRIPT
    for value in ("touch", "rm -rf"):
        assert value not in script.ROOT_SCRIPT + script.USER_SCRIPT


def test_force_and_defaults_in_the_environment():
    env = script.build_env(dict(JOB, force=True, branch=None, path=None), "http://h",
                           user="builder", makepkg_args="--nodeps")
    assert (env["VL_FORCE"], env["VL_BRANCH"], env["VL_PATH"]) == ("1", "", "")
    assert (env["VL_USER"], env["VL_MAKEPKG_ARGS"]) == ("builder", "--nodeps")


@pytest.mark.parametrize("line, expected", [
    ("::vieter-task:: source", ("task", "source")),
    ("::vieter-task::build", ("task", "build")),
    ("::vieter-skip:: every package is already published at 1:2-1",
     ("skip", "every package is already published at 1:2-1")),
    ("+ makepkg", None),
    ("echo ::vieter-task:: build", None),
])
def test_markers(line, expected):
    assert script.marker(line) == expected


def test_every_task_in_the_container_has_a_marker_in_order():
    text = script.ROOT_SCRIPT + script.USER_SCRIPT
    positions = [text.index(f'echo "{script.TASK_MARKER} {name}"')
                 for name in ("setup", "source", "build")]
    assert positions == sorted(positions)


def test_no_secret_and_no_publishing_in_the_container():
    """The agent publishes from the host: the container gets no token and never uploads."""
    env = script.build_env(JOB, "http://h")
    assert not [k for k in env if "TOKEN" in k or "KEY" in k]
    text = script.ROOT_SCRIPT + script.USER_SCRIPT
    assert "/publish" not in text and "X-Api-Key" not in text and "-T " not in text
