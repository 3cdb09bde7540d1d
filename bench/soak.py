"""The soak with faults (10 minutes by default): a real server and a real agent (rootless
Podman, as the agent user), 8 publishing clients, pacman syncing in a loop, builds, log
followers and v2 list queries, while the server is SIGKILLed and restarted, the agent is
SIGKILLed mid-build and restarted, and build containers are killed from outside. Prints
the operations done, the faults injected, the server's RSS (start, peak, end) and fds,
and anything lost (must be 0). Needs root and .ci/podman-setup (as tests/test_soak.py).

    sudo python3 bench/soak.py [--seconds 600] [--seed N] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from soak_world import Soak, agent_ready  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault-every", type=float, default=15.0,
                        help="mean seconds between faults")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    problem = agent_ready()
    if problem is not None:
        print(f"soak: cannot run here: {problem}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="vieter-soak-", dir="/tmp"))
    base.chmod(0o755)
    started = time.monotonic()
    report = Soak(base, args.seconds, seed=args.seed, fault_every=args.fault_every).run()
    print(f"soak: {args.seconds:g} s of load and faults ({time.monotonic() - started:.0f} s "
          f"in all), work dir {base}")
    print(report.figures())
    if not args.keep and not report.lost:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
