"""Configuration: TOML, looked up in SPEC's order, validated key by key.

Every table is a dataclass whose defaults are the seed's layout. Loading walks the TOML
against those dataclasses, so an unknown key or a wrong type is reported by its dotted name.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthcheck.lazyre import lazy


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


class Table:
    """Equality and repr of a config table, from its fields, as a dataclass's own would be.

    Written once here instead of compiled from source for each table when the module is
    imported, which every run does: a dataclass's `__eq__` and `__repr__` cost about 0.2 ms
    a table, 4 ms of a run's start for the eighteen. So the tables are
    `@dataclass(eq=False, repr=False)` and derive from this; their `__init__` is still
    the dataclass's own (type-checked, and what plugins' `Options` have too).
    """

    __hash__ = None  # type: ignore[assignment]  # mutable, so not hashable (as a dataclass)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            getattr(self, f.name) == getattr(other, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.compare
        )

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.repr
        )
        return f"{type(self).__qualname__}({shown})"


@dataclass(eq=False, repr=False)
class PathsConfig(Table):
    """[paths]: the workspace and where the reports and the docs file go."""

    workspace: str = "/workspace"
    report: str = "system_status.md"
    docs: str = "docs_vast-ai-environment.md"
    improvement_log: str = "improvement_log.md"


@dataclass(eq=False, repr=False)
class LogsConfig(Table):
    """[logs]: which log folders are read, and how much of each log."""

    dirs: list[str] = field(default_factory=lambda: ["/logs", "/Logs"])
    patterns: list[str] = field(default_factory=lambda: ["*.log"])
    tail_lines: int = 20
    max_files: int = 50  # beyond this many matching files, the rest are counted, not read
    max_line_bytes: int = 4096  # longer lines are cut with a visible marker


@dataclass(eq=False, repr=False)
class EnvConfig(Table):
    """[env]: whose environment is read, and which variables are shown."""

    include: str = "CUDA|PYTHON|VNC|JUPYTER|NVIDIA|DISPLAY|PATH"
    source: str = "pid1"


@dataclass(eq=False, repr=False)
class SupervisorConfig(Table):
    """[supervisor]: how supervisord is reached."""

    serverurl: str = "unix:///var/run/supervisor.sock"
    username: str = ""
    password: str = ""


@dataclass(eq=False, repr=False)
class DisplayConfig(Table):
    """[display]: the X display, its servers and the window manager."""

    display: str = ":1"
    window_manager: str = "icewm"
    # Supervisor programs that run the X server, by name or name prefix (the seed's "vnc").
    server_programs: list[str] = field(
        default_factory=lambda: ["vnc", "tigervnc", "xvnc", "xtigervnc", "xvfb", "xorg", "xserver"]
    )
    # Words in the names of supervisor programs that cannot run without the X server.
    clients: list[str] = field(
        default_factory=lambda: [
            "vnc",
            "novnc",
            "websockify",
            "icewm",
            "wm",
            "window",
            "visomaster",
            "gui",
            "xterm",
            "firefox",
        ]
    )
    # Names of the supervisor program that runs the window manager when neither its process
    # nor the window manager's own name (icewm, icewm-session) says which it is.
    window_manager_programs: list[str] = field(
        default_factory=lambda: [
            "wm",
            "xwm",
            "window-manager",
            "window_manager",
            "windowmanager",
            "desktop",
        ]
    )


@dataclass(eq=False, repr=False)
class ServicesConfig(Table):
    """[services]: the port each service is expected on, and its supervisor programs."""

    ports: dict[str, int] = field(
        default_factory=lambda: {
            "ssh": 22,
            "jupyter": 8080,
            "vnc": 5901,
            "novnc": 6901,
            "filebrowser": 8585,
        }
    )
    # The supervisor programs that may provide each service of `ports`, when their names
    # differ (ssh is served by sshd, novnc by websockify): exact names first, then a name
    # that starts with one of these (or that one of these starts with). A service not listed
    # is provided by the program of its own name.
    programs: dict[str, list[str]] = field(
        default_factory=lambda: {
            "ssh": ["sshd", "ssh", "openssh"],
            "vnc": ["vnc", "tigervnc", "xvnc", "x11vnc", "xtigervnc", "xvfb"],
            "novnc": ["novnc", "websockify", "no_vnc"],
            "jupyter": ["jupyter", "jupyterlab", "lab", "notebook"],
            "filebrowser": ["filebrowser", "file_browser"],
        }
    )


@dataclass(eq=False, repr=False)
class ProvisioningConfig(Table):
    """[provisioning]: the provisioning scripts a box runs at start."""

    scripts: list[str] = field(
        default_factory=lambda: [
            "/vast_ai_provisioning_script.sh",
            "/src/provisioning_script.sh",
            "/root/provisioning_script.sh",
        ]
    )


@dataclass(eq=False, repr=False)
class SystemConfig(Table):
    """[system]: the disk and memory thresholds, and how many top processes to list."""

    disk_warn_percent: float = 90.0
    disk_crit_percent: float = 97.0
    memory_warn_percent: float = 90.0  # of total memory in use (available counted as free)
    memory_crit_percent: float = 97.0
    top_processes: int = 5


@dataclass(eq=False, repr=False)
class GpuConfig(Table):
    """[gpu]: when the GPU collector warns, and which kernel and service logs it scans."""

    temperature_margin_c: float = 5.0  # warn this close to the GPU's slowdown temperature
    temperature_warn_c: float = 85.0  # used when the board reports no slowdown temperature
    memory_warn_percent: float = 95.0  # of a GPU's memory in use
    xid_scan: bool = True  # look for Xid errors in the kernel log
    kernel_log: str = ""  # a file to scan instead of /dev/kmsg and dmesg (e.g. kern.log)
    kernel_log_lines: int = 5000  # lines read from the end of kernel_log
    dmesg_timeout: float = 3.0  # seconds
    log_scan_lines: int = 200  # lines read from the end of each service log for CUDA errors


@dataclass(eq=False, repr=False)
class CollectorsConfig(Table):
    """[collectors]: which collectors run, their time limit and options."""

    timeout: float = 10.0
    disable: list[str] = field(default_factory=list)
    # The `[collectors.NAME]` tables of plugin collectors, as written: each is checked
    # against its collector's `Options` when the collector runs (collector_options).
    tables: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"toml": False})


# A built-in collector's options: `[collectors.NAME]`, or the first release's spelling, the
# top-level table named here (`[gpu]`, `[services]` for the ports collector). Code outside a
# collector reads them where they always were: `config.supervisor.serverurl`.
COLLECTOR_TABLES = {
    "display": "display",
    "env": "env",
    "gpu": "gpu",
    "logs": "logs",
    "ports": "services",
    "provisioning": "provisioning",
    "supervisor": "supervisor",
    "system": "system",
}


@dataclass(eq=False, repr=False)
class RedactConfig(Table):
    """[redact]: extra secret names and patterns."""

    names: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)


@dataclass(eq=False, repr=False)
class DocsConfig(Table):
    """[docs]: whether runs refresh the operator's docs file."""

    enabled: bool = True  # false: runs never refresh the docs file (paths.docs = "" too)


