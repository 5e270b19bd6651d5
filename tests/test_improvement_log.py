"""The improvement log: a Markdown file people edit and the tool parses back, every change
committed on its own, secrets masked before anything is written."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from healthcheck.cli import cli
from healthcheck.improvement_log import (
    HEADER,
    Entry,
    ImprovementLog,
    LogError,
    normalise_id,
    parse,
    render_entry,
    split_text,
)
from healthcheck.redact import Redactor

from secrets_corpus import FAKE_SECRETS

TOKEN = FAKE_SECRETS["huggingface"]
TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")
PASTED = """Here is what I would do:

## Fix VisoMaster

1. Install the module:

```bash
pip install onnxruntime-gpu
```

## IMP-0099: this line only looks like an entry
> and this like a quote
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()  # `log add` writes only into a workspace that exists
    return workspace


@pytest.fixture
def config(tmp_path: Path, ws: Path) -> Path:
    path = tmp_path / "hc.toml"
    path.write_text(f'[paths]\nworkspace = "{ws}"\n[env]\nsource = "self"\n')
    return path


def hc(config: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, [*args, "--config", str(config)], input=stdin, catch_exceptions=False
    )


def test_entries_round_trip_through_the_markdown() -> None:
    entries = [
        Entry(id="IMP-0001", title="Restart jupyter", added="2025-05-01", source="assistant"),
        Entry(
            id="IMP-0002",
            title="Here is what I would do:",
            added="2025-05-02",
            finding="supervisor.fatal:visomaster",
            body=PASTED.partition("\n")[2].strip("\n"),
        ),
        Entry(
            id="IMP-0003",
            title="Done",
            status="resolved",
            added="2025-05-02",
            resolved="2025-05-03",
            commit="abc1234",
            note="fixed by hand",
        ),
    ]
    text = HEADER + "".join("\n" + render_entry(e) for e in entries)
    assert parse(text) == entries
    # the pasted heading that looks like an entry stays inside the quoted body
    assert "> ## IMP-0099: this line only looks like an entry\n" in text
    assert entries[1].text == PASTED.strip("\n")


def test_a_long_first_line_is_cut_in_the_title_and_kept_whole() -> None:
    line = "word " * 40
    title, body = split_text(line.strip())
    assert title.endswith("…") and len(title) <= 101
    entry = Entry(id="IMP-0001", title=title, body=body)
    assert entry.text == line.strip()


def test_ids() -> None:
    assert [normalise_id(v) for v in ("IMP-0003", "imp-3", "3", "IMP3")] == ["IMP-0003"] * 4
    with pytest.raises(LogError, match=r"not an entry id: 'x7' \(expected IMP-0001\)"):
        normalise_id("x7")


