"""The provisioning collector against real files (CI runs as root: mode bits, not access)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from healthcheck.collectors.provisioning import ProvisioningCollector
from healthcheck.config import parse_config
from healthcheck.model import Section, Status

SCRIPT = "#!/bin/bash\nset -e\necho provisioning\n"


def script(path: Path, text: str = SCRIPT, mode: int = 0o755) -> Path:
    path.write_text(text, newline="")
    path.chmod(mode)
    return path


def collect(*paths: Path) -> Section:
    config = parse_config({"provisioning": {"scripts": [str(p) for p in paths]}})
    section = ProvisioningCollector().collect(config)
    json.dumps(section.data)
    return section


def ids(section: Section) -> list[tuple[str, Status]]:
    return [(f.id, f.severity) for f in section.findings]


def test_every_kind_of_trouble_once(tmp_path: Path) -> None:
    good = script(tmp_path / "good.sh")
    plain = script(tmp_path / "plain.sh", mode=0o644)
    empty = script(tmp_path / "empty.sh", "")
    folder = tmp_path / "folder.sh"
    folder.mkdir()
    missing = tmp_path / "src" / "missing.sh"
    section = collect(good, plain, empty, folder, missing)
    assert ids(section) == [
        (f"provisioning.not-executable:{plain}", Status.WARN),
        (f"provisioning.empty:{empty}", Status.WARN),
        (f"provisioning.not-a-file:{folder}", Status.WARN),
        (f"provisioning.missing:{missing}", Status.WARN),
    ]
    assert section.status is Status.WARN
    # In the configured order: the order the on-start script runs them.
    assert [s["path"] for s in section.data["scripts"]] == [
        str(p) for p in (good, plain, empty, folder, missing)
    ]
    by_rule = {f.rule: f for f in section.findings}
    assert by_rule["not-executable"].hint == f"chmod +x {plain}"
    assert by_rule["not-a-file"].title == f"Provisioning script {folder} is a directory"


def test_a_good_script_and_its_fingerprint(tmp_path: Path) -> None:
    good = script(tmp_path / "provisioning_script.sh")
    mtime = datetime(2025, 4, 29, 12, 30, 5, tzinfo=timezone.utc).timestamp()
    os.utime(good, (mtime, mtime))
    section = collect(good)
    assert (section.status, section.findings) == (Status.OK, [])
    assert section.data == {
        "scripts": [
            {
                "path": str(good),
                "present": True,
                "kind": "file",
                "executable": True,
                "size": len(SCRIPT),
                "modified": "2025-04-29T12:30:05Z",
                "sha256": hashlib.sha256(SCRIPT.encode()).hexdigest()[:12],
                "first_line": "#!/bin/bash",
                "crlf": False,
                "link_target": None,
                "error": None,
            }
        ]
    }


def test_drift_changes_the_fingerprint(tmp_path: Path) -> None:
    path = script(tmp_path / "s.sh")
    before = collect(path).data["scripts"][0]["sha256"]
    script(path, SCRIPT + "pip install -r requirements.txt\n")
    after = collect(path).data["scripts"][0]["sha256"]
    assert before != after


def test_any_execute_bit_counts(tmp_path: Path) -> None:
    # Root may run anything by os.access, but exec(2) needs an x bit somewhere.
    owner_only = script(tmp_path / "owner.sh", mode=0o700)
    others_only = script(tmp_path / "others.sh", mode=0o601)
    none = script(tmp_path / "none.sh", mode=0o600)
    section = collect(owner_only, others_only, none)
    assert [s["executable"] for s in section.data["scripts"]] == [True, True, False]
    assert ids(section) == [(f"provisioning.not-executable:{none}", Status.WARN)]


def test_empty_is_reported_instead_of_not_executable(tmp_path: Path) -> None:
    empty = script(tmp_path / "empty.sh", "", mode=0o644)
    assert ids(collect(empty)) == [(f"provisioning.empty:{empty}", Status.WARN)]


def test_windows_line_endings(tmp_path: Path) -> None:
    crlf = script(tmp_path / "crlf.sh", SCRIPT.replace("\n", "\r\n"))
    both = script(tmp_path / "both.sh", SCRIPT.replace("\n", "\r\n"), mode=0o644)
    section = collect(crlf, both)
    assert ids(section) == [
        (f"provisioning.crlf-line-endings:{crlf}", Status.WARN),
        (f"provisioning.not-executable:{both}", Status.WARN),
        (f"provisioning.crlf-line-endings:{both}", Status.WARN),
    ]
    assert section.data["scripts"][0]["first_line"] == "#!/bin/bash"  # no stray \r
    assert section.findings[0].hint == f"sed -i 's/\\r$//' {crlf}"


def test_symlinks(tmp_path: Path) -> None:
    target = script(tmp_path / "real.sh")
    link = tmp_path / "link.sh"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.sh"
    dangling.symlink_to(tmp_path / "gone.sh")
    section = collect(link, dangling)
    linked, broken = section.data["scripts"]
    assert (linked["present"], linked["executable"], linked["link_target"]) == (
        True,
        True,
        str(target),
    )
    assert (broken["present"], broken["link_target"]) == (False, str(tmp_path / "gone.sh"))
    (finding,) = section.findings
    assert (finding.id, finding.severity) == (f"provisioning.missing:{dangling}", Status.WARN)
    assert f"a symlink to {tmp_path / 'gone.sh'}, which does not exist" in finding.detail


def test_a_fifo_is_not_opened(tmp_path: Path) -> None:
    # Opening a FIFO would block until a writer comes: it must only be stat'ed.
    fifo = tmp_path / "fifo.sh"
    os.mkfifo(fifo)
    section = collect(fifo)
    assert section.data["scripts"][0]["kind"] == "fifo"
    assert section.data["scripts"][0]["sha256"] is None
    assert ids(section) == [(f"provisioning.not-a-file:{fifo}", Status.WARN)]


def test_long_or_binary_first_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "odd.sh"
    path.write_bytes(b"#!/bin/sh " + b"a" * 500 + b"\xff\n")
    path.chmod(0o755)
    first = collect(path).data["scripts"][0]["first_line"]
    assert first == "#!/bin/sh " + "a" * 110


def test_paths_with_spaces_get_quoted_hints(tmp_path: Path) -> None:
    plain = script(tmp_path / "my script.sh", mode=0o644)
    (finding,) = collect(plain).findings
    assert finding.hint == f"chmod +x '{plain}'"
