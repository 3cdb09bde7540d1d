"""`vieter-lite agent --check`: is this user's rootless Podman ready for builds?

One line per problem, with its fix.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vieter_lite.agent import emulation
from vieter_lite.config import AGENT_KEYS, load_values, machine_arch
from vieter_lite.errors import ConfigError

SUBID_COUNT = 65536  # an image's users reach uid 65534 (nobody): the range must cover it
CHECK_TAG = "localhost/vieter-lite-check"
DEFAULT_BASE = "docker.io/library/archlinux:base-devel"  # the server's default base_image


def subid_count(path: Path, user: str, uid: int) -> int:
    """How many subordinate ids /etc/subuid (or subgid) gives the user (by name or uid)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (user, str(uid)) and fields[2].isdecimal():
            total += int(fields[2])
    return total


def subid_problems(user: str, uid: int, etc: Path = Path("/etc")) -> list[str]:
    problems = []
    for kind in ("uid", "gid"):
        if subid_count(etc / f"sub{kind}", user, uid) < SUBID_COUNT:
            problems.append(
                f"{user} has no subordinate {kind} range of {SUBID_COUNT} in {etc}/sub{kind}"
                f" (rootless Podman needs one): as root, run usermod --add-subuids "
                f"100000-165535 --add-subgids 100000-165535 {user} (with a range no other "
                "user has)")
    for tool in ("newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing: install uidmap (Debian) or shadow (Arch)")
    return problems


def storage_conf(environ: Mapping[str, str], home: str) -> Path:
    """The user's containers-storage config file (rootless Podman reads only this one)."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return Path(base) / "containers" / "storage.conf"


def suggested_roots(uid: int, home: str) -> dict[str, str]:
    """Podman's own rootless defaults (without XDG_RUNTIME_DIR), as README writes them."""
    return {"runroot": f"/tmp/containers-user-{uid}/containers",
            "graphroot": f"{home}/.local/share/containers/storage"}


def storage_problems(path: Path, uid: int, home: str) -> list[str]:
    """A storage.conf must name graphroot and runroot when it exists (with only a driver,
    Podman 4 cannot commit an image: "runroot must be set"); none at all means the slow
    vfs default, which the test container's store shows."""
    try:
        if not path.is_file():
            return []
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [f"cannot read {path}: {exc}: fix or remove it"]
    storage = data.get("storage")
    if not isinstance(storage, dict):
        storage = {}
    missing = {k: v for k, v in suggested_roots(uid, home).items() if not storage.get(k)}
    if not missing:
        return []
    return [f"{path} sets no {' and no '.join(missing)}: Podman then cannot commit the "
            f'builder image ("{next(iter(missing))} must be set"); add '
            + ", ".join(f'{k} = "{v}"' for k, v in missing.items()) + " under [storage]"]


def network_problems(values: Mapping[str, Any]) -> list[str]:
    network = values["build_network"]
    problems = []
    if network == "pasta" and shutil.which("pasta") is None:
        problems.append('build_network = "pasta" but pasta is not installed: install passt '
                        '(Podman 4.4 or later) or use build_network = "private"')
    if network in ("private", "slirp4netns", "bridge") and shutil.which("slirp4netns") is None \
            and shutil.which("pasta") is None:
        problems.append(f'build_network = "{network}" needs slirp4netns (or pasta on Podman 5):'
                        " install slirp4netns")
    host = urlsplit(str(values.get("address") or "")).hostname or ""
    if network != "host" and (host in ("localhost", "::1") or host.startswith("127.")):
        problems.append(f"address {values['address']} is this host's loopback, which builds "
                        f'on a "{network}" network cannot reach: use an address of this host '
                        'on the LAN, or build_network = "host"')
    return problems


def container_hint(reason: str) -> str:
    """A fix for a test-container failure whose cause is known."""
    if "/dev/net/tun" in reason:
        return ("slirp4netns cannot open /dev/net/tun: as root, chmod 0666 /dev/net/tun "
                '(udev\'s default), or set build_network = "host"')
    if "hybrid mode" in reason or "crun" in reason:
        return ('the OCI runtime crun fails here (cgroup v1/v2 hybrid host): set runtime = "runc"'
                " under [engine] in ~/.config/containers/containers.conf and install runc")
    if "must be set" in reason:
        return "storage.conf lacks graphroot or runroot: write it as README shows"
    if "newuidmap" in reason or "subuid" in reason or "uid_map" in reason:
        return "the user's subordinate id ranges do not work: see the subuid line above"
    return "see Podman's message"


def podman_problems(values: Mapping[str, Any], image: str | None,
                    storage_reported: bool) -> list[str]:
    """Start the Podman service the agent would use, check its runtime and store, and run a
    test container the way builds run (network mode, commit of an image)."""
    from vieter_lite.agent.podman import Podman, PodmanError, PodmanService

    if shutil.which("podman") is None and not values["podman_url"]:
        return ["podman is not installed: install podman (and runc, uidmap, slirp4netns)"]
    problems: list[str] = []
    try:
        with PodmanService(values["podman_url"] or None) as service, Podman(service.url) as pm:
            info = pm.info()
            runtime = (info.get("host") or {}).get("ociRuntime") or {}
            if runtime.get("path") and not os.path.exists(runtime["path"]):
                problems.append(f"the OCI runtime {runtime.get('name')} ({runtime['path']}) is "
                                "missing: install it, or name another in containers.conf")
            driver = (info.get("store") or {}).get("graphDriverName")
            if driver == "vfs":
                problems.append("the storage driver is vfs: every build copies the whole image;"
                                ' write ~/.config/containers/storage.conf with driver = "overlay"'
                                " as README shows, then run podman system reset -f")
            if image is None:
                local = [i.ref for i in reversed(pm.images()) if "<none>" not in i.ref]
                image = next((r for r in local if r.startswith("localhost/vieter-lite-builder")),
                             local[0] if local else None)
            if image is None:
                problems.append("no local image to run a test container with: podman pull "
                                f"{DEFAULT_BASE} (or pass --image)")
                return problems
            tag = f"{CHECK_TAG}:{uuid.uuid4().hex[:12]}"
            try:
                pm.build_image(image, tag, "true", timeout=300, network=values["build_network"])
            except PodmanError as exc:
                reason = str(exc).splitlines()[0]
                hint = container_hint(reason)
                if not (storage_reported and "must be set" in reason):
                    problems.append(f"a test container from {image} (build_network = "
                                    f"\"{values['build_network']}\") failed: {reason}: {hint}")
            finally:
                with contextlib.suppress(PodmanError):
                    pm.remove_image(tag)
    except PodmanError as exc:
        problems.append(f"the Podman service does not work: {exc}: run podman info as this user"
                        " for details")
    return problems


def check(config_file: str | None, environ: Mapping[str, str],
          image: str | None = None) -> list[str]:
    """Every problem found, one line each (empty: the agent can build here)."""
    me = pwd.getpwuid(os.getuid())
    home = environ.get("HOME") or me.pw_dir
    try:
        values = load_values(AGENT_KEYS, config_file, environ)
        problems = []
    except ConfigError as exc:  # check what can be checked with the defaults
        values = {k.name: k.default for k in AGENT_KEYS}
        problems = [f"config: {exc}"]
    problems += subid_problems(me.pw_name, me.pw_uid)
    emulated = emulation.binfmt_problem(str(values["arch"]), machine_arch())
    problems += [emulated] if emulated else []
    storage = storage_problems(storage_conf(environ, home), me.pw_uid, home)
    problems += storage + network_problems(values)
    problems += podman_problems(values, image, bool(storage))
    return problems
