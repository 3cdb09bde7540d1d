"""Bench: what reviewing a build's source costs the server, typical and hostile.

    python3 bench/review.py [--repeat 3]

Times, in the same run, read_bundle of both bundles plus changes() (vieter_lite.review):

- reference: an AUR package (PKGBUILD, .install, a patch) whose build() changed;
- a vendored patch of 20 000 lines changed in two places (alignment past the budget:
  lines found once anchor it);
- hostile: two bundles of MAX_BUNDLE each, every file 2 000 lines from a few dozen
  values in orders that make difflib slowest (a cycle against its multiple), so the
  alignment budget (ALIGN_BUDGET) is what bounds the work;
- hostile: a PKGBUILD of MAX_BUNDLE made of checksum arrays and version lines.

Prints the median milliseconds of each and its ratio to the reference; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vieter_lite import review  # noqa: E402

PKGBUILD = (b"pkgname=hello\npkgver=1.2.0\npkgrel=1\narch=(x86_64)\n"
            b"source=(\"https://example.com/hello-$pkgver.tar.gz\" fix.patch)\n"
            b"sha256sums=('" + b"ab" * 32 + b"'\n            'SKIP')\n"
            b"build() {\n  cd hello-$pkgver\n  make\n}\n"
            b"package() {\n  cd hello-$pkgver\n  make DESTDIR=\"$pkgdir\" install\n}\n")


def typical() -> tuple[bytes, bytes]:
    old = {"PKGBUILD": PKGBUILD, "hello.install": b"post_install() {\n  :\n}\n",
           "fix.patch": b"".join(b"+patched line %d\n" % i for i in range(200))}
    new = {**old, "PKGBUILD": PKGBUILD.replace(b"  make\n", b"  make V=1\n")}
    return review.pack_bundle(old), review.pack_bundle(new)


def vendored_patch() -> tuple[bytes, bytes]:
    patch = b"".join(b"+vendored line %d\n" % i for i in range(20_000))
    changed = patch.replace(b"+vendored line 100\n", b"+vendored line one hundred\n")
    changed = changed.replace(b"+vendored line 19900\n", b"+vendored line 19 900\n")
    return (review.pack_bundle({"PKGBUILD": PKGBUILD, "vendor.patch": patch}),
            review.pack_bundle({"PKGBUILD": PKGBUILD, "vendor.patch": changed}))


def hostile_alignment() -> tuple[bytes, bytes]:
    lines, k = 2000, 100
    old_file = b"".join(b"%d\n" % (i % k) for i in range(lines))
    new_file = b"".join(b"%d\n" % (i * 7 % k) for i in range(lines))
    count = (review.MAX_BUNDLE - 20_000) // (len(old_file) + 1024)
    old = {"PKGBUILD": PKGBUILD} | {f"f{n}": old_file for n in range(count)}
    new = {"PKGBUILD": PKGBUILD} | {f"f{n}": new_file for n in range(count)}
    return review.pack_bundle(old), review.pack_bundle(new)


def hostile_pkgbuild() -> tuple[bytes, bytes]:
    unit = b"pkgver=1.0\nsha256sums=(" + b"aa " * 20 + b"\n"  # arrays left open
    text = unit * ((review.MAX_BUNDLE - 10_000) // len(unit))
    return (review.pack_bundle({"PKGBUILD": text}),
            review.pack_bundle({"PKGBUILD": text.replace(b"1.0", b"2.0")}))


def timed(old: bytes, new: bytes, repeat: int) -> tuple[float, bool]:
    samples = []
    held = False
    for _ in range(repeat):
        start = time.perf_counter()
        held = review.changes(review.read_bundle(old), review.read_bundle(new)) is not None
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("$ python3 " + " ".join(sys.argv))
    cases = [("reference: AUR package, build() changed", typical),
             ("vendored patch, 20 000 lines, 2 changes", vendored_patch),
             ("hostile: 1 MiB of slow-to-align files", hostile_alignment),
             ("hostile: 1 MiB PKGBUILD of version lines", hostile_pkgbuild)]
    reference = None
    print(f"{'case':45} {'ms':>9} {'ratio':>8}  held")
    for name, make in cases:
        old, new = make()
        ms, held = timed(old, new, args.repeat)
        reference = reference or ms
        print(f"{name:45} {ms:9.1f} {ms / reference:8.1f}  {held}")


if __name__ == "__main__":
    main()