def test_add_list_resolve_round_trip_with_commits(config: Path, ws: Path) -> None:
    log = ws / "improvement_log.md"
    first = hc(config, "log", "add", "Install cron\nso the check runs.", "--source", "assistant")
    assert (first.exit_code, first.stdout) == (0, "Added IMP-0001: Install cron\n")
    head = git(ws, "rev-parse", "--short=7", "HEAD").strip()
    assert first.stderr == f"Committed {head} in {ws}.\n"
    second = hc(config, "log", "add", "-", "--finding", "supervisor.fatal:visomaster", stdin=PASTED)
    # the answer's greeting is not its title: the first line after it is
    assert (second.exit_code, second.stdout) == (0, "Added IMP-0002: Fix VisoMaster\n")

    listed = hc(config, "log", "list")
    assert (listed.exit_code, listed.stdout) == (
        0,
        "ID        STATUS  ADDED       SOURCE     TITLE\n"
        f"IMP-0001  open    {TODAY}  assistant  Install cron\n"
        f"IMP-0002  open    {TODAY}  -          Fix VisoMaster\n",
    )
    resolved = hc(
        config, "log", "resolve", "imp-1", "--note", "cron installed", "--commit", "ABC1234"
    )
    assert (resolved.exit_code, resolved.stdout) == (0, "Resolved IMP-0001: Install cron\n")
    assert hc(config, "log", "list", "--open").stdout == (
        "ID        STATUS  ADDED       SOURCE  TITLE\n"
        f"IMP-0002  open    {TODAY}  -       Fix VisoMaster\n"
    )
    assert hc(config, "log", "list", "--all").stdout.splitlines()[1] == (
        f"IMP-0001  resolved  {TODAY}  assistant  Install cron"
    )

    text = log.read_text()
    assert text.startswith(HEADER)
    assert (
        "## IMP-0001: Install cron\n\n- Status: resolved\n"
        f"- Added: {TODAY}\n- Source: assistant\n- Resolved: {TODAY}\n- Commit: abc1234\n"
        "- Note: cron installed\n\n> so the check runs.\n"
    ) in text
    assert ImprovementLog.load(log).get("IMP-0002").text == PASTED.strip(
        "\n"
    )  # the pasted answer, whole
    # one commit per change, the id in each message, only the log in each commit
    assert git(ws, "log", "--format=%s").splitlines() == [
        "healthcheck log: IMP-0001 resolved: Install cron",
        "healthcheck log: IMP-0002 added: Fix VisoMaster",
        "healthcheck log: IMP-0001 added: Install cron",
    ]
    for rev in ("HEAD", "HEAD~1", "HEAD~2"):
        files = git(ws, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", rev)
        assert files.split() == ["improvement_log.md"]
    assert "Commit: abc1234\nNote: cron installed" in git(ws, "log", "-1", "--format=%b")


def test_operator_staged_files_stay_staged_through_log_changes(config: Path, ws: Path) -> None:
    git(ws, "init", "-q")
    (ws / "mine.txt").write_text("staged\n")
    git(ws, "add", "mine.txt")
    assert hc(config, "log", "add", "Check the disk").exit_code == 0
    assert git(ws, "status", "--porcelain") == "A  mine.txt\n"
    assert git(ws, "ls-tree", "--name-only", "HEAD").split() == ["improvement_log.md"]


def test_secrets_pasted_into_an_entry_are_masked_in_the_file_and_in_git(
    config: Path, ws: Path
) -> None:
    text = f"Use the token {TOKEN} for the model\nthen export HF_TOKEN={TOKEN}"
    result = hc(config, "log", "add", "-", "--source", f"chat {TOKEN}", stdin=text)
    assert result.exit_code == 0
    assert TOKEN not in result.stdout + result.stderr
    content = (ws / "improvement_log.md").read_text()
    assert TOKEN not in content
    assert "## IMP-0001: Use the token [redacted:huggingface-token] for the model" in content
    resolve = hc(config, "log", "resolve", "1", "--note", f"rotated {TOKEN}")
    assert resolve.exit_code == 0
    history = git(ws, "log", "-p", "--all", "--format=%B")
    assert TOKEN not in history and TOKEN not in (ws / "improvement_log.md").read_text()
    assert "[redacted:huggingface-token]" in history


def test_hand_edits_are_understood_and_kept_byte_for_byte(config: Path, ws: Path) -> None:
    log = ws / "improvement_log.md"
    hand = (
        "# Our improvement log\r\n"
        "\r\n"
        "Notes of mine, kept as they are.  \r\n"
        "\r\n"
        "## IMP-0007: Move models to /workspace\r\n"
        "\r\n"
        "* **Status**: Open\r\n"
        "* **Added**: 2025-04-29\r\n"
        "* Priority: high\r\n"
        "\r\n"
        "Written by hand, not quoted.\r\n"
        "\r\n"
        "## Ideas\r\n"
        "\r\n"
        "- not an entry: a list of my own\r\n"
    )
    log.write_bytes(hand.encode())
    (entry,) = ImprovementLog.load(log).entries
    assert (entry.id, entry.status, entry.added, entry.extra) == (
        "IMP-0007",
        "open",
        "2025-04-29",
        {"Priority": "high"},
    )
    assert entry.body == "Written by hand, not quoted."
    assert hc(config, "log", "add", "Next one").stdout == "Added IMP-0008: Next one\n"
    after_add = log.read_bytes().decode()
    assert after_add.startswith(hand)  # every byte of the hand-written part
    assert after_add[len(hand) :] == (
        f"\r\n## IMP-0008: Next one\r\n\r\n- Status: open\r\n- Added: {TODAY}\r\n"
    )
    assert hc(config, "log", "resolve", "IMP-0007").exit_code == 0
    resolved = log.read_bytes().decode()
    assert resolved == after_add.replace(
        "* **Status**: Open\r\n", "- Status: resolved\r\n"
    ).replace("* Priority: high\r\n", f"* Priority: high\r\n- Resolved: {TODAY}\r\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "## IMP-0001: a\n\n- Status: maybe\n",
            "{log}:3: IMP-0001 has status 'maybe'; use one of open, resolved, dismissed",
        ),
        (
            "## IMP-1: a\n\n- Status: open\n\n## IMP-0001: b\n\n- Status: open\n",
            "{log}:5: IMP-0001 appears twice",
        ),
        (
            "intro\n\n## IMP-0001: a\n\nno fields\n",
            "{log}:3: IMP-0001 has no '- Status:' line; add one (open, resolved or dismissed)",
        ),
        (
            "## IMP-two: a\n",
            "{log}:1: an entry heading must read '## IMP-0001: title', not '## IMP-two: a'",
        ),
    ],
)
def test_a_malformed_log_is_a_clear_error_and_is_never_rewritten(
    config: Path, ws: Path, text: str, message: str
) -> None:
    log = ws / "improvement_log.md"
    log.write_text(text)
    for args in (["log", "add", "x"], ["log", "list"], ["log", "resolve", "1"]):
        result = hc(config, *args)
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"healthcheck: improvement log: {message.format(log=log)}\n"
    assert log.read_text() == text
    assert not (ws / ".git").exists()