@dataclass(eq=False, repr=False)
class GitConfig(Table):
    """[git]: committing each run's reports, and pushing them."""

    commit: bool = True
    remote: str = ""  # a remote name or URL; pushed to after each commit when set
    push_timeout: float = 60.0  # seconds; a push that takes longer is killed (a warn finding)
    lock_timeout: float = 30.0  # seconds a run waits for another one before it skips


@dataclass(eq=False, repr=False)
class OutputsConfig(Table):
    """[outputs]: the extra files a run writes (the Prometheus textfile)."""

    # A node_exporter textfile (`.prom`) written after each run; "" writes none.
    prometheus: str = ""


@dataclass(eq=False, repr=False)
class ServeConfig(Table):
    """[serve]: `healthcheck serve`'s token and how often it collects afresh."""

    token: str = ""  # when set, every `healthcheck serve` request needs Authorization: Bearer
    min_interval: float = 60.0  # seconds between two fresh runs asked with ?fresh=1


@dataclass(eq=False, repr=False)
class NotifyConfig(Table):
    """[notify]: alerts and the dead man's switch."""

    urls: list[str] = field(default_factory=list)  # Apprise URLs; empty: no messages
    on: str = "change"  # "change", "worse" or "always"
    timeout: float = 10.0  # seconds a channel (or the ping) may take, all channels together
    ping_url: str = ""  # dead man's switch (healthchecks.io / Uptime Kuma push URL)
    min_interval: float = 3600.0  # seconds: a finding flapping faster is reported once


