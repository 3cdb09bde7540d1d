"""The real agent's environment in these tests: its user, its Python, the cached base image,
the builder image's preparation, and whether all of it is here (.ci/podman-setup sets it up).
Shared by the end-to-end tests and the soak (which bench/soak.py also runs)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

from pacman_client import pacman_available

AGENT_USER = os.environ.get("VIETER_AGENT_USER", "vieter-agent")
AGENT_PYTHON = os.environ.get("VIETER_AGENT_PYTHON", "/opt/vieter-lite-agent/bin/python")
BASE_IMAGE = os.environ.get("VIETER_TEST_BASE_IMAGE", "localhost/vieter-lite-test-base:latest")

# Builder image preparation for the Debian base image (the default is Arch's).
PREPARE = """set -e
id build >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash build
pacman -Q >/dev/null 2>&1 || true
test -f /var/lib/pacman/local/ALPM_DB_VERSION
sed -i "s/^PKGEXT=.*/PKGEXT='.pkg.tar.zst'/" /etc/makepkg.conf
install -m 4755 /bin/bash /usr/local/bin/rootbash  # the build user can be root, as with Arch's sudo
"""


def agent_env() -> list[str]:
    """The command prefix that runs as the agent user with a clean environment."""
    home = pwd.getpwnam(AGENT_USER).pw_dir
    return ["setpriv", f"--reuid={AGENT_USER}", f"--regid={AGENT_USER}", "--init-groups",
            "env", "-i", f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin"]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`podman ARGS` as the agent user (its own rootless store)."""
    return subprocess.run([*agent_env(), "podman", *args], cwd="/", capture_output=True,
                          text=True, timeout=120, check=check)


def agent_ready() -> str | None:
    """None when a real agent can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root (runs the agent as another user)"
    for tool in ("podman", "git", "runuser", "setpriv", "bsdtar"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/podman-setup installs it)"
    try:
        pwd.getpwnam(AGENT_USER)
    except KeyError:
        return f"user {AGENT_USER} is missing (.ci/podman-setup creates it)"
    if not os.access(AGENT_PYTHON, os.X_OK):
        return f"{AGENT_PYTHON} is missing (.ci/podman-setup creates it)"
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        return f"image {BASE_IMAGE} is missing (.ci/podman-setup builds it)"
    if not pacman_available():
        return "pacman is missing"
    return None
