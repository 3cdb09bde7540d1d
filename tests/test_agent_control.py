"""A running build's control against a real server: once the server has ended the build,
its build token answers 401, the watch notices, kills the registered container, and the
build's log stream and publish step send nothing more."""

from __future__ import annotations

import pytest

from conftest import API_KEY, ServerProcess
from vieter_lite.agent.control import BuildControl, Stopped, gone
from vieter_lite.agent.daemon import Agent, LogStream
from vieter_lite.client import Client, ClientError


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("control") / "data").start()
    yield proc
    proc.stop()


@pytest.fixture
def claimed(server):
    """A running build of a fresh target: (admin client, build id, build token client)."""
    admin = Client(server.url, API_KEY)
    target = admin.add_target("https://example.com/x.git", "ctl", arch="x86_64")
    build_id = admin.queue_build(target, "x86_64")
    (job,) = admin.poll_jobs("x86_64", 1, "test-runner", build=build_id)
    return admin, build_id, Client(server.url, job["token"])


@pytest.mark.parametrize("status, expected", [
    (401, True), (403, True), (404, True), (409, True),
    (0, False), (400, False), (413, False), (500, False), (503, False)])
def test_which_answers_mean_the_build_is_over(status, expected):
    assert gone(ClientError("x", status)) is expected


def test_a_build_the_server_ended_is_stopped_and_its_container_killed(claimed):
    _, build_id, token = claimed
    killed: list[str] = []
    control = BuildControl(token, build_id, killed.append, watch=0.1).start()
    try:
        control.register("container-1")
        token.finish_build(build_id, 0)  # the build ends on the server: its token is dead
        assert control.stopped.wait(10), "the watch did not notice the end of the build"
        assert killed == ["container-1"]
        assert "401" in control.reason
        with pytest.raises(Stopped):
            control.check()
        with pytest.raises(Stopped):  # a container made after the stop never starts
            control.register("container-2")
        assert killed == ["container-1"]
    finally:
        control.close()


def test_a_running_build_is_watched_and_its_lease_renewed(claimed):
    admin, build_id, token = claimed
    killed: list[str] = []
    before = admin.get_build(build_id)["lease_expires"]
    control = BuildControl(token, build_id, killed.append, watch=0.1, renew=0.3).start()
    try:
        control.register("container-1")
        assert not control.stopped.wait(1.6)
        control.check()
        assert killed == []
        assert admin.get_build(build_id)["lease_expires"] > before
    finally:
        control.close()
    control.stop("late")  # after close: nothing happens
    assert not control.stopped.is_set() and killed == []


def test_the_log_stream_tells_and_then_sends_nothing(claimed):
    admin, build_id, token = claimed
    told: list[ClientError] = []
    out: list[bytes] = []
    stream = LogStream(token, build_id, echo=out.append, on_gone=told.append)
    try:
        stream.line("before the end")
        stream.flush()
        admin.call("POST", f"/api/v1/builds/{build_id}/finish", {"exitCode": 1})
        stream.line("after the end")
        stream.flush()
        assert [e.status for e in told] == [401] and stream.abandoned
        stream.start_task("build")  # no report once abandoned
        stream.line("still echoed")
        stream.flush()
        assert len(told) == 1
    finally:
        stream.close()
    log = admin.log_content(build_id)[0].decode()
    assert "before the end" in log and "after the end" not in log
    assert b"still echoed" in b"".join(out)


def test_publish_stops_at_a_build_the_server_ended(claimed, tmp_path):
    _, build_id, token = claimed
    files = []
    for name in ("a-1-1-any.pkg.tar.zst", "b-1-1-any.pkg.tar.zst"):
        files.append(tmp_path / name)
        files[-1].write_bytes(b"not looked at")
    token.finish_build(build_id, 0)
    out: list[bytes] = []
    stream = LogStream(token, build_id, echo=out.append)
    control = BuildControl(token, build_id, lambda _cid: None)  # not started: no watch
    try:
        with pytest.raises(Stopped):
            Agent._publish(token, "ctl", files, stream, control)
    finally:
        stream.close()
    text = b"".join(out).decode()
    assert "+ publish a-1-1-any" in text and "b-1-1-any" not in text


def test_a_publish_the_rules_refuse_fails_the_step_and_the_build_goes_on(claimed, tmp_path):
    """A 409 (here a downgrade) while the build runs is a refusal of that package, not
    the end of the build: the refusal goes to the log, the next package is published."""
    from pkgfactory import make_synthetic_package

    admin, build_id, token = claimed
    files = [make_synthetic_package(tmp_path / f"{name}.pkg.tar.zst",
                                    {"pkgname": "ctl-tool", "pkgver": ver, "arch": "any"})
             for name, ver in (("new", "2.0-1"), ("old", "1.0-1"), ("again", "2.0-1"))]
    out: list[bytes] = []
    stream = LogStream(token, build_id, echo=out.append)
    control = BuildControl(token, build_id, lambda _cid: None)  # not started: no watch
    try:
        assert Agent._publish(token, "ctl", files, stream, control) == 1
    finally:
        stream.close()
    assert not control.stopped.is_set()
    text = b"".join(out).decode()
    assert f"error: publishing {files[1].name} failed: ctl-tool 1.0-1 is older than " \
           "2.0-1" in text
    assert f"+ publish {files[2].name}" in text
    assert admin.get_build(build_id)["status"] == "running"


def test_each_task_log_holds_its_own_output(claimed, server):
    """Output fed before a task starts (a marker line, or the agent's start_task) goes to
    the server before the task is reported, even when it is fed in one chunk."""
    admin, build_id, token = claimed
    stream = LogStream(token, build_id)
    try:
        stream.start_task("setup")
        stream.line("preparing the image")
        stream.start_task("source")  # right away: no flush in between
        stream.feed(b"fetching\n::vieter-task:: build\nmak")
        stream.feed(b"ing\n")
        stream.start_task("publish")
        stream.feed(b"uploading\n")
    finally:
        stream.close()
    parts = {name: admin.request("GET", f"/api/v2/builds/{build_id}/tasks/{name}/log")[2]
             for name in ("setup", "source", "build", "publish")}
    assert parts == {"setup": b"\npreparing the image\n", "source": b"fetching\n",
                     "build": b"::vieter-task:: build\nmaking\n", "publish": b"uploading\n"}
    statuses = {t["name"]: t["status"] for t in admin.get_build(build_id)["tasks"]}
    assert statuses == {"setup": "success", "source": "success", "build": "success",
                        "publish": "running"}