@dataclass(eq=False, repr=False)
class McpConfig(Table):
    """[mcp]: what `healthcheck mcp` may write, and how often it collects afresh."""

    allow_write: bool = True  # add_improvement, the only tool that writes; false refuses it
    min_interval: float = 60.0  # seconds between two fresh collections by run_check


@dataclass(eq=False, repr=False)
class Config(Table):
    """The whole configuration: one attribute per TOML table."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    collectors: CollectorsConfig = field(default_factory=CollectorsConfig)
    redact: RedactConfig = field(default_factory=RedactConfig)
    git: GitConfig = field(default_factory=GitConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    mcp: McpConfig = field(default_factory=McpConfig)
    docs: DocsConfig = field(default_factory=DocsConfig)
    loaded_from: str | None = None  # the file this came from; None for the built-in defaults

    def workspace_path(self, value: str) -> Path:
        """A `[paths]` value made absolute: relative paths are relative to the workspace."""
        path = Path(value).expanduser()
        if path.is_absolute():
            return path
        return Path(self.paths.workspace).expanduser() / path

    @property
    def report_path(self) -> Path:
        return self.workspace_path(self.paths.report)

    @property
    def docs_path(self) -> Path:
        return self.workspace_path(self.paths.docs)

    @property
    def docs_enabled(self) -> bool:
        """Whether runs refresh the docs file: `[docs] enabled = false` or `paths.docs = ""`
        turn it off."""
        return self.docs.enabled and bool(self.paths.docs.strip())

    @property
    def improvement_log_path(self) -> Path:
        return self.workspace_path(self.paths.improvement_log)

    @property
    def prometheus_path(self) -> Path | None:
        """The node_exporter textfile, or None when none is configured."""
        return self.workspace_path(self.outputs.prometheus) if self.outputs.prometheus else None


# Searched in this order when neither --config nor $HEALTHCHECK_CONFIG names a file.
WELL_KNOWN_PATHS = (
    "healthcheck.toml",
    "~/.config/healthcheck/config.toml",
    "/etc/healthcheck/config.toml",
)


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use, or None for the defaults.

    A file named by --config or $HEALTHCHECK_CONFIG must exist: the operator asked for it.
    The well-known locations are simply skipped when absent.
    """
    named = [(explicit, "")] if explicit is not None else []
    if env := os.environ.get("HEALTHCHECK_CONFIG"):
        named.append((env, " (from $HEALTHCHECK_CONFIG)"))
    if named:
        value, origin = named[0]
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found{origin}")
        return path
    for candidate in WELL_KNOWN_PATHS:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Find, parse and validate the configuration."""
    path = find_config(explicit)
    if path is None:
        return Config()
    try:
        raw = _parsed_toml(path.read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    config = parse_config(raw, where=str(path))
    config.loaded_from = str(path)
    workspace = Path(config.paths.workspace).expanduser()
    if not workspace.is_absolute():
        # Relative to the file that says it, not to wherever the command runs (cron: $HOME).
        config.paths.workspace = str(path.absolute().parent / workspace)
    return config


def _parsed_toml(text: str, path: Path) -> dict[str, Any]:
    """The file's TOML as data. The parse of a text seen before is read back from the user
    cache (healthcheck/cache.py), sparing a run tomllib's import and parse (2-3 ms); what it
    means is validated afresh either way."""
    from healthcheck import cache

    key = cache.digest(text.encode("utf-8", "surrogatepass"))
    kept = cache.load("config-toml", key)
    if isinstance(kept, dict):
        return kept
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on the containers' Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    cache.store("config-toml", key, raw)  # nothing kept when it holds a date (not marshal's)
    return raw


def parse_config(raw: dict[str, Any], where: str = "config") -> Config:
    """Build a validated Config from parsed TOML."""
    raw, spelled, plugin_tables = _collector_tables(raw, where)
    config = _build(Config, raw, prefix="", where=where)
    config.collectors.tables = plugin_tables
    try:
        _check_semantics(config, where)
    except ConfigError as exc:
        # A table written as [collectors.gpu] is named so in the message, as it was written.
        message = str(exc)
        for name, attr in spelled.items():
            message = message.replace(f"'{attr}.", f"'collectors.{name}.")
        raise ConfigError(message) from None
    return config


def _collector_tables(
    raw: dict[str, Any], where: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, Any]]]:
    """`raw` with each built-in's `[collectors.NAME]` moved to its top-level table; which
    were written that way; and the plugins' tables, kept as written."""
    section = raw.get("collectors")
    if not isinstance(section, dict):
        return raw, {}, {}
    raw, section = dict(raw), dict(section)
    own = {f.name for f in dataclasses.fields(CollectorsConfig) if f.metadata.get("toml", True)}
    spelled: dict[str, str] = {}
    plugin_tables: dict[str, dict[str, Any]] = {}
    for name in [key for key in section if key not in own]:
        if not isinstance(section[name], dict):
            if name in COLLECTOR_TABLES:
                raise ConfigError(f"{where}: 'collectors.{name}' must be a table")
            continue  # a misspelt key of [collectors] itself: _build names it
        table = section.pop(name)
        attr = COLLECTOR_TABLES.get(name)
        if attr is None:
            _check_plugin_name(name, where)
            plugin_tables[name] = table
            continue
        if attr in raw:
            raise ConfigError(
                f"{where}: both [collectors.{name}] and [{attr}] are given; [{attr}] is the "
                f"older name of the same table: keep one"
            )
        raw[attr] = table
        spelled[name] = attr
    raw["collectors"] = section
    for name, attr in spelled.items():
        # Checked under the name it was written with.
        _build(typing.get_type_hints(Config)[attr], raw[attr], f"collectors.{name}.", where)
    return raw, spelled, plugin_tables


