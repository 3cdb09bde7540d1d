"""The long fuzz run: every property of tests/test_fuzz_*.py (the ones CI runs with a small
budget), each for its share of a time budget, in rounds of fresh random examples. Prints
the examples run per property and every failure hypothesis found (shrunk, with the blob
that reproduces it); exit status 1 when anything failed.

    python3 bench/fuzz.py                    # 10 minutes in all
    python3 bench/fuzz.py --seconds 3600 --only vercmp
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from hypothesis import given  # noqa: E402

import fuzzing  # noqa: E402

MODULES = sorted(p.stem for p in (ROOT / "tests").glob("test_fuzz_*.py"))


def run(prop: fuzzing.Property, seconds: float, chunk: int) -> tuple[int, float, str | None]:
    """Rounds of `chunk` examples until `seconds` are spent: (examples, seconds, failure)."""
    count = 0

    @functools.wraps(prop.function)
    def counted(*args, **kwargs):
        nonlocal count
        count += 1
        prop.function(*args, **kwargs)

    start = time.monotonic()
    size = 20  # the first round measures the rate; the next ones fit the time left
    while (left := seconds - (time.monotonic() - start)) > 0:
        test = fuzzing.budget(size)(given(**prop.strategies)(counted))
        before = count
        round_start = time.monotonic()
        try:
            test()
        except Exception:  # a property failed: hypothesis has shrunk it and says how
            return count, time.monotonic() - start, traceback.format_exc(limit=-3)
        rate = (count - before) / max(time.monotonic() - round_start, 1e-3)
        size = int(min(chunk, max(10, rate * (left - (time.monotonic() - round_start)))))
    return count, time.monotonic() - start, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="budget for all (600)")
    parser.add_argument("--only", default="", help="run the properties whose name has this")
    parser.add_argument("--chunk", type=int, default=2000, help="most examples a round (2000)")
    args = parser.parse_args(argv)
    for name in MODULES:
        importlib.import_module(name)
    props = [p for p in fuzzing.PROPERTIES if args.only in p.name]
    if not props:
        parser.error(f"no property matches {args.only!r}")
    share = args.seconds / len(props)
    print(f"{len(props)} properties, {share:.0f} s each; failures kept in "
          f"{fuzzing.DATABASE_DIR}")
    failures = []
    for prop in props:
        examples, spent, failure = run(prop, share, args.chunk)
        status = "FAILED" if failure else "ok"
        print(f"{prop.name:80} {examples:8d} examples {spent:7.1f} s  {status}", flush=True)
        if failure:
            failures.append((prop.name, failure))
    for name, failure in failures:
        print(f"\n== {name}\n{failure}")
    print(f"\n{len(failures)} of {len(props)} properties failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
