"""The docs updater, against the operator's own document (tests/fixtures, byte for byte the
seed) and real files: exact changed lines, every other byte kept, written atomically."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from healthcheck.cli import cli
from healthcheck.collectors.supervisor import parse_status
from healthcheck.collectors.supervisor.rules import program_findings
from healthcheck.config import Config
from healthcheck.docs import refresh_text, update_docs
from healthcheck.model import Section
from healthcheck.redact import Redactor
from healthcheck.report import Report

from secrets_corpus import FAKE_SECRETS
from supervisord_env import SSHD_ERROR, http_server, sshd_failing, start_supervisord
from support import Box

FIXTURE = Path(__file__).parent / "fixtures" / "docs_vast-ai-environment.md"
SEED = FIXTURE.read_bytes()
NOW = datetime(2026, 11, 29, 14, 5, 9, tzinfo=timezone.utc)
REDACTOR = Redactor.from_config(Config(), [])

# supervisorctl status as the seed box prints it; parse_status gives the collector's shape.
STATUS = """\
jupyter                          RUNNING   pid 101, uptime 1:00:00
sshd                             FATAL     Exited too quickly (process log may have details)
"""


def make_report(status: str = STATUS, *sections: Section) -> Report:
    programs, _ = parse_status(status)
    supervisor = Section.from_findings(
        "supervisor",
        {"via": "supervisorctl", "state": None, "programs": programs},
        program_findings(programs, Config()),
    )
    return Report.build([supervisor, *sections], host="box", now=NOW)


def refresh(old: bytes, report: Report | None = None, now: datetime = NOW) -> Any:
    return refresh_text(old, (report or make_report()).to_dict(), REDACTOR, now)


def presence(path: str) -> str:
    """What `[ -f PATH ]` says on this machine (the seed's paths are normally absent)."""
    return "Present" if os.path.isfile(path) else "Not found"


def check_line(path: str) -> str:
    return (
        f"- **{path}**: <!-- healthcheck:begin provisioning-check {path} -->{presence(path)}"
        "<!-- healthcheck:end provisioning-check -->"
    )


SCRIPTS = ["/vast_ai_provisioning_script.sh", "/src/provisioning_script.sh"]
SCRIPTS.append("/root/provisioning_script.sh")


def expected_seed(status_lines: list[str], stamp: str, day: str) -> bytes:
    """The seed with exactly the first run's changes, built line by line from the fixture."""
    lines = SEED.decode("utf-8").split("\n")
    assert lines[6] == "- **Last Updated**: $(date)"
    assert lines[31:34] == ["```", "$(supervisorctl status)", "```"]
    assert lines[317] == "*Last updated: April 29, 2025*"
    lines[6] = f"- **Last Updated**: {stamp}"
    lines[26:29] = [check_line(p) for p in SCRIPTS]
    lines[317] = f"*Last updated: {day}*"
    lines[31:34] = [
        "<!-- healthcheck:begin supervisorctl-status -->",
        "```",
        *status_lines,
        "```",
        "<!-- healthcheck:end supervisorctl-status -->",
    ]
    return "\n".join(lines).encode("utf-8")


SEED_STATUS = [
    "jupyter                          RUNNING   pid 101",
    "sshd                             FATAL     Exited too quickly (process log may have details)",
]


# --- the seed document ------------------------------------------------------------------------


def test_fixture_is_the_seed_byte_for_byte() -> None:
    seed = Path(__file__).parents[2] / "shared" / "seed" / "docs_vast-ai-environment.md"
    if not seed.is_file():
        pytest.skip("the shared seed is not beside this checkout")
    assert seed.read_bytes() == SEED


def test_first_run_on_the_seed_changes_exactly_these_lines() -> None:
    update = refresh(SEED)
    assert update.changed
    assert update.old_lines == (7, 27, 28, 29, 33, 318)
    assert update.new_lines == (7, 27, 28, 29, 32, 34, 35, 37, 321)
    assert update.timestamps == (7, 318)
    assert update.data == expected_seed(SEED_STATUS, "2026-11-29 14:05:09 UTC", "November 29, 2026")
    assert update.converted == (
        "$(supervisorctl status)",
        *(f'$(if [ -f {p} ]; then echo "Present"; else echo "Not found"; fi)' for p in SCRIPTS),
    )
    assert update.warnings == ()
    # The sample script's own sed line (inside its code block) is left alone.
    sed = (
        b'sed -i "s/Last updated:.*$/Last updated: $(date)/" /workspace/docs_vast-ai-environment.md'
    )
    assert update.data.count(sed) == 1
    assert not update.data.endswith(b"\n")  # the seed has no final newline; neither has this


def test_second_run_changes_only_what_the_first_wrote() -> None:
    first = refresh(SEED).data
    assert refresh(first).changed is False
    assert refresh(first).data == first

    later = refresh(first, now=NOW + timedelta(days=3, hours=1))
    assert later.old_lines == later.new_lines == (7, 321)
    assert later.data.split(b"\n")[6] == b"- **Last Updated**: 2026-12-02 15:05:09 UTC"
    assert later.data.split(b"\n")[320] == b"*Last updated: December 2, 2026*"

    stopped = STATUS.replace("RUNNING   pid 101, uptime 1:00:00", "STOPPED   Nov 29 02:00 PM")
    changed = refresh(first, make_report(stopped))
    assert changed.old_lines == changed.new_lines == (34,)
    assert changed.data.split(b"\n")[33] == (
        b"jupyter                          STOPPED   Nov 29 02:00 PM"
    )


def test_crlf_document_stays_crlf_new_lines_included() -> None:
    crlf = SEED.replace(b"\n", b"\r\n")
    update = refresh(crlf)
    assert update.old_lines == (7, 27, 28, 29, 33, 318)
    assert update.data == refresh(SEED).data.replace(b"\n", b"\r\n")
    assert refresh(update.data).changed is False


def test_an_update_prints_without_the_whole_document() -> None:
    update = refresh(SEED)
    assert update.changed and update.data
    assert "data=" not in repr(update) and "old_lines=(7, 27, 28, 29, 33, 318)" in repr(update)
    assert update.replace(data=b"") != update and update.replace(data=update.data) == update


def test_a_single_crlf_line_in_an_lf_document_keeps_its_ending() -> None:
    lines = SEED.split(b"\n")
    lines[4] += b"\r"  # line 5: the blank line after the intro paragraph
    mixed = b"\n".join(lines)
    out = refresh(mixed).data.split(b"\n")
    assert out[4] == b"\r"
    assert b"\n".join([*out[:4], b"", *out[5:]]) == refresh(SEED).data
    assert sum(1 for line in out if line.endswith(b"\r")) == 1


def test_final_newline_kept_when_there_is_one() -> None:
    update = refresh(SEED + b"\n")
    assert update.data == refresh(SEED).data + b"\n"


def test_invalid_utf8_mojibake_bom_and_stray_cr_survive() -> None:
    broken = b"Caf\xe9 \xff\xfe half a character \xc3( and a stray \r inside\n"
    stamp = b"*Last updated: April 29, 2025* \xff\xfe\n"
    lines = SEED.split(b"\n")
    doc = b"\xef\xbb\xbf" + b"\n".join([lines[0], broken[:-1], stamp[:-1], *lines[1:]])
    update = refresh(doc)
    out = update.data.split(b"\n")
    assert out[0] == b"\xef\xbb\xbf" + lines[0]
    assert out[1] == broken[:-1]
    assert out[2] == b"*Last updated: November 29, 2026* \xff\xfe"
    # The seed's mojibake (valid UTF-8 of a misdecoded dash and check mark) is kept as is.
    assert "setup\u00e2\u20ac\u201dno manual steps".encode() in SEED
    assert SEED.count("\u00e2\u0153\u2026 Fixed".encode()) == 4
    assert update.data.count("\u00e2\u0153\u2026 Fixed".encode()) == 4
    # Two lines more before the seed's own, so its changed lines move down by two.
    assert update.old_lines == (3, 9, 29, 30, 31, 35, 320)
    assert refresh(update.data).changed is False


# --- code, prose and placeholders --------------------------------------------------------------

CODE_DOC = """\
# Notes

```sh
sed -i "s/Last updated:.*$/Last updated: $(date)/" docs.md
```

    Last updated: April 1, 2025

<div>
Last updated: April 1, 2025
</div>

Inline `Last updated: April 1, 2025` stays code.

~~~
$(supervisorctl status)
echo and something else
~~~

- item

      Last updated: April 1, 2025 $(date)

Last updated: April 1, 2025
"""


def test_code_indented_code_html_and_code_spans_are_never_touched() -> None:
    update = refresh(CODE_DOC.encode())
    assert update.old_lines == update.new_lines == (24,)
    head, last = CODE_DOC.rstrip("\n").rsplit("\n", 1)
    assert last == "Last updated: April 1, 2025"
    assert update.data.decode() == f"{head}\nLast updated: November 29, 2026\n"


def test_placeholders_are_recognised_never_run(tmp_path: Path) -> None:
    present = tmp_path / "there.sh"
    present.write_text("#!/bin/sh\n")
    pwned = tmp_path / "pwned"
    doc = (
        f'- a: $(if [ -f "{present}" ]; then echo "Present"; else echo "Not found"; fi)\n'
        f"- b: $(if [ -f $HOME/x.sh ]; then echo 'Present'; else echo 'Not found'; fi)\n"
        f"- c: generated at $(date) by hand\n"
        f"- d: $(touch {pwned})\n"
        "\n"
        "$(supervisorctl status)\n"
    )
    update = refresh(doc.encode())
    assert not pwned.exists()
    assert update.data.decode() == (
        f"- a: <!-- healthcheck:begin provisioning-check {present} -->Present"
        "<!-- healthcheck:end provisioning-check -->\n"
        f"- b: $(if [ -f $HOME/x.sh ]; then echo 'Present'; else echo 'Not found'; fi)\n"
        "- c: generated at <!-- healthcheck:begin date -->2026-11-29 14:05:09 UTC"
        "<!-- healthcheck:end date --> by hand\n"
        f"- d: $(touch {pwned})\n"
        "\n"
        "<!-- healthcheck:begin supervisorctl-status -->\n"
        "```\n"
        f"{SEED_STATUS[0]}\n{SEED_STATUS[1]}\n"
        "```\n"
        "<!-- healthcheck:end supervisorctl-status -->\n"
    )
    assert update.warnings == (
        "line 2: $(if [ -f $HOME/x.sh ]; then echo 'Present'; else echo 'Not found'; fi) is "
        "left as it was: its path needs a shell",
        "line 4: a shell substitution $(...) is left as it was (never executed)",
    )
    present.unlink()
    again = refresh(update.data)
    assert again.old_lines == (1,)
    assert b"-->Not found<!--" in again.data.split(b"\n")[0]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("*Last updated: April 29, 2025*", "*Last updated: November 29, 2026*"),
        ("- **Last Updated**: $(date)", "- **Last Updated**: 2026-11-29 14:05:09 UTC"),
        ("**Last updated:** Apr 05, 2025", "**Last updated:** Nov 29, 2026"),
        ("_Last updated: 3 May 2025_", "_Last updated: 29 November 2026_"),
        ("Last updated: 2025-04-29", "Last updated: 2026-11-29"),
        ("Last updated: 2025-04-29T10:00:00Z", "Last updated: 2026-11-29T14:05:09Z"),
        ("Last updated: 2025-04-29 10:00", "Last updated: 2026-11-29 14:05 UTC"),
        ("Last-Updated: 2025-04-29 10:00:00+02:00", "Last-Updated: 2026-11-29 14:05:09+00:00"),
        (
            "Last updated: Tue Apr 29 10:00:00 UTC 2025",
            "Last updated: Sun Nov 29 14:05:09 UTC 2026",
        ),
        (
            "Last updated: April 29, 2025 at 10:00 UTC",
            "Last updated: November 29, 2026 at 14:05 UTC",
        ),
        ("> *Last updated: April 29, 2025*  ", "> *Last updated: November 29, 2026*  "),
    ],
)
def test_last_updated_keeps_its_markup_and_style(before: str, after: str) -> None:
    update = refresh(f"# Doc\n\n{before}\n".encode())
    assert update.data.decode() == f"# Doc\n\n{after}\n"
    assert update.timestamps == (3,)