def _check_plugin_name(name: str, where: str) -> None:
    """A `[collectors.NAME]` table must name a collector that can take it: a built-in one
    with options, or an installed plugin (its options are checked when it runs)."""
    from healthcheck.assets import collector_folders
    from healthcheck.plugins import installed_entry_points

    # A built-in collector whose Options live in its own package, not in this module's tables.
    builtin = {folder.name for folder in collector_folders()} - set(COLLECTOR_TABLES)
    plugins = sorted({ep.name for ep in installed_entry_points()})
    if name in builtin or name in plugins:
        return
    known = ", ".join(sorted(COLLECTOR_TABLES) + plugins)
    raise ConfigError(
        f"{where}: unknown collector in [collectors.{name}] (collectors with options: {known})"
    )


def collector_options(config: Config, name: str, options: type | None) -> Any:
    """The options of collector `name`: a built-in's table of `config`, or a plugin's
    `[collectors.NAME]` table built as its `Options` dataclass (checked like every other
    key, named `collectors.NAME.KEY`); None for a collector without options."""
    attr = COLLECTOR_TABLES.get(name)
    if attr is not None:
        return getattr(config, attr)
    table = config.collectors.tables.get(name, {})
    where = config.loaded_from or "config"
    if options is None:
        if table:
            raise ConfigError(f"{where}: the {name} collector takes no options [collectors.{name}]")
        return None
    try:
        return _build(options, table, prefix=f"collectors.{name}.", where=where)
    except TypeError as exc:  # an Options field without a default, not given
        raise ConfigError(f"{where}: [collectors.{name}]: {exc}") from None


