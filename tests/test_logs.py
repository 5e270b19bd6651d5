"""Log tails and the logs collector, on real files in a temporary directory."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from healthcheck.collectors.logs import LogsCollector
from healthcheck.config import Config, LogsConfig
from healthcheck.logtail import (
    MAX_DEPTH,
    MAX_READ_BYTES,
    MIN_READ_BYTES,
    Tail,
    looks_like_error,
    read_budget,
    read_tail,
)
from healthcheck.model import Collector, Status

GIB = 1024**3


def write(path: Path, data: bytes | str, mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def finishes(fn: Callable[[], object], seconds: float = 20.0) -> object:
    """Run fn in a thread; fail (instead of hanging the suite) if it never returns."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, "blocked: it never returned"
    return result[0]


# --- read_tail: which lines ---------------------------------------------------------------


def test_exactly_the_last_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", "".join(f"line {i}\n" for i in range(1, 101)))
    tail = read_tail(f, 3)
    assert tail.lines == ("line 98", "line 99", "line 100")
    assert tail.error is None and not tail.binary and not tail.empty
    assert tail.size == f.stat().st_size
    assert tail.whole_file  # 100 short lines fit in the first block


def test_fewer_lines_than_asked_and_no_final_newline(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", "first\n\nthird")
    assert read_tail(f, 20).lines == ("first", "", "third")
    assert read_tail(f, 1).lines == ("third",)


@pytest.mark.parametrize("n", [1, 7, 50, 333])
def test_lines_across_block_boundaries(tmp_path: Path, n: int) -> None:
    # Lines of varied lengths so that block edges fall inside lines and on newlines.
    text = [f"{i:05d} " + "x" * (i * 37 % 700) for i in range(3000)]
    f = write(tmp_path / "a.log", "\n".join(text) + "\n")
    tail = read_tail(f, n)
    assert list(tail.lines) == text[-n:]
    assert not tail.whole_file
    assert tail.bytes_read <= read_budget(n, 4096)


def test_line_count_zero_reads_nothing(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", "a\nb\n")
    tail = read_tail(f, 0)
    assert tail.lines == () and tail.bytes_read == 0 and tail.size == 4


def test_empty_file(tmp_path: Path) -> None:
    tail = read_tail(write(tmp_path / "e.log", b""), 20)
    assert tail == Tail(
        path=str(tmp_path / "e.log"),
        size=0,
        mtime=tail.mtime,
        empty=True,
        whole_file=True,
    )
    assert tail.mtime is not None and tail.mtime.endswith("Z")


# --- read_tail: bounded reads -----------------------------------------------------------------


def test_sparse_8_gib_file_reads_only_its_end(tmp_path: Path) -> None:
    f = tmp_path / "huge.log"
    f.touch()
    os.truncate(f, 8 * GIB)  # sparse: no disk used
    with f.open("ab") as out:
        out.write(b"one\ntwo\nthree\nfour\nfive\n")
    tail = read_tail(f, 3)
    assert tail.lines == ("three", "four", "five")
    assert tail.size == 8 * GIB + 24
    assert 0 < tail.bytes_read <= 64 * 1024
    # Asking for more lines than were written: the hole before them is no line, and no
    # reason to call the file binary; the read still stops at the budget.
    tail = read_tail(f, 20)
    assert tail.lines == ("one", "two", "three", "four", "five")
    assert not tail.binary
    assert tail.bytes_read == read_budget(20, 4096)


def test_sparse_file_with_no_text_is_binary(tmp_path: Path) -> None:
    f = tmp_path / "zeros.log"
    f.touch()
    os.truncate(f, 8 * GIB)
    tail = read_tail(f, 20)
    assert tail.binary and tail.lines == ()
    assert tail.bytes_read == read_budget(20, 4096)


def test_read_budget_bounds() -> None:
    assert read_budget(1, 10) == MIN_READ_BYTES
    assert read_budget(20, 4096) == 2 * 20 * 4097
    assert read_budget(10_000, 1024 * 1024) == MAX_READ_BYTES


# --- read_tail: long lines ----------------------------------------------------------------------


def test_5_mb_single_line_is_cut_with_marker(tmp_path: Path) -> None:
    f = write(tmp_path / "one.log", b"A" * 5_000_000 + b"\n")
    tail = read_tail(f, 20, max_line_bytes=4096)
    budget = read_budget(20, 4096)
    assert tail.bytes_read == budget
    # The line began before the bytes read: its length is only known to be at least that.
    assert tail.lines == (f"[line cut: at least {budget - 1} bytes] … " + "A" * 4096,)
    assert tail.truncated_lines == 1


def test_long_line_inside_the_window_is_cut_exactly(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", "start\n" + "x" * 10_000 + "\nend\n")
    tail = read_tail(f, 2, max_line_bytes=4096)
    assert tail.lines == ("x" * 4096 + " … [line cut: 10000 bytes]", "end")
    assert tail.truncated_lines == 1


def test_cut_never_splits_a_character(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", ("é" * 10 + "\n").encode())  # 2 bytes each
    tail = read_tail(f, 1, max_line_bytes=5)
    assert tail.lines == ("éé … [line cut: 20 bytes]",)


def test_short_partial_first_line_is_dropped(tmp_path: Path) -> None:
    # 200-byte lines, budget of 64 KiB: the window starts 9 bytes before the end of a line,
    # a piece shorter than max_line_bytes, so it is dropped rather than shown as cut.
    text = [f"{i:04d}" + "y" * 196 for i in range(1000)]
    f = write(tmp_path / "a.log", "\n".join(text) + "\n")
    tail = read_tail(f, 500, max_line_bytes=60)
    assert tail.bytes_read == MIN_READ_BYTES
    assert MIN_READ_BYTES % 201 == 10
    assert len(tail.lines) == MIN_READ_BYTES // 201
    assert tail.lines[0].startswith(f"{1000 - MIN_READ_BYTES // 201:04d}yyy")
    assert tail.lines[-1] == "0999" + "y" * 56 + " … [line cut: 200 bytes]"
    assert tail.truncated_lines == len(tail.lines)


# --- read_tail: text cleaning -------------------------------------------------------------------


def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", b"caf\xe9 au lait\nok \xff\xfe done\n")
    tail = read_tail(f, 5)
    assert tail.lines == ("caf\ufffd au lait", "ok \ufffd\ufffd done")
    assert not tail.binary


def test_ansi_colours_and_osc_are_removed(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.log",
        b"\x1b[31mERROR\x1b[0m boom\n"
        b"\x1b]0;window title\x07plain \x1b[1;32mgreen\x1b[m\n"
        b"\x1b]8;;http://x.example\x1b\\link\x1b]8;;\x1b\\ text\x1b(B\n",
    )
    assert read_tail(f, 5).lines == ("ERROR boom", "plain green", "link text")


def test_progress_bars_keep_their_last_state(tmp_path: Path) -> None:
    f = write(
        tmp_path / "a.log",
        b"Downloading  10%\rDownloading  50%\rDownloading 100%\n"
        b"\r\x1b[2Kstep 1/3\rstep 3/3\r\n"
        b"loading  99%\r   \r\n"
        b"done\n",
    )
    assert read_tail(f, 5).lines == ("Downloading 100%", "step 3/3", "loading  99%", "done")


def test_crlf_line_endings(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", b"one\r\ntwo\r\nthree\r\n")
    assert read_tail(f, 2).lines == ("two", "three")


def test_control_characters_removed_but_tabs_kept(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", "a\tb\x07c\x08d\x00e\x7ff\u0085g\n")
    assert read_tail(f, 1).lines == ("a\tbcdefg",)


def test_endless_progress_bar_without_newline(tmp_path: Path) -> None:
    # tqdm writing to a file: megabytes of \r-redraws and no newline at all.
    f = write(tmp_path / "a.log", b"".join(b"\r%d it" % i for i in range(400_000)))
    tail = read_tail(f, 20)
    assert tail.lines == ("399999 it",)
    assert tail.truncated_lines == 0


# --- read_tail: not text, not readable ----------------------------------------------------------


def test_binary_file(tmp_path: Path) -> None:
    f = write(tmp_path / "core.log", bytes(range(256)) * 64)
    tail = read_tail(f, 20)
    assert tail.binary and tail.lines == () and tail.error is None


def test_elf_like_binary(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x03\x00>\x00" * 500)
    assert read_tail(f, 20).binary


def test_a_stray_nul_does_not_hide_a_log(tmp_path: Path) -> None:
    f = write(tmp_path / "a.log", b"started\nvalue\x00 written\nstopped\n")
    tail = read_tail(f, 5)
    assert not tail.binary
    assert tail.lines == ("started", "value written", "stopped")


def test_missing_file(tmp_path: Path) -> None:
    tail = read_tail(tmp_path / "nope.log", 5)
    assert tail.error == "no such file" and tail.lines == () and tail.size is None


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "x.log").mkdir()
    tail = read_tail(tmp_path / "x.log", 5)
    assert tail.error == "is a directory"


def test_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "x.log").symlink_to(tmp_path / "gone" / "x.log")
    tail = read_tail(tmp_path / "x.log", 5)
    assert tail.error == f"dangling symlink to {tmp_path / 'gone' / 'x.log'}"


def test_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.log").symlink_to(tmp_path / "b.log")
    (tmp_path / "b.log").symlink_to(tmp_path / "a.log")
    assert read_tail(tmp_path / "a.log", 5).error == "symlink loop"


def test_fifo_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "x.log"
    os.mkfifo(fifo)
    tail = finishes(lambda: read_tail(fifo, 5))
    assert isinstance(tail, Tail)
    assert tail.error == "not a regular file (a FIFO)"


def test_symlink_to_a_log_is_followed(tmp_path: Path) -> None:
    target = write(tmp_path / "real" / "app.log", "hello\n")
    (tmp_path / "app.log").symlink_to(target)
    assert read_tail(tmp_path / "app.log", 5).lines == ("hello",)


# --- looks_like_error -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "ERROR: could not bind to port 8080",
        "2025-04-29 10:00:00,123 [error] something broke",
        "level=error msg=boom",
        "Traceback (most recent call last):",
        "ModuleNotFoundError: No module named 'PySide6'",
        "torch.cuda.OutOfMemoryError: CUDA out of memory.",
        "IceWM: Can't open display: :1. X must be running and $DISPLAY set.",
        "icewm: cannot open display :1",
        "bash: /opt/run.sh: Permission denied",
        "sh: 1: visomaster: not found",
        "python: can't open file '/app/main.py': [Errno 2] No such file or directory",
        "Failed to start service",
        "INFO exited: sshd (exit status 255; not expected)",
        "process exited with code 1",
        "Segmentation fault (core dumped)",
        "FATAL: password authentication failed",
        "panic: runtime error: index out of range",
        "Killed",
        "gave up: sshd entered FATAL state, too many start retries too quickly",
        "3 errors occurred",
        "Unable to locate package foo",
    ],
)
def test_error_lines(line: str) -> None:
    assert looks_like_error(line)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "INFO success: sshd entered RUNNING state, process has stayed up for > than 1 seconds",
        "Epoch 3: loss=0.12 errors=0",
        "Finished: 0 errors, 0 failures",
        "No errors found",
        "completed without errors",
        "failed: 0, passed: 12",
        "stderr_logfile=/logs/sshd.err",
        "logging to /logs/error.log",
        "--on-error=continue",
        "exited: job (exit status 0; expected)",
        "[I 10:00] Jupyter Server is running at http://0.0.0.0:8080/",
        "non-fatal warning: font cache rebuilt",
    ],
)
def test_not_error_lines(line: str) -> None:
    assert not looks_like_error(line)


# --- the collector ------------------------------------------------------------------------------


def config_for(*dirs: Path | str, **logs: object) -> Config:
    return Config(logs=LogsConfig(dirs=[str(d) for d in dirs], **logs))  # type: ignore[arg-type]


def test_collector_contract() -> None:
    collector = LogsCollector()
    assert isinstance(collector, Collector)
    assert LogsCollector.name == "logs"
    assert LogsCollector.timeout is None
    assert LogsCollector.description and "\n" not in LogsCollector.description


def test_no_log_dir_at_all(tmp_path: Path) -> None:
    a, b = tmp_path / "logs", tmp_path / "Logs"
    section = LogsCollector().collect(config_for(a, b))
    assert section.status is Status.UNKNOWN
    [finding] = section.findings
    assert finding.rule == "no-log-dir" and finding.severity is Status.UNKNOWN
    assert finding.title == f"no log directory found: {a}, {b}"
    assert [d["exists"] for d in section.data["dirs"]] == [False, False]
    assert section.data["files"] == [] and section.data["left_out"] == 0


def test_one_missing_dir_is_data_not_a_finding(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "vnc.log", "Xvnc started\n")
    section = LogsCollector().collect(config_for(logs, tmp_path / "Logs"))
    assert section.status is Status.OK and section.findings == []
    assert section.data["dirs"] == [
        {
            "path": str(logs),
            "exists": True,
            "same_as": None,
            "error": None,
            "notes": [],
            "matched": 1,
        },
        {
            "path": str(tmp_path / "Logs"),
            "exists": False,
            "same_as": None,
            "error": None,
            "notes": [],
            "matched": 0,
        },
    ]
    assert section.data["files"] == [
        {
            "path": str(logs / "vnc.log"),
            "size": 13,
            "mtime": section.data["files"][0]["mtime"],
            "empty": False,
            "binary": False,
            "error": None,
            "truncated_lines": 0,
            "lines": ["Xvnc started"],
            "error_lines": [],
        }
    ]


def test_patterns_subdirs_and_rotated_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "app.log", "a\n", mtime=1000)
    write(logs / "app.log.1", "rotated\n", mtime=2000)
    write(logs / "app.log.2.gz", b"\x1f\x8b", mtime=2000)
    write(logs / "notes.txt", "x\n", mtime=2000)
    write(logs / "jupyter" / "server.log", "j\n", mtime=3000)
    write(logs / "APP.LOG", "upper\n", mtime=500)  # patterns match case-sensitively
    deep = logs / "1" / "2" / "3" / "4"
    write(deep / "deep.log", "deep enough\n", mtime=100)
    write(deep / "5" / "too-deep.log", "too deep\n", mtime=100)
    section = LogsCollector().collect(config_for(logs))
    paths = [f["path"] for f in section.data["files"]]
    assert paths == [
        str(logs / "jupyter" / "server.log"),
        str(logs / "app.log"),
        str(deep / "deep.log"),
    ]
    assert section.data["dirs"][0]["notes"] == [
        f"{deep / '5'}: deeper than {MAX_DEPTH} levels, not searched"
    ]
    extra = config_for(logs, patterns=["*.log", "*.log.[0-9]"])
    paths = [f["path"] for f in LogsCollector().collect(extra).data["files"]]
    assert str(logs / "app.log.1") in paths and str(logs / "app.log.2.gz") not in paths


