"""The workspace history on real git repositories: only our files are committed, the
operator's staged and modified work stays as it was, pushes time out, runs take a lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import git
import pytest
from click.testing import CliRunner

from healthcheck.cli import cli
from healthcheck.config import Config, parse_config
from healthcheck.history import History, run_message
from healthcheck.model import Finding, Section, Status
from healthcheck.pipeline import RunSkipped
from healthcheck.pipeline import run as run_healthcheck
from healthcheck.redact import Redactor

from secrets_corpus import FAKE_SECRETS
from supervisord_env import sleeper, start_supervisord
from support import BUILTIN_NAMES

HOST = socket.gethostname()
TOKEN = FAKE_SECRETS["github-classic"]
# A whole run of the env collector alone (a --only run is partial: it records nothing).
ONLY_ENV = f"[collectors]\ndisable = {json.dumps([n for n in BUILTIN_NAMES if n != 'env'])}\n"


class Static:
    """A collector with fixed findings: runs in no time and says the same every run."""

    name: ClassVar[str] = "static"
    description: ClassVar[str] = "fixed findings"
    timeout: ClassVar[float | None] = None

    def __init__(self, findings: list[Finding] | None = None) -> None:
        self.findings = findings or []

    def collect(self, config: Config) -> Section:
        return Section.from_findings(self.name, {"answer": 42}, list(self.findings))


def sh(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git in `cwd` as the operator would; stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=check, capture_output=True, text=True
    ).stdout


def config_for(workspace: Path, **git_table: Any) -> Config:
    return parse_config({"paths": {"workspace": str(workspace)}, "git": git_table})


def run(config: Config, findings: list[Finding] | None = None, **kwargs: Any) -> Any:
    """A run without the docs file (tests/test_docs.py covers it)."""
    kwargs.setdefault("docs", False)
    return run_healthcheck(config, [Static(findings)], Redactor.from_config(config), **kwargs)


def committed_files(repo: Path, rev: str = "HEAD") -> list[str]:
    return sorted(sh(repo, "ls-tree", "-r", "--name-only", rev).split())


def changed_in(repo: Path, rev: str = "HEAD") -> list[str]:
    out = sh(repo, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", rev)
    return sorted(out.split())


def status(repo: Path) -> list[str]:
    return sorted(sh(repo, "status", "--porcelain", "--untracked-files=all").splitlines())


@pytest.fixture
def operator_repo(tmp_path: Path) -> Path:
    """A workspace that is already the operator's repository, with one commit of theirs."""
    ws = tmp_path / "ws"
    ws.mkdir()
    sh(ws, "init", "-q", "-b", "main")
    sh(ws, "config", "user.name", "Operator")
    sh(ws, "config", "user.email", "op@example.invalid")
    for name in ("a.txt", "b.txt", "system_status.md"):
        (ws / name).write_text(f"{name} v1\n")
    sh(ws, "add", ".")
    sh(ws, "commit", "-q", "-m", "operator: first")
    return ws


def test_first_run_creates_the_repository_and_commits_only_its_files(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "model.safetensors").write_bytes(b"weights")
    (ws / "improvement_log.md").write_text("# Improvement log\n")
    result = run(config_for(ws))
    assert result.commit is not None and result.commit.sha == sh(ws, "rev-parse", "HEAD").strip()
    assert committed_files(ws) == ["improvement_log.md", "system_status.json", "system_status.md"]
    # the operator's file is not ours to record; our lock file is excluded locally
    assert status(ws) == ["?? model.safetensors"]
    assert "/.healthcheck.lock" in (ws / ".git" / "info" / "exclude").read_text().splitlines()


def test_identity_of_its_own_only_when_none_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    ws = tmp_path / "ws"
    run(config_for(ws))
    assert sh(ws, "log", "-1", "--format=%an <%ae>").strip() == f"healthcheck <healthcheck@{HOST}>"
    assert sh(ws, "config", "--local", "user.name").strip() == "healthcheck"

    empty.write_text("[user]\n\tname = Someone\n\temail = someone@example.invalid\n")
    ws2 = tmp_path / "ws2"
    run(config_for(ws2))
    assert sh(ws2, "log", "-1", "--format=%an <%ae>").strip() == "Someone <someone@example.invalid>"
    assert sh(ws2, "config", "--local", "user.name", check=False) == ""


