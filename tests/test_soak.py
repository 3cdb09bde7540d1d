"""The soak with faults, 90 s: 8 publishers, pacman syncs, builds on a real agent in rootless
Podman, log followers and v2 list queries, while the server is SIGKILLed and started again,
the agent is SIGKILLed mid-build and started again, and a build container is killed from
outside. Asserted: nothing acknowledged is lost (tests/soak_world.py checks it), every db
pacman downloaded parses, no temp or orphan file after a restart, every build ends and none
is duplicated, every build of a killed agent is built, the last server life's fds come back
after a quiet period, the server's RSS stays under three times its first sample.
bench/soak.py runs it for 10 minutes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from soak_world import Soak, agent_ready

SECONDS = float(os.environ.get("VIETER_SOAK_SECONDS", "90"))

pytestmark = pytest.mark.skipif(agent_ready() is not None, reason=str(agent_ready()))


def test_a_soak_with_faults_loses_nothing():
    base = Path(tempfile.mkdtemp(prefix="vieter-soak-", dir="/tmp"))
    base.chmod(0o755)
    soak = Soak(base, SECONDS, fault_every=10.0)
    report = soak.run()
    print(report.figures())
    assert report.lost == [], report.figures()
    # the soak did what it says (counts, not rates)
    assert report.ops["publish"] > 0 and report.ops["pacman sync"] > 0
    assert report.ops["build queued"] > 0 and report.faults["server SIGKILL"] > 0
    rss = [kb for _t, kb in report.rss]
    assert rss and max(rss) < 3 * rss[0], report.figures()  # bounded: no growth with work
    shutil.rmtree(base, ignore_errors=True)
