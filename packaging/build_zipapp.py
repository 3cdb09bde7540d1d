#!/usr/bin/env python3
"""Build vieter-lite.pyz: the project plus its pure-Python dependencies in one zipapp.

    python3 packaging/build_zipapp.py [-o dist/vieter-lite.pyz]

The runtime dependencies come from pyproject.toml (pyzstd left out: zstd comes from the
interpreter, Python >= 3.14, a system pyzstd or zstandard module, or the zstd program;
see vieter_lite/repo/zstd.py). pip fetches them as pure-Python wheels
only (`--platform any --implementation py`), so e.g. charset-normalizer's pure wheel is
used instead of its mypyc build. PyYAML publishes no pure wheel: its Python code (which
falls back to itself when the C extension `yaml._yaml` is missing) is taken out of one
fixed platform wheel, without the extension and the `_yaml` shim. The build fails if any
compiled module (.so, .pyd) ends up inside. The .py files come with .pyc bytecode of the
building python3 (--no-pyc: without), which other Python versions ignore.
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
# dependencies without a pure wheel whose Python code runs without their C extension:
# name -> the top-level packages taken from a platform wheel (compiled files left out)
PURE_PARTS = {"pyyaml": ("yaml",)}
PURE_PARTS_PLATFORM = "manylinux2014_x86_64"  # any platform: only its .py files are used
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
MAIN = """\
# vieter-lite zipapp entry point
import sys

if sys.version_info < (3, 11):
    sys.exit("vieter-lite needs Python >= 3.11")
from vieter_lite.cli import main

raise SystemExit(main())
"""


def _name(dep: str) -> str:
    return re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0].lower().replace("_", "-")


def runtime_requirements() -> list[str]:
    """pyproject's dependencies for the zipapp, each as a requirement pip reads."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    return [dep.split(";")[0].strip() for dep in deps if _name(dep) not in EXCLUDED_DEPS]


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


def _pip_install(target: Path, python_version: str, platform: list[str],
                 requirements: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-compile", "--no-warn-conflicts", "--target", str(target), "--only-binary=:all:",
           *platform, "--python-version", python_version, *requirements]
    subprocess.run(cmd, check=True)


def _add_pure_parts(stage: Path, tmp: Path, python_version: str, requirements: list[str]) -> None:
    """PURE_PARTS' packages from a platform wheel, their compiled modules left out (with
    --no-deps: their own dependencies must be pure and listed in pyproject.toml)."""
    if not requirements:
        return
    wheel = tmp / "platform"
    abi = "cp" + python_version.replace(".", "")
    _pip_install(wheel, python_version, ["--no-deps", "--platform", PURE_PARTS_PLATFORM,
                                          "--implementation", "cp", "--abi", abi], requirements)
    for dep in requirements:
        for package in PURE_PARTS[_name(dep)]:
            shutil.copytree(wheel / package, stage / package, ignore=lambda _d, names: [
                n for n in names if compiled_members([n]) or n == "__pycache__"])
        for info in wheel.glob(f"{_name(dep).replace('-', '_')}-*.dist-info"):
            shutil.copytree(info, stage / info.name, ignore=shutil.ignore_patterns("RECORD"))


def build(output: Path, python_version: str, with_pyc: bool = True) -> Path:
    requirements = runtime_requirements()
    pure_parts = [r for r in requirements if _name(r) in PURE_PARTS]
    with tempfile.TemporaryDirectory(prefix="vieter-zipapp-") as tmp:
        stage = Path(tmp) / "app"
        _pip_install(stage, python_version, ["--platform", "any", "--implementation", "py"],
                     [r for r in requirements if r not in pure_parts])
        _add_pure_parts(stage, Path(tmp), python_version, pure_parts)
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
