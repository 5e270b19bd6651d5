"""A collector is one package: a third-party one ships its options, section template and known
failures through the `healthcheck.collectors` entry point, and every collector of a run gets
the run's shared facts in `collect(ctx)`. Real packages installed in a temporary site folder,
real sockets, real log files; nothing mocked."""

from __future__ import annotations

import importlib
import os
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from healthcheck import assets
from healthcheck.catalogue import catalogue
from healthcheck.config import Config, ConfigError, LogsConfig, load_config, parse_config
from healthcheck.facts import Facts
from healthcheck.model import RunContext, Section, takes_context
from healthcheck.plugins import load_collectors
from healthcheck.redact import Redactor
from healthcheck.render import render_markdown
from healthcheck.report import Report
from healthcheck.runner import run_collectors

PLUGIN = """
from dataclasses import dataclass, field

from healthcheck.catalogue import finding
from healthcheck.model import Section


@dataclass
class Options:
    threshold: float = 5.0
    names: list[str] = field(default_factory=lambda: ["a"])


class FanCollector:
    name = "fans"
    description = "fan speeds, from a vendor tool"
    timeout = 2.0
    Options = Options

    def collect(self, ctx):
        data = {"threshold": ctx.options.threshold, "names": ctx.options.names,
                "pids": len(ctx.facts.processes()) > 0}
        findings = []
        if ctx.options.threshold > 6:
            findings.append(finding("fans.fan-stopped", "fan0", fan="fan0", rpm=0))
        return Section.from_findings(self.name, data, findings)


class OldStyle:
    name = "oldstyle"
    description = "written for the first release"
    timeout = None

    def collect(self, config):
        return Section.from_findings(self.name, {"got": type(config).__name__}, [])
"""

TEMPLATE = (
    'Fans watched: {{ s.data.names | join(", ") | inline }} (threshold {{ s.data.threshold }}).\n'
)

FAILURES = """
[defaults]
kind = "wording"

[[entry]]
id = "fans.fan-stopped"
severity = "crit"
title = "fan {fan} stopped ({rpm} rpm)"
fix = "Replace the fan."
"""


@pytest.fixture
def fan_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution whose package holds a collector, its template and its
    known failures, the way a built-in collector's package does."""
    site = tmp_path / "site"
    dist = site / "hc_fans-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hc-fans\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        "[healthcheck.collectors]\nfans = hc_fans:FanCollector\noldstyle = hc_fans:OldStyle\n"
    )
    package = site / "hc_fans"
    (package / "failures").mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    (package / "fans.md.j2").write_text(TEMPLATE)
    (package / "failures" / "fans.toml").write_text(textwrap.dedent(FAILURES))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "_plugin_folders", [])
    importlib.invalidate_caches()
    catalogue.cache_clear()
    yield site
    sys.modules.pop("hc_fans", None)
    catalogue.cache_clear()


def run_plugins(config: Config) -> list[Section]:
    loaded = [c for c in load_collectors([]) if c.name in ("fans", "oldstyle")]
    return run_collectors([c.collector for c in loaded], config)


def test_a_plugin_ships_options_template_and_known_failures(
    fan_plugin: Path, tmp_path: Path
) -> None:
    path = tmp_path / "healthcheck.toml"
    path.write_text("[collectors.fans]\nthreshold = 7\nnames = ['cpu', 'case']\n")
    config = load_config(path)
    fans, old = run_plugins(config)
    assert fans.error is None, fans.error
    assert fans.data == {"threshold": 7.0, "names": ["cpu", "case"], "pids": True}
    # Its known failure words its finding, as the catalogue's own entries do.
    assert [(f.id, f.severity.value, f.title, f.hint) for f in fans.findings] == [
        ("fans.fan-stopped:fan0", "crit", "fan fan0 stopped (0 rpm)", "Replace the fan.")
    ]
    assert catalogue().by_id("fans.fan-stopped").area == "fans"
    # A first-release plugin still gets the Config.
    assert old.error is None and old.data == {"got": "Config"}
    # Its template lays out its section in the report.
    text = render_markdown(Report.build([fans, old]), Redactor())
    assert "## fans: crit\n\nFans watched: cpu, case (threshold 7.0).\n" in text


def test_a_plugin_gets_its_defaults_and_a_bad_option_is_named(
    fan_plugin: Path, tmp_path: Path
) -> None:
    (fans, _) = run_plugins(Config())
    assert fans.data["threshold"] == 5.0 and fans.data["names"] == ["a"]
    path = tmp_path / "bad.toml"
    path.write_text("[collectors.fans]\nthreshold = 'hot'\n")
    (fans, old) = run_plugins(load_config(path))
    # One plugin's bad table costs that plugin's section, named like every other config key.
    assert fans.status.value == "unknown"
    assert fans.error == (
        f"ConfigError: {path}: 'collectors.fans.threshold' must be a number, not a string"
    )
    assert old.error is None
    path.write_text("[collectors.fans]\nthreshhold = 7\n")
    (fans, _) = run_plugins(load_config(path))
    assert "unknown key 'collectors.fans.threshhold' (did you mean" in (fans.error or "")


