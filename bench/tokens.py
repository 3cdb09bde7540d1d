"""Bench: what resolving a named token's secret costs a request, in-process.

    python3 bench/tokens.py [--tokens 1000] [--active 5] [--rate 10] [--calls 5000]
                            [--tmpdir DIR]

Opens a fresh vieter_lite.db.Database in a temporary dir, adds N tokens with
Tokens.add, then times, each over the same number of calls and in the same run:

- reference: Database._one("SELECT 1"), one locked sqlite round trip;
- resolve: Tokens.resolve(secret, now) as requests make it: `--active` of the tokens take
  turns, `--rate` calls per second of (injected) time, so each of them has last_used_at
  written once a minute (LAST_USED_EVERY);
- resolve, written every call: the same with the throttle off (LAST_USED_EVERY = 0), what
  a write per request would cost (a sqlite commit with synchronous=FULL);
- unknown: Tokens.resolve of a well-formed secret no token has.

Prints microseconds per call and each as a ratio to the reference; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vieter_lite import tokens as tokens_module  # noqa: E402
from vieter_lite.db import Database  # noqa: E402
from vieter_lite.tokens import Tokens, TokenSpec, new_secret  # noqa: E402

NOW = 1_800_000_000


def per_call(calls: int, fn: Callable[[int], object]) -> float:
    """Microseconds per call of fn(i) for i in range(calls)."""
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--active", type=int, default=5, help="tokens in use")
    parser.add_argument("--rate", type=int, default=10, help="calls per second of time")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--tmpdir", default=None)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=a.tmpdir) as tmp:
        db = Database(Path(tmp) / "vieter.sqlite")
        service = Tokens(db, "bench-api-key")
        secrets = [service.add(TokenSpec(f"t{i}", ("builds:read",)), NOW)[1]
                   for i in range(a.tokens)]
        unknown = new_secret()

        def resolve(i: int) -> object:
            found = service.resolve(secrets[i % a.active], NOW + i // a.rate)
            assert found is not None
            return found

        rows = [("reference: SELECT 1", per_call(a.calls, lambda i: db._one("SELECT 1")))]
        rows.append(("resolve (last_used_at once a minute)", per_call(a.calls, resolve)))
        saved = tokens_module.LAST_USED_EVERY
        tokens_module.LAST_USED_EVERY = 0
        try:
            rows.append(("resolve (last_used_at every call)",
                         per_call(a.calls, lambda i: resolve(a.calls * a.rate + i))))
        finally:
            tokens_module.LAST_USED_EVERY = saved
        rows.append(("resolve of an unknown secret",
                     per_call(a.calls, lambda i: service.resolve(unknown, NOW))))
        db.close()
    reference = rows[0][1]
    print(f"{a.tokens} tokens, {a.active} in use, {a.rate} calls/s, {a.calls} calls each")
    for name, micros in rows:
        print(f"{name:40} {micros:9.1f} us/call  {micros / reference:7.1f}x reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
