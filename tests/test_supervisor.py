"""The supervisor owns every thread: clean stop on a signal, non-zero exit when one crashes."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

from conftest import ROOT, ServerProcess, make_config
from vieter_lite.supervisor import Supervisor


@pytest.fixture
def config(tmp_path, monkeypatch):
    from vieter_lite import config as config_module
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", tmp_path / "none.toml")
    monkeypatch.setattr(config_module, "USER_CONFIG", tmp_path / "none.toml")
    # the supervisor points the process's tempfile.tempdir at its data dir: undo it after
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    return make_config(tmp_path, port=0, host="127.0.0.1")


def test_a_crashed_thread_stops_the_process_with_a_non_zero_result(config):
    supervisor = Supervisor(config)

    def crash(stop):
        raise RuntimeError("scheduler bug")

    supervisor.services.scheduler.run = crash
    started = time.monotonic()
    assert supervisor.run() == 1
    assert supervisor.failed == ["scheduler"]
    assert time.monotonic() - started < 10


def test_stop_event_ends_every_thread_cleanly(config):
    supervisor = Supervisor(config)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(supervisor.run()))
    runner.start()
    url = f"http://127.0.0.1:{supervisor.http.port}/health"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                assert resp.status == 200
                break
        except OSError:
            time.sleep(0.05)
    supervisor.stop_event.set()
    runner.join(timeout=10)
    assert result == [0]
    assert not any(t.is_alive() for t in supervisor._threads)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_within_seconds(tmp_path, sig):
    server = ServerProcess(tmp_path / "data").start()
    started = time.monotonic()
    assert server.stop(sig) == 0
    assert time.monotonic() - started < 5
    assert "stopping" in server.log()


def test_a_bad_config_value_stops_start_up_with_one_line(tmp_path):
    env = ServerProcess(tmp_path / "data", env_extra={"VIETER_GLOBAL_SCHEDULE": "0 0 30 2"}).env()
    done = subprocess.run([sys.executable, "-m", "vieter_lite", "server"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "global_schedule" in done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("key, warned", [("short-key", True), ("x" * 15, True),
                                         ("a-key-of-sixteen", False)])
def test_a_short_api_key_is_warned_about_at_start(tmp_path, key, warned):
    proc = ServerProcess(tmp_path / "data", env_extra={"VIETER_API_KEY": key}).start()
    proc.stop()
    assert ("api_key is shorter than 16 characters" in proc.log()) is warned
    assert key not in proc.log()
