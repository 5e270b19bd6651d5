"""Configuration: lookup order, defaults, validation errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthcheck.config import (
    Config,
    ConfigError,
    LogsConfig,
    PathsConfig,
    find_config,
    load_config,
    parse_config,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config anywhere the lookup order looks, except where a test puts one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEALTHCHECK_CONFIG", raising=False)
    if Path("/etc/healthcheck/config.toml").exists():  # pragma: no cover - machine-specific
        pytest.skip("/etc/healthcheck/config.toml exists on this machine")
    return tmp_path


def test_defaults_are_the_seed_layout(isolated: Path) -> None:
    config = load_config()
    assert config.loaded_from is None
    assert config.paths.workspace == "/workspace"
    assert config.report_path == Path("/workspace/system_status.md")
    assert config.docs_path == Path("/workspace/docs_vast-ai-environment.md")
    assert config.logs.dirs == ["/logs", "/Logs"]
    assert config.services.ports == {
        "ssh": 22,
        "jupyter": 8080,
        "vnc": 5901,
        "novnc": 6901,
        "filebrowser": 8585,
    }
    assert config.env.source == "pid1"
    assert config.collectors.timeout == 10.0
    assert config.supervisor.serverurl == "unix:///var/run/supervisor.sock"


def test_lookup_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = write(isolated / "home/.config/healthcheck/config.toml", "[logs]\ntail_lines = 3\n")
    assert find_config() == user
    local = write(isolated / "healthcheck.toml", "[logs]\ntail_lines = 4\n")
    assert find_config() == Path("healthcheck.toml")
    env = write(isolated / "env.toml", "[logs]\ntail_lines = 5\n")
    monkeypatch.setenv("HEALTHCHECK_CONFIG", str(env))
    assert find_config() == env
    explicit = write(isolated / "explicit.toml", "[logs]\ntail_lines = 6\n")
    assert load_config(explicit).logs.tail_lines == 6
    assert load_config().logs.tail_lines == 5
    assert local.exists() and user.exists()


def test_relative_paths_are_relative_to_the_workspace() -> None:
    config = parse_config(
        {"paths": {"workspace": "/ws", "report": "out/r.md", "docs": "/elsewhere/d.md"}}
    )
    assert config.report_path == Path("/ws/out/r.md")
    assert config.docs_path == Path("/elsewhere/d.md")
    assert config.improvement_log_path == Path("/ws/improvement_log.md")


def test_a_full_config_round_trips(isolated: Path) -> None:
    path = write(
        isolated / "c.toml",
        """
[paths]
workspace = "/srv/ws"
[logs]
dirs = ["/var/log/app"]
patterns = ["*.log", "*.txt"]
tail_lines = 50
[env]
include = "^CUDA_"
source = "process:supervisord"
[supervisor]
serverurl = "http://127.0.0.1:9001"
username = "admin"
password = "x"
[services.ports]
ssh = 2222
[collectors]
timeout = 2.5
disable = ["ports"]
[redact]
names = ["^MY_"]
patterns = ["internal-[0-9]+"]
[git]
commit = false
""",
    )
    config = load_config(path)
    assert config.loaded_from == str(path)
    assert config.paths.workspace == "/srv/ws"
    assert config.logs.patterns == ["*.log", "*.txt"]
    assert config.env.source == "process:supervisord"
    assert config.services.ports == {"ssh": 2222}
    programs = parse_config({"services": {"programs": {"ssh": ["dropbear"]}}}).services.programs
    assert programs == {"ssh": ["dropbear"]}
    assert config.collectors.timeout == 2.5
    assert config.collectors.disable == ["ports"]
    assert config.git.commit is False
    # integers are accepted where a number is expected, and stored as floats
    assert parse_config({"collectors": {"timeout": 3}}).collectors.timeout == 3.0
    mcp = parse_config({"mcp": {"allow_write": False, "min_interval": 5}}).mcp
    assert (mcp.allow_write, mcp.min_interval) == (False, 5.0)
    assert (Config().mcp.allow_write, Config().mcp.min_interval) == (True, 60.0)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[paths]\nworkspac = '/x'\n", "unknown key 'paths.workspac'"),
        ("[nonsense]\nx = 1\n", "unknown key 'nonsense'"),
        ("[logs]\ntail_lines = 'twenty'\n", "'logs.tail_lines' must be an integer, not a string"),
        ("[logs]\ntail_lines = true\n", "'logs.tail_lines' must be an integer, not a boolean"),
        ("[logs]\ndirs = '/logs'\n", "'logs.dirs' must be a list of a string"),
        ("[logs]\ndirs = ['/logs', 3]\n", "'logs.dirs' must be a list of a string"),
        ("paths = 3\n", "'paths' must be a table"),
        ("[services.ports]\nssh = '22'\n", "'services.ports.ssh' must be an integer"),
        ("[services.ports]\nssh = 70000\n", "'services.ports.ssh' must be a port"),
        (
            "[services.programs]\nssh = 'dropbear'\n",
            "'services.programs.ssh' must be a list of a string",
        ),
        ("[services]\nprograms = ['sshd']\n", "'services.programs' must be a table"),
        ("[git]\ncommit = 'yes'\n", "'git.commit' must be true or false, not a string"),
        ("[env]\ninclude = '(['\n", "'env.include' is not a valid regular expression"),
        ("[env]\nsource = 'pid2'\n", "'env.source' must be"),
        ("[redact]\npatterns = ['a(']\n", "'redact.patterns[0]' is not a valid regular expression"),
        ("[collectors]\ntimeout = 0\n", "'collectors.timeout' must be greater than 0"),
        ("[mcp]\nmin_interval = -1\n", "'mcp.min_interval' must be 0 or more"),
        ("[mcp]\nallow_write = 'no'\n", "'mcp.allow_write' must be true or false, not a string"),
        ("[supervisor]\nserverurl = 'ftp://x'\n", "'supervisor.serverurl' must start with"),
        ("[paths\nworkspace = 1\n", "invalid TOML"),
    ],
)
def test_bad_configs_name_the_key(isolated: Path, toml: str, message: str) -> None:
    path = write(isolated / "bad.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_explicit_config_is_an_error(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(isolated / "nope.toml")
    monkeypatch.setenv("HEALTHCHECK_CONFIG", str(isolated / "gone.toml"))
    with pytest.raises(ConfigError, match=r"gone.toml: config file not found \(from"):
        load_config()


def test_undecodable_config(isolated: Path) -> None:
    path = isolated / "latin1.toml"
    path.write_bytes(b"[paths]\nworkspace = '/caf\xe9'\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


def test_default_config_object_is_independent() -> None:
    a, b = Config(), Config()
    a.logs.dirs.append("/x")
    assert b.logs.dirs == ["/logs", "/Logs"]


def test_tables_compare_and_print_by_their_fields_as_dataclasses_do() -> None:
    """The tables' equality and repr are config.Table's, written once, not compiled per
    table at import; they behave as the dataclass's own did."""
    assert Config() == Config()
    assert Config(logs=LogsConfig(tail_lines=21)) != Config()
    assert Config().logs != PathsConfig()  # another table, even an empty-looking one
    assert repr(LogsConfig(dirs=["/x"], tail_lines=5)) == (
        "LogsConfig(dirs=['/x'], patterns=['*.log'], tail_lines=5, max_files=50, "
        "max_line_bytes=4096)"
    )
    assert repr(Config()).startswith("Config(paths=PathsConfig(workspace='/workspace', ")
    with pytest.raises(TypeError):
        hash(Config())  # mutable: unhashable, as a dataclass with eq is
