"""Pure: the scripts the containers of a build run, and the markers they print per task.

A build runs two containers. The source container (only when the agent fetches the source)
clones the git repository or downloads the PKGBUILD and leaves the PKGBUILD's directory,
without .git, in SOURCE_OUT; the agent copies it out and makes the source bundle of it.
The build container gets the bundle's files in SOURCE_IN before it starts (copied into
the created container, never pasted into a script), copies them to its build dir and
runs makepkg.

Every value from the job reaches the scripts through environment variables, never through
the script text, so no URL, branch, path or environment value can inject shell code. No
secret reaches a container at all: makepkg writes the packages to OUTPUT_DIR, and the agent
copies them out after the container has exited and publishes them itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TASK_MARKER = "::vieter-task::"
SKIP_MARKER = "::vieter-skip::"
SRCINFO_MARKER = "::vieter-srcinfo::"  # 'begin' and 'end' around makepkg --printsrcinfo
OUTPUT_DIR = "/build/out"  # makepkg's PKGDEST; the agent takes the packages from here
SOURCE_OUT = "/build/bundle"  # what the source container leaves for the agent
SOURCE_IN = "vieter-source"  # the bundle's files in the build container, at /vieter-source
ENV_PREFIX = "VL_ENV_"  # the manifest's environment travels as VL_ENV_<NAME>
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
RESERVED_PREFIX = "VL_"
RESERVED = {"PKGDEST": "the agent takes the packages from its own PKGDEST"}

# Source container, as root: a build dir for the unprivileged user, who does the rest.
SOURCE_ROOT_SCRIPT = r"""set -euo pipefail
install -d -o "$VL_USER" -g "$VL_USER" /build
cd /build
exec runuser -u "$VL_USER" -- bash -c "$VL_USER_SCRIPT"
"""

# Source container, as the build user in /build: fetch, then leave the PKGBUILD's
# directory (no .git) in /build/bundle.
SOURCE_USER_SCRIPT = r"""set -euo pipefail
echo "::vieter-task:: source"
if [ "$VL_KIND" = git ]; then
    echo "+ git clone $VL_URL${VL_BRANCH:+ (branch $VL_BRANCH)}"
    git clone --single-branch --depth 1 ${VL_BRANCH:+--branch "$VL_BRANCH"} -- "$VL_URL" repo
elif [ "$VL_KIND" = url ]; then
    echo "+ curl $VL_URL"
    mkdir repo
    curl -fsSL -o repo/PKGBUILD -- "$VL_URL"
else
    echo "error: a $VL_KIND source is not fetched"
    exit 1
fi
top=$(realpath -e repo)
if ! dir=$(realpath -e "repo/$VL_PATH"); then
    echo "error: the repository has no directory '$VL_PATH'"
    exit 1