def test_usage_errors(config: Path, ws: Path) -> None:
    assert hc(config, "log", "list").stdout == f"No open entries in {ws / 'improvement_log.md'}.\n"
    empty = hc(config, "log", "add", "-", stdin="  \n")
    assert (empty.exit_code, empty.stderr) == (
        2,
        "healthcheck: improvement log: the entry is empty\n",
    )
    assert hc(config, "log", "add", "One").exit_code == 0
    missing = hc(config, "log", "resolve", "IMP-0009")
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"healthcheck: improvement log: no entry IMP-0009 in {ws / 'improvement_log.md'}\n",
    )
    bad = hc(config, "log", "resolve", "1", "--commit", "HEAD")
    assert (bad.exit_code, bad.stderr) == (
        2,
        "healthcheck: --commit: 'HEAD' is not a commit id (4 to 40 hex digits)\n",
    )
    assert hc(config, "log", "resolve", "1").exit_code == 0
    twice = hc(config, "log", "resolve", "1")
    assert (twice.exit_code, twice.stderr) == (
        2,
        f"healthcheck: improvement log: IMP-0001 is already resolved ({TODAY})\n",
    )


def test_open_entries_appear_in_the_report(config: Path, ws: Path) -> None:
    hc(config, "log", "add", "Install cron", "--source", "assistant", "--finding", "cron.x")
    hc(config, "log", "add", "Old idea")
    hc(config, "log", "resolve", "2")
    result = hc(config, "run", "--only", "env", "--no-docs", "--output", str(ws / "p" / "s.md"))
    assert result.exit_code == 0
    report = json.loads((ws / "p" / "s.json").read_text())
    assert report["improvements"] == [
        {
            "id": "IMP-0001",
            "title": "Install cron",
            "status": "open",
            "added": TODAY,
            "source": "assistant",
            "finding": "cron.x",
        }
    ]
    markdown = (ws / "p" / "s.md").read_text()
    assert (
        "## Improvement log: 1 open\n\n"
        "Recommendations already made and not yet resolved (`healthcheck log list`).\n\n"
        f"- IMP-0001 ({TODAY}, from assistant, finding cron.x): Install cron\n"
    ) in markdown


