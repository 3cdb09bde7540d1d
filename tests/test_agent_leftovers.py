"""An agent killed with SIGKILL mid-build and started again removes what its killed run left
(its build container, its private Podman service) and hands the build back, which is then
built: real server, real agent as the agent user, rootless Podman."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from soak_world import (
    API_KEY,
    BUILD_LABEL,
    OWNER_LABEL,
    REPO,
    AgentProcess,
    Server,
    agent_ready,
    alive,
    containers,
    pkgbuild,
    podman,
    service_processes,
)
from vieter_lite.agent.leftovers import Leftovers
from vieter_lite.client import Client

pytestmark = pytest.mark.skipif(agent_ready() is not None, reason=str(agent_ready()))


def wait_until(what: str, check, timeout: float = 300, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


@pytest.fixture
def world():
    base = Path(tempfile.mkdtemp(prefix="vieter-leftovers-", dir="/tmp"))
    base.chmod(0o755)
    server = Server(base)
    server.start()
    agent = AgentProcess(base, server.url, name="leftovers-agent", slots=1)
    try:
        yield server, agent
    finally:
        agent.stop()
        server.stop()
        # nothing of this test's runs may stay (another agent's containers are not touched)
        for owner in Leftovers(agent.data_dir).owners():
            for cid in containers(f"{OWNER_LABEL}={owner}"):
                podman("rm", "-f", "-t", "0", cid, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_a_killed_agent_started_again_removes_its_leftovers_and_the_build_is_built(world):
    server, agent = world
    api = Client(server.url, API_KEY)
    # another agent's container (same user, same store): it must survive the clean-up
    other = podman("create", "--label", f"{OWNER_LABEL}=someone-else", "--label",
                   "io.vieter-lite.role=build", "localhost/vieter-lite-test-base:latest",
                   "true").stdout.strip()
    try:
        agent.start()
        text = json.dumps({"repo": REPO, "arch": "x86_64",
                           "source": {"pkgbuild": pkgbuild("leftover", "1", 25)}})
        build_id = api.submit_build({"manifest": text, "execute": True})["id"]
        wait_until("the build to talk",
                   lambda: b"leftover step 2" in api.build_log(build_id)
                   or api.get_build_v2(build_id)["status"] not in ("queued", "running"))
        assert api.get_build_v2(build_id)["status"] == "running", api.build_log(build_id)
        old_containers = containers(f"{BUILD_LABEL}={build_id}")
        service = agent.service()
        assert old_containers and service is not None
        assert len(service_processes(service)) >= 2  # podman re-execs itself in a child
        service_dir = Path(service["dir"])
        assert service_dir.is_dir()

        agent.kill()
        time.sleep(1)
        # what the killed run leaves: its container runs on, its service too
        assert containers(f"{BUILD_LABEL}={build_id}") == old_containers
        assert service_processes(service)
        assert api.get_build_v2(build_id)["status"] == "running"

        agent.start()
        wait_until("the old container to go",
                   lambda: not set(old_containers) & set(containers(f"{BUILD_LABEL}={build_id}")))
        wait_until("the old podman service to end", lambda: not service_processes(service))
        assert not alive(service["pid"]) and not service_dir.exists()
        log = wait_until("the build to be handed back",
                         lambda: (b"handed the build back" in api.build_log(build_id)
                                  or api.get_build_v2(build_id)["status"] != "running")
                         and api.build_log(build_id))
        build = wait_until("the build to end",
                           lambda: (b := api.get_build_v2(build_id))["status"] not in
                           ("queued", "running") and b)
        assert build["status"] == "success", (log, agent.log_path.read_text()[-3000:])
        assert "handed the build back" in api.build_log(build_id).decode() or \
            "handed back" in agent.log_path.read_text()
        assert not (agent.data_dir / "builds" / f"{build_id}.json").exists()
        assert other[:12] in containers(f"{OWNER_LABEL}=someone-else")
        assert os.path.exists(agent.data_dir / "podman-service.json")  # the new one's
    finally:
        podman("rm", "-f", other, check=False)
