"""Tests for vieter_lite.config: defaults < TOML file < VIETER_* environment (or VIETER_*_FILE)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vieter_lite import config
from vieter_lite.config import SERVER_KEYS, ServerConfig, load_server
from vieter_lite.errors import ConfigError

KEY = {"VIETER_API_KEY": "secret"}


@pytest.fixture(autouse=True)
def no_machine_files(monkeypatch, tmp_path):
    """The machine's /etc and ~ files must not leak into the tests."""
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "absent" / "system.toml")
    monkeypatch.setattr(config, "USER_CONFIG", tmp_path / "absent" / ".vieterrc")


def write(tmp_path: Path, text: str, name: str = "vieter.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- defaults

def test_defaults():
    cfg = load_server(None, KEY)
    assert cfg == ServerConfig(
        api_key="secret", data_dir=Path("data"), pkg_dir=Path("data/pkgs"), host="0.0.0.0", port=8000,
        default_arch=config.machine_arch(), log_level="INFO", max_upload_size=2 * 1024 ** 3,
        min_free_space=64 * 1024 ** 2, keep_versions=0, threads=8,
        connection_limit=100, channel_timeout=60, header_timeout=10, min_send_rate=4096,
        max_log_chunk=1024 ** 2,
        max_api_body=64 * 1024, max_log_followers=32, max_poll_wait=20,
        global_schedule="0 3", base_image="archlinux:base-devel", max_log_age=0,
        log_removal_schedule="0 0", collect_metrics=False, default_build_timeout=3600,
        public_url="", smtp_host="", smtp_port=587, smtp_user="", smtp_password="", smtp_from="",
        smtp_starttls=True, trigger_retry_delays="10,60,300", sign=False, sign_key_name="",
        sign_key_email="", sign_key_file="", public_dashboard=False)
    assert cfg.default_arch != "any" and cfg.default_arch


def test_key_table_matches_the_dataclass():
    assert [k.name for k in SERVER_KEYS] == [f.name for f in ServerConfig.__dataclass_fields__.values()]


@pytest.mark.parametrize("machine,arch", [("x86_64", "x86_64"), ("aarch64", "aarch64"), ("armv7l", "armv7h"),
                                          ("armv6l", "armv6h"), ("arm64", "aarch64"), ("AMD64", "x86_64"),
                                          ("", "x86_64")])
def test_machine_arch(monkeypatch, machine, arch):
    monkeypatch.setattr(config.platform, "machine", lambda: machine)
    assert config.machine_arch() == arch


def test_missing_api_key():
    with pytest.raises(ConfigError, match="'api_key' is required"):
        load_server(None, {})


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_empty_api_key(value):
    with pytest.raises(ConfigError, match="api_key"):
        load_server(None, {"VIETER_API_KEY": value})


def test_pkg_dir_defaults_to_data_dir_pkgs(tmp_path):
    assert load_server(None, {**KEY, "VIETER_DATA_DIR": "/srv/v"}).pkg_dir == Path("/srv/v/pkgs")
    path = write(tmp_path, 'api_key = "k"\ndata_dir = "/var/lib/vl"\n')
    cfg = load_server(path, {})
    assert (cfg.data_dir, cfg.pkg_dir) == (Path("/var/lib/vl"), Path("/var/lib/vl/pkgs"))
    cfg = load_server(path, {"VIETER_PKG_DIR": "/mnt/pkgs"})
    assert (cfg.data_dir, cfg.pkg_dir) == (Path("/var/lib/vl"), Path("/mnt/pkgs"))


def test_dirs_expand_user(monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    cfg = load_server(None, {**KEY, "VIETER_DATA_DIR": "~/vl", "VIETER_PKG_DIR": "~/p"})
    assert (cfg.data_dir, cfg.pkg_dir) == (Path("/home/someone/vl"), Path("/home/someone/p"))


# --------------------------------------------------------------------------- file and environment

FULL_FILE = """\
api_key = "from-file"
data_dir = "/srv/vieter"
pkg_dir = "/srv/pkgs"
host = "127.0.0.1"
port = 9000
default_arch = "aarch64"
log_level = "debug"
max_upload_size = 1048576
min_free_space = 0
keep_versions = 3
threads = 2
max_log_followers = 5
max_poll_wait = 3
global_schedule = "*/5 *"
base_image = "archlinux:latest"
max_log_age = 30
log_removal_schedule = "0 4"
collect_metrics = true
default_build_timeout = 600
public_url = "https://pi.example/vieter"
smtp_host = "mail.example"
smtp_port = 25
smtp_user = "vieter"
smtp_password = "hunter2"
smtp_from = "builds@pi.example"
smtp_starttls = false
trigger_retry_delays = "5,30"
sign = true
sign_key_name = "Pi Repo"
sign_key_email = "repo@pi.example"
sign_key_file = "/etc/vieter-lite/signing.asc"
public_dashboard = true
"""


def test_file_values(tmp_path):
    cfg = load_server(write(tmp_path, FULL_FILE), {})
    assert cfg == ServerConfig(
        api_key="from-file", data_dir=Path("/srv/vieter"), pkg_dir=Path("/srv/pkgs"), host="127.0.0.1",
        port=9000, default_arch="aarch64", log_level="DEBUG", max_upload_size=1048576,
        min_free_space=0, keep_versions=3, threads=2,
        connection_limit=100, channel_timeout=60, header_timeout=10, min_send_rate=4096,
        max_log_chunk=1024 ** 2,
        max_api_body=64 * 1024, max_log_followers=5, max_poll_wait=3,
        global_schedule="*/5 *", base_image="archlinux:latest", max_log_age=30, log_removal_schedule="0 4",
        collect_metrics=True, default_build_timeout=600, public_url="https://pi.example/vieter",
        smtp_host="mail.example", smtp_port=25, smtp_user="vieter", smtp_password="hunter2",
        smtp_from="builds@pi.example", smtp_starttls=False, trigger_retry_delays="5,30",
        sign=True, sign_key_name="Pi Repo", sign_key_email="repo@pi.example",
        sign_key_file="/etc/vieter-lite/signing.asc", public_dashboard=True)


ENV_OVERRIDES = [
    ("VIETER_API_KEY", "env-key", "api_key", "env-key"),
    ("VIETER_PORT", "8081", "port", 8081),
    ("VIETER_PORT", " 8082 ", "port", 8082),
    ("VIETER_HOST", "::1", "host", "::1"),
    ("VIETER_DEFAULT_ARCH", "armv7h", "default_arch", "armv7h"),
    ("VIETER_LOG_LEVEL", "error", "log_level", "ERROR"),
    ("VIETER_LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ("VIETER_COLLECT_METRICS", "false", "collect_metrics", False),
    ("VIETER_COLLECT_METRICS", "TRUE", "collect_metrics", True),
    ("VIETER_THREADS", "16", "threads", 16),
    ("VIETER_MAX_LOG_AGE", "0", "max_log_age", 0),
    ("VIETER_GLOBAL_SCHEDULE", "15 2 * 3", "global_schedule", "15 2 * 3"),
    ("VIETER_DATA_DIR", "/d", "data_dir", Path("/d")),
    ("VIETER_PKG_DIR", "/p", "pkg_dir", Path("/p")),
    ("VIETER_BASE_IMAGE", "img:1", "base_image", "img:1"),
    ("VIETER_MAX_UPLOAD_SIZE", "1", "max_upload_size", 1),
    ("VIETER_DEFAULT_BUILD_TIMEOUT", "7200", "default_build_timeout", 7200),
    ("VIETER_LOG_REMOVAL_SCHEDULE", "30 1", "log_removal_schedule", "30 1"),
    ("VIETER_PUBLIC_URL", "http://builds.lan:8000", "public_url", "http://builds.lan:8000"),
    ("VIETER_SMTP_HOST", "127.0.0.1", "smtp_host", "127.0.0.1"),
    ("VIETER_SMTP_PORT", "2525", "smtp_port", 2525),
    ("VIETER_SMTP_STARTTLS", "true", "smtp_starttls", True),
    ("VIETER_TRIGGER_RETRY_DELAYS", "0.5, 1", "trigger_retry_delays", "0.5, 1"),
    ("VIETER_TRIGGER_RETRY_DELAYS", "", "trigger_retry_delays", ""),
    ("VIETER_SIGN", "false", "sign", False),
    ("VIETER_SIGN_KEY_NAME", "Home Builds", "sign_key_name", "Home Builds"),
    ("VIETER_SIGN_KEY_FILE", "/run/credentials/key.asc", "sign_key_file",
     "/run/credentials/key.asc"),
]


@pytest.mark.parametrize("var,value,attr,expected", ENV_OVERRIDES, ids=[f"{c[0]}={c[1]!r}" for c in ENV_OVERRIDES])
def test_environment_wins_over_file(tmp_path, var, value, attr, expected):
    cfg = load_server(write(tmp_path, FULL_FILE), {var: value})
    assert getattr(cfg, attr) == expected
    # every other key keeps its file value
    from_file = load_server(write(tmp_path, FULL_FILE), {})
    assert cfg.replace(**{attr: getattr(from_file, attr)}) == from_file


@pytest.mark.parametrize("flag, value, attr, expected", [
    ("port", "9100", "port", 9100),
    ("host", "::1", "host", "::1"),
    ("data_dir", "/flag", "data_dir", Path("/flag")),
    ("data_dir", "/flag", "pkg_dir", Path("/flag/pkgs")),  # the default follows data_dir
])
def test_command_line_overrides_win_over_environment_and_file(tmp_path, flag, value, attr,
                                                              expected):
    env = {"VIETER_PORT": "8081", "VIETER_HOST": "127.0.0.2", "VIETER_DATA_DIR": "/env"}
    cfg = load_server(write(tmp_path, FULL_FILE.replace('pkg_dir = "/srv/pkgs"\n', "")), env,
                      overrides={flag: value})
    assert getattr(cfg, attr) == expected


def test_a_bad_command_line_value_names_the_flag():
    with pytest.raises(ConfigError, match=r"config key 'port' \(--port\): must be between"):
        load_server(None, KEY, overrides={"port": "70000"})


def test_env_without_file():
    cfg = load_server(None, {**KEY, "VIETER_PORT": "1234", "VIETER_COLLECT_METRICS": "true"})
    assert (cfg.api_key, cfg.port, cfg.collect_metrics) == ("secret", 1234, True)


def test_unrelated_environment_is_ignored():
    cfg = load_server(None, {**KEY, "VIETER_ADDRESS": "http://x", "VIETER_NOPE": "1", "PORT": "1",
                             "vieter_port": "1"})
    assert cfg.port == 8000


@pytest.mark.parametrize("content,expected", [
    ("file-secret\n", "file-secret"),
    ("file-secret", "file-secret"),
    ("file-secret\n\n", "file-secret\n"),   # only one trailing newline is stripped
    ("  spaced secret  \n", "  spaced secret  "),
])
def test_file_variant(tmp_path, content, expected):
    secret = tmp_path / "secret"
    secret.write_text(content)
    assert load_server(None, {"VIETER_API_KEY_FILE": str(secret)}).api_key == expected


def test_sign_key_file_has_its_file_form_too(tmp_path):
    (tmp_path / "where").write_text("/run/credentials/vieter-lite/key.asc\n")
    cfg = load_server(None, {**KEY, "VIETER_SIGN_KEY_FILE_FILE": str(tmp_path / "where")})
    assert cfg.sign_key_file == "/run/credentials/vieter-lite/key.asc"


@pytest.mark.parametrize("var, value", [("VIETER_SIGN_KEY_NAME", "Evil <x@y>"),
                                        ("VIETER_SIGN_KEY_EMAIL", "a@b\nc"),
                                        ("VIETER_SIGN_KEY_NAME", "a:b"),
                                        ("VIETER_SIGN", "yes")])
def test_a_bad_signing_value_names_its_key(var, value):
    with pytest.raises(ConfigError, match=f"config key '{var[7:].lower()}'"):
        load_server(None, {**KEY, var: value})


def test_file_variant_for_int_and_bool(tmp_path):
    (tmp_path / "port").write_text("9999\n")
    (tmp_path / "metrics").write_text("true\n")
    cfg = load_server(None, {**KEY, "VIETER_PORT_FILE": str(tmp_path / "port"),
                             "VIETER_COLLECT_METRICS_FILE": str(tmp_path / "metrics")})
    assert (cfg.port, cfg.collect_metrics) == (9999, True)


def test_file_variant_wins_over_config_file(tmp_path):
    (tmp_path / "secret").write_text("docker-secret\n")
    cfg = load_server(write(tmp_path, FULL_FILE), {"VIETER_API_KEY_FILE": str(tmp_path / "secret")})
    assert cfg.api_key == "docker-secret"


def test_both_variants_is_an_error(tmp_path):
    (tmp_path / "secret").write_text("x\n")
    with pytest.raises(ConfigError, match="api_key.*VIETER_API_KEY or VIETER_API_KEY_FILE, not both"):
        load_server(None, {"VIETER_API_KEY": "x", "VIETER_API_KEY_FILE": str(tmp_path / "secret")})


def test_file_variant_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="'port'.*VIETER_PORT_FILE"):
        load_server(None, {**KEY, "VIETER_PORT_FILE": str(tmp_path / "nope")})


def test_system_and_user_files(monkeypatch, tmp_path):
    system = Path(write(tmp_path, 'api_key = "sys"\nport = 1\nthreads = 3\n', "system.toml"))
    user = Path(write(tmp_path, 'port = 2\n', "user.toml"))
    monkeypatch.setattr(config, "SYSTEM_CONFIG", system)
    monkeypatch.setattr(config, "USER_CONFIG", user)
    cfg = load_server(None, {})
    assert (cfg.api_key, cfg.port, cfg.threads) == ("sys", 2, 3)  # the user file wins
    # -f replaces both
    only = write(tmp_path, 'api_key = "only"\n', "only.toml")
    cfg = load_server(only, {})
    assert (cfg.api_key, cfg.port, cfg.threads) == ("only", 8000, 8)


def test_explicit_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_server(str(tmp_path / "missing.toml"), KEY)
    with pytest.raises(ConfigError, match="does not exist"):
        load_server(str(tmp_path), KEY)  # a directory is not a config file


def test_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_server(write(tmp_path, "port = = 3\n"), KEY)


def test_unknown_key_in_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'api_kye'"):
        load_server(write(tmp_path, 'api_kye = "typo"\n'), KEY)
    with pytest.raises(ConfigError, match="unknown config key 'server'"):
        load_server(write(tmp_path, '[server]\nport = 1\n'), KEY)


@pytest.mark.parametrize("line", [
    'address = "http://localhost:8000"', 'arch = "x86_64"', "max_concurrent_builds = 2",
    "polling_frequency = 30", "image_rebuild_frequency = 1440", 'podman_url = "unix:///run/p.sock"',
    'aur_url = "https://aur.archlinux.org"', 'prepare_script = "/x.sh"'])
def test_keys_of_other_commands_are_tolerated(tmp_path, line):
    cfg = load_server(write(tmp_path, f'api_key = "k"\n{line}\n'), {})
    assert cfg == load_server(None, {"VIETER_API_KEY": "k"})


# --------------------------------------------------------------------------- invalid values

INVALID = [
    # (file line or None, environment, key named in the message)
    ("port = 70000", {}, "port"),
    ("port = -1", {}, "port"),
    ('port = "http"', {}, "port"),
    ("port = 80.5", {}, "port"),
    ("port = true", {}, "port"),
    (None, {"VIETER_PORT": "eighty"}, "port"),
    (None, {"VIETER_PORT": ""}, "port"),
    (None, {"VIETER_PORT": "65536"}, "port"),
    (None, {"VIETER_PORT": "--80"}, "port"),
    (None, {"VIETER_PORT": "0x50"}, "port"),
    ("threads = 0", {}, "threads"),
    (None, {"VIETER_THREADS": "-2"}, "threads"),
    ("max_upload_size = 0", {}, "max_upload_size"),
    (None, {"VIETER_MAX_UPLOAD_SIZE": "1GB"}, "max_upload_size"),
    ("max_log_age = -1", {}, "max_log_age"),
    ("keep_versions = -1", {}, "keep_versions"),
    (None, {"VIETER_KEEP_VERSIONS": "two"}, "keep_versions"),
    ("default_build_timeout = 0", {}, "default_build_timeout"),
    (None, {"VIETER_DEFAULT_BUILD_TIMEOUT": "1.5"}, "default_build_timeout"),
    ('collect_metrics = "yes"', {}, "collect_metrics"),
    ("collect_metrics = 1", {}, "collect_metrics"),
    (None, {"VIETER_COLLECT_METRICS": "1"}, "collect_metrics"),
    (None, {"VIETER_COLLECT_METRICS": ""}, "collect_metrics"),
    ('log_level = "verbose"', {}, "log_level"),
    (None, {"VIETER_LOG_LEVEL": "TRACE"}, "log_level"),
    ("log_level = 3", {}, "log_level"),
    ('global_schedule = "nonsense"', {}, "global_schedule"),
    ('global_schedule = "61 3"', {}, "global_schedule"),
    (None, {"VIETER_GLOBAL_SCHEDULE": "0"}, "global_schedule"),
    ('log_removal_schedule = "0 25"', {}, "log_removal_schedule"),
    (None, {"VIETER_LOG_REMOVAL_SCHEDULE": "0 0 31 2"}, "log_removal_schedule"),
    ('default_arch = "any"', {}, "default_arch"),
    (None, {"VIETER_DEFAULT_ARCH": "any"}, "default_arch"),
    ('default_arch = "x86 64"', {}, "default_arch"),
    ('default_arch = "../etc"', {}, "default_arch"),
    (None, {"VIETER_DEFAULT_ARCH": ""}, "default_arch"),
    ("api_key = 1234", {}, "api_key"),
    ('data_dir = ""', {}, "data_dir"),
    ('host = ""', {}, "host"),
    ('base_image = " "', {}, "base_image"),
    ("pkg_dir = 5", {}, "pkg_dir"),
    ('public_url = "pi:8000"', {}, "public_url"),
    (None, {"VIETER_PUBLIC_URL": "ftp://pi"}, "public_url"),
    ("smtp_port = 70000", {}, "smtp_port"),
    ('smtp_starttls = "no"', {}, "smtp_starttls"),
    ('trigger_retry_delays = "10,,60"', {}, "trigger_retry_delays"),
    (None, {"VIETER_TRIGGER_RETRY_DELAYS": "10,-1"}, "trigger_retry_delays"),
    (None, {"VIETER_TRIGGER_RETRY_DELAYS": "nan"}, "trigger_retry_delays"),
    ("trigger_retry_delays = 10", {}, "trigger_retry_delays"),
]


@pytest.mark.parametrize("line,environ,key", INVALID,
                         ids=[f"{c[2]}:{c[0] if c[0] is not None else c[1]}" for c in INVALID])
def test_invalid_values_name_the_key(tmp_path, line, environ, key):
    path = write(tmp_path, ('api_key = "k"\n' if key != "api_key" else "") + (line or "") + "\n")
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        load_server(path, environ)


def test_error_names_the_source(tmp_path):
    path = write(tmp_path, 'api_key = "k"\nport = 99999\n')
    with pytest.raises(ConfigError, match="'port' \\(.*vieter.toml\\)"):
        load_server(path, {})
    with pytest.raises(ConfigError, match="'port' \\(VIETER_PORT\\)"):
        load_server(path, {"VIETER_PORT": "99999"})


def test_any_default_arch_message():
    with pytest.raises(ConfigError, match="'any' cannot be the default architecture"):
        load_server(None, {**KEY, "VIETER_DEFAULT_ARCH": "any"})


@pytest.mark.parametrize("level", ["FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "info", "Debug"])
def test_valid_log_levels(level):
    assert load_server(None, {**KEY, "VIETER_LOG_LEVEL": level}).log_level == level.upper()


@pytest.mark.parametrize("port", ["0", "1", "65535"])
def test_port_bounds(port):
    assert load_server(None, {**KEY, "VIETER_PORT": port}).port == int(port)
