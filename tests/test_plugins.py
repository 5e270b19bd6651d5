"""Third-party collectors through the `healthcheck.collectors` entry-point group."""

from __future__ import annotations

import importlib
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import pytest

from healthcheck.config import Config
from healthcheck.model import Section
from healthcheck.plugins import BUILTIN, SelectionError, load_collectors, select


class Builtin:
    name: ClassVar[str] = "alpha"
    description: ClassVar[str] = "built in"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        return Section(name="alpha")


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (dist-info + modules) that declares four collectors."""
    site = tmp_path / "site"
    dist = site / "hc_extra-1.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hc-extra\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""
        [healthcheck.collectors]
        good = hc_extra_good:GoodCollector
        broken = hc_extra_broken:Collector
        notacollector = hc_extra_good:NOT_A_COLLECTOR
        clash = hc_extra_good:Clash
    """)
    )
    (site / "hc_extra_good.py").write_text(
        textwrap.dedent("""
        from healthcheck.model import Section

        class GoodCollector:
            name = "good"
            description = "a third-party collector"
            timeout = 1.0
            def collect(self, config):
                return Section.from_findings("good", {"ok": True}, [])

        class Clash(GoodCollector):
            name = "alpha"

        NOT_A_COLLECTOR = 42
    """)
    )
    (site / "hc_extra_broken.py").write_text("import a_module_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    for module in ("hc_extra_good", "hc_extra_broken"):
        sys.modules.pop(module, None)


def test_plugins_load_and_broken_ones_are_warnings(plugin_site: Path) -> None:
    warnings: list[str] = []
    eps = [
        ep
        for ep in metadata.entry_points(group="healthcheck.collectors")
        if ep.name in {"good", "broken", "notacollector", "clash"}
    ]
    loaded = load_collectors([Builtin], entry_points=eps, warn=warnings.append)
    assert [(c.name, c.origin) for c in loaded] == [
        ("alpha", BUILTIN),
        ("good", "package hc-extra 1.2"),
    ]
    assert warnings == [
        "collector plugin 'broken' (package hc-extra 1.2) failed to load: "
        "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'",
        "collector plugin 'clash' (package hc-extra 1.2) ignored: "
        "the name 'alpha' is already taken",
        "collector plugin 'notacollector' (package hc-extra 1.2) ignored: no 'name' string",
    ]


def test_select_only_skip_and_disable() -> None:
    class Beta(Builtin):
        name: ClassVar[str] = "beta"

    class Gamma(Builtin):
        name: ClassVar[str] = "gamma"

    loaded = load_collectors([Builtin, Beta, Gamma], entry_points=[])
    names = lambda cs: [c.name for c in cs]  # noqa: E731
    assert names(select(loaded)) == ["alpha", "beta", "gamma"]
    assert names(select(loaded, only=["gamma", "alpha"])) == ["alpha", "gamma"]
    assert names(select(loaded, skip=["beta"])) == ["alpha", "gamma"]
    assert names(select(loaded, disabled=["alpha"])) == ["beta", "gamma"]
    with pytest.raises(SelectionError) as info:
        select(loaded, only=["gpu"])
    assert str(info.value) == "--only: unknown collector 'gpu' (known: alpha, beta, gamma)"