def test_operator_staged_and_modified_files_stay_as_they_were(operator_repo: Path) -> None:
    ws = operator_repo
    (ws / "a.txt").write_text("a.txt modified, not staged\n")
    (ws / "b.txt").write_text("b.txt staged\n")
    sh(ws, "add", "b.txt")
    (ws / "b.txt").write_text("b.txt staged, then modified again\n")
    (ws / "c.txt").write_text("c.txt new and staged\n")
    sh(ws, "add", "c.txt")
    (ws / "system_status.md").write_text("the operator staged an edit of our report\n")
    sh(ws, "add", "system_status.md")
    before_index_b = sh(ws, "rev-parse", ":b.txt").strip()
    before_head = sh(ws, "rev-parse", "HEAD").strip()

    result = run(config_for(ws))

    # the run's commit is on top of theirs and holds our two files, nothing else
    assert sh(ws, "rev-parse", "HEAD~1").strip() == before_head
    assert changed_in(ws) == ["system_status.json", "system_status.md"]
    assert sh(ws, "show", "HEAD:b.txt") == "b.txt v1\n"
    assert "c.txt" not in committed_files(ws)
    # their work: staged stays staged (same blob), modified stays modified, contents intact
    assert status(ws) == [" M a.txt", "A  c.txt", "MM b.txt"]
    assert sh(ws, "rev-parse", ":b.txt").strip() == before_index_b
    assert (ws / "a.txt").read_text() == "a.txt modified, not staged\n"
    assert (ws / "b.txt").read_text() == "b.txt staged, then modified again\n"
    # our report: the run's version is written, committed and in the index (clean);
    # their staged edit of it is replaced, as the file itself was
    assert (ws / "system_status.md").read_text() == result.markdown_text
    assert sh(ws, "show", "HEAD:system_status.md") == result.markdown_text
    assert sh(ws, "diff", "--cached", "--name-only", "--", "system_status.md") == ""
    # no stray lock or temporary index left behind
    assert not (ws / ".git" / "index.lock").exists()


def test_commit_message_is_a_readable_line_with_the_findings_in_its_body(tmp_path: Path) -> None:
    findings = [
        Finding("static", "fatal", "jupyter", Status.CRIT, "jupyter is FATAL"),
        Finding("static", "leak", "", Status.CRIT, f"token {TOKEN} in a log"),
        Finding("static", "port", "vnc:5901", Status.WARN, "Nothing listens on   5901"),
    ]
    ws = tmp_path / "ws"
    result = run(config_for(ws), findings)
    message = sh(ws, "cat-file", "commit", "HEAD").partition("\n\n")[2]
    assert message == (
        f"healthcheck: {HOST} CRIT (2 crit, 1 warn)\n"
        "\n"
        f"Run at {result.report.generated_iso}, 1 collectors.\n"
        "Files: system_status.md, system_status.json.\n"
        "\n"
        "- CRIT static.fatal:jupyter: jupyter is FATAL\n"
        "- CRIT static.leak: token [redacted:github-token] in a log\n"
        "- WARN static.port:vnc:5901: Nothing listens on 5901\n"
    )
    assert sh(ws, "log", "--oneline", "-1", "--format=%s") == (
        f"healthcheck: {HOST} CRIT (2 crit, 1 warn)\n"
    )
    assert TOKEN not in sh(ws, "log", "-p", "--all")


