"""vieter_lite.clientsetup: the pacman.conf stanza edit (a table, and its awk twin run by
the real awk on every case), the base URL rule, and GET /setup's script run by sh."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vieter_lite import clientsetup
from vieter_lite.clientsetup import AWK_PROGRAM, check_base_url, shell_script, with_repo

URL = "http://pi:8000"
SIGNED = "SigLevel = Required\nServer = http://pi:8000/$repo/$arch\n"
OPTIONS = "[options]\nArchitecture = auto\n"

# (pacman.conf before, after with_repo(before, "myrepo", URL, signed=True))
CASES = {
    "no such section: appended after a blank line": (
        OPTIONS, OPTIONS + "\n[myrepo]\n" + SIGNED),
    "an empty file": ("", "[myrepo]\n" + SIGNED),
    "no trailing newline": (
        "[options]\nArchitecture = auto", OPTIONS + "\n[myrepo]\n" + SIGNED),
    "ends with a blank line already": (
        OPTIONS + "\n", OPTIONS + "\n[myrepo]\n" + SIGNED),
    "an existing section: its SigLevel and Server lines replaced, the rest kept": (
        OPTIONS + "\n[myrepo]\nSigLevel = Optional TrustAll\n# mine\nServer = http://old/$repo\n"
        "Include = /etc/pacman.d/extra\n\n[extra]\nServer = http://x\n",
        OPTIONS + "\n[myrepo]\n" + SIGNED + "# mine\nInclude = /etc/pacman.d/extra\n\n"
        "[extra]\nServer = http://x\n"),
    "set up already: unchanged": (
        OPTIONS + "\n[myrepo]\n" + SIGNED, OPTIONS + "\n[myrepo]\n" + SIGNED),
    "other sections' lines and commented lines stay": (
        "[myrepo-testing]\nServer = http://a\n#[myrepo]\n#Server = http://b\n",
        "[myrepo-testing]\nServer = http://a\n#[myrepo]\n#Server = http://b\n\n[myrepo]\n"
        + SIGNED),
    "indented and spaced lines": (
        "  [myrepo]  \n\tServer=http://old\n  SigLevel   =   Never\nUsage = Sync\n",
        "  [myrepo]  \n" + SIGNED + "Usage = Sync\n"),
    "a section given twice: the first gets the lines, both lose theirs": (
        "[myrepo]\nServer = http://a\n[other]\n[myrepo]\nServer = http://b\nUsage = All\n",
        "[myrepo]\n" + SIGNED + "[other]\n[myrepo]\nUsage = All\n"),
    "a name inside the brackets with spaces is another section": (
        "[ myrepo ]\nServer = http://a\n",
        "[ myrepo ]\nServer = http://a\n\n[myrepo]\n" + SIGNED),
}


@pytest.mark.parametrize("case", CASES)
def test_with_repo(case):
    before, after = CASES[case]
    assert with_repo(before, "myrepo", URL, signed=True) == after
    assert with_repo(after, "myrepo", URL, signed=True) == after  # idempotent


def test_without_signing_the_stanza_is_optional():
    assert with_repo(OPTIONS, "myrepo", URL, signed=False) == OPTIONS + (
        "\n[myrepo]\nSigLevel = Optional TrustAll\nServer = http://pi:8000/$repo/$arch\n")


def run_awk(text: str, repo: str, signed: bool) -> str:
    proc = subprocess.run(["awk", "-v", f"repo={repo}", "-v",
                           f"siglevel={clientsetup.siglevel_line(signed)}", "-v",
                           f"server={clientsetup.server_line(URL)}", AWK_PROGRAM],
                          input=text, capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.mark.skipif(shutil.which("awk") is None, reason="no awk")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("signed", [True, False])
def test_the_awk_program_edits_like_with_repo(case, signed):
    before, _ = CASES[case]
    assert run_awk(before, "myrepo", signed) == with_repo(before, "myrepo", URL, signed)


@pytest.mark.parametrize("url, expected", [
    ("http://pi:8000", "http://pi:8000"),
    ("https://builds.example.org/", "https://builds.example.org"),
    ("http://[::1]:8000/vieter", "http://[::1]:8000/vieter"),
    ("http://10.0.0.2", "http://10.0.0.2"),
])
def test_a_base_url(url, expected):
    assert check_base_url(url) == expected


@pytest.mark.parametrize("url", ["pi:8000", "ftp://pi", "http://pi:8000/?x=1",
                                 "http://pi'; rm -rf /", "http://pi$(id)", "http://pi/a b",
                                 'http://pi/"', "http://pi\\x", "http://", ""])
def test_not_a_base_url(url):
    with pytest.raises(ValueError, match="not a server URL"):
        check_base_url(url)


def test_the_unsigned_script_sets_up_the_stanza_and_a_second_run_changes_nothing(tmp_path):
    conf = tmp_path / "pacman.conf"
    conf.write_text(OPTIONS + "\n[myrepo]\nServer = http://old/$repo\n")
    conf.chmod(0o640)
    script = shell_script(URL, "myrepo", None)
    env = {"PATH": "/usr/bin:/bin", "PACMAN_CONF": str(conf)}
    first = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert conf.read_text() == with_repo(OPTIONS + "\n[myrepo]\nServer = http://old/$repo\n",
                                         "myrepo", URL, signed=False)
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert "[myrepo] set up" in first.stdout and "pacman-key" not in script
    second = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert second.returncode == 0 and "set up already" in second.stdout


def test_the_signed_script_adds_and_lsigns_the_key_first():
    script = shell_script(URL, "myrepo", "ABCD" * 10)
    add, lsign, awk = (script.index('--add "$tmp/key.asc"'),
                       script.index('--lsign-key "$fingerprint"'), script.index("awk -v"))
    assert add < lsign < awk and "set -eu" in script
    assert f"fingerprint={'ABCD' * 10}" in script and "SigLevel = Required" in script
