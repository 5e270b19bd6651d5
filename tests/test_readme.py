"""The README covers the code: every command, every option and every config key.

The README is the operator's only document, and five changes landing at once each edit it;
these tests make a command, flag or key that the code gains (or loses) without the README
saying so fail here rather than surprise an operator.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from healthcheck.cli import cli
from healthcheck.config import Config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _table(header: str) -> list[list[str]]:
    """The rows of the README's table that starts with `header`, as cells."""
    start = README.index(header)
    block = README[start:].split("\n\n", 1)[0]
    rows = []
    for line in block.splitlines()[2:]:  # past the header and the |---| line
        # A `\|` inside a cell is a literal bar (`--open\|--all`), not a cell boundary.
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command below `group`, by its path ("log add"), groups included."""
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} ")


def _config_keys(cls: type = Config, prefix: str = "") -> Iterator[str]:
    """Every dotted config key, walking the dataclasses as config.load_config does."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "loaded_from" or not f.metadata.get("toml", True):
            continue  # set by the loader (plugins' tables as written), never a key of its own
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from _config_keys(hint, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def _documented_keys() -> set[str]:
    """The keys the README's configuration table names. A cell may name several, and a
    later one may leave out the table it shares with the one before
    (`system.disk_warn_percent` / `disk_crit_percent`)."""
    keys: set[str] = set()
    for row in _table("| key | default | meaning |"):
        table = ""
        for name in re.findall(r"`([a-z_][a-z0-9_.]*)`", row[0]):
            if "." in name:
                table = name.split(".", 1)[0]
                keys.add(name)
            else:
                assert table, f"{row[0]}: a key without its table"
                keys.add(f"{table}.{name}")
    return keys


def _commands_column() -> str:
    """The first column of the commands table, with the `healthcheck ` prefix dropped, so
    that `healthcheck cron install` and `cron remove` read alike."""
    cells = " ".join(row[0] for row in _table("| command | what it does |"))
    return cells.replace("healthcheck ", "")


LEAF_COMMANDS = [path for path, command in _commands(cli) if not isinstance(command, click.Group)]


def test_the_walks_see_the_code() -> None:
    """The helpers find what they should; an empty walk would make the tests below vacuous."""
    assert {"run", "log add", "cron status", "notify test", "serve"} <= set(LEAF_COMMANDS)
    keys = set(_config_keys())
    assert {"paths.workspace", "display.clients", "mcp.allow_write", "services.ports"} <= keys
    assert "loaded_from" not in keys


@pytest.mark.parametrize("path", LEAF_COMMANDS)
def test_every_command_is_in_the_commands_table(path: str) -> None:
    # Each command is spelled out at the start of a code span: `cron remove`, not
    # `cron install|remove|status`, so that a reader (and this test) finds it.
    assert re.search(rf"`{re.escape(path)}(?![\w-])", _commands_column()), (
        f"`healthcheck {path}` is missing from the README's commands table"
    )


def _option_names() -> Iterator[tuple[str, str]]:
    yield from (("healthcheck", o) for p in cli.params for o in [*p.opts, *p.secondary_opts])
    for path, command in _commands(cli):
        for param in command.params:
            if isinstance(param, click.Option):
                for name in [*param.opts, *param.secondary_opts]:
                    yield path, name


OPTIONS = sorted(set(_option_names()) - {(p, o) for p, o in _option_names() if o == "-h"})


@pytest.mark.parametrize(("path", "option"), OPTIONS)
def test_every_option_is_in_the_readme(path: str, option: str) -> None:
    # A flag ends at a non-flag character: `--json` is not covered by `--jsonl`.
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", README), (
        f"`healthcheck {path}` option {option} is not mentioned in the README"
    )


def test_every_config_key_is_in_the_configuration_table() -> None:
    missing = sorted(set(_config_keys()) - _documented_keys())
    assert not missing, f"config keys missing from the README's configuration table: {missing}"


def test_the_configuration_table_names_no_key_that_does_not_exist() -> None:
    unknown = sorted(_documented_keys() - set(_config_keys()))
    assert not unknown, f"the README's configuration table names unknown keys: {unknown}"


def test_every_section_documents_its_defaults() -> None:
    """Each row of the configuration table gives a default; a key without one leaves the
    operator guessing what the box does when the key is absent."""
    for row in _table("| key | default | meaning |"):
        assert len(row) == 3 and row[1], f"configuration row without a default: {row}"