def test_run_message_counts_unknown_only_when_present() -> None:
    data = {
        "host": "box",
        "status": "ok",
        "generated_at": "2025-05-01T12:00:00Z",
        "counts": {"crit": 0, "warn": 0, "unknown": 0, "ok": 0},
        "sections": {"a": {}, "b": {}},
        "findings": [],
    }
    assert run_message(data) == (
        "healthcheck: box OK (0 crit, 0 warn)\n\nRun at 2025-05-01T12:00:00Z, 2 collectors.\n"
    )
    data["counts"]["unknown"] = 2
    data["status"] = "unknown"
    assert (
        run_message(data).splitlines()[0] == "healthcheck: box UNKNOWN (0 crit, 0 warn, 2 unknown)"
    )


def test_nothing_changed_makes_no_empty_commit(operator_repo: Path) -> None:
    history = History.open(operator_repo, Redactor())
    target = operator_repo / "notes.md"
    target.write_text("one\n")
    first = history.commit([target], "notes")
    assert first.sha is not None
    again = history.commit([target], "notes again")
    assert (again.sha, again.unchanged) == (None, True)
    assert sh(operator_repo, "rev-parse", "HEAD").strip() == first.sha
    # a file outside the work tree, or absent, is left out rather than committed
    outside = operator_repo.parent / "elsewhere.md"
    outside.write_text("x\n")
    skipped = history.commit([outside, operator_repo / "absent.md"], "nothing")
    assert skipped.sha is None and skipped.left_out == [outside, operator_repo / "absent.md"]