fi
case "$dir" in
    "$top"|"$top"/*) ;;
    *) echo "error: the path '$VL_PATH' leads out of the repository"; exit 1 ;;
esac
if [ ! -f "$dir/PKGBUILD" ]; then
    echo "error: no PKGBUILD in ${VL_PATH:-the top directory of the repository}"
    exit 1
fi
mkdir bundle
tar -C "$dir" --exclude=.git -cf - . | tar -C bundle -xf -
echo "source: $(find bundle -type f | wc -l) file(s) in ${VL_PATH:-the top directory}"
"""

# Build container, as root: the target's own repo joins pacman.conf, the source's files go
# to the build dir, the unprivileged user prints what makepkg reads of the PKGBUILD
# (.SRCINFO, between marker lines: the agent sends it to the server, which may send the
# build back to the queue to wait for a dependency's build), the system is updated, then
# the unprivileged user does the rest. (The source task is still running: it ends once
# makepkg has downloaded the sources.)
ROOT_SCRIPT = r"""set -euo pipefail
printf '\n[%s]\nServer = %s/$repo/$arch\nSigLevel = Optional TrustAll\n' "$VL_REPO" "$VL_ADDRESS" >> /etc/pacman.conf
install -d -o "$VL_USER" -g "$VL_USER" /build /build/src "$PKGDEST"
cp -r "/$VL_SOURCE_IN/." /build/src/
chown -R "$VL_USER:$VL_USER" /build/src
cd /build/src
echo "+ makepkg --printsrcinfo"
echo "::vieter-srcinfo:: begin"
runuser -u "$VL_USER" -- makepkg --printsrcinfo || echo "warning: makepkg --printsrcinfo failed; the server learns nothing of what this PKGBUILD depends on"
echo "::vieter-srcinfo:: end"
echo "+ pacman -Syu --noconfirm --needed"
pacman -Syu --noconfirm --needed || echo "warning: pacman -Syu failed; building with the image as it is"
exec runuser -u "$VL_USER" -- bash -c "$VL_USER_SCRIPT"
"""  # noqa: E501 (shell lines are kept whole)

# The manifest's environment, exported for makepkg: each VL_ENV_<NAME> as <NAME> (names
# the agent checked; values are only ever expanded, never evaluated).
EXPORT_ENV = r"""for name in $VL_ENV; do
    value="VL_ENV_$name"
    export "$name=${!value}"
    unset "$value"
done
"""

# Build container, as the build user in /build/src (the source's files).
USER_SCRIPT = r"""set -euo pipefail
""" + EXPORT_ENV + r"""echo "+ makepkg --nobuild $VL_MAKEPKG_ARGS"
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
MAKEFLAGS="${MAKEFLAGS:--j$(nproc)}" makepkg --noextract --noconfirm $VL_MAKEPKG_ARGS
"""  # noqa: E501 (shell lines are kept whole)


def environment(values: Any) -> tuple[dict[str, str], list[str]]:
    """The manifest's environment that goes to makepkg, and a reason per name left out: a
    name must match [A-Z_][A-Z0-9_]*, not start with VL_ (the scripts' own) and not be
    PKGDEST; a value must be text without NUL. The server checks names too; the agent does
    not count on it."""
    kept: dict[str, str] = {}
    dropped: list[str] = []
    if not isinstance(values, Mapping):
        return kept, ([] if values in (None, "") else ["the environment is not a mapping"])
    for name, value in values.items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            dropped.append(f"{name!r}: not a variable name")
        elif name.startswith(RESERVED_PREFIX):
            dropped.append(f"{name}: VL_ names are the build scripts' own")
        elif name in RESERVED:
            dropped.append(f"{name}: {RESERVED[name]}")
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool) \
                or "\0" in str(value):
            dropped.append(f"{name}: its value is not text")
        else:
            kept[name] = str(value)
    return kept, dropped


def source_env(job: dict[str, Any], user: str = "build") -> dict[str, str]:
    """The source container's environment: what to fetch, and nothing else."""
    return {
        "VL_KIND": str(job["kind"]),
        "VL_URL": str(job["url"]),
        "VL_BRANCH": str(job.get("branch") or ""),
        "VL_PATH": str(job.get("path") or ""),
        "VL_USER": user,
        "VL_USER_SCRIPT": SOURCE_USER_SCRIPT,
        "LANG": "C.UTF-8",
    }


def build_env(job: dict[str, Any], address: str, user: str = "build",
              makepkg_args: str = "--syncdeps --needed",
              env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The build container's environment (everything the scripts read; no secret). `env`
    (checked by environment()) is exported to makepkg; it travels as VL_ENV_<NAME> so no
    value of it touches the root script's own variables."""
    extra = dict(env or {})
    return {
        "VL_ADDRESS": address.rstrip("/"),
        "VL_REPO": str(job["repo"]),
        "VL_ARCH": str(job["arch"]),
        "VL_FORCE": "1" if job.get("force") else "0",
        "VL_USER": user,
        "VL_MAKEPKG_ARGS": makepkg_args,
        "VL_SOURCE_IN": SOURCE_IN,
        "VL_USER_SCRIPT": USER_SCRIPT,
        "VL_ENV": " ".join(sorted(extra)),
        **{ENV_PREFIX + name: value for name, value in sorted(extra.items())},
        "PKGDEST": OUTPUT_DIR,
        "LANG": "C.UTF-8",
    }


def source_command() -> list[str]:
    return ["/bin/bash", "-c", SOURCE_ROOT_SCRIPT]


def command() -> list[str]:
    return ["/bin/bash", "-c", ROOT_SCRIPT]


def marker(line: str) -> tuple[str, str] | None:
    """('task', name), ('skip', reason) or ('srcinfo', 'begin'/'end') for a marker line of
    the script, else None."""
    if line.startswith(TASK_MARKER):
        return "task", line[len(TASK_MARKER):].strip()
    if line.startswith(SKIP_MARKER):
        return "skip", line[len(SKIP_MARKER):].strip()
    if line.startswith(SRCINFO_MARKER):
        return "srcinfo", line[len(SRCINFO_MARKER):].strip()
    return None


ARCH_PREPARE = """set -e
pacman -Syu --needed --noconfirm base-devel git
id build >/dev/null 2>&1 || useradd -m -U build
echo 'build ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/build
"""
