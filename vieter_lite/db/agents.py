"""SQL for registered build agents: their archs and labels, when they were last seen, the
running builds each holds, and their list."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from vieter_lite.db.lists import In, ListQueries, Related, TableSpec, _marks
from vieter_lite.lists import ListQuery
from vieter_lite.models import Agent, AgentSpec

AGENTS_TABLE = TableSpec(
    table="agents",
    fields={"id": "id", "name": "name", "last_seen_at": "last_seen_at",
            "registered_at": "registered_at"},
    filters={"names": In("name"), "archs": Related("agent_archs", "agent_id", "value")},
    labels=("agent_labels", "agent_id"))


class AgentQueries(ListQueries):
    """Agents: register (insert or update by name), see, find, list, forget."""

    def _agents(self, rows: list[sqlite3.Row]) -> list[Agent]:
        """Records for agent rows, with their archs, labels and running builds (three
        queries for the lot)."""
        ids = [r["id"] for r in rows]
        archs: dict[int, list[str]] = {i: [] for i in ids}
        labels: dict[int, dict[str, str]] = {i: {} for i in ids}
        builds: dict[int, list[int]] = {i: [] for i in ids}
        if ids:
            marks = _marks(len(ids))
            for r in self._all(f"SELECT agent_id, value FROM agent_archs WHERE agent_id IN "
                               f"({marks}) ORDER BY value", *ids):
                archs[r["agent_id"]].append(r["value"])
            for r in self._all(f"SELECT agent_id, key, value FROM agent_labels WHERE agent_id "
                               f"IN ({marks}) ORDER BY key", *ids):
                labels[r["agent_id"]][r["key"]] = r["value"]
            for r in self._all(f"SELECT agent_id, id FROM builds WHERE status = 'running' "
                               f"AND agent_id IN ({marks}) ORDER BY id", *ids):
                builds[r["agent_id"]].append(r["id"])
        return [Agent(id=r["id"], name=r["name"], archs=tuple(archs[r["id"]]),
                      labels=labels[r["id"]], version=r["version"], slots=r["slots"],
                      poll_period=r["poll_period"], token_id=r["token_id"],
                      registered_at=r["registered_at"], last_seen_at=r["last_seen_at"],
                      builds=tuple(builds[r["id"]])) for r in rows]

    def agent(self, agent_id: int) -> Agent | None:
        with self._lock:
            found = self._agents(self._all("SELECT * FROM agents WHERE id = ?", agent_id))
        return found[0] if found else None

    def agent_by_name(self, name: str) -> Agent | None:
        with self._lock:
            found = self._agents(self._all("SELECT * FROM agents WHERE name = ?", name))
        return found[0] if found else None

    def token_active(self, token_id: int, now: int) -> bool:
        """Whether a named token still works (not revoked, not expired)."""
        return self._one("SELECT 1 FROM tokens WHERE id = ? AND revoked_at IS NULL "
                         "AND (expires_at IS NULL OR expires_at > ?)", token_id, now) is not None

    def save_agent(self, spec: AgentSpec, token_id: int | None, now: int) -> tuple[int, bool]:
        """Insert the agent, or update the one of that name (its registration time stays);
        either way it is seen now. Returns (id, whether it is new)."""
        with self.transaction():
            row = self._one("SELECT id FROM agents WHERE name = ?", spec.name)
            if row is None:
                with self._lock:
                    cursor = self._conn.execute(
                        "INSERT INTO agents (name, token_id, version, slots, poll_period, "
                        "registered_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (spec.name, token_id, spec.version, spec.slots, spec.poll_period,
                         now, now))
                agent_id, new = int(cursor.lastrowid or 0), True
            else:
                agent_id, new = row["id"], False
                self._run("UPDATE agents SET token_id = ?, version = ?, slots = ?, "
                          "poll_period = ?, last_seen_at = ? WHERE id = ?", token_id,
                          spec.version, spec.slots, spec.poll_period, now, agent_id)
            self._set_agent_items(agent_id, spec.archs, spec.labels)
        return agent_id, new

    def _set_agent_items(self, agent_id: int, archs: tuple[str, ...],
                         labels: Mapping[str, str]) -> None:
        self._run("DELETE FROM agent_archs WHERE agent_id = ?", agent_id)
        for arch in archs:
            self._run("INSERT INTO agent_archs (agent_id, value) VALUES (?, ?)", agent_id, arch)
        self._run("DELETE FROM agent_labels WHERE agent_id = ?", agent_id)
        for key, value in labels.items():
            self._run("INSERT INTO agent_labels (agent_id, key, value) VALUES (?, ?, ?)",
                      agent_id, key, value)

    def see_agent(self, agent_id: int, now: int) -> None:
        self._run("UPDATE agents SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
                  now, agent_id, now)

    def remove_agent(self, agent_id: int) -> bool:
        """Forget an agent; the builds it runs go on (they no longer name it)."""
        with self.transaction():
            self._run("UPDATE builds SET agent_id = NULL WHERE agent_id = ?", agent_id)
            return self._run("DELETE FROM agents WHERE id = ?", agent_id) == 1

    def list_agents(self, query: ListQuery) -> tuple[list[Agent], int]:
        with self._lock:
            rows, total = self.list_rows(AGENTS_TABLE, query, "id")
            ids = [r["id"] for r in rows]
            if not ids:
                return [], total
            full = {r["id"]: r for r in self._all(
                f"SELECT * FROM agents WHERE id IN ({_marks(len(ids))})", *ids)}
            return self._agents([full[i] for i in ids if i in full]), total