def test_a_malformed_log_is_a_finding_of_the_run_not_a_failure(config: Path, ws: Path) -> None:
    (ws / "improvement_log.md").write_text("## IMP-0001: a\n\n- Status: maybe\n")
    result = hc(config, "run", "--only", "env", "--no-docs", "--output", str(ws / "p" / "s.md"))
    assert result.exit_code == 0
    report = json.loads((ws / "p" / "s.json").read_text())
    finding = next(f for f in report["findings"] if f["id"] == "history.improvement-log-unreadable")
    assert finding["severity"] == "warn"
    assert "has status 'maybe'" in finding["detail"]


def test_a_log_change_waits_for_a_run_and_gives_up_cleanly(config: Path, ws: Path) -> None:
    from healthcheck.lock import workspace_lock

    config.write_text(config.read_text() + "[git]\nlock_timeout = 0\n")
    with workspace_lock(ws, 1):
        # flock locks are per open file: this process's second open is refused too
        result = hc(config, "log", "add", "x")
    assert result.exit_code == 3
    assert result.stderr.startswith("healthcheck: improvement log: another healthcheck run (pid ")
    assert result.stderr.endswith("; waited 0s; nothing was changed\n")
    assert not (ws / "improvement_log.md").exists()


def test_add_through_the_api_masks_with_the_redactor(tmp_path: Path) -> None:
    log = ImprovementLog.load(tmp_path / "log.md")
    entry = log.add(f"password=hunter2secret and {TOKEN}", Redactor(), source="me")
    assert entry.title == "password=[redacted] and [redacted:huggingface-token]"
    assert ImprovementLog.load(tmp_path / "log.md").entries == [entry]


def test_hand_written_fences_and_bold_fields_are_tolerated() -> None:
    text = (
        "## IMP-0002 Fix the display\n"
        "- **Status:** resolved\n"
        "- Source: me\n"
        "```\n"
        "## IMP-0003: inside a fence, not an entry\n"
        "```\n"
        "## IMP-0004: next\n"
        "\n"
        "- Status: open\n"
    )
    first, second = parse(text)
    assert (first.id, first.title, first.status, first.source) == (
        "IMP-0002",
        "Fix the display",
        "resolved",
        "me",
    )
    assert first.body == "```\n## IMP-0003: inside a fence, not an entry\n```"
    assert (second.id, second.status) == ("IMP-0004", "open")


def test_add_to_a_file_without_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "log.md"
    path.write_text("# Log\n\n## IMP-0001: a\n\n- Status: open")
    ImprovementLog.load(path).add("b", Redactor(), now=datetime(2025, 5, 1, tzinfo=timezone.utc))
    assert path.read_text() == (
        "# Log\n\n## IMP-0001: a\n\n- Status: open\n"
        "\n## IMP-0002: b\n\n- Status: open\n- Added: 2025-05-01\n"
    )


def test_a_hand_written_closed_word_is_closed_for_the_parser_and_the_text_reader(
    tmp_path: Path,
) -> None:
    """One notion of "open": `log list` (the parser) and the context's plain-text reading
    agree on a log whose statuses a person wrote."""
    from healthcheck.context import open_improvements_text
    from healthcheck.improvement_log import ImprovementLog

    path = tmp_path / "improvement_log.md"
    path.write_text(
        "## IMP-0001: a\n\n- Status: done (2025-05-01)\n\n"
        "## IMP-0002: b\n\n- Status: wontfix\n\n"
        "## IMP-0003: c\n\n- Status: open\n"
    )
    parsed = [e.id for e in ImprovementLog.load(path).entries if e.is_open]
    as_text = [i.id for i in open_improvements_text(path)]
    assert parsed == as_text == ["IMP-0003"]
