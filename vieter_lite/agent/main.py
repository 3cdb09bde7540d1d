"""`vieter-lite agent`: the agent's configuration, its Podman service, signals and life."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from vieter_lite import __version__, agents
from vieter_lite.agent import emulation, script
from vieter_lite.agent.check import network_problems
from vieter_lite.agent.daemon import Agent, AgentSettings, Images
from vieter_lite.agent.leftovers import Leftovers
from vieter_lite.config import AGENT_KEYS, load_values, machine_arch
from vieter_lite.errors import ConfigError

log = logging.getLogger(__name__)



def default_name(hostname: str, arch: str) -> str:
    """`<host>-<arch>` (what the agent registers as unless agent_name says otherwise), in
    the characters an agent's name may hold."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname.split(".")[0]).strip("-") or "agent"
    return f"{host[:63 - len(arch)]}-{arch}"[:64]


def load_settings(config_file: str | None,
                  environ: Mapping[str, str] | None = None) -> tuple[AgentSettings, dict]:
    values = load_values(AGENT_KEYS, config_file, os.environ if environ is None else environ)
    prepare = script.ARCH_PREPARE
    if values["prepare_script"]:
        try:
            prepare = Path(values["prepare_script"]).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"config key 'prepare_script': cannot read "
                              f"{values['prepare_script']}: {exc.strerror}") from None
    labels = agents.parse_labels(values["agent_labels"])
    machine = machine_arch()
    if emulation.emulated(values["arch"], machine):
        labels[agents.EMULATED] = "true"  # what it builds runs under qemu-user here
    settings = AgentSettings(
        address=values["address"], api_key=values["api_key"], arch=values["arch"],
        max_concurrent_builds=values["max_concurrent_builds"],
        polling_frequency=values["polling_frequency"],
        image_rebuild_frequency=values["image_rebuild_frequency"], prepare_script=prepare,
        build_user=values["build_user"], makepkg_args=values["makepkg_args"],
        runner=values["agent_name"] or default_name(socket.gethostname(), values["arch"]),
        build_network=values["build_network"],
        work_dir=str(Path(values["data_dir"]).expanduser()), labels=labels,
        version=__version__, platform=emulation.platform_of(values["arch"], machine))
    return settings, values


def run(settings: AgentSettings, values: dict) -> int:
    """Poll and build until SIGTERM/SIGINT, then let running builds finish."""
    from vieter_lite.agent.podman import Podman, PodmanService

    problem = emulation.binfmt_problem(settings.arch, machine_arch())
    if problem is not None:  # one line, before anything starts
        print(f"vieter-lite agent: {problem}", file=sys.stderr)
        return 1
    data_dir = Path(values["data_dir"]).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop, hard_stop = threading.Event(), threading.Event()
    signals: list[int] = []  # the handler only appends: no locks in a signal handler

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: signals.append(number))
    crashed: list[BaseException] = []
    # what a killed run left: its podman service first (its containers do not depend on it)
    state = Leftovers(data_dir)
    state.stop_service()
    service = PodmanService(values["podman_url"] or None,  # empty: a private service
                            on_start=state.record_service)
    try:
        podman = Podman(service.start(), platform=settings.platform)
        removed = state.remove_containers(podman.owner, podman.remove_owned)
        if removed:
            log.warning("removed %d container(s) a killed run left", removed)
        agent = Agent(settings, podman,
                      Images(podman, settings.prepare_script, settings.image_rebuild_frequency,
                             network=settings.build_network,
                             platform=settings.platform), state=state)
        log.warning("agent %s polling %s for %s%s (%d slot(s))", settings.runner,
                    settings.address, settings.arch,
                    f" under qemu-user emulation ({settings.platform})"
                    if settings.platform else "", settings.max_concurrent_builds)
        for problem in network_problems(values):
            log.warning("%s", problem)

        def work() -> None:
            try:
                agent.run(stop, hard_stop)
            except BaseException as exc:  # a crash stops the process non-zero
                log.exception("the agent crashed")
                crashed.append(exc)

        worker = threading.Thread(target=work, name="agent")
        worker.start()
        while worker.is_alive():  # first signal: finish running builds; second: hand back
            worker.join(0.2)
            if signals:
                stop.set()
            if len(signals) > 1:
                hard_stop.set()
    finally:
        service.stop()
        state.forget_service()
    return 1 if crashed else 0
