"""README's publish example, run as written with the real curl against a real server."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import API_KEY, ROOT
from pkgfactory import make_synthetic_package

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def readme_publish_line() -> list[str]:
    """The README's `curl ... /publish` command, as arguments."""
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
             if line.strip().startswith("curl ") and "/publish" in line]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def for_this_server(args: list[str], address: str, key: str) -> list[str]:
    """The same command with this server's address and key in place of the example's."""
    server = urlsplit(address)
    result = []
    for arg in args:
        if re.match(r"(?i)x-api-key:", arg) or re.match(r"(?i)authorization:\s*bearer ", arg):
            arg = arg.split(":", 1)[0] + ": " + ("Bearer " if "bearer" in arg.lower() else "") \
                + key
        elif re.match(r"https?://", arg):
            url = urlsplit(arg)
            arg = urlunsplit((server.scheme, server.netloc, url.path, url.query, url.fragment))
        result.append(arg)
    return result


def uploaded_file(args: list[str]) -> str:
    """The file the command sends: -T/--upload-file FILE or --data-binary @FILE."""
    for flag in ("-T", "--upload-file", "--data-binary"):
        if flag in args:
            return args[args.index(flag) + 1].removeprefix("@")
    raise AssertionError(f"README's publish command sends no file: {args}")


def test_readme_publish_example_publishes(server, tmp_path: Path):
    args = readme_publish_line()
    assert args[0] == "curl"
    upload = uploaded_file(args)
    name, version, arch = re.fullmatch(r"(.+)-([^-]+-[^-]+)-([^-]+)\.pkg\.tar\.zst",
                                       Path(upload).name).groups()
    repo = urlsplit(next(a for a in args if a.startswith("http"))).path.split("/")[1]
    work = tmp_path / "work"
    (work / Path(upload).parent).mkdir(parents=True)
    make_synthetic_package(work / upload, {"pkgname": name, "pkgver": version, "arch": arch,
                                           "size": "1"}, {f"usr/share/{name}/x": b"x\n"})
    run = subprocess.run(for_this_server(args, server.url, API_KEY) + ["-sS", "-w",
                                                                        "\n%{http_code}"],
                         cwd=work, capture_output=True, text=True, timeout=60)
    body, _, status = run.stdout.rpartition("\n")
    assert run.returncode == 0 and status == "200", (run, server.log())
    assert json.loads(body)["data"] == {"name": name, "version": version, "archs": [arch]}
    with urllib.request.urlopen(f"{server.url}/{repo}/{arch}/{Path(upload).name}") as resp:
        assert resp.read() == (work / upload).read_bytes()
