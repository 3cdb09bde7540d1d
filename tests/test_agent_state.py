"""The agent's records of what it owns (vieter_lite/agent/leftovers.py), without Podman."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from vieter_lite.agent.leftovers import Leftovers, process_start


def test_the_containers_of_every_earlier_run_are_removed_and_only_this_runs_owner_stays(tmp_path):
    state = Leftovers(tmp_path)
    state.set_owners(["run-1", "run-2"])  # a run killed while it removed run-1's
    removed: list[str] = []
    assert state.remove_containers("run-3", lambda o: removed.append(o) or 2) == 4
    assert removed == ["run-1", "run-2"]
    assert state.owners() == ["run-3"]


def test_an_owner_is_listed_before_the_earlier_ones_are_removed(tmp_path):
    state = Leftovers(tmp_path)
    state.set_owners(["run-1"])
    seen: list[list[str]] = []
    state.remove_containers("run-2", lambda o: seen.append(state.owners()) or 0)
    assert seen == [["run-1", "run-2"]]  # a kill now leaves both to the next run


def test_builds_are_recorded_with_their_token_privately_and_forgotten(tmp_path):
    state = Leftovers(tmp_path)
    state.add_build(7, "tok")
    assert state.builds() == [{"build_id": 7, "token": "tok"}]
    assert (tmp_path / "builds" / "7.json").stat().st_mode & 0o777 == 0o600
    (tmp_path / "builds" / "8.json").write_text("{broken")
    assert state.builds() == [{"build_id": 7, "token": "tok"}]  # the broken one is dropped
    state.remove_build(7)
    state.remove_build(7)
    assert state.builds() == []


def test_a_recorded_service_still_running_is_ended_with_its_process_group(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'import time; "
                             "time.sleep(60)']); time.sleep(60)"], start_new_session=True)
    try:
        state = Leftovers(tmp_path)
        time.sleep(0.3)
        state.record_service(proc.pid, None)
        assert state.stop_service(timeout=5) is True
        assert proc.wait(5) is not None
        assert not state.service_file.exists()
    finally:
        proc.kill()


def test_a_recorded_pid_that_is_now_another_process_is_left_alone(tmp_path):
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        state = Leftovers(tmp_path)
        state.service_file.write_text(json.dumps({"pid": proc.pid, "start": "1", "dir": ""}))
        assert process_start(proc.pid) != "1"
        assert state.stop_service(timeout=1) is False
        assert proc.poll() is None
        assert not state.service_file.exists()
    finally:
        proc.kill()
        proc.wait()


def test_no_record_no_service(tmp_path):
    assert Leftovers(tmp_path).stop_service() is False
