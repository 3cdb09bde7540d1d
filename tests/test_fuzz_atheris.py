"""bench/fuzz_package.py (atheris, coverage-guided) for a bounded number of runs on the
seed corpus of real packages: no input makes read_package raise anything but
InvalidPackage. Skipped where atheris is not installed (its wheels cover few platforms)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5000

pytestmark = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                reason="atheris is not installed")


def test_atheris_finds_nothing_in_the_package_reader(tmp_path):
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz_package.py"),
                           f"-runs={RUNS}", f"-artifact_prefix={artifacts}/", str(corpus)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and f"Done {RUNS} runs" in proc.stderr, proc.stderr[-3000:]
    assert len(list(corpus.iterdir())) >= 5  # the seeds, and what reached new code
    assert not list(artifacts.iterdir())
