"""The supervisor program record: JSON only at the edge, and read back from a report."""

from __future__ import annotations

import json

from healthcheck.model import Section
from healthcheck.program import _COPIED, Program, programs_of

from programs import program


def test_a_section_holds_records_and_its_json_holds_tables() -> None:
    worker = Program(group="batch", name="worker", state="RUNNING", pid=42)
    worker.diagnosis_log = {"stderr": ["a longer tail"]}
    section = Section.from_findings("supervisor", {"programs": [worker], "via": "xmlrpc"}, [])
    data = json.loads(json.dumps(section.to_dict()["data"]))
    assert data["via"] == "xmlrpc"
    (table,) = data["programs"]
    assert table["fullname"] == "batch:worker" and table["pid"] == 42
    report_order = (
        "group name fullname state pid started stopped exitstatus exitstatus_source exitsignal "
        "spawnerr description stdout_logfile stderr_logfile log log_source log_errors "
        "error_lines supervisord_log"
    )
    assert list(table) == report_order.split()
    assert "a longer tail" not in json.dumps(data)  # the diagnosis's tails never reach a report


def test_every_field_of_a_program_but_the_diagnosis_tails_reaches_the_report() -> None:
    # A field added to the record but not to what a report copies would be lost silently.
    assert sorted({"group", "name", "diagnosis_log", *_COPIED}) == sorted(Program.__slots__)


def test_a_report_entry_reads_back_as_the_same_record() -> None:
    sshd = program("sshd", exitstatus=255, stderr="Missing privilege separation directory")
    assert Program.from_dict(json.loads(json.dumps(sshd.to_dict()))) == sshd


def test_an_older_or_odd_report_entry_reads_back_without_failing() -> None:
    got = programs_of([{"fullname": "batch:worker", "name": "worker"}, "junk", None, {}])
    assert [(p.group, p.name, p.fullname, p.state) for p in got] == [
        ("batch", "worker", "batch:worker", "UNKNOWN"),
        ("", "", "", "UNKNOWN"),
    ]
    assert programs_of("not a list") == []
