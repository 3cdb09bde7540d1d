"""Building another arch under qemu-user emulation: which archs need it on which machine,
the Podman platform they run with, what binfmt_misc must hold (and the one line an agent
prints at start when it does not), and the name and labels an agent registers with."""

from __future__ import annotations

from pathlib import Path

import pytest

from vieter_lite.agent import emulation, main

ENABLED_PF = ("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"
              "offset 0\nmagic 7f454c460201010000000000000000000200b700\n")


@pytest.mark.parametrize("arch, machine, emulated, platform", [
    ("x86_64", "x86_64", False, ""),
    ("aarch64", "x86_64", True, "linux/arm64"),
    ("armv7h", "x86_64", True, "linux/arm/v7"),
    ("x86_64", "aarch64", True, "linux/amd64"),
    ("armv7h", "aarch64", False, ""),       # an aarch64 kernel runs armv7h's binaries
    ("aarch64", "aarch64", False, ""),
    ("e2etest", "x86_64", False, ""),       # an arch name of one's own: built as the machine's
])
def test_which_archs_are_emulated_and_their_platform(arch, machine, emulated, platform):
    assert emulation.emulated(arch, machine) is emulated
    assert emulation.platform_of(arch, machine) == platform


def binfmt(tmp_path: Path, entries: dict[str, str]) -> Path:
    (tmp_path / "status").write_text("enabled\n")
    for name, text in entries.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("entries, mounted, problem", [
    ({"qemu-aarch64": ENABLED_PF}, True, None),
    ({}, True, "/qemu-aarch64 is missing"),
    ({"qemu-aarch64": ENABLED_PF.replace("enabled", "disabled")}, True, "is disabled"),
    ({"qemu-aarch64": ENABLED_PF.replace("flags: PF", "flags: P")}, True,
     "lacks the F flag (flags: P)"),
    ({"qemu-aarch64": ENABLED_PF.replace("flags: PF\n", "")}, True, "flags: none"),
    ({"qemu-arm": ENABLED_PF}, True, "/qemu-aarch64 is missing"),
    ({}, False, "binfmt_misc is not mounted"),
])
def test_what_binfmt_misc_must_hold_for_aarch64_on_x86_64(tmp_path, entries, mounted,
                                                          problem):
    root = binfmt(tmp_path, entries)
    if not mounted:
        (root / "status").unlink()
    found = emulation.binfmt_problem("aarch64", "x86_64", root)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found
        assert found.startswith("cannot build aarch64 on this x86_64 machine: ")
        assert "\n" not in found and "update-binfmts --enable qemu-aarch64" in found


def test_a_native_arch_needs_no_binfmt_entry(tmp_path):
    assert emulation.binfmt_problem("x86_64", "x86_64", tmp_path / "absent") is None
    assert emulation.binfmt_problem("e2etest", "x86_64", tmp_path / "absent") is None


@pytest.mark.parametrize("hostname, arch, name", [
    ("pi", "aarch64", "pi-aarch64"),
    ("build01.lan.example", "x86_64", "build01-x86_64"),
    ("weird host_name!", "x86_64", "weird-host_name-x86_64"),
    ("", "x86_64", "agent-x86_64"),
    ("h" * 80, "aarch64", "h" * 56 + "-aarch64"),
])
def test_an_agents_default_name(hostname, arch, name):
    assert main.default_name(hostname, arch) == name
    assert len(name) <= 64


AGENT_ENV = {"VIETER_ADDRESS": "http://127.0.0.1:9", "VIETER_API_KEY": "k"}


def test_an_emulated_arch_labels_the_agent_and_gives_its_platform(monkeypatch):
    monkeypatch.setattr(main, "machine_arch", lambda: "x86_64")
    settings, _ = main.load_settings(None, {**AGENT_ENV, "VIETER_ARCH": "aarch64",
                                            "VIETER_AGENT_LABELS": "disk=ssd"})
    assert (settings.labels, settings.platform) == \
        ({"disk": "ssd", "emulated": "true"}, "linux/arm64")
    native, _ = main.load_settings(None, {**AGENT_ENV, "VIETER_ARCH": "x86_64",
                                          "VIETER_AGENT_NAME": "box"})
    assert (native.labels, native.platform, native.runner) == ({}, "", "box")


def test_an_agent_that_cannot_emulate_its_arch_says_so_in_one_line_and_starts_nothing(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(main, "machine_arch", lambda: "x86_64")
    (tmp_path / "binfmt").mkdir()
    monkeypatch.setattr(emulation, "BINFMT_DIR", binfmt(tmp_path / "binfmt", {}))
    settings, values = main.load_settings(None, {
        **AGENT_ENV, "VIETER_ARCH": "aarch64", "VIETER_DATA_DIR": str(tmp_path / "data"),
        "VIETER_PODMAN_URL": "unix:///nonexistent/podman.sock"})
    assert main.run(settings, values) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "vieter-lite agent: cannot build aarch64 on this x86_64 machine: qemu-user emulation "
        "is not registered"), err
    assert not (tmp_path / "data").exists()
