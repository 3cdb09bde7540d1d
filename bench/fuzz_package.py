"""Coverage-guided fuzzing (atheris, libFuzzer) of the package reader: read_package on
mutated packages must return a Package or raise InvalidPackage, nothing else.

The seed corpus is real packages: makepkg's (when makepkg runs here) and synthetic ones
(tests/pkgfactory.py) in every compression. The mutator decompresses an input, lets
libFuzzer mutate the tar stream and compresses it again (half the time; otherwise it mutates
the raw bytes), so that mutations reach the tar reader and .PKGINFO parser rather than die
in the decompressor. libFuzzer flags pass through:

    python3 bench/fuzz_package.py -max_total_time=600       # ten minutes
    python3 bench/fuzz_package.py -runs=5000                # what CI runs

A crash is written to fuzz-artifacts/ (or -artifact_prefix=...) and the run exits non-zero;
replay it with `python3 bench/fuzz_package.py fuzz-artifacts/crash-...`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from vieter_lite.errors import InvalidPackage
    from vieter_lite.repo import package as pkgmod
    from vieter_lite.repo import zstd

from pkgfactory import (  # noqa: E402
    _COMPRESSORS,
    build_with_makepkg,
    make_synthetic_package,
    makepkg_available,
)

WORK = Path(tempfile.mkdtemp(prefix="vieter-atheris-"))
INPUT = WORK / "input.pkg"
MAX_LEN = 256 * 1024


def seed_corpus(directory: Path) -> Path:
    """Write the seed packages into `directory` (kept between runs: libFuzzer adds the
    inputs that reach new code there)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return directory
    if makepkg_available():
        for ext in (".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz"):
            for built in build_with_makepkg(WORK, "seed", "1.0", arch="x86_64", pkgext=ext,
                                            depends=["glibc>=2.38"]):
                (directory / built.name).write_bytes(built.read_bytes())
    files = {"usr/bin/x": b"#!/bin/sh\n", "usr/share/" + "l" * 120 + "/f": b"long\n",
             "etc/x.conf": b"a=b\n"}
    info = {"pkgname": "seed", "pkgver": "1:2.0-3", "arch": "x86_64", "depend": ["a", "b>=1"],
            "backup": ["etc/x.conf"], "size": "10", "builddate": "1700000000"}
    for kind in _COMPRESSORS:
        make_synthetic_package(directory / f"synthetic-{kind}", info, files, kind)
    return directory


def _decompress(data: bytes) -> tuple[str, bytes] | None:
    """(compression, tar bytes) of a package, None when it does not decompress."""
    try:
        if data.startswith(b"\x28\xb5\x2f\xfd"):
            INPUT.write_bytes(data)
            with zstd.open_zstd(INPUT) as stream:
                return "zst", stream.read(4 * MAX_LEN)
        if data.startswith(b"\x1f\x8b"):
            return "gz", gzip.decompress(data)
        if data.startswith(b"\xfd7zXZ\x00"):
            return "xz", lzma.decompress(data)
        if data.startswith(b"BZh"):
            return "bz2", bz2.decompress(data)
    except Exception:
        return None
    return "none", data


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    unpacked = _decompress(data) if random.Random(seed).random() < 0.5 else None
    if unpacked is None:
        return atheris.Mutate(data, max_size)
    kind, tar = unpacked
    mutated = atheris.Mutate(tar, len(tar) + 64)
    packed = bz2.compress(mutated) if kind == "bz2" else _COMPRESSORS[kind](mutated)
    return packed if len(packed) <= max_size else atheris.Mutate(data, max_size)


def test_one_input(data: bytes) -> None:
    INPUT.write_bytes(data)
    try:
        pkgmod.read_package(INPUT, max_unpacked=4 * MAX_LEN)
    except InvalidPackage:
        pass


def main() -> None:
    args = list(sys.argv)
    given = [Path(a) for a in args[1:] if not a.startswith("-")]
    if not given:  # no corpus or input given
        args.append(str(seed_corpus(ROOT / "fuzz-corpus")))
    for path in given:
        if path.is_dir():
            seed_corpus(path)  # an empty one gets the seeds
    if not any(a.startswith("-artifact_prefix=") for a in args):
        (ROOT / "fuzz-artifacts").mkdir(exist_ok=True)
        args.append(f"-artifact_prefix={ROOT / 'fuzz-artifacts'}/")
    if not any(a.startswith("-max_len=") for a in args):
        args.append(f"-max_len={MAX_LEN}")
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
