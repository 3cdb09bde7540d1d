"""Pure: the build script a container runs for a job, and the markers it prints per task.

Every value from the job reaches the script through environment variables, never through
the script text, so no URL, branch or path can inject shell code. No secret reaches the
container at all: makepkg writes the packages to OUTPUT_DIR, and the agent copies them out
after the container has exited and publishes them itself.
"""

from __future__ import annotations

from typing import Any

TASK_MARKER = "::vieter-task::"
SKIP_MARKER = "::vieter-skip::"
OUTPUT_DIR = "/build/out"  # makepkg's PKGDEST; the agent takes the packages from here

# Runs as root: the target's own repo joins pacman.conf, the system is updated, then the
# unprivileged user does the rest.
ROOT_SCRIPT = r"""set -euo pipefail
echo "::vieter-task:: setup"
printf '\n[%s]\nServer = %s/$repo/$arch\nSigLevel = Optional TrustAll\n' "$VL_REPO" "$VL_ADDRESS" >> /etc/pacman.conf
echo "+ pacman -Syu --noconfirm --needed"
pacman -Syu --noconfirm --needed || echo "warning: pacman -Syu failed; building with the image as it is"
install -d -o "$VL_USER" -g "$VL_USER" /build "$PKGDEST"
cd /build
exec runuser -u "$VL_USER" -- bash -c "$VL_USER_SCRIPT"
"""  # noqa: E501 (shell lines are kept whole)

# Runs as the build user in /build.
USER_SCRIPT = r"""set -euo pipefail
echo "::vieter-task:: source"
if [ "$VL_KIND" = git ]; then
    echo "+ git clone $VL_URL${VL_BRANCH:+ (branch $VL_BRANCH)}"
    git clone --single-branch --depth 1 ${VL_BRANCH:+--branch "$VL_BRANCH"} -- "$VL_URL" repo
else
    echo "+ curl $VL_URL"
    mkdir repo
    curl -fsSL -o repo/PKGBUILD -- "$VL_URL"
fi
cd "repo/$VL_PATH"
echo "+ makepkg --nobuild $VL_MAKEPKG_ARGS"
makepkg --nobuild --noconfirm $VL_MAKEPKG_ARGS
set +u
source ./PKGBUILD
set -u
fullver="${epoch:+$epoch:}$pkgver-$pkgrel"
echo "packages: ${pkgname[*]} $fullver"
if [ "$VL_FORCE" != 1 ]; then
    published=1
    for name in "${pkgname[@]}"; do
        if ! curl -fsS --head -o /dev/null "$VL_ADDRESS/$VL_REPO/$VL_ARCH/$name-$fullver" 2>/dev/null; then
            published=0
        fi
    done
    if [ "$published" = 1 ]; then
        echo "::vieter-skip:: every package is already published at $fullver"
        exit 0
    fi
fi
echo "::vieter-task:: build"
echo "+ makepkg $VL_MAKEPKG_ARGS"
MAKEFLAGS="-j$(nproc)" makepkg --noextract --noconfirm $VL_MAKEPKG_ARGS
"""  # noqa: E501 (shell lines are kept whole)


def build_env(job: dict[str, Any], address: str, user: str = "build",
              makepkg_args: str = "--syncdeps --needed") -> dict[str, str]:
    """The container's environment for a job (everything the scripts read; no secret)."""
    return {
        "VL_ADDRESS": address.rstrip("/"),
        "VL_REPO": str(job["repo"]),
        "VL_ARCH": str(job["arch"]),
        "VL_KIND": str(job["kind"]),
        "VL_URL": str(job["url"]),
        "VL_BRANCH": str(job.get("branch") or ""),
        "VL_PATH": str(job.get("path") or ""),
        "VL_FORCE": "1" if job.get("force") else "0",
        "VL_USER": user,
        "VL_MAKEPKG_ARGS": makepkg_args,
        "VL_USER_SCRIPT": USER_SCRIPT,
        "PKGDEST": OUTPUT_DIR,
        "LANG": "C.UTF-8",
    }


def command() -> list[str]:
    return ["/bin/bash", "-c", ROOT_SCRIPT]


def marker(line: str) -> tuple[str, str] | None:
    """('task', name) or ('skip', reason) for a marker line of the script, else None."""
    if line.startswith(TASK_MARKER):
        return "task", line[len(TASK_MARKER):].strip()
    if line.startswith(SKIP_MARKER):
        return "skip", line[len(SKIP_MARKER):].strip()
    return None


ARCH_PREPARE = """set -e
pacman -Syu --needed --noconfirm base-devel git
id build >/dev/null 2>&1 || useradd -m -U build
echo 'build ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/build
"""
