"""/api/v2/agents: build agents register with their own tokens; anyone who reads builds
sees them, with when each was last seen and the builds it holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bottle

from vieter_lite import lists
from vieter_lite.errors import Invalid
from vieter_lite.models import Agent, AgentSpec
from vieter_lite.web.http import base_url, json_body, path_id
from vieter_lite.web.v2.common import (
    DASHBOARD,
    V2,
    created,
    for_caller,
    list_response,
    no_content,
    parse_list,
    principal,
)
from vieter_lite.web.v2.shapes import agent_json

if TYPE_CHECKING:
    from vieter_lite.services import Services

FIELDS = ("name", "archs", "labels", "version", "slots", "poll_period")
DEFAULTS: dict[str, Any] = {"labels": {}, "version": "", "slots": 1, "poll_period": 30}


def spec_of(body: dict[str, Any]) -> AgentSpec:
    """An AgentSpec from a JSON body; unknown keys are named (the domain checks the rest)."""
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise Invalid(unknown[0], "unknown", f"unknown field; the fields are {', '.join(FIELDS)}")
    for required in ("name", "archs"):
        if body.get(required) is None:
            raise Invalid(required, "missing", f"{required} is required")
    given = {**DEFAULTS, **{k: v for k, v in body.items() if v is not None}}
    return AgentSpec(**given)


def register(app: bottle.Bottle, services: Services) -> None:
    agents, config = services.agents, services.config

    def shape(agent: Agent) -> dict[str, Any]:
        return for_caller(agent_json(agent, base_url(), agents.status(agent)))

    @app.post("/api/v2/agents", scope="agent", **V2)
    def register_agent() -> Any:
        agent, new = agents.register(principal(), spec_of(json_body(config.max_api_body)))
        if new:
            return created(shape(agent), f"{base_url()}/api/v2/agents/{agent.id}")
        return shape(agent)  # registered again: updated

    @app.get("/api/v2/agents", scope="builds:read", **DASHBOARD)
    def list_agents() -> Any:
        query = parse_list(lists.AGENTS)
        found, total = agents.page(query)
        return list_response(query, found, total, shape)

    @app.get("/api/v2/agents/<agent_id>", scope="builds:read", **V2)
    def get_agent(agent_id: str) -> Any:
        return shape(agents.get(path_id(agent_id)))

    @app.delete("/api/v2/agents/<agent_id>", scope="admin", **V2)
    def remove_agent(agent_id: str) -> Any:
        agents.remove(path_id(agent_id))
        return no_content()
