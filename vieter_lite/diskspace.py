"""Free space on the data disk: an upload is refused up front when it would leave less
than `min_free_space`, so the disk rarely fills up in the middle of a write."""

from __future__ import annotations

import os
from pathlib import Path

from vieter_lite.errors import NO_SPACE

# a package body is on the data disk twice while it is published: waitress's spooled
# copy of the request body, and the upload file the package is read and linked from
COPIES = 2
MIB = 1 << 20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def shortfall(free: int, length: int | None, margin: int, copies: int = COPIES) -> int:
    """How many bytes are missing for a body of `length` (None: unknown, chunked) to be
    written `copies` times and still leave `margin` free; 0 when it fits."""
    return max(0, copies * (length or 0) + margin - free)


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def upload_refusal(tmp_dir: Path, pkg_dir: Path, length: int | None,
                   margin: int) -> str | None:
    """Why an upload of `length` bytes may not start (the answer's text), or None. The
    body is spooled and copied under `tmp_dir`; when `pkg_dir` is on another filesystem
    the package is copied there too. `margin` 0 checks nothing."""
    if margin <= 0:
        return None
    checks = [(tmp_dir, COPIES)]
    if os.stat(tmp_dir).st_dev != os.stat(pkg_dir).st_dev:
        checks.append((pkg_dir, 1))
    for path, copies in checks:
        free = free_bytes(path)
        if shortfall(free, length, margin, copies):
            body = "" if length is None else f"{copies} x the body ({_mib(length)}) + "
            return (f"{NO_SPACE} for this upload: {_mib(free)} free, {body}min_free_space "
                    f"({_mib(margin)}) needed; free some space and try again")
    return None
