"""Rendering: nothing untrusted becomes Markdown structure; the layout is deterministic."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from markdown_it import MarkdownIt

from healthcheck.model import Finding, Section, Status
from healthcheck.redact import Redactor
from healthcheck.render import as_text, fence, inline, render_json, render_markdown
from healthcheck.report import Report

HOSTILE = [
    "```",
    "~~~~~",
    "`````` six backticks",
    "## Forged heading",
    "# Another",
    "<!-- healthcheck:begin services -->",
    "<script>alert(1)</script>",
    "<div>html block</div>",
    "| a | table |",
    "- [ ] a task",
    "[a link](http://example.invalid)",
    "    indented code",
    "-----",
    "===",
]


def hostile_report() -> Report:
    finding = Finding(
        collector="hostile",
        rule="error",
        subject="/logs/## evil <b>.log",
        severity=Status.CRIT,
        title="Error in /logs/## evil <b>.log\n## Forged heading",
        detail="`code` <!-- healthcheck:end services --> *bold*",
        hint="run `rm -rf` [here](http://x.invalid)",
        evidence=tuple(HOSTILE),
    )
    section = Section.from_findings(
        "hostile",
        {"files": [{"path": "/logs/## evil <b>.log", "lines": HOSTILE}]},
        [finding],
        volatile={"note": "## volatile heading ```"},
    )
    plain = Section.from_findings("plain", {"a": 1}, [])
    return Report.build(
        [section, plain], host="box<1>", now=datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    )


def test_fence_is_longer_than_any_run_inside() -> None:
    assert fence("plain") == "```\nplain\n```"
    assert fence(["a", "````b"]) == "`````\na\n````b\n`````"
    assert fence("~~~~~~~ tildes") == "````````\n~~~~~~~ tildes\n````````"
    assert fence("") == "```\n```"


def test_inline_escapes_structure_and_joins_lines() -> None:
    assert inline("a\n## b") == "a ## b"
    assert inline("<b>`x`</b> [l](u) | *e*") == r"\<b\>\`x\`\</b\> \[l\](u) \| \*e\*"


def test_as_text() -> None:
    assert as_text({"a": 1, "b": [1, {"c": None, "d": True}], "e": {}, "f": []}) == (
        "a: 1\nb:\n  - 1\n  - c: n/a\n    d: yes\ne: {}\nf: []"
    )


def test_untrusted_text_never_becomes_markdown_structure() -> None:
    text = render_markdown(hostile_report(), Redactor())
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == [
        r"System status: box\<1\>, 2026-11-28 12:00:00 UTC",
        "Findings",
        "hostile: crit",
        "plain: ok",
        "Volatile figures",
    ]
    assert [t.type for t in tokens if t.type.startswith(("html", "table", "hr"))] == []
    inline_children = [c for t in tokens if t.children for c in t.children]
    assert [c.type for c in inline_children if c.type in ("html_inline", "link_open")] == []
    fences = [t for t in tokens if t.type == "fence"]
    # evidence, the logs data, the plain data and the volatile figures: four blocks
    assert len(fences) == 4
    assert fences[0].content.splitlines() == HOSTILE
    assert "<!-- healthcheck:" not in "".join(
        t.content for t in tokens if t.type not in ("fence", "code_block", "inline")
    )


def test_json_report_shape() -> None:
    data = json.loads(render_json(hostile_report(), Redactor()))
    assert data["schema"] == "healthcheck/report/v1"
    assert data["generated_at"] == "2026-11-28T12:00:00Z"
    assert data["host"] == "box<1>"
    assert data["status"] == "crit"
    assert data["counts"] == {"crit": 1, "warn": 0, "unknown": 0, "ok": 0}
    assert data["findings"][0]["id"] == "hostile.error:/logs/## evil <b>.log"
    assert data["sections"]["plain"] == {
        "status": "ok",
        "duration_ms": 0,
        "error": None,
        "data": {"a": 1},
        "volatile": {},
    }


@pytest.mark.parametrize(
    "statuses,overall",
    [
        ([], Status.OK),
        ([Status.UNKNOWN], Status.UNKNOWN),
        ([Status.UNKNOWN, Status.WARN], Status.UNKNOWN),  # could not look > saw a warning
        ([Status.CRIT, Status.WARN, Status.UNKNOWN], Status.CRIT),
    ],
)
def test_overall_status_is_the_worst(statuses: list[Status], overall: Status) -> None:
    findings = [Finding("c", f"r{i}", "", s, "t") for i, s in enumerate(statuses)]
    report = Report.build([Section.from_findings("c", {}, findings)], host="h")
    assert report.status is overall
    assert [f.severity for f in report.findings] == sorted(statuses, key=lambda s: -s.rank)


def test_a_failed_section_makes_the_run_unknown() -> None:
    report = Report.build([Section.failed("gpu", "NVML library not found")], host="h")
    assert report.status is Status.UNKNOWN
    assert [(f.id, f.severity, f.title, f.detail) for f in report.findings] == [
        (
            "gpu.collector-failed",
            Status.UNKNOWN,
            "The gpu collector could not run",
            "NVML library not found",
        )
    ]
    text = render_markdown(report, Redactor())
    assert "Could not collect: NVML library not found" in text
