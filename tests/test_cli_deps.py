"""The CLI shows dependency order: `builds list` what a queued build waits for, `targets
info` what a target depends on (per arch, cycles said so) and rebuild_on_dependency.
Against a real server; the PKGBUILDs are read as an agent reports them."""

from __future__ import annotations

import pytest

from test_cli_client import Cli, admin, aur, base_env, cli, home, rows, srv, u  # noqa: F401
from test_dependencies import srcinfo
from vieter_lite.client import Client

pytestmark = pytest.mark.integration


def read_once(server_url: str, admin: Client, target_id: int, text: str) -> None:  # noqa: F811
    """A build of the target that reads its PKGBUILD and succeeds."""
    build_id = admin.queue_build(target_id, "x86_64")
    [job] = [j for j in admin.poll_jobs("x86_64", 10) if j["build_id"] == build_id]
    token = Client(server_url, job["token"])
    assert token.put_srcinfo(build_id, text) == {"action": "build"}
    token.finish_build(build_id, 0)


def test_builds_list_and_targets_info_show_the_dependencies(cli, admin, srv, u):  # noqa: F811
    repo = f"deps{u}"
    a, b, c = (admin.add_target(f"https://example.org/{n}{u}.git", repo, arch="x86_64")
               for n in "abc")
    admin.call_v2("PATCH", f"/api/v2/targets/{b}", body={"rebuild_on_dependency": True})
    for target_id, text in ((a, srcinfo(f"a{u}", depends=[f"c{u}"])),
                            (b, srcinfo(f"b{u}", makedepends=[f"a{u}>=1"])),
                            (c, srcinfo(f"c{u}", depends=[f"a{u}"]))):
        read_once(srv.url, admin, target_id, text)
    build_a, build_b = admin.queue_build(a, "x86_64"), admin.queue_build(b, "x86_64")

    table = rows(cli.ok("builds", "list", "--target", str(b)))
    assert table[0][-1] == "BLOCKED BY" and table[1][0] == str(build_b)
    assert table[1][-1] == str(build_a)
    assert [x["blocked_by"] for x in cli.json("builds", "list", "--target", str(b))] == \
        [[build_a]]
    assert f"blocked by: {build_a}" in cli.ok("builds", "show", str(build_b)).splitlines()

    info = cli.ok("targets", "info", str(b)).splitlines()
    assert "rebuild on dependency: yes" in info
    assert f"depends on (x86_64): target {a} (a{u}>=1)" in info
    assert f"depends on (x86_64): target {a} (a{u}, a cycle)" in \
        cli.ok("targets", "info", str(c)).splitlines()
    shown = cli.json("targets", "info", str(b))
    assert shown["rebuild_on_dependency"] is True and shown["dependencies"] == [
        {"arch": "x86_64", "target_id": a, "kind": "needs", "via": f"a{u}>=1"}]