def test_a_last_updated_value_that_is_no_date_is_left_with_a_warning() -> None:
    update = refresh(b"Last updated: whenever Bob feels like it\n")
    assert update.changed is False
    assert update.warnings == (
        "line 1: 'Last updated' is followed by no date this tool knows; left as it was",
    )


# --- managed blocks ---------------------------------------------------------------------------

BLOCKS_DOC = """\
# Status

<!-- healthcheck:begin findings -->
stale text
<!-- healthcheck:end findings -->

- Services:
  <!-- healthcheck:begin services -->
  <!-- healthcheck:end services -->

<!-- healthcheck:begin provisioning -->
<!-- healthcheck:end provisioning -->

<!-- healthcheck:begin mystery -->
keep me
<!-- healthcheck:end mystery -->

```
<!-- healthcheck:begin findings -->
quoted in code: not a marker
```

<!-- healthcheck:begin services -->
no end marker
"""


def provisioning_section(tmp_path: Path) -> Section:
    from healthcheck.collectors.provisioning import ProvisioningCollector

    script = tmp_path / "prov.sh"
    script.write_text("#!/bin/bash\n")
    script.chmod(0o755)
    config = Config()
    config.provisioning.scripts = [str(script), str(tmp_path / "absent.sh")]
    return ProvisioningCollector().collect(config)


