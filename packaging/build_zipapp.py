#!/usr/bin/env python3
"""Build vieter-lite.pyz: the project plus its pure-Python dependencies in one zipapp.

    python3 packaging/build_zipapp.py [-o dist/vieter-lite.pyz]

The runtime dependencies come from pyproject.toml (pyzstd left out: zstd comes from the
interpreter, Python >= 3.14, a system pyzstd or zstandard module, or the zstd program;
see vieter_lite/repo/zstd.py). pip fetches them as pure-Python wheels
only (`--platform any --implementation py`), so e.g. charset-normalizer's pure wheel is
used instead of its mypyc build; the build fails if any compiled module (.so, .pyd) ends up
inside. The .py files come with .pyc bytecode of the building python3 (--no-pyc: without),
which other Python versions ignore.
Needs pip and PyPI (or a configured index). Standard library only otherwise.
"""

from __future__ import annotations

import argparse
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipapp
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED_DEPS = {"pyzstd"}  # compiled; taken from the system when present
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
MAIN = """\
# vieter-lite zipapp entry point
import sys

if sys.version_info < (3, 11):
    sys.exit("vieter-lite needs Python >= 3.11")
from vieter_lite.cli import main

raise SystemExit(main())
"""


def runtime_requirements() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    keep = []
    for dep in deps:
        name = re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0].lower().replace("_", "-")
        if name not in EXCLUDED_DEPS:
            keep.append(dep.split(";")[0].strip())
    return keep


def compiled_members(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(COMPILED_SUFFIXES) or ".so." in n.rsplit("/", 1)[-1]]


def _add_bytecode(stage: Path) -> None:
    """Legacy-location .pyc next to each .py, for the building interpreter: zipimport cannot
    cache bytecode, so without them every start compiles everything (about 0.3 s more).
    Unchecked-hash pycs do not depend on file times; another Python version sees a foreign
    magic number and falls back to the .py (zipimport tries .pyc, then .py)."""
    for path in stage.rglob("*.py"):
        if path.name == "__main__.py" and path.parent == stage:
            continue  # run as a script by zipapp: never imported
        py_compile.compile(str(path), cfile=str(path.with_suffix(".pyc")), doraise=False,
                           quiet=2, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def build(output: Path, python_version: str, with_pyc: bool = True) -> Path:
    with tempfile.TemporaryDirectory(prefix="vieter-zipapp-") as tmp:
        stage = Path(tmp) / "app"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile", "--no-warn-conflicts", "--target", str(stage), "--only-binary=:all:",
               "--platform", "any", "--implementation", "py",
               "--python-version", python_version, *runtime_requirements()]
        subprocess.run(cmd, check=True)
        for junk in [stage / "bin", *stage.rglob("__pycache__")]:
            shutil.rmtree(junk, ignore_errors=True)
        shutil.copytree(ROOT / "vieter_lite", stage / "vieter_lite",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (stage / "__main__.py").write_text(MAIN)
        if with_pyc:
            _add_bytecode(stage)
        found = compiled_members([str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file()])
        if found:
            raise SystemExit(f"compiled modules would end up in the zipapp: {found}")
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".part")
        zipapp.create_archive(stage, partial, interpreter="/usr/bin/env python3", compressed=True)
    with zipfile.ZipFile(partial) as zf:
        found = compiled_members(zf.namelist())
    if found:
        partial.unlink()
        raise SystemExit(f"compiled modules inside the zipapp: {found}")
    partial.chmod(0o755)
    partial.replace(output)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "dist" / "vieter-lite.pyz"),
                        help="where to write the zipapp (default: dist/vieter-lite.pyz)")
    parser.add_argument("--python-version", default="3.11",
                        help="oldest Python the dependencies are chosen for (default 3.11)")
    parser.add_argument("--no-pyc", action="store_true",
                        help="leave out the bytecode of the building python3 (smaller, slower start)")
    args = parser.parse_args()
    out = build(Path(args.output).resolve(), args.python_version, not args.no_pyc)
    print(f"{out} ({out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
