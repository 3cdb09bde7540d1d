"""The command line: --version, schedule, and one clear line for errors."""

from __future__ import annotations

from datetime import datetime

import pytest

from vieter_lite import __version__, cron
from vieter_lite.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vieter-lite {__version__}"


def test_schedule_prints_the_next_run_times(capsys):
    before = datetime.now().astimezone()
    assert main(["schedule", "*/15", "3", "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    times = [datetime.strptime(line, "%Y-%m-%d %H:%M:%S") for line in lines]
    assert all(t.hour == 3 and t.minute in (0, 15, 30, 45) for t in times)
    expected = cron.next_n("*/15 3", before, 3)
    assert [t.strftime("%Y-%m-%d %H:%M:%S") for t in expected] == lines


def test_schedule_with_a_bad_expression_is_one_line_and_exit_2(capsys):
    assert main(["schedule", "0", "0", "30", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0 0 30 2" in err


def test_server_without_api_key_names_the_key(capsys, tmp_path, monkeypatch):
    from vieter_lite import config
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "none.toml")
    for name in [n for n in list(__import__("os").environ) if n.startswith("VIETER_")]:
        monkeypatch.delenv(name)
    assert main(["server"]) == 2
    assert "api_key" in capsys.readouterr().err


def test_server_flags_win_over_file_and_environment(tmp_path):
    """--host, --port and --data-dir over a config file and VIETER_* saying otherwise."""
    from conftest import ServerProcess, free_port

    config_file = tmp_path / "vieter.toml"
    config_file.write_text(f'port = {free_port()}\ndata_dir = "{tmp_path}/file-data"\n'
                           'host = "127.0.0.2"\n')
    flag_port = free_port()
    server = ServerProcess(
        tmp_path / "env-data", port=flag_port,
        env_extra={"VIETER_PORT": str(free_port()), "VIETER_HOST": "127.0.0.3"},
        args=["-f", str(config_file), "--host", "127.0.0.1", "--port", str(flag_port),
              "--data-dir", str(tmp_path / "flag-data")]).start()
    try:
        assert (tmp_path / "flag-data" / "vieter.sqlite").is_file()
        assert f"serving on http://127.0.0.1:{flag_port}, data in {tmp_path}/flag-data" \
            in server.log()
    finally:
        assert server.stop() == 0
    assert not (tmp_path / "env-data").exists() and not (tmp_path / "file-data").exists()