def test_managed_blocks_regenerated_unknown_and_unbalanced_left(tmp_path: Path) -> None:
    report = make_report(STATUS, provisioning_section(tmp_path))
    update = refresh(BLOCKS_DOC.encode(), report)
    assert update.data.decode() == BLOCKS_DOC.replace(
        "stale text\n",
        "**Overall: CRIT** — 1 crit, 1 warn, 0 unknown.\n"
        "\n"
        "- **CRIT** sshd is FATAL (no exit status) (supervisor.program-down:sshd)\n"
        f"- **WARN** Provisioning script {tmp_path}/absent.sh is missing "
        f"(provisioning.missing:{tmp_path}/absent.sh)\n",
    ).replace(
        "  <!-- healthcheck:begin services -->\n",
        "  <!-- healthcheck:begin services -->\n"
        "  2 programs, 1 running, 1 not: sshd.\n"
        "\n"
        "  | program | state | pid | started | note |\n"
        "  |---|---|---|---|---|\n"
        "  | jupyter | RUNNING | 101 |  |  |\n"
        "  | sshd | FATAL |  |  | Exited too quickly (process log may have details) |\n",
    ).replace(
        "<!-- healthcheck:begin provisioning -->\n",
        "<!-- healthcheck:begin provisioning -->\n"
        "| script | status |\n"
        "|---|---|\n"
        f"| {tmp_path}/prov.sh | present, executable |\n"
        f"| {tmp_path}/absent.sh | **not found** |\n",
    )
    assert update.blocks == ("findings", "services", "provisioning")
    assert update.warnings == (
        "line 14: unknown managed block 'mystery'; its content was left as it was",
        "line 23: managed block 'services' has no end marker; left as it was",
    )
    assert refresh(update.data, report).changed is False