def test_max_files_newest_first_and_left_out(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for i in range(12):
        write(logs / f"svc{i:02d}.log", f"svc {i}\n", mtime=10_000 + i)
    write(logs / "tie-b.log", "b\n", mtime=20_000)
    write(logs / "tie-a.log", "a\n", mtime=20_000)
    # Walked after the folder's own files, first by path: equal times go by path, not walk.
    write(logs / "a-dir" / "tie.log", "a-dir\n", mtime=20_000)
    section = LogsCollector().collect(config_for(logs, max_files=5))
    paths = [str(Path(f["path"]).relative_to(logs)) for f in section.data["files"]]
    assert paths == ["a-dir/tie.log", "tie-a.log", "tie-b.log", "svc11.log", "svc10.log"]
    assert section.data["matched"] == 15
    assert section.data["left_out"] == 10


def test_tail_lines_setting_is_used(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "a.log", "".join(f"{i}\n" for i in range(50)))
    section = LogsCollector().collect(config_for(logs, tail_lines=3))
    assert section.data["files"][0]["lines"] == ["47", "48", "49"]


def test_same_directory_twice_is_read_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "a.log", "a\n")
    (tmp_path / "Logs").symlink_to(logs, target_is_directory=True)
    section = LogsCollector().collect(config_for(logs, tmp_path / "Logs", logs))
    dirs = section.data["dirs"]
    assert [d["same_as"] for d in dirs] == [None, str(logs), str(logs)]
    assert [f["path"] for f in section.data["files"]] == [str(logs / "a.log")]


