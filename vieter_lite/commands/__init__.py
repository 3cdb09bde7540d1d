"""The client commands (targets, builds, logs, repos, aur, tokens, agents, client setup):
HTTP to a server (and, for client setup, this machine's pacman)."""

from __future__ import annotations

import argparse

from vieter_lite.commands import agents, aur, builds, logs, repos, setup, targets, tokens
from vieter_lite.commands.common import add_client_flags, client_flags


def register(commands: argparse._SubParsersAction,
             program: argparse.ArgumentParser | None = None) -> None:
    """Add targets, builds, logs, repos, aur and tokens to the program's subcommands (and
    their options, but -f which it has already, to the program itself)."""
    if program is not None:
        add_client_flags(program, config_file=False)
    flags = client_flags()
    targets.register(commands, flags)
    builds.register(commands, flags)
    logs.register(commands, flags)
    repos.register(commands, flags)
    aur.register(commands, flags)
    tokens.register(commands, flags)
    setup.register(commands)
    agents.register(commands, flags)
