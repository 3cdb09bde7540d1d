"""`vieter-lite agent`: the agent's configuration, its Podman service, signals and life."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

from vieter_lite.agent import script
from vieter_lite.agent.check import network_problems
from vieter_lite.agent.daemon import Agent, AgentSettings, Images
from vieter_lite.config import AGENT_KEYS, load_values
from vieter_lite.errors import ConfigError

log = logging.getLogger(__name__)



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
    settings = AgentSettings(
        address=values["address"], api_key=values["api_key"], arch=values["arch"],
        max_concurrent_builds=values["max_concurrent_builds"],
        polling_frequency=values["polling_frequency"],
        image_rebuild_frequency=values["image_rebuild_frequency"], prepare_script=prepare,
        build_user=values["build_user"], makepkg_args=values["makepkg_args"],
        runner=socket.gethostname(), build_network=values["build_network"],
        work_dir=str(Path(values["data_dir"]).expanduser()))
    return settings, values


def run(settings: AgentSettings, values: dict) -> int:
    """Poll and build until SIGTERM/SIGINT, then let running builds finish."""
    from vieter_lite.agent.podman import Podman, PodmanService

    data_dir = Path(values["data_dir"]).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop, hard_stop = threading.Event(), threading.Event()
    signals: list[int] = []  # the handler only appends: no locks in a signal handler

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: signals.append(number))
    crashed: list[BaseException] = []
    service = PodmanService(values["podman_url"] or None)  # empty: a private service
    try:
        podman = Podman(service.start())
        agent = Agent(settings, podman,
                      Images(podman, settings.prepare_script, settings.image_rebuild_frequency,
                             network=settings.build_network))
        log.warning("agent polling %s for %s (%d slot(s))", settings.address, settings.arch,
                    settings.max_concurrent_builds)
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
    return 1 if crashed else 0
