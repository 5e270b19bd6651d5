"""The package's shape, checked from its source: collectors import only the core, and the
modules' top-level imports form no cycle (issue 11's "one room per collector").

Read with `ast`, not by importing: what is checked is what the code says, including the
imports a function makes only when it runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "healthcheck"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module an ImportFrom names, with a relative one (`from . import x`) resolved."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(name: str, nodes: list[ast.stmt] | ast.Module) -> set[str]:
    """The healthcheck modules these statements import: `from healthcheck.a import b` counts
    as healthcheck.a.b when that is a module, else as healthcheck.a."""
    is_package = MODULES[name].name == "__init__.py"
    found: set[str] = set()
    body = nodes.body if isinstance(nodes, ast.Module) else nodes
    for node in (n for stmt in body for n in ast.walk(stmt)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, name, is_package)
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.add(child if child in MODULES else source)
    return {m for m in found if m in MODULES and m != name}


def _is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """What runs when the module is imported: module-level statements (inside `if`/`try`
    too), but not function or class bodies, nor `if TYPE_CHECKING:` blocks."""
    kept: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(stmt, ast.If):
            if not _is_type_checking(stmt):
                kept += top_level_statements(stmt.body)
            kept += top_level_statements(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody):
                kept += top_level_statements(block)
            for handler in stmt.handlers:
                kept += top_level_statements(handler.body)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            kept.append(stmt)
    return kept


def parsed(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


COLLECTORS = sorted(
    n for n in MODULES if n.startswith("healthcheck.collectors.") and n.count(".") == 2
)
REGISTRY = "healthcheck.collectors"  # imports every built-in collector, by design


def collector_of(module: str) -> str | None:
    """The collector package a module belongs to (`healthcheck.collectors.supervisor` for
    its `rules` module too), or None for the core and the registry."""
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) > 2 and parts[1] == "collectors" else None


# Every module of every collector package: a collector's own submodules count as the collector.
COLLECTOR_MODULES = sorted(n for n in MODULES if collector_of(n) is not None)
CORE = sorted(n for n in MODULES if collector_of(n) is None and n != REGISTRY)


def test_the_collectors_are_found() -> None:
    # The checks below mean nothing if the walk finds nothing.
    assert {"healthcheck.collectors.display", "healthcheck.collectors.gpu"} <= set(COLLECTORS)
    assert "healthcheck.collectors" not in COLLECTORS  # the registry imports them all


@pytest.mark.parametrize("module", COLLECTOR_MODULES)
def test_a_collector_imports_no_other_collector(module: str) -> None:
    """Anything two collectors share belongs to the core (processes, logtail, the run's
    facts, ...): one collector importing another scans twice and ties their changes
    together. A collector's own modules (supervisor's rules) are its own to import."""
    own = collector_of(module)
    imports = imported_modules(module, parsed(module))
    others = sorted(
        m for m in imports if m.startswith("healthcheck.collectors") and collector_of(m) != own
    )
    assert not others, f"{module} imports {others}: move what it needs into the core"


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_collector(module: str) -> None:
    """The core (diagnosis, pipeline, render, ...) may name the registry, never one
    collector: what it shares with a collector lives in the core (loglines, display_fixes)."""
    imports = imported_modules(module, parsed(module))
    collectors = sorted(m for m in imports if collector_of(m) is not None)
    assert not collectors, f"{module} imports {collectors}: move what it needs into the core"


def top_level_graph() -> dict[str, set[str]]:
    return {
        name: imported_modules(name, top_level_statements(parsed(name).body)) for name in MODULES
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_top_level_imports_have_no_cycle() -> None:
    cycle = find_cycle(top_level_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_cycle_and_a_collector_import() -> None:
    # The checks must be able to fail: a made-up graph with a cycle, and a real collector's
    # source with one more import.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = parsed("healthcheck.collectors.display")
    tree.body.insert(
        0, ast.parse("from healthcheck.collectors.ports import PortsCollector").body[0]
    )
    assert "healthcheck.collectors.ports" in imported_modules(
        "healthcheck.collectors.display", tree
    )
    # The core check sees a core module reaching into a collector, lazily or not.
    reach = ast.parse("def f():\n    from healthcheck.collectors.logs import LogsCollector\n")
    assert collector_of(next(iter(imported_modules("healthcheck.diagnosis", reach)))) == (
        "healthcheck.collectors.logs"
    )
    assert collector_of("healthcheck.collectors.supervisor.rules") == (
        "healthcheck.collectors.supervisor"
    )
    assert collector_of(REGISTRY) is None and "healthcheck.diagnosis" in CORE
    lazy = ast.parse("def f():\n    from .. import logs\n")  # gpu is a package
    assert "healthcheck.collectors.logs" in imported_modules("healthcheck.collectors.gpu", lazy)
    guarded = ast.parse("if TYPE_CHECKING:\n    import healthcheck.cli\nimport healthcheck.lock\n")
    assert imported_modules("healthcheck.model", top_level_statements(guarded.body)) == {
        "healthcheck.lock"
    }


BUILTIN_NAMES = {
    module.rsplit(".", 1)[1] for module in COLLECTORS if (MODULES[module].name == "__init__.py")
}


@pytest.mark.parametrize("module", ["healthcheck.drift", "healthcheck.docs"])
def test_diff_and_the_docs_blocks_name_no_collector(module: str) -> None:
    """What `diff` and the docs blocks know of a collector is in its package (its `drift`
    declaration, its docs/*.md.j2): these modules iterate over collectors, never name one."""
    tree = parsed(module)
    # A record's __slots__ name its attributes (a `_Refresh.env`), not collectors.
    slots = {
        id(node)
        for assign in ast.walk(tree)
        if isinstance(assign, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in assign.targets)
        for node in ast.walk(assign.value)
    }
    named = sorted(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in BUILTIN_NAMES and id(node) not in slots
    )
    assert not named, f"{module} names the collectors {named}: declare it in their packages"