def test_a_table_for_no_installed_collector_is_a_config_error(
    fan_plugin: Path, tmp_path: Path
) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[collectors.fan]\nthreshold = 7\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: unknown collector in [collectors.fan]")
    assert "fans" in str(info.value) and "gpu" in str(info.value)


# --- the built-ins' tables: [collectors.NAME], and the first release's [NAME] -----------------


def test_builtin_tables_have_two_spellings_and_one_value() -> None:
    new = parse_config({"collectors": {"gpu": {"xid_scan": False}, "ports": {"ports": {"a": 1}}}})
    old = parse_config({"gpu": {"xid_scan": False}, "services": {"ports": {"a": 1}}})
    assert new.gpu == old.gpu and not new.gpu.xid_scan
    assert new.services.ports == old.services.ports == {"a": 1}
    assert new.collectors.timeout == 10.0 and new.collectors.tables == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"gpu": {"xid_scan": False}, "collectors": {"gpu": {"xid_scan": True}}},
            "both [collectors.gpu] and [gpu] are given",
        ),
        ({"collectors": {"gpu": {"xid_scn": False}}}, "unknown key 'collectors.gpu.xid_scn'"),
        (
            {"collectors": {"logs": {"tail_lines": "x"}}},
            "'collectors.logs.tail_lines' must be an integer, not a string",
        ),
        (
            {"collectors": {"logs": {"tail_lines": 0}}},
            "'collectors.logs.tail_lines' must be greater than 0",
        ),
        ({"logs": {"tail_lines": 0}}, "'logs.tail_lines' must be greater than 0"),
        ({"collectors": {"gpu": 3}}, "'collectors.gpu' must be a table"),
        ({"collectors": {"tables": {}}}, "unknown collector in [collectors.tables]"),
        ({"collectors": {"timout": 3}}, "unknown key 'collectors.timout' (did you mean"),
    ],
)
def test_builtin_table_errors_name_the_key_as_written(
    raw: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        parse_config(raw, where="hc.toml")
    assert message in str(info.value)


# --- the run's facts --------------------------------------------------------------------------


class Looks:
    """A collector (the new contract) that records what the run's facts gave it."""

    description: ClassVar[str] = "looks at the shared facts"
    timeout: ClassVar[float | None] = 5.0
    seen: ClassVar[dict[str, dict[str, Any]]] = {}
    logs: ClassVar[LogsConfig] = LogsConfig()

    def __init__(self, name: str) -> None:
        self.name = name

    def collect(self, ctx: RunContext) -> Section:
        discovery = ctx.facts.log_discovery(self.logs)
        files = discovery[1]
        Looks.seen[self.name] = {
            "ctx": ctx,
            "processes": ctx.facts.processes(),
            "listeners": ctx.facts.listeners(),
            "environment": ctx.facts.environment("self"),
            "discovery": discovery,
            "tail": ctx.facts.log_tail(files[0].path, 2, 4096, 10).lines,
        }
        return Section(self.name)


def test_one_run_reads_each_fact_once_for_every_collector(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "svc.log").write_text("one\ntwo\nthree\n")
    Looks.logs = LogsConfig(dirs=[str(logs)])
    Looks.seen.clear()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        began = time.monotonic()
        run_collectors([Looks("a"), Looks("b"), Looks("c")], Config())
    a, b, c = (Looks.seen[n] for n in "abc")
    for key in ("processes", "listeners", "environment", "discovery"):
        assert a[key] is b[key] is c[key], key
    assert list(a["tail"]) == list(b["tail"]) == ["two", "three"]
    assert (f"127.0.0.1:{port}", os.getpid()) in a["listeners"][port]
    assert a["ctx"].facts is b["ctx"].facts
    assert began + 4.9 < a["ctx"].deadline <= time.monotonic() + 5.0
    assert a["ctx"].options is None and a["ctx"].name == "a"
    # The next run reads the box afresh.
    run_collectors([Looks("a")], Config())
    assert Looks.seen["a"]["processes"] is not b["processes"]


def test_facts_are_computed_once_under_parallel_asks() -> None:
    facts = Facts()
    got: list[object] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        got.append(facts.processes())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(g is got[0] for g in got)


def test_which_contract_a_collector_speaks() -> None:
    class New:
        def collect(self, ctx: object) -> None: ...

    class Annotated:
        def collect(self, context: RunContext) -> None: ...

    class Old:
        def collect(self, config: Config) -> None: ...

    assert takes_context(New()) and takes_context(Annotated()) and not takes_context(Old())
    # A built-in called directly with a Config (tests, scripts) builds its own context.
    from healthcheck.collectors.ports import PortsCollector

    section = PortsCollector().collect(parse_config({"services": {"ports": {}}}))
    assert section.error is None and section.data["ports"] == []
