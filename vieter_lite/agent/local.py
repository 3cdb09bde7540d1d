"""`vieter-lite targets build ID`: one build on this machine, through the agent's own code."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from vieter_lite.agent.daemon import Agent, Images
from vieter_lite.agent.main import load_settings
from vieter_lite.client import Client, ClientError


def _echo(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def build(client: Client, target_id: int, arch: str, force: bool, timeout: int | None,
          config_file: str | None) -> dict[str, Any]:
    """Queue a build of the target, claim exactly that build, run it here in Podman while
    printing its log, and report it like an agent would. Returns the finished build."""
    from vieter_lite.agent.podman import Podman, PodmanError, PodmanService

    environ = dict(os.environ, VIETER_ADDRESS=client.address, VIETER_API_KEY=client.api_key,
                   VIETER_ARCH=arch)
    settings, values = load_settings(config_file, environ)
    build_id = client.queue_build(target_id, arch, force, timeout)
    jobs = client.poll_jobs(arch, 1, f"local:{socket.gethostname()}", build=build_id)
    if not jobs:
        raise ClientError(f"build {build_id} is queued but could not be claimed "
                          f"(is a build of target {target_id} for {arch} running?)")
    try:
        with PodmanService(values["podman_url"] or None) as service:
            podman = Podman(service.url, platform=settings.platform)
            agent = Agent(settings, podman, Images(podman, settings.prepare_script,
                                                   settings.image_rebuild_frequency,
                                                   network=settings.build_network,
                                                   platform=settings.platform))
            agent.build(jobs[0], echo=_echo)
    except PodmanError as exc:  # no Podman at all: the build is reported failed by the server
        client.release_build(build_id)
        raise ClientError(f"cannot build locally: {exc}") from None
    return client.get_build(build_id)
