"""README's second machine (a Raspberry Pi agent with its own token, for an x86 server) in
five commands, run as written against a real server: the token, the Pi's config file, the
agent registering as it starts polling, and the server's list of agents. (Podman and the
builds of an aarch64 agent are tests/test_agent_aarch64.py's.)"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import API_KEY, ROOT, ServerProcess
from vieter_lite import config
from vieter_lite.agent import main as agent_main
from vieter_lite.agent.poller import Identity, Poller
from vieter_lite.client import Client

README_HOST = "http://x86box:8000"
SECRET_PLACEHOLDER = "vl_..."


def five_commands() -> list[str]:
    """The ```sh block after README's "A second machine", each line without its comment."""
    text = (ROOT / "README.md").read_text()
    start = text.index("A second machine:")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None
    return [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()
            if line.strip()]


def cli(*argv: str, key: str = API_KEY, url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIETER_")}
    env.update({"VIETER_ADDRESS": url, "VIETER_API_KEY": key, "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "vieter_lite", *argv], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readmes_raspberry_pi_agent_in_five_commands(server: ServerProcess, tmp_path,
                                                         monkeypatch):
    commands = five_commands()
    assert len(commands) == 5
    token, write_config, check, run, listing = commands
    assert (check, run) == ("vieter-lite agent --check", "vieter-lite agent")

    # 1, on the server: a token that takes only aarch64 builds
    argv = shlex.split(token)
    assert argv[:3] == ["vieter-lite", "tokens", "add"]
    out = cli(*argv[1:], url=server.url)
    secret = re.search(r"^secret\s*:?\s*(vl_\S+)$", out, re.M)
    assert secret is not None, out

    # 2, on the Pi: its config file, as written, with this server and that secret
    home = tmp_path / "home"
    home.mkdir()
    command = write_config.replace(README_HOST, server.url) \
        .replace(SECRET_PLACEHOLDER, secret.group(1))
    subprocess.run(["bash", "-c", command], env={"HOME": str(home), "PATH": os.environ["PATH"]},
                   check=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "no-system.toml")
    settings, _ = agent_main.load_settings(None, {})
    assert (settings.address, settings.api_key, settings.runner) == \
        (server.url, secret.group(1), "pi")

    # 3 and 4: the agent (on the Pi, its own arch: aarch64) registers as it starts polling
    poller = Poller(Client(settings.address, settings.api_key),
                    Identity(name=settings.runner, arch="aarch64",
                             labels=dict(settings.labels), version=settings.version,
                             slots=settings.max_concurrent_builds,
                             poll_period=settings.polling_frequency))
    assert poller.register() and poller.registered == "pi"

    # 5, on the server: the Pi is listed, online
    assert listing == "vieter-lite agents list"
    rows = [line.split() for line in cli(*shlex.split(listing)[1:], url=server.url)
            .splitlines()[1:]]
    (row,) = [r for r in rows if r[1] == "pi"]
    assert row[2:5] == ["aarch64", "-", "online"], row
    # and its token cannot take another arch
    with pytest.raises(Exception, match="may not take builds for 'x86_64'"):
        Client(server.url, secret.group(1)).poll_jobs("x86_64", 1)
