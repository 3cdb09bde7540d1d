"""The code stays ruff- and mypy-clean with the settings in pyproject.toml."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(module: str, *args: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{module} found problems:\n{proc.stdout}{proc.stderr}"


def test_ruff_finds_nothing():
    _run("ruff", "check", "vieter_lite", "tests", "bench")


def test_mypy_finds_nothing():
    _run("mypy")
