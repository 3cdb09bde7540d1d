"""/api/v2: builds, logs, targets, tokens, repos, agents (../design: api-v2.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle

from vieter_lite.web.v2 import (
    about,
    agents,
    builds,
    deliveries,
    docs,
    jobs,
    logs,
    repos,
    stats,
    targets,
    tokens,
)

if TYPE_CHECKING:
    from vieter_lite.services import Services


def register(app: bottle.Bottle, services: Services) -> None:
    about.register(app, services)
    tokens.register(app, services)
    builds.register(app, services)
    jobs.register(app, services)
    targets.register(app, services)
    repos.register(app, services)
    logs.register(app, services)
    deliveries.register(app, services)
    agents.register(app, services)
    stats.register(app, services)
    docs.register(app, services)