def _build(cls: type, raw: Any, prefix: str, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.')}' must be a table")
    hints = typing.get_type_hints(cls)
    known = {
        f.name: f
        for f in dataclasses.fields(cls)
        if f.name != "loaded_from" and f.metadata.get("toml", True)
    }
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            guess = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{dotted}'{guess}")
        values[key] = _coerce(hints[key], value, dotted, where)
    return cls(**values)


def _coerce(hint: Any, value: Any, dotted: str, where: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{dotted}.", where=where)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(_is(item, v) for v in value):
            raise ConfigError(f"{where}: '{dotted}' must be a list of {_name(item)}")
        return list(value)
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{dotted}' must be a table")
        if typing.get_origin(item) is list:  # a table of lists: each checked as a list
            return {key: _coerce(item, v, f"{dotted}.{key}", where) for key, v in value.items()}
        for key, v in value.items():
            if not _is(item, v):
                raise ConfigError(f"{where}: '{dotted}.{key}' must be {_name(item)}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        raise AssertionError(f"unsupported config type for {dotted}")  # pragma: no cover
    if not _is(hint, value):
        raise ConfigError(f"{where}: '{dotted}' must be {_name(hint)}, not {_toml_type(value)}")
    return float(value) if hint is float else value


def _is(hint: Any, value: Any) -> bool:
    # bool is an int in Python; TOML keeps them apart, and so do we.
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _check_semantics(config: Config, where: str) -> None:
    """Checks a type cannot express: regexes compile, numbers are in range, names are known."""
    for dotted, pattern in (
        [("env.include", config.env.include)]
        + [(f"redact.names[{i}]", p) for i, p in enumerate(config.redact.names)]
        + [(f"redact.patterns[{i}]", p) for i, p in enumerate(config.redact.patterns)]
    ):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{where}: '{dotted}' is not a valid regular expression: {exc}"
            ) from None
    source = config.env.source
    if source not in ("self", "pid1") and not (
        source.startswith("process:") and len(source) > len("process:")
    ):
        raise ConfigError(
            f'{where}: \'env.source\' must be "self", "pid1" or "process:NAME", not {source!r}'
        )
    positive = {
        "logs.tail_lines": config.logs.tail_lines,
        "logs.max_files": config.logs.max_files,
        "logs.max_line_bytes": config.logs.max_line_bytes,
        "collectors.timeout": config.collectors.timeout,
        "git.push_timeout": config.git.push_timeout,
    }
    for dotted, number in positive.items():
        if number <= 0:
            raise ConfigError(f"{where}: '{dotted}' must be greater than 0")
    if config.git.lock_timeout < 0:
        raise ConfigError(f"{where}: 'git.lock_timeout' must be 0 or more")
    if config.mcp.min_interval < 0:
        raise ConfigError(f"{where}: 'mcp.min_interval' must be 0 or more")
    for name, port in config.services.ports.items():
        if not 0 < port < 65536:
            raise ConfigError(f"{where}: 'services.ports.{name}' must be a port (1-65535)")
    for key in (
        "disk_warn_percent",
        "disk_crit_percent",
        "memory_warn_percent",
        "memory_crit_percent",
    ):
        if not 0 < getattr(config.system, key) <= 100:
            raise ConfigError(f"{where}: 'system.{key}' must be a percentage (0-100]")
    _check_gpu(config.gpu, where)
    _check_outputs_and_serve(config, where)
    _check_notify(config.notify, where)
    url = config.supervisor.serverurl
    if not url.startswith(("unix://", "http://", "https://")):
        raise ConfigError(
            f"{where}: 'supervisor.serverurl' must start with unix:// or http://, not {url!r}"
        )


def _check_gpu(gpu: GpuConfig, where: str) -> None:
    for key in ("kernel_log_lines", "dmesg_timeout", "log_scan_lines"):
        if getattr(gpu, key) <= 0:
            raise ConfigError(f"{where}: 'gpu.{key}' must be greater than 0")
    if gpu.temperature_margin_c < 0:
        raise ConfigError(f"{where}: 'gpu.temperature_margin_c' must be 0 or more")
    if not 0 < gpu.memory_warn_percent <= 100:
        raise ConfigError(f"{where}: 'gpu.memory_warn_percent' must be a percentage (0-100]")


# A bearer token travels in a header: printable ASCII without spaces, and long enough that
# guessing it is hopeless.
_TOKEN = lazy(r"[!-~]{16,}")


def _check_outputs_and_serve(config: Config, where: str) -> None:
    prom = config.outputs.prometheus
    if prom and not prom.endswith(".prom"):
        # node_exporter's textfile collector reads *.prom only: any other name is never read.
        raise ConfigError(
            f"{where}: 'outputs.prometheus' must name a file ending in .prom, not {prom!r}"
        )
    if config.serve.token and not _TOKEN.fullmatch(config.serve.token):
        raise ConfigError(
            f"{where}: 'serve.token' must be at least 16 printable characters without spaces"
        )
    if config.serve.min_interval < 0:
        raise ConfigError(f"{where}: 'serve.min_interval' must be 0 or more")


NOTIFY_ON = ("change", "worse", "always")


def _check_notify(notify: NotifyConfig, where: str) -> None:
    # The URLs carry tokens: a message names the key, never the value.
    for i, url in enumerate(notify.urls):
        if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://\S", url):
            raise ConfigError(f"{where}: 'notify.urls[{i}]' is not an Apprise URL (SCHEME://...)")
    if notify.on not in NOTIFY_ON:
        raise ConfigError(
            f'{where}: \'notify.on\' must be "change", "worse" or "always", not {notify.on!r}'
        )
    if notify.timeout <= 0:
        raise ConfigError(f"{where}: 'notify.timeout' must be greater than 0")
    if notify.min_interval < 0:
        raise ConfigError(f"{where}: 'notify.min_interval' must be 0 or more")
    if notify.ping_url and not re.match(r"https?://\S", notify.ping_url):
        raise ConfigError(f"{where}: 'notify.ping_url' must be an http:// or https:// URL")