def test_overlapping_dirs_and_symlink_loops(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "sub" / "a.log", "a\n")
    (logs / "sub" / "loop").symlink_to(logs, target_is_directory=True)
    (logs / "sub" / "self").symlink_to(logs / "sub", target_is_directory=True)
    section = finishes(lambda: LogsCollector().collect(config_for(logs, logs / "sub")))
    files = section.data["files"]  # type: ignore[attr-defined]
    assert [f["path"] for f in files] == [str(logs / "sub" / "a.log")]
    # Each folder is walked once: no loop runs into the depth limit.
    assert [d["notes"] for d in section.data["dirs"]] == [[], []]  # type: ignore[attr-defined]


def test_unreadable_logs_are_unknown_findings(tmp_path: Path) -> None:
    # Tests run as root, where permission bits stop nothing: use things that are no file.
    logs = tmp_path / "logs"
    write(logs / "ok.log", "fine\n", mtime=1000)
    (logs / "dir.log").mkdir()
    write(logs / "dir.log" / "inner.log", "inside\n", mtime=900)
    (logs / "dangling.log").symlink_to(tmp_path / "nowhere.log")
    os.mkfifo(logs / "pipe.log")
    section = finishes(lambda: LogsCollector().collect(config_for(logs)))
    assert section.status is Status.UNKNOWN  # type: ignore[attr-defined]
    by_path = {f.subject: f for f in section.findings}  # type: ignore[attr-defined]
    assert set(by_path) == {str(logs / n) for n in ("dir.log", "dangling.log", "pipe.log")}
    assert all(f.rule == "log-unreadable" for f in by_path.values())
    assert all(f.severity is Status.UNKNOWN for f in by_path.values())
    errors = {Path(f["path"]).name: f["error"] for f in section.data["files"]}  # type: ignore[attr-defined]
    assert errors == {
        "ok.log": None,
        "inner.log": None,
        "dir.log": "is a directory",
        "dangling.log": f"dangling symlink to {tmp_path / 'nowhere.log'}",
        "pipe.log": "not a regular file (a FIFO)",
    }