def test_no_commit_flag_and_config_leave_git_alone(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    config = tmp_path / "hc.toml"
    config.write_text(f'[paths]\nworkspace = "{ws}"\n[env]\nsource = "self"\n{ONLY_ENV}')
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--no-commit"])
    assert result.exit_code == 0
    assert "Committed" not in result.stderr
    assert (ws / "system_status.md").is_file() and not (ws / ".git").exists()

    config.write_text(config.read_text() + "[git]\ncommit = false\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(config)])
    assert result.exit_code == 0 and not (ws / ".git").exists()


def test_a_merge_in_progress_is_left_alone_with_a_warning(operator_repo: Path) -> None:
    ws = operator_repo
    sh(ws, "checkout", "-q", "-b", "side")
    (ws / "a.txt").write_text("side\n")
    sh(ws, "commit", "-q", "-am", "side")
    sh(ws, "checkout", "-q", "main")
    (ws / "a.txt").write_text("main\n")
    sh(ws, "commit", "-q", "-am", "main")
    assert subprocess.run(["git", "merge", "-q", "side"], cwd=ws, capture_output=True).returncode
    head = sh(ws, "rev-parse", "HEAD").strip()
    conflicted = (ws / "a.txt").read_text()
    config = ws.parent / "hc.toml"
    config.write_text(f'[paths]\nworkspace = "{ws}"\n[env]\nsource = "self"\n{ONLY_ENV}')

    result = CliRunner().invoke(cli, ["run", "--config", str(config)])

    assert result.exit_code == 0
    assert (
        f"healthcheck: warning: not recorded in git: the repository in {ws} is in the middle "
        "of a merge"
    ) in result.stderr.splitlines()
    assert sh(ws, "rev-parse", "HEAD").strip() == head
    assert (ws / ".git" / "MERGE_HEAD").exists()
    assert sh(ws, "ls-files", "-u", "--", "a.txt") != ""  # still unmerged
    assert (ws / "a.txt").read_text() == conflicted
    report = json.loads((ws / "system_status.json").read_text())
    assert "history.commit-skipped" in [f["id"] for f in report["findings"]]


def test_a_detached_head_is_left_alone(operator_repo: Path) -> None:
    ws = operator_repo
    sh(ws, "checkout", "-q", "--detach")
    head = sh(ws, "rev-parse", "HEAD").strip()
    result = run(config_for(ws))
    assert result.commit is None
    assert result.warnings == [f"not recorded in git: HEAD in {ws} is detached (not on a branch)"]
    assert sh(ws, "rev-parse", "HEAD").strip() == head
    assert [f.id for f in result.report.findings] == ["history.commit-skipped"]


def test_push_to_a_remote(operator_repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    sh(tmp_path, "init", "-q", "--bare", str(remote))
    result = run(config_for(operator_repo, remote=str(remote)))
    assert result.warnings == []
    assert sh(remote, "rev-parse", "main").strip() == result.commit.sha


def test_a_failed_push_is_a_warn_finding_in_the_committed_report(
    operator_repo: Path, tmp_path: Path
) -> None:
    remote = f"https://user:{TOKEN}@127.0.0.1:9/nowhere.git"
    before = sh(operator_repo, "rev-parse", "HEAD").strip()
    config = config_for(operator_repo, remote=remote, push_timeout=20)
    result = run(config)
    (warning,) = result.warnings
    assert warning.startswith(f"git push to {remote} failed: ")
    finding = result.report.findings[0]
    assert (finding.id, finding.severity) == (f"history.push-failed:{remote}", Status.WARN)
    # one commit, and the report in it carries the finding (masked)
    assert sh(operator_repo, "rev-parse", "HEAD~1").strip() == before
    committed = json.loads(sh(operator_repo, "show", "HEAD:system_status.json"))
    assert (
        committed["findings"][0]["id"]
        == "history.push-failed:https://user:[redacted:github-token]@127.0.0.1:9/nowhere.git"
    )
    assert committed == json.loads((operator_repo / "system_status.json").read_text())
    assert "WARN history.push-failed" in sh(operator_repo, "log", "-1", "--format=%B")
    assert TOKEN not in sh(operator_repo, "log", "-p", "-1")


def test_a_hanging_push_is_killed_after_its_timeout(
    operator_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git runs this through a shell, with the host and command appended: it just hangs
    monkeypatch.setenv("GIT_SSH_COMMAND", "sleep 30;")
    config = config_for(operator_repo, remote="ssh://example.invalid/x.git", push_timeout=1)
    started = time.monotonic()
    result = run(config)
    assert time.monotonic() - started < 10
    assert result.warnings == [
        "git push to ssh://example.invalid/x.git failed: git timed out after 1s and was killed"
    ]


# -- the run lock, with real processes ------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from healthcheck.lock import workspace_lock
with workspace_lock(Path(sys.argv[1]), 5, purpose="test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(ws: Path, seconds: float) -> subprocess.Popen[str]:
    ws.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ws), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_second_run_waits_then_skips_with_exit_0(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    config = tmp_path / "hc.toml"
    config.write_text(f'[paths]\nworkspace = "{ws}"\n[git]\nlock_timeout = 0.5\n{ONLY_ENV}')
    holder = hold_lock(ws, 30)
    try:
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["run", "--config", str(config)])
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0
    assert result.stderr.startswith(
        f"healthcheck: skipped this run: another healthcheck test (pid {holder.pid}, since "
    )
    assert result.stderr.endswith(f") holds {ws / '.healthcheck.lock'}; waited 0.5s\n")
    assert 0.5 <= waited < 5
    assert not (ws / "system_status.md").exists()


def test_a_run_waits_for_the_lock_and_then_runs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    holder = hold_lock(ws, 1.0)
    started = time.monotonic()
    result = run(config_for(ws, lock_timeout=20))
    holder.wait()
    assert time.monotonic() - started >= 0.5
    assert result.commit is not None and result.commit.sha


def test_lock_busy_raises_run_skipped(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    holder = hold_lock(ws, 30)
    try:
        with pytest.raises(RunSkipped):
            run(config_for(ws, lock_timeout=0))
    finally:
        holder.kill()
        holder.wait()


def test_four_concurrent_runs_leave_a_valid_report_and_a_clean_repository(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    config = tmp_path / "hc.toml"
    config.write_text(
        f'[paths]\nworkspace = "{ws}"\n[env]\nsource = "self"\n[git]\nlock_timeout = 60\n'
        + ONLY_ENV
    )
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHECK_CONFIG"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "healthcheck", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    # two runs within the same second write the same report: the later one has nothing to add
    commits = sum("\nCommitted " in err for _, err in outputs)
    assert 1 <= commits <= 4
    assert len(sh(ws, "rev-list", "HEAD").split()) == commits
    json.loads((ws / "system_status.json").read_text())
    assert (ws / "system_status.md").read_text().startswith("# System status: ")
    assert not (ws / ".git" / "index.lock").exists()
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=ws, capture_output=True, text=True)
    assert fsck.returncode == 0 and "error" not in fsck.stderr
    assert status(ws) == []
    assert sorted(p.name for p in ws.iterdir()) == [
        ".git",
        ".healthcheck.lock",
        "system_status.json",
        "system_status.md",
    ]


def test_a_workspace_inside_another_repository_gets_its_own(operator_repo: Path) -> None:
    inner = operator_repo / "sub" / "ws"
    head = sh(operator_repo, "rev-parse", "HEAD").strip()
    result = run(config_for(inner))
    assert (inner / ".git").is_dir()
    assert sh(operator_repo, "rev-parse", "HEAD").strip() == head
    assert git.Repo(inner).head.commit.hexsha == result.commit.sha


def test_two_idle_runs_differ_in_at_most_a_dozen_lines(tmp_path: Path) -> None:
    """Every built-in collector, with a real supervisord running a quiet program: only
    timestamps and the volatile block move between two consecutive committed reports."""
    ws = tmp_path / "ws"
    config = tmp_path / "hc.toml"
    with start_supervisord(tmp_path / "sv", {"worker": sleeper()}) as sv:
        sv.wait_for_states({"worker": "RUNNING"})
        config.write_text(
            f'[paths]\nworkspace = "{ws}"\n[logs]\ndirs = ["{sv.log_dir}"]\n{sv.toml()}'
        )
        for _ in range(2):
            time.sleep(1.1)  # a new second: the title's timestamp moves, as it does under cron
            result = CliRunner().invoke(cli, ["run", "--config", str(config), "-q"])
            assert result.exit_code == 0, result.output
    assert len(sh(ws, "rev-list", "HEAD").split()) == 2
    numstat = sh(ws, "diff", "--numstat", "HEAD~1", "HEAD", "--", "system_status.md").split()
    added, deleted = int(numstat[0]), int(numstat[1])
    assert 1 <= added <= 12 and deleted <= 12, sh(ws, "diff", "HEAD~1", "HEAD")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"lock_timeout": -1}, "'git.lock_timeout' must be 0 or more"),
        ({"push_timeout": 0}, "'git.push_timeout' must be greater than 0"),
    ],
)
def test_git_timeouts_are_checked(table: dict[str, Any], message: str) -> None:
    from healthcheck.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config({"git": table})


def test_without_git_installed_the_run_writes_its_report_and_says_so(tmp_path: Path) -> None:
    """GitPython will not even import without a git executable: the run must still work."""
    bin_dir = tmp_path / "bin"  # a PATH with Python but no git
    bin_dir.mkdir()
    workspace = tmp_path / "ws"
    result = subprocess.run(
        [sys.executable, "-m", "healthcheck", "run", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "healthcheck: warning: not recorded in git: git is not installed" in result.stderr
    report = json.loads((workspace / "system_status.json").read_text())
    (finding,) = [f for f in report["findings"] if f["id"] == "history.unavailable"]
    assert finding["detail"] == (
        "git is not installed (git is not on PATH; apt-get install git). "
        "The report was written; only the commit was skipped."
    )
    assert not (workspace / ".git").exists()


def test_a_secret_pasted_into_the_docs_file_is_never_committed(tmp_path: Path) -> None:
    """The operator's prose is theirs (never rewritten), but git would keep a pasted token
    forever: the file is left out of the commit, and the committed report says why."""
    ws = tmp_path / "ws"
    config = parse_config({"paths": {"workspace": str(ws)}})
    ws.mkdir()
    docs = ws / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n\nNotes.\n")
    redactor = Redactor.from_config(config)
    run_healthcheck(config, [Static()], redactor)
    assert "docs_vast-ai-environment.md" in committed_files(ws)
    token = FAKE_SECRETS["huggingface"]
    # the person's edit, in a file this run changes too (its stamp has gone stale)
    docs.write_text(
        "# Box\n\n*Last updated: April 29, 2025*\n\nNotes.\n"
        f"\nHF login: huggingface-cli login --token {token}\n"
    )

    result = run_healthcheck(config, [Static()], redactor)
    assert result.warnings == [f"{docs} not committed: line 7 looks like a secret"]
    committed = json.loads(sh(ws, "show", "HEAD:system_status.json"))
    (finding,) = [f for f in committed["findings"] if f["id"].startswith("history.secret")]
    assert (
        finding["title"]
        == "docs_vast-ai-environment.md is not committed: line 7 looks like a secret"
    )
    assert token not in sh(ws, "log", "-p", "--all")
    assert token in docs.read_text()  # the operator's file itself is left as they wrote it
    assert "Notes." in sh(ws, "show", "HEAD:docs_vast-ai-environment.md")
    # The message names exactly what the commit holds: not the file held back.
    message = sh(ws, "show", "-s", "--format=%B", "HEAD")
    (files_line,) = [line for line in message.splitlines() if line.startswith("Files: ")]
    assert files_line == "Files: system_status.md, system_status.json."
    assert "docs_vast-ai-environment.md" not in sh(ws, "show", "--name-only", "--format=", "HEAD")


def test_a_secret_typed_into_the_improvement_log_by_hand_is_not_committed(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    config = tmp_path / "hc.toml"
    config.write_text(f'[paths]\nworkspace = "{ws}"\n')
    ws.mkdir()
    first = CliRunner().invoke(cli, ["--config", str(config), "log", "add", "Pin the driver"])
    assert first.exit_code == 0, first.output
    log_file = ws / "improvement_log.md"
    token = FAKE_SECRETS["github-classic"]
    log_file.write_text(log_file.read_text() + f"\nscratch: git clone https://{token}@x.invalid\n")
    second = CliRunner().invoke(cli, ["--config", str(config), "log", "add", "Add swap"])
    assert second.exit_code == 0
    assert "warning: improvement_log.md not committed: line" in second.stderr
    assert token not in sh(ws, "log", "-p", "--all")


def test_files_the_caller_wrote_redacted_are_not_checked_again_and_others_are(
    tmp_path: Path,
) -> None:
    """A run's reports were written through the redactor (not checked a second time, which
    cost a run 10-25 ms); any other file is, even in the same commit."""
    ws = tmp_path / "ws"
    ws.mkdir()
    redactor = Redactor.from_config(Config())
    history = History.open(ws, redactor)
    report, notes = ws / "system_status.md", ws / "notes.md"
    report.write_text(f"token {TOKEN}\n")  # stands in for what the caller vouches for
    notes.write_text(f"line one\ntoken {TOKEN}\n")
    outcome = history.commit([report, notes], "run\n", redacted=[report])
    assert outcome.withheld == [(notes, 2)]
    assert sh(ws, "show", "--name-only", "--format=", "HEAD").split() == ["system_status.md"]
    other = ws / "other.md"
    other.write_text(f"token {TOKEN}\n")
    assert history.commit([other], "again\n").withheld == [(other, 1)]


def test_a_run_with_secrets_in_its_report_writes_reports_that_pass_the_secret_check(
    tmp_path: Path,
) -> None:
    """What lets the run's commit skip checking its own reports: both, as written, hold
    nothing the check would find (every fake secret format of the corpus in the report)."""
    ws = tmp_path / "ws"
    config = parse_config({"paths": {"workspace": str(ws)}})
    ws.mkdir()
    redactor = Redactor.from_config(config)
    evidence = tuple(f"{name}: {value}" for name, value in FAKE_SECRETS.items())
    finding = Finding("static", "leak", "x", Status.WARN, "leak", "\n".join(evidence), "", evidence)
    result = run_healthcheck(config, [Static([finding])], redactor, commit=False)
    history = History.open(ws, redactor)
    assert result.markdown_path is not None and result.json_path is not None
    assert history.secret_line(result.markdown_path) is None
    assert history.secret_line(result.json_path) is None
