"""The import graph keeps its direction: web -> services -> db/repo; the domain never imports
web/; the agent, the client and the CLI's client commands never import the server side;
the pure format modules import only the standard library (and their codecs); no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vieter_lite"

# modules a process on another machine (an agent, a laptop running the CLI) never needs
SERVER_SIDE = ("vieter_lite.web", "vieter_lite.db", "vieter_lite.services",
               "vieter_lite.supervisor", "vieter_lite.queue", "vieter_lite.scheduler",
               "vieter_lite.targets", "vieter_lite.repo.store", "vieter_lite.logs",
               "vieter_lite.buildlogs", "vieter_lite.rollback", "vieter_lite.repo.kept",
               "vieter_lite.preflight")
PURE = ("vieter_lite.errors", "vieter_lite.models", "vieter_lite.cron",
        "vieter_lite.repo.package", "vieter_lite.repo.desc", "vieter_lite.repo.database",
        "vieter_lite.repo.vercmp", "vieter_lite.names", "vieter_lite.lists",
        "vieter_lite.triggers", "vieter_lite.review", "vieter_lite.pgp",
        "vieter_lite.clientsetup", "vieter_lite.repo.archives", "vieter_lite.repo.srcinfo",
        "vieter_lite.depgraph", "vieter_lite.badge")
PURE_MAY_IMPORT = ("vieter_lite.errors", "vieter_lite.models", "vieter_lite.names",
                   "vieter_lite.repo.tarstream", "vieter_lite.repo.zstd",
                   "vieter_lite.repo.vercmp", "vieter_lite.repo.desc", "vieter_lite.streams",
                   "vieter_lite.repo.srcinfo")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every vieter_lite module a file imports, at any depth (lazy imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vieter_lite"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("vieter_lite"):
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found.update(subs & MODULES.keys() or {node.module})
    return {name for name in found if name in MODULES}


def is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_the_graph_is_read():
    assert "vieter_lite.web.auth" in GRAPH["vieter_lite.web.app"]
    assert "vieter_lite.repo.zstd" in GRAPH["vieter_lite.repo.package"]  # from-package imports
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not is_under(n, "vieter_lite.web")
                                        and n not in ("vieter_lite.supervisor",
                                                      "vieter_lite.cli")))
def test_the_domain_never_imports_web(name):
    assert not {i for i in GRAPH[name] if is_under(i, "vieter_lite.web")}, \
        f"{name} imports the web layer"


@pytest.mark.parametrize("name", sorted(n for n in MODULES
                                        if is_under(n, "vieter_lite.agent")
                                        or is_under(n, "vieter_lite.commands")
                                        or n == "vieter_lite.client"))
def test_agent_client_and_cli_commands_never_import_the_server_side(name):
    bad = {i for i in GRAPH[name] if any(is_under(i, s) for s in SERVER_SIDE)}
    assert not bad, f"{name} imports server-side modules {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in PURE if n in MODULES))
def test_pure_modules_import_only_pure_modules(name):
    bad = {i for i in GRAPH[name] if i not in PURE_MAY_IMPORT and i != name}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if is_under(n, "vieter_lite.db")))
def test_the_database_layer_imports_no_service(name):
    allowed = ("vieter_lite.db", "vieter_lite.models", "vieter_lite.errors", "vieter_lite.names",
               "vieter_lite.lists")
    bad = {i for i in GRAPH[name] if not any(is_under(i, a) for a in allowed)}
    assert not bad, f"{name} imports {sorted(bad)}"


def _cycle() -> list[str] | None:
    """One import cycle among vieter_lite's modules (package __init__ edges included)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(GRAPH.get(name, ())):
            if dep == name or is_under(name, dep):
                continue  # a module inside a package may use its own package's names
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_no_import_cycles():
    assert _cycle() is None, f"import cycle: {' -> '.join(_cycle() or [])}"


def test_the_cycle_finder_finds_a_cycle():
    GRAPH["vieter_lite.errors"].add("vieter_lite.web.app")
    try:
        assert _cycle() is not None
    finally:
        GRAPH["vieter_lite.errors"].discard("vieter_lite.web.app")
