"""What the key tables tell people: `server --help` and warnings about VIETER_* variables
that name no key."""

from __future__ import annotations

import re

import pytest

from vieter_lite import config
from vieter_lite.cli import main
from vieter_lite.config import Key
from vieter_lite.config_text import default_text, note, unknown_env_warnings

WARNINGS = [
    ({"VIETER_PROT": "1"}, ["warning: VIETER_PROT names no setting; did you mean VIETER_PORT?"]),
    ({"VIETER_DATADIR": "/d"},
     ["warning: VIETER_DATADIR names no setting; did you mean VIETER_DATA_DIR?"]),
    ({"VIETER_API_KEY_FIEL": "/k"},
     ["warning: VIETER_API_KEY_FIEL names no setting; did you mean VIETER_API_KEY_FILE?"]),
    ({"VIETER_XYZZY": "1"},
     ["warning: VIETER_XYZZY names no setting; see vieter-lite server --help"]),
    # every key of every command, and their _FILE forms, is somebody's setting
    ({"VIETER_PORT": "1", "VIETER_API_KEY_FILE": "/k", "VIETER_ADDRESS": "http://x",
      "VIETER_AUR_URL": "http://a", "VIETER_BUILD_NETWORK": "host",
      "VIETER_MAX_CONCURRENT_BUILDS_FILE": "/n", "VIETER_ARCH": "aarch64"}, []),
    ({"PORT": "1", "vieter_prot": "1", "HOME": "/root"}, []),
]


@pytest.mark.parametrize("environ, expected", WARNINGS)
def test_unknown_environment_variables_are_named_with_the_closest_key(environ, expected):
    assert unknown_env_warnings(environ) == expected


def test_every_key_a_command_reads_is_known():
    environ = {config.env_var(k.name) + suffix: "x"
               for k in config.SERVER_KEYS + config.CLIENT_KEYS + config.AGENT_KEYS
               for suffix in ("", "_FILE")}
    assert unknown_env_warnings(environ) == []


def test_server_warns_about_a_misspelt_variable_before_anything_else(capsys, monkeypatch,
                                                                     tmp_path):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "none.toml")
    for name in [n for n in list(__import__("os").environ) if n.startswith("VIETER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIETER_APIKEY", "a-key-of-sixteen")
    assert main(["server"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "vieter-lite: warning: VIETER_APIKEY names no setting; did you mean VIETER_API_KEY?",
        "vieter-lite: config key 'api_key' is required: set it in the config file or as "
        "VIETER_API_KEY",
    ]


def server_help(capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["server", "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_server_help_lists_every_key_with_its_variable_default_and_meaning(capsys, monkeypatch):
    """Generated from the key table: a key added to it shows up without another edit."""
    added = Key("connection_limit_example", int, 123, None,
                "a key the table gained after this test was written")
    monkeypatch.setattr(config, "SERVER_KEYS", config.SERVER_KEYS + (added,))
    text = server_help(capsys)
    flat = " ".join(text.split())
    for key in config.SERVER_KEYS:
        row = rf"^\s+{key.name}\s+VIETER_{key.name.upper()}\s+{re.escape(default_text(key))}$"
        assert re.search(row, text, re.M), key.name
        assert note(key) in flat, key.name
    assert re.search(r"^\s+connection_limit_example\s+VIETER_CONNECTION_LIMIT_EXAMPLE\s+123$",
                     text, re.M)


def test_server_help_shows_the_flags_and_the_order_of_precedence(capsys):
    text = server_help(capsys)
    for flag, var in (("--host HOST", "VIETER_HOST"), ("--port PORT", "VIETER_PORT"),
                      ("--data-dir DATA_DIR", "VIETER_DATA_DIR")):
        assert re.search(rf"^\s+{flag}\s+overrides \w+ and {var}$", text, re.M), flag
    assert "VIETER_<KEY>_FILE=path" in text
    assert str(config.SYSTEM_CONFIG) in " ".join(text.split())
