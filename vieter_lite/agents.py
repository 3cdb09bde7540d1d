"""Build agents that register with their own tokens: what each says of itself (name, archs,
labels, version, slots, how often it polls), when it was last seen and so whether it is
online, and who may register and poll as which agent."""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Callable
from typing import Any

from vieter_lite import lists, names, tokens
from vieter_lite.db import Database
from vieter_lite.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from vieter_lite.lists import ListQuery
from vieter_lite.models import Agent, AgentSpec

OFFLINE_AFTER = 3        # poll periods without a sign of an agent, then it shows as offline
MAX_LABELS = 50
MAX_VERSION = 64
MAX_SLOTS = 1000
MAX_POLL_PERIOD = 86400
# the label an agent gives itself when it builds under qemu-user emulation
EMULATED = "emulated"

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_VERSION = re.compile(r"[\x21-\x7e]{0,64}", re.ASCII)


# -- pure rules --------------------------------------------------------------------------

def check_labels(field: str, labels: Any, limit: int = MAX_LABELS) -> dict[str, str]:
    """Labels as key=value pairs with Kubernetes' syntax (what label selectors match): a
    mapping of at most `limit`, or Invalid naming the field."""
    if not isinstance(labels, dict):
        raise Invalid(field, "invalid", "an object of label keys to values")
    if len(labels) > limit:
        raise Invalid(field, "too_many", f"at most {limit} labels")
    for key, value in labels.items():
        if not isinstance(key, str) or not lists.is_label_key(key):
            raise Invalid(field, "invalid", f"invalid label key {str(key)[:80]!r}")
        if not isinstance(value, str) or not lists.is_label_value(value):
            raise Invalid(f"{field}.{key}", "invalid", f"invalid label value {str(value)[:80]!r}")
    return dict(labels)


def parse_labels(text: str) -> dict[str, str]:
    """`key=value,key2=value2` (the agent's `labels` setting) -> labels; ValueError naming
    the first bad item."""
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            raise ValueError(f"'{item}' is not key=value")
        if not lists.is_label_key(key):
            raise ValueError(f"'{key}' is not a label key (letters, digits, '-', '_', '.')")
        if not lists.is_label_value(value):
            raise ValueError(f"'{value}' is not a label value (letters, digits, '-', '_', "
                             "'.'; at most 63)")
        if key in labels:
            raise ValueError(f"label '{key}' given twice")
        labels[key] = value
    return labels


def _integer(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(field, "invalid", f"an integer from {low} to {high}")
    return value


def validate(spec: AgentSpec) -> AgentSpec:
    """The spec as stored (archs de-duplicated in order), or Invalid naming the field."""
    if not isinstance(spec.name, str) or not _NAME.fullmatch(spec.name):
        raise Invalid("name", "invalid", "1 to 64 letters, digits, '.', '_' and '-'")
    archs = spec.archs
    if isinstance(archs, (str, bytes)) or not isinstance(archs, (list, tuple)) or not archs:
        raise Invalid("archs", "invalid", "a list of at least one architecture")
    checked: list[str] = []
    for arch in archs:
        if not isinstance(arch, str):
            raise Invalid("archs", "invalid", "a list of architecture names")
        try:
            names.check_arch(arch)
        except ValueError as exc:
            raise Invalid("archs", "invalid", str(exc)) from None
        if arch == "any":
            raise Invalid("archs", "invalid", "'any' is not an architecture to build on")
        if arch not in checked:
            checked.append(arch)
    if len(checked) > tokens.MAX_ITEMS:
        raise Invalid("archs", "too_many", f"at most {tokens.MAX_ITEMS} archs")
    labels = check_labels("labels", spec.labels)
    if not isinstance(spec.version, str) or not _VERSION.fullmatch(spec.version):
        raise Invalid("version", "invalid", f"at most {MAX_VERSION} printable characters, "
                      "no spaces")
    return AgentSpec(name=spec.name, archs=tuple(checked), labels=labels, version=spec.version,
                     slots=_integer("slots", spec.slots, 1, MAX_SLOTS),
                     poll_period=_integer("poll_period", spec.poll_period, 1, MAX_POLL_PERIOD))


def online(agent: Agent, now: int) -> bool:
    """Seen within OFFLINE_AFTER poll periods (an agent polls at least once a period, also
    while every slot is busy)."""
    return now - agent.last_seen_at <= OFFLINE_AFTER * agent.poll_period


# -- the service -------------------------------------------------------------------------

class Agents:
    """Registered agents over the database."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time):
        self.db = db
        self.clock = clock

    def now(self) -> int:
        return int(self.clock())

    def _owns(self, who: tokens.Principal, agent: Agent, now: int) -> bool:
        """An agent's name belongs to the token that registered it while that token works;
        the admin may take any name over."""
        if who.is_admin or agent.token_id == who.token_id:
            return True
        return agent.token_id is not None and not self.db.token_active(agent.token_id, now)

    def register(self, who: tokens.Principal, spec: AgentSpec) -> tuple[Agent, bool]:
        """Register an agent, or update the one of that name; (it, whether it is new).
        Invalid for a bad field, Forbidden for an arch the token may not use, Conflict for
        a name another working token registered."""
        spec = validate(spec)
        for arch in spec.archs:
            if not who.may_use_arch(arch):
                raise Forbidden(f"this token may not take builds for '{arch}'")
        now = self.now()
        with self.db.transaction():
            current = self.db.agent_by_name(spec.name)
            if current is not None and not self._owns(who, current, now):
                raise Conflict(f"the agent name '{spec.name}' is registered by another token")
            agent_id, new = self.db.save_agent(spec, who.token_id, now)
        return self.get(agent_id), new

    def polling(self, who: tokens.Principal, name: str, arch: str) -> Agent:
        """The registered agent that polls for `arch`, seen now: NotFound when it is not
        registered (register again), Forbidden when it is another token's."""
        agent = self.db.agent_by_name(name)
        if agent is None:
            raise NotFound(f"Agent '{name[:64]}' is not registered (POST /api/v2/agents).")
        now = self.now()
        if not self._owns(who, agent, now):
            raise Forbidden(f"Agent '{name}' is registered by another token.")
        if arch not in agent.archs:
            raise BadRequest(f"Agent '{name}' is registered for {', '.join(agent.archs)}, "
                             f"not {arch}.")
        self.db.see_agent(agent.id, now)
        return agent

    def get(self, agent_id: int) -> Agent:
        agent = self.db.agent(agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    def page(self, query: ListQuery) -> tuple[builtins.list[Agent], int]:
        """A page of agents (a Cloud Foundry list) and how many match in all."""
        return self.db.list_agents(query)

    def remove(self, agent_id: int) -> None:
        """Forget an agent (it registers again on its next poll)."""
        if not self.db.remove_agent(agent_id):
            raise NotFound(f"agent {agent_id} not found")

    def status(self, agent: Agent) -> str:
        return "online" if online(agent, self.now()) else "offline"