def test_finding_titles_depend_on_the_rules_table(tmp_path: Path) -> None:
    """The exact titles above come from the collectors' rules: checked here at the source."""
    report = make_report(STATUS, provisioning_section(tmp_path))
    assert [f.id for f in report.findings] == [
        "supervisor.program-down:sshd",
        f"provisioning.missing:{tmp_path}/absent.sh",
    ]


def test_a_block_skipped_collector_keeps_its_content() -> None:
    doc = b"<!-- healthcheck:begin services -->\nfrom last time\n<!-- healthcheck:end services -->"
    report = Report.build([], host="box", now=NOW)
    update = refresh(doc, report)
    assert update.changed is False
    # The placeholder waits for a run that has supervisor data.
    assert refresh(SEED, report).old_lines == (7, 27, 28, 29, 318)


def test_a_block_at_the_end_without_final_newline() -> None:
    doc = b"x\n<!-- healthcheck:begin date -->\n<!-- healthcheck:end date -->"
    update = refresh(doc)
    assert update.data == (
        b"x\n<!-- healthcheck:begin date -->\n2026-11-29 14:05:09 UTC\n"
        b"<!-- healthcheck:end date -->"
    )


def test_untrusted_text_cannot_end_a_block_and_secrets_are_masked() -> None:
    token = FAKE_SECRETS["github-classic"]
    status = (
        f"worker                           FATAL     <!-- healthcheck:end services --> {token}\n"
        "evil```name                      BACKOFF   ```\n"
    )
    doc = (
        b"<!-- healthcheck:begin services -->\n<!-- healthcheck:end services -->\n\n"
        b"```\n$(supervisorctl status)\n```\n"
    )
    update = refresh(doc, make_report(status))
    text = update.data.decode()
    assert "FAKE" not in text
    assert "--\\> \\[redacted:github-token\\] |" in text  # in the table, escaped
    assert "services --> [redacted:github-token]\n" in text  # in the status block
    assert text.count("<!-- healthcheck:end services -->") == 2  # ours, and one escaped
    assert "\\<!-- healthcheck:end services --\\>" in text
    # The status block's fence is longer than any backtick run in it.
    assert "\n````\nworker " in text
    again = refresh(update.data, make_report(status))
    assert again.changed is False
    assert again.warnings == ()