def test_log_dir_that_is_a_file(tmp_path: Path) -> None:
    f = write(tmp_path / "logs", "not a dir\n")
    section = LogsCollector().collect(config_for(f))
    [finding] = section.findings
    assert finding.rule == "log-dir-unreadable" and finding.severity is Status.UNKNOWN
    assert section.data["dirs"][0]["error"] == "not a directory"


def test_log_ending_with_an_error_is_a_warning(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(
        logs / "visomaster.log",
        "Starting VisoMaster\n"
        "Traceback (most recent call last):\n"
        '  File "/app/main.py", line 1, in <module>\n'
        "ModuleNotFoundError: No module named 'PySide6'\n",
        mtime=2000,
    )
    write(
        logs / "sshd.log", "error: bind failed\nServer listening on 0.0.0.0 port 22.\n" + "ok\n" * 5
    )
    section = LogsCollector().collect(config_for(logs))
    files = {Path(f["path"]).name: f for f in section.data["files"]}
    assert files["visomaster.log"]["error_lines"] == [1, 3]
    assert files["sshd.log"]["error_lines"] == [0]
    [finding] = section.findings  # the sshd error is history: more output followed it
    assert finding.rule == "log-ends-with-error"
    assert finding.subject == str(logs / "visomaster.log")
    assert finding.severity is Status.WARN and section.status is Status.WARN
    assert finding.evidence == (
        "Traceback (most recent call last):",
        "ModuleNotFoundError: No module named 'PySide6'",
    )
    assert "PySide6" not in finding.title + finding.detail  # log text stays in the evidence


def test_binary_and_empty_logs_in_data(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write(logs / "empty.log", b"", mtime=1000)
    write(logs / "bin.log", bytes(range(256)) * 8, mtime=900)
    section = LogsCollector().collect(config_for(logs))
    files = {Path(f["path"]).name: f for f in section.data["files"]}
    assert files["empty.log"]["empty"] and files["empty.log"]["lines"] == []
    assert files["bin.log"]["binary"] and files["bin.log"]["lines"] == []
    assert section.findings == []


def test_data_is_json_and_deterministic(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for i in range(5):
        write(logs / f"s{i}.log", f"\x1b[32mline {i}\x1b[0m\nERROR x\n", mtime=5000)
    cfg = config_for(logs, tmp_path / "Logs")
    first = LogsCollector().collect(cfg)
    second = LogsCollector().collect(cfg)
    assert json.dumps(first.data, sort_keys=True) == json.dumps(second.data, sort_keys=True)
    assert json.loads(json.dumps(first.data)) == first.data
    assert [f.id for f in first.findings] == [f.id for f in second.findings]
    assert first.volatile == {}


def test_default_dirs() -> None:
    assert LogsConfig().dirs == ["/logs", "/Logs"]
    assert LogsCollector().collect(Config()).data["patterns"] == ["*.log"]


def test_a_shared_window_gives_each_caller_exactly_its_own_read_tail(tmp_path: Path) -> None:
    """The run's one read of a log, cut for each caller in place, is byte for byte what
    that caller's own read_tail returns: long lines, short files, CRLF, NULs, binary."""
    import random

    from healthcheck import logtail

    rng = random.Random(5)
    pieces = [b"x" * 7000, b"short", b"", b"\r\n", b"\0\0\0", bytes(range(256)), b"\n\n"]
    for case in range(25):
        path = tmp_path / f"log{case}.log"
        body = b"".join(
            rng.choice(pieces) + b" line %d\n" % n for n in range(rng.randrange(0, 400))
        )
        if rng.random() < 0.3:
            body += b"y" * rng.randrange(1, 300_000)  # a last line with no newline
        path.write_bytes(body)
        window = logtail._read_file(str(path), 200, 4096)
        for lines in range(201):
            own = logtail.read_tail(path, lines, 4096)
            shared = window if isinstance(window, logtail.Tail) else window.tail(lines, 4096)
            assert shared == own, (case, lines)
    # Lines of 16 bytes: the first 16 KiB block holds exactly 1,024 newlines, the last one
    # the file's own terminator (which starts no line).
    path = tmp_path / "even.log"
    path.write_bytes(b"".join(b"line %010d\n" % n for n in range(3000)))
    window = logtail._read_file(str(path), 1100, 4096)
    assert not isinstance(window, logtail.Tail)
    for lines in (1023, 1024, 1025, 1100):
        assert window.tail(lines, 4096) == logtail.read_tail(path, lines, 4096), lines


def test_a_long_line_is_judged_by_what_a_tail_can_show_of_it(tmp_path: Path) -> None:
    """Text at both ends of a long line with binary bytes between: the line is shown cut
    (its head), not hidden as binary; a line binary at its ends still is."""
    from healthcheck.logtail import read_tail

    text_ends = tmp_path / "text.log"
    text_ends.write_bytes(b"ok\n" + b"a" * 8192 + b"\x01\xff" * 20_000 + b"z" * 8192 + b"\n")
    tail = read_tail(text_ends, 5, 4096)
    assert not tail.binary
    assert tail.lines[-1].startswith("a" * 4096 + " … [line cut: ")
    binary_ends = tmp_path / "binary.log"
    binary_ends.write_bytes(b"\x01\xff" * 2_500_000 + b"\n")
    assert read_tail(binary_ends, 5, 4096).binary
