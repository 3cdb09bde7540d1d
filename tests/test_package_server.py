"""Hostile packages sent to a real server process: a 400, nothing changed, peak memory bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

import hostile
from conftest import ServerProcess
from pkgfactory import make_synthetic_package
from test_repo_http import ServerClient, envelope, publish, published, snapshot

PEAK_RSS_LIMIT = 100 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


ATTACKS = {
    # 16 KiB on the wire: one GNU long name of 512 MiB
    "path-name-of-512MiB": (lambda: hostile.huge_gnu_longname(512 * hostile.MIB),
                            "longer than 4096 bytes"),
    # the same as a pax 'path' record
    "pax-path-of-512MiB": (lambda: hostile.huge_pax_path(512 * hostile.MIB),
                           "pax extended headers larger than"),
    # a few MiB on the wire: one million tar entries
    "one-million-entries": (lambda: hostile.many_entries(1_000_000), "more than 200000 entries"),
}


@pytest.mark.integration
def test_hostile_packages_get_400_in_bounded_memory(tmp_path: Path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        client = ServerClient(server)
        good = make_synthetic_package(tmp_path / "good-1.0-1-x86_64.pkg.tar.zst",
                                      {"pkgname": "good", "pkgver": "1.0-1", "arch": "x86_64"},
                                      {"usr/share/good/a": b"a"})
        published(client, good.read_bytes())
        before = snapshot(client)
        sqlite_before = {p.name: p.stat().st_size for p in server.data_dir.glob("*.sqlite*")}
        assert sqlite_before
        for name, (make, message) in ATTACKS.items():
            body = hostile.write(tmp_path / f"{name}.pkg.tar.zst", make()).read_bytes()
            assert len(body) < 8 * hostile.MIB, name
            resp = publish(client, body)
            assert resp.status == 400, (name, resp)
            text, _ = envelope(resp)
            assert message in text, (name, text)
        peak = peak_rss(server.proc.pid)
        print(f"server peak RSS {peak / 2 ** 20:.0f} MiB")
        assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2 ** 20:.0f} MiB"
        assert snapshot(client) == before
        assert {p.name: p.stat().st_size for p in server.data_dir.glob("*.sqlite*")} == sqlite_before
        assert not any((server.data_dir / "tmp").iterdir())
    finally:
        server.stop()