# --- files, atomicity, the pipeline and the command line ----------------------------------------


def test_update_docs_writes_atomically_and_keeps_mode_and_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.md"
    real.write_bytes(SEED)
    real.chmod(0o640)
    link = tmp_path / "docs.md"
    link.symlink_to(real)
    update = update_docs(link, make_report(), REDACTOR, NOW)
    assert update.changed
    assert link.is_symlink()
    assert real.read_bytes() == refresh(SEED).data
    assert oct(real.stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.md", "real.md"]


def test_missing_docs_file_is_a_finding(tmp_path: Path) -> None:
    update = update_docs(tmp_path / "nope.md", make_report(), REDACTOR, NOW)
    assert (update.found, update.changed) == (False, False)
    (finding,) = update.findings
    assert (finding.id, finding.severity.value) == (f"docs.missing:{tmp_path}/nope.md", "warn")
    assert finding.title == f"Docs file {tmp_path}/nope.md not found"
    assert list(tmp_path.iterdir()) == []


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_without_docs_file_reports_the_finding_and_exits_0(box: Box) -> None:
    result = invoke("run", "--config", str(box.only("provisioning")), "--no-commit")
    assert result.exit_code == 0
    report = json.loads((box.workspace / "system_status.json").read_text())
    docs = box.workspace / "docs_vast-ai-environment.md"
    (finding,) = [f for f in report["findings"] if f["collector"] == "docs"]
    assert finding["id"] == f"docs.missing:{docs}"
    assert finding["severity"] == "warn"
    assert f"Docs file {docs} not found" in (box.workspace / "system_status.md").read_text()
    assert not docs.exists()

    quiet = invoke("run", "--config", str(box.only("provisioning")), "--no-commit", "--no-docs")
    assert quiet.exit_code == 0
    report = json.loads((box.workspace / "system_status.json").read_text())
    assert [f for f in report["findings"] if f["collector"] == "docs"] == []


def test_run_refreshes_the_docs_with_the_report_time(box: Box) -> None:
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_bytes(
        SEED + b"\n<!-- healthcheck:begin nonesuch -->\n<!-- healthcheck:end nonesuch -->\n"
    )
    result = invoke("run", "--config", str(box.only("provisioning")), "--no-commit")
    assert result.exit_code == 0
    assert (
        f"healthcheck: warning: docs {docs}: line 319: unknown managed block 'nonesuch'; "
        "its content was left as it was\n"
    ) in result.stderr
    report = json.loads((box.workspace / "system_status.json").read_text())
    assert [f for f in report["findings"] if f["collector"] == "docs"] == []
    stamp = report["generated_at"].replace("T", " ").replace("Z", " UTC")
    new = docs.read_bytes().split(b"\n")
    old = SEED.split(b"\n")
    assert new[6] == f"- **Last Updated**: {stamp}".encode()
    # No supervisor in this run: its placeholder stays for a run that has the data.
    assert new[32] == b"$(supervisorctl status)"
    assert [i + 1 for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b] == [
        7,
        27,
        28,
        29,
        318,
    ]


def test_docs_update_command(box: Box) -> None:
    docs = box.workspace / "docs_vast-ai-environment.md"
    missing = invoke("docs", "update", "--config", str(box.config))
    assert (missing.exit_code, missing.stdout) == (2, "")
    assert missing.stderr == (
        f"healthcheck: docs update: {docs} not found (put the environment document there or "
        "point [paths] docs at it)\n"
    )

    box.workspace.mkdir()
    docs.write_bytes(SEED)
    first = invoke("docs", "update", "--config", str(box.config), "--only", "provisioning")
    assert (first.exit_code, first.stdout) == (0, "")
    assert first.stderr == (
        f"Updated {docs} from a fresh run: lines 7, 27-29, 318 of the new file.\n"
    )
    assert not (box.workspace / "system_status.json").exists()  # docs only: no report

    other = box.root / "other.md"
    other.write_text(
        f"- x: $(if [ -f {box.script} ]; then echo Present; else echo 'Not found'; fi)\n"
    )
    for expected in (
        "Updated {} from a fresh run: line 1 of the new file.\n",
        "{} is up to date (checked against a fresh run).\n",
    ):
        result = invoke("docs", "update", str(other), "--config", str(box.config), "--only", "env")
        assert (result.exit_code, result.stderr) == (0, expected.format(other))
    assert "-->Present<!--" in other.read_text()

    # A document refreshed throughout names its first ten ranges and counts the rest.
    stamps = box.root / "stamps.md"
    stamps.write_text(
        "".join(f"*Last updated: April {n}, 2025*\n\nText.\n\n" for n in range(1, 13))
    )
    many = invoke("docs", "update", str(stamps), "--config", str(box.config), "--only", "env")
    assert many.stderr == (
        f"Updated {stamps} from a fresh run: lines 1, 5, 9, 13, 17, 21, 25, 29, 33, 37 "
        "and 2 more lines of the new file.\n"
    )

    no_report = invoke("docs", "update", "--config", str(box.config), "--last")
    assert no_report.exit_code == 3
    json_path = box.workspace / "system_status.json"
    assert no_report.stderr == (
        f"healthcheck: --last: no report at {json_path} (run `healthcheck run` first, or leave "
        "out --last for a fresh run)\n"
    )
    assert (
        invoke("run", "--config", str(box.only("env")), "--no-commit", "--no-docs").exit_code == 0
    )
    generated = json.loads(json_path.read_text())["generated_at"]
    last = invoke("docs", "update", str(other), "--config", str(box.config), "--last")
    assert (last.exit_code, last.stderr) == (
        0,
        f"{other} is up to date (checked against the report of {generated}).\n",
    )
    both = invoke("docs", "update", "--config", str(box.config), "--last", "--only", "env")
    assert both.exit_code == 2
    assert (
        both.stderr == "healthcheck: --only and --skip select collectors to run; --last runs none\n"
    )

    absent = invoke("docs", "update", str(box.root / "absent.md"), "--config", str(box.config))
    assert absent.exit_code == 2
    assert absent.stderr == (
        f"healthcheck: docs update: {box.root / 'absent.md'} not found (put the environment "
        "document there or point [paths] docs at it)\n"
    )


def _cli(
    args: list[str], cwd: Path, preexec: Any, prefix: tuple[str, ...] | list[str] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHECK_CONFIG"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "healthcheck", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
        check=False,
    )


def test_a_failed_write_leaves_the_docs_intact_and_no_temporary(box: Box) -> None:
    """A real write failure: the file size limit (as on a full disk) stops the temporary."""
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_bytes(SEED)

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    args = ["docs", "update", "--config", str(box.config), "--only", "provisioning"]
    result = _cli(args, box.root, small_files)
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        f"healthcheck: docs update failed: cannot write {docs}: File too large; "
        "the docs file was left as it was\n"
    )
    assert docs.read_bytes() == SEED
    assert sorted(p.name for p in box.workspace.iterdir()) == [".healthcheck.lock", docs.name]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter but not write (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="hc-docs-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _python_runs_as_nobody() -> bool:
    """Root, setpriv, and an interpreter nobody may load (a pyenv build in /root may not be)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*NOBODY, sys.executable, "-c", "import healthcheck"], check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _python_runs_as_nobody(), reason="needs root, setpriv, and a Python nobody can run"
)
def test_an_unwritable_directory_leaves_the_docs_intact(shared_dir: Path) -> None:
    docs = shared_dir / "docs.md"
    docs.write_bytes(SEED)
    docs.chmod(0o644)
    config = shared_dir / "healthcheck.toml"
    config.write_text(f'[paths]\nworkspace = "{shared_dir}"\n[env]\nsource = "self"\n')

    args = ["docs", "update", str(docs), "--config", str(config), "--only", "provisioning"]
    result = _cli(args, shared_dir, None, prefix=NOBODY)
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        f"healthcheck: docs update failed: cannot write {docs}: Permission denied; "
        "the docs file was left as it was\n"
    )
    assert docs.read_bytes() == SEED
    assert sorted(p.name for p in shared_dir.iterdir()) == ["docs.md", "healthcheck.toml"]


def test_real_supervisord_status_in_the_seed_document(box: Box, tmp_path: Path) -> None:
    """The seed's `$(supervisorctl status)` block filled from a real supervisord, then kept
    fresh: a program stopped between two updates changes that one line."""
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_bytes(SEED)
    programs = {"novnc": http_server(free_port_for_test()), "sshd": sshd_failing()}
    with start_supervisord(tmp_path / "sv", programs) as sv:
        states = sv.wait_for_states({"novnc": "RUNNING", "sshd": "FATAL"})
        box.write_config(sv.toml())
        args = ["docs", "update", "--config", str(box.config), "--only", "supervisor"]
        assert invoke(*args).exit_code == 0
        lines = docs.read_text().split("\n")
        assert lines[31:37] == [
            "<!-- healthcheck:begin supervisorctl-status -->",
            "```",
            f"{'novnc':<33}RUNNING   pid {states['novnc']['pid']}, started "
            + datetime.fromtimestamp(states["novnc"]["start"], timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            f"{'sshd':<33}FATAL     Exited too quickly (process log may have details)",
            "```",
            "<!-- healthcheck:end supervisorctl-status -->",
        ]
        sv.ctl("stop", "novnc")
        before = docs.read_bytes().split(b"\n")
        assert invoke(*args).exit_code == 0
        after = docs.read_bytes().split(b"\n")
    changed = [i + 1 for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed in ([7, 34], [34])  # the timestamp too, unless the same second
    assert after[33].decode().startswith(f"{'novnc':<33}STOPPED   ")
    assert SSHD_ERROR not in docs.read_text()  # log lines are the report's, not the status's


def free_port_for_test() -> int:
    from supervisord_env import free_port

    return free_port()


def test_docs_update_waits_for_a_run_then_skips(box: Box) -> None:
    from healthcheck.lock import workspace_lock

    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_bytes(SEED)
    box.write_config("[git]\nlock_timeout = 0.2\n")
    with workspace_lock(box.workspace, 1.0):
        result = invoke("docs", "update", "--config", str(box.config), "--only", "env")
    assert result.exit_code == 0
    assert result.stderr.startswith(
        "healthcheck: skipped the docs update: another healthcheck run (pid "
    )
    assert result.stderr.endswith(f" holds {box.workspace / '.healthcheck.lock'}; waited 0.2s\n")
    assert docs.read_bytes() == SEED


# --- the structure kept between runs (healthcheck/cache.py) --------------------------------


def _structure_of(text: str, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from healthcheck import docs

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    return docs._structure(docs.split_lines(text))


def test_structure_cache_serves_a_document_changed_only_in_its_stamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthcheck import docs

    # As two runs leave it: the stamp refreshed (prose only, never inside a fence).
    first = SEED.decode().replace("$(date)", "2026-11-29 14:05:09 UTC", 1)
    stamped = first.replace("2026-11-29 14:05:09", "2027-01-30 09:59:58", 1)
    parsed = docs._parse_structure(stamped)
    _structure_of(first, tmp_path, monkeypatch)  # parsed and stored
    hits = []
    monkeypatch.setattr(docs, "_parse_structure", lambda source: hits.append(source))
    cached = _structure_of(stamped, tmp_path, monkeypatch)
    assert not hits  # served from the cache, markdown-it not asked
    assert cached == parsed  # and the same as a parse, fences' content included


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # a fence's content changes: the cached content would be stale
        ("text\n\n```\nport 1\n```\n", "text\n\n```\nport 2\n```\n"),
        # a list that does not start at 1 cannot interrupt a paragraph (here: with a fence)
        ("para\n1. ```\nx\n", "para\n2. ```\nx\n"),
        # <h1> opens an HTML block within a paragraph, <h7> is no known tag
        ("para\n<h1>\n", "para\n<h7>\n"),
        # an ordered list inside a block quote
        ("> para\n> 1. ```\n", "> para\n> 3. ```\n"),
    ],
)
def test_structure_cache_parses_again_where_digits_matter(
    before: str, after: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthcheck import docs

    _structure_of(before, tmp_path, monkeypatch)
    assert _structure_of(after, tmp_path, monkeypatch) == docs._parse_structure(after)


def test_structure_cache_unusable_is_a_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthcheck import docs

    text = SEED.decode()
    (tmp_path / "healthcheck").write_text("a file where the cache folder should be")
    assert _structure_of(text, tmp_path, monkeypatch) == docs._parse_structure(text)
