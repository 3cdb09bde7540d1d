"""Building for another arch than the machine's own, under qemu-user emulation: which
Podman platform and binfmt_misc entry an arch needs, and whether this host can run it.

The kernel runs a foreign binary through the interpreter of an enabled binfmt_misc entry.
In a rootless container that works only with the entry's F flag (fix binary): the kernel
opens the interpreter when the entry is registered, instead of looking its path up inside
the container, where it does not exist. Debian's qemu-user-static entries have it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
FIX = ("as root: apt-get install qemu-user-static binfmt-support, then "
       "update-binfmts --enable {entry} (Arch: pacman -S qemu-user-static "
       "qemu-user-static-binfmt)")


@dataclass(frozen=True)
class Foreign:
    """What an arch needs on a machine of another arch: its Podman platform and the name
    of its binfmt_misc entry."""

    platform: str   # os/arch[/variant], as `podman run --platform` takes it
    entry: str      # /proc/sys/fs/binfmt_misc/<entry>


# Arch Linux's arch names (pacman, makepkg's CARCH) -> what emulating them takes
ARCHS: dict[str, Foreign] = {
    "x86_64": Foreign("linux/amd64", "qemu-x86_64"),
    "aarch64": Foreign("linux/arm64", "qemu-aarch64"),
    "armv7h": Foreign("linux/arm/v7", "qemu-arm"),
    "armv6h": Foreign("linux/arm/v6", "qemu-arm"),
    "riscv64": Foreign("linux/riscv64", "qemu-riscv64"),
}
# machines that run another arch's binaries themselves (an aarch64 kernel runs armv7h's)
NATIVE_TOO: dict[str, tuple[str, ...]] = {"aarch64": ("armv7h", "armv6h"),
                                          "armv7h": ("armv6h",)}


def emulated(arch: str, machine: str) -> bool:
    """Whether building `arch` on a `machine` (both Arch's names) needs emulation: a known
    arch that this machine does not run itself (an arch name of one's own, as a test's or
    a private repo's, is built as the machine's own)."""
    return arch in ARCHS and arch != machine and arch not in NATIVE_TOO.get(machine, ())


def platform_of(arch: str, machine: str) -> str:
    """The platform to ask Podman for: empty when the arch is native here."""
    return ARCHS[arch].platform if emulated(arch, machine) else ""


def binfmt_problem(arch: str, machine: str, binfmt_dir: Path | None = None) -> str | None:
    """Why this host cannot build `arch` under emulation (one line with the fix), or None
    (native, or an enabled entry with the F flag). `binfmt_dir`: BINFMT_DIR."""
    if not emulated(arch, machine):
        return None
    binfmt_dir = BINFMT_DIR if binfmt_dir is None else binfmt_dir
    head = f"cannot build {arch} on this {machine} machine"
    foreign = ARCHS[arch]
    fix = FIX.format(entry=foreign.entry)
    if not (binfmt_dir / "status").exists():
        return (f"{head}: binfmt_misc is not mounted at {binfmt_dir} ({fix}; it mounts it; "
                "in a container, the host must register the entry)")
    entry = binfmt_dir / foreign.entry
    try:
        lines = entry.read_text().splitlines()
    except OSError:
        return f"{head}: qemu-user emulation is not registered: {entry} is missing ({fix})"
    if not lines or lines[0].strip() != "enabled":
        return f"{head}: {entry} is disabled ({fix})"
    flags = next((line.split(":", 1)[1].strip() for line in lines
                  if line.startswith("flags:")), "")
    if "F" not in flags:
        return (f"{head}: {entry} lacks the F flag (flags: {flags or 'none'}), so containers "
                f"cannot find its interpreter ({fix}: qemu-user-static's entries have it)")
    return None
