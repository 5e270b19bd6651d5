"""The operator's day, end to end through the command line on a real (temporary) box: the
history never records what the box is not, the workspace is the same for every command,
and the terminal says what matters."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from healthcheck.cli import cli

from support import Box, free_port


def invoke(*args: str, input: str | None = None) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, check=True, capture_output=True, text=True).stdout


# -- history and status that never lie ----------------------------------------------------


def test_a_partial_run_prints_its_report_and_records_nothing(box: Box) -> None:
    box.only("env", "ports", "provisioning")
    whole = invoke("run", "--config", str(box.config))
    assert whole.exit_code == 0
    md = box.workspace / "system_status.md"
    js = box.workspace / "system_status.json"
    before = (md.read_bytes(), js.read_bytes(), git(box.workspace, "rev-parse", "HEAD"))

    partial = invoke("run", "--config", str(box.config), "--only", "env")
    assert partial.exit_code == 0
    assert partial.stdout.startswith("# System status: ")
    assert (
        "Partial run: only env looked at the box; the other collectors did not run, so this "
        "is not the box's whole state and it is not recorded in the history."
    ) in partial.stdout
    assert partial.stderr == (
        "Partial run (env): Status OK: 0 crit, 0 warn, 0 unknown. "
        "Printed above; nothing written or recorded.\n"
    )
    as_json = invoke("run", "--config", str(box.config), "--skip", "ports", "--json")
    data = json.loads(as_json.stdout)
    assert (data["partial"], data["collectors_run"]) == (True, ["env", "provisioning"])
    assert (md.read_bytes(), js.read_bytes(), git(box.workspace, "rev-parse", "HEAD")) == before

    elsewhere = box.root / "partial" / "ports.md"
    elsewhere.parent.mkdir()
    written = invoke(
        "run", "--config", str(box.config), "--only", "ports", "--output", str(elsewhere)
    )
    assert written.exit_code == 0
    assert written.stdout == ""
    assert written.stderr.endswith(f"Report: {elsewhere} (JSON: ports.json); not recorded.\n")
    assert json.loads(elsewhere.with_suffix(".json").read_text())["collectors_run"] == ["ports"]
    assert (md.read_bytes(), js.read_bytes(), git(box.workspace, "rev-parse", "HEAD")) == before
    # `diff` still compares whole runs only
    assert git(box.workspace, "rev-list", "--count", "HEAD") == "1\n"

    over = invoke("run", "--config", str(box.config), "--only", "env", "--output", str(md))
    assert over.exit_code == 2
    assert over.stderr == (
        f"healthcheck: --output {md}: a partial run (--only/--skip) never replaces the main "
        "report; write it elsewhere or leave out --output to print it\n"
    )
    assert md.read_bytes() == before[0]


def test_only_and_skip_leaving_nothing_is_a_usage_error(box: Box) -> None:
    result = invoke("run", "--config", str(box.config), "--only", "env", "--skip", "env")
    assert result.exit_code == 2
    assert result.stderr == (
        "healthcheck: no collector left to run: --only env and --skip env "
        "with [collectors] disable leave none\n"
    )
    assert not box.workspace.exists()
    box.write_config('disable = ["env"]')
    result = invoke("context", "--config", str(box.config), "--only", "env")
    assert result.exit_code == 2
    assert result.stderr == (
        "healthcheck: no collector left to run: --only env with [collectors] disable leave none\n"
    )


def test_a_check_that_could_not_look_ranks_above_a_warning(box: Box) -> None:
    # env cannot read the named process's environment (unknown); a port is closed (warn)
    box.only("env", "ports")
    box.config.write_text(
        box.config.read_text().replace('source = "self"', 'source = "process:no-such-proc-hc"')
    )
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    assert result.stderr.startswith("Status UNKNOWN: 0 crit, 2 warn, 1 unknown.")
    data = json.loads((box.workspace / "system_status.json").read_text())
    assert [f["severity"] for f in data["findings"]] == ["unknown", "warn", "warn"]
    assert git(box.workspace, "log", "-1", "--format=%s").endswith(
        " UNKNOWN (0 crit, 2 warn, 1 unknown)\n"
    )
    for level, code in (("UNKNOWN", 1), ("Crit", 0), ("warn", 1), ("unknown", 1)):
        ran = invoke("run", "--config", str(box.config), "--fail-on", level, "--no-commit")
        assert ran.exit_code == code, level
    box.only("ports")
    assert invoke("run", "--config", str(box.config), "--fail-on", "unknown").exit_code == 0


def test_a_report_written_outside_the_workspace_is_not_claimed_by_a_commit(box: Box) -> None:
    box.only("env")
    docs = box.workspace / "docs_vast-ai-environment.md"
    box.workspace.mkdir()
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    out = box.root / "elsewhere" / "status.md"
    result = invoke("run", "--config", str(box.config), "--output", str(out))
    assert result.exit_code == 0
    assert out.is_file()
    assert git(box.workspace, "ls-tree", "-r", "--name-only", "HEAD") == (
        "docs_vast-ai-environment.md\n"
    )
    message = git(box.workspace, "log", "-1", "--format=%B")
    subject, _, body = message.partition("\n")
    assert subject.endswith(" docs refreshed")
    assert f"its report was written to {out}, outside this history" in body
    assert "Files: docs_vast-ai-environment.md." in body
    assert "OK" not in subject and "WARN" not in subject
    # nothing of the run in the workspace: no commit at all
    again = invoke("run", "--config", str(box.config), "--output", str(out))
    assert again.exit_code == 0 and "Committed" not in again.stderr
    assert git(box.workspace, "rev-list", "--count", "HEAD") == "1\n"


def test_a_persons_unfinished_docs_edit_is_not_committed_by_a_run(box: Box) -> None:
    box.only("env")
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    recorded = git(box.workspace, "show", "HEAD:docs_vast-ai-environment.md")
    assert "April 29, 2025" not in recorded  # the tool's own refresh is recorded
    docs.write_text(docs.read_text() + "\nTODO half-written paragr\n")
    (box.logs / "new.log").write_text("something new\n")
    box.only("env", "logs")
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0 and "Committed" in result.stderr
    assert git(box.workspace, "show", "HEAD:docs_vast-ai-environment.md") == recorded
    assert git(box.workspace, "show", "--name-only", "--format=", "HEAD").split() == [
        "system_status.json",
        "system_status.md",
    ]
    assert "Files: system_status.md, system_status.json." in git(
        box.workspace, "log", "-1", "--format=%B"
    )


# -- faults of the box itself --------------------------------------------------------------


def recorded_run(box: Box) -> tuple[Path, str]:
    """A whole run recorded once; the workspace and its HEAD."""
    box.only("env")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    return box.workspace, git(box.workspace, "rev-parse", "HEAD").strip()


def history_finding(ws: Path) -> dict[str, str]:
    report = json.loads((ws / "system_status.json").read_text())
    (finding,) = [f for f in report["findings"] if f["id"] == "history.unavailable"]
    return finding


def test_a_corrupt_head_still_gets_its_report_and_the_fix(box: Box) -> None:
    ws, _ = recorded_run(box)
    branch = git(ws, "symbolic-ref", "--short", "HEAD").strip()
    (ws / ".git" / "HEAD").write_text("garbage\n")
    (box.logs / "more.log").write_text("new line\n")
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    assert "internal error" not in result.stderr
    head = ws / ".git" / "HEAD"
    finding = history_finding(ws)
    assert finding["detail"] == (
        f"{head} is corrupt (it reads 'garbage'), so git does not see a repository in {ws}. "
        "The report was written; only the commit was skipped."
    )
    assert finding["hint"] == (
        f"Point it back at the branch: echo 'ref: refs/heads/{branch}' > {head}"
    )
    assert (ws / ".git" / "HEAD").read_text() == "garbage\n"  # nothing re-initialised


def test_missing_objects_still_get_the_report_and_the_fix(box: Box) -> None:
    ws, head = recorded_run(box)
    (ws / ".git" / "objects" / head[:2] / head[2:]).unlink()
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    finding = history_finding(ws)
    assert finding["detail"].startswith(
        f"the repository in {ws} is missing objects: HEAD's commit {head[:12]} "
    )
    assert finding["hint"].startswith(f"`git -C {ws} fsck` shows the damage")
    assert f"healthcheck: warning: not recorded in git: the repository in {ws}" in result.stderr


def test_a_stale_index_lock_is_named_with_its_age(box: Box) -> None:
    import os
    import time

    ws, head = recorded_run(box)
    lock = ws / ".git" / "index.lock"
    lock.write_text("")
    hour_ago = time.time() - 3 * 3600
    os.utime(lock, (hour_ago, hour_ago))
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    finding = history_finding(ws)
    assert finding["detail"] == (
        f"{lock} was left by a git that was killed: it is 3 hours old and no git process holds "
        "it, so every git command that writes the index fails. The report was written; only "
        "the commit was skipped."
    )
    assert finding["hint"] == (
        f"Remove it: rm {lock} (then `git -C {ws} status` to check the repository)."
    )
    assert git(ws, "rev-parse", "HEAD").strip() == head
    lock.unlink()
    again = invoke("run", "--config", str(box.config))
    assert "warning" not in again.stderr
    report = json.loads((ws / "system_status.json").read_text())
    assert [f for f in report["findings"] if f["collector"] == "history"] == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 400 KiB filesystem (tmpfs), mounted for the test; skipped where mount is not
    allowed."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_a_full_disk_is_said_in_words_and_the_previous_report_stays(
    box: Box, small_disk: Path
) -> None:
    box.workspace = small_disk / "ws"
    box.only("env")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    md = box.workspace / "system_status.md"
    previous = md.read_bytes()
    filler = small_disk / "filler"
    try:
        with filler.open("wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
    except OSError:
        pass  # full
    (box.logs / "new.log").write_text("a change, so the report differs\n")
    box.only("env", "logs")
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 3
    assert result.stderr == (
        f"healthcheck: run failed: no space left on the filesystem of {box.workspace} "
        f"(100% of 400 KiB used; free some space, e.g. `du -xsh {box.workspace}/* | sort -h`); "
        "the previous report was left as it was\n"
    )
    assert md.read_bytes() == previous
    assert [p.name for p in box.workspace.iterdir() if p.name.endswith(".tmp")] == []


def test_variables_the_tool_sets_for_itself_are_not_the_boxs(box: Box) -> None:
    box.only("env", extra='\n[env]\nsource = "self"\ninclude = "GIT|PATH"\n')
    box.config.write_text(box.config.read_text().replace('[env]\nsource = "self"\n\n', "", 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_PYTHON")}
    ran = subprocess.run(
        [sys.executable, "-m", "healthcheck", "run", "--config", str(box.config), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    variables = json.loads(ran.stdout)["sections"]["env"]["data"]["variables"]
    assert "PATH" in variables
    assert [name for name in variables if name.startswith("GIT_PYTHON")] == []


def test_ctrl_c_exits_130_with_one_line_and_leaves_the_report(box: Box, tmp_path: Path) -> None:
    box.only("env")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    md = box.workspace / "system_status.md"
    previous, head = md.read_bytes(), git(box.workspace, "rev-parse", "HEAD")
    # supervisord's socket accepts and never answers: the run waits on it until interrupted
    hung = Path(os.path.realpath("/tmp")) / f"hc-int-{os.getpid()}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(hung))
    listener.listen(4)
    try:
        box.only("env", "supervisor", extra=f'\n[supervisor]\nserverurl = "unix://{hung}"\n')
        box.config.write_text(box.config.read_text().replace("timeout = 10", "timeout = 30"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "healthcheck", "run", "--config", str(box.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        listener.close()
        hung.unlink()
    assert (proc.returncode, out) == (130, "")
    assert err == (
        "healthcheck: interrupted; the previous report and the git history are as they were\n"
    )
    assert md.read_bytes() == previous
    assert git(box.workspace, "rev-parse", "HEAD") == head
    assert git(box.workspace, "status", "--porcelain") == ""


# -- one workspace, everywhere ---------------------------------------------------------------


def test_every_command_that_uses_the_workspace_takes_workspace(box: Box) -> None:
    box.only("env", "provisioning")
    other = box.root / "other-ws"
    cfg = ["--config", str(box.config), "--workspace", str(other)]
    assert invoke("run", *cfg).exit_code == 0
    (box.root / "other-ws" / "docs_vast-ai-environment.md").write_text(
        "# Box\n\n*Last updated: April 29, 2025*\n"
    )
    assert invoke("run", *cfg).exit_code == 0
    assert (other / "system_status.md").is_file() and not box.workspace.exists()
    context = invoke("context", "--last", *cfg)
    assert context.exit_code == 0 and str(other / "system_status.json") in context.stdout
    assert invoke("diff", *cfg).exit_code == 0
    added = invoke("log", "add", "Pin the driver", *cfg)
    assert (added.exit_code, added.stdout) == (0, "Added IMP-0001: Pin the driver\n")
    assert (other / "improvement_log.md").is_file()
    listed = invoke("log", "list", *cfg)
    assert "IMP-0001" in listed.stdout
    docs = invoke("docs", "update", "--last", *cfg)
    assert docs.exit_code == 0, docs.stderr
    assert str(other / "docs_vast-ai-environment.md") in docs.stderr
    assert not box.workspace.exists()


def test_read_only_commands_never_create_the_workspace(box: Box) -> None:
    cfg = ["--config", str(box.config)]
    assert invoke("context", "--last", *cfg).exit_code == 3
    assert invoke("diff", *cfg).exit_code == 2
    assert invoke("log", "list", *cfg).exit_code == 0
    added = invoke("log", "add", "Pin the driver", *cfg)
    assert added.exit_code == 2
    assert added.stderr == (
        f"healthcheck: improvement log: workspace {box.workspace} does not exist (check "
        "--workspace or [paths] workspace; `healthcheck run` creates it)\n"
    )
    assert not box.workspace.exists()
    box.workspace.mkdir()  # a plain folder: still no `git init` by a reader
    assert invoke("diff", *cfg).exit_code == 2
    assert invoke("context", "--last", *cfg).exit_code == 3
    assert list(box.workspace.iterdir()) == []


def test_a_relative_workspace_is_relative_to_the_config_file(box: Box, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "hc.toml"
    box.only("env")
    config.write_text(
        box.config.read_text()
        .replace(f'workspace = "{box.workspace}"', 'workspace = "state/ws"')
        .replace("[paths]", '[paths]\nreport = "reports/daily/status.md"')
    )
    os.chdir(home)  # cron runs in $HOME
    result = invoke("run", "--config", str(config))
    assert result.exit_code == 0, result.stderr
    assert (etc / "state" / "ws" / "reports" / "daily" / "status.md").is_file()
    assert list(home.iterdir()) == []


@pytest.fixture
def read_only_workspace(box: Box, small_disk: Path) -> Path:
    """The box's workspace on a real read-only filesystem (a tmpfs remounted ro)."""
    box.workspace = small_disk / "ws"
    box.workspace.mkdir()
    remount = subprocess.run(
        ["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, check=False
    )
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
    return box.workspace


def test_a_read_only_workspace_with_output_elsewhere_and_no_commit(
    box: Box, read_only_workspace: Path
) -> None:
    box.only("env")
    out = box.root / "out" / "status.md"
    result = invoke("run", "--config", str(box.config), "--output", str(out), "--no-commit")
    assert result.exit_code == 0, result.stderr
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert (out.parent / ".healthcheck.lock").exists()  # the lock went beside the output
    assert list(read_only_workspace.iterdir()) == []


# -- cron, docs, config ----------------------------------------------------------------------


def crontab_of(user: str) -> str:
    done = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def test_cron_install_keeps_the_entry_and_says_what_changed(box: Box, cron_user: str) -> None:
    from healthcheck import cron as schedule

    ws = box.root / "cron-ws"
    first = invoke(
        "cron", "install", "--config", str(box.config), "--user", cron_user,
        "--schedule", "15 * * * *", "--workspace", str(ws),
    )  # fmt: skip
    assert first.exit_code == 0
    entry = schedule.find_entry(crontab_of(cron_user))
    assert entry is not None
    assert schedule.entry_settings(entry) == {
        "schedule": "15 * * * *",
        "config": str(box.config),
        "workspace": str(ws),
        "log": str(box.logs / "healthcheck.log"),
    }
    assert not ws.exists()  # the line, and nothing else
    # again without options, from a directory whose ./healthcheck.toml is another config
    elsewhere = box.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "healthcheck.toml").write_text(box.config.read_text())
    os.chdir(elsewhere)
    again = invoke("cron", "install", "--user", cron_user)
    assert again.exit_code == 0
    assert f"Already installed in the crontab of {cron_user}:\n" in again.stderr
    assert schedule.find_entry(crontab_of(cron_user)) == entry
    moved = invoke("cron", "install", "--user", cron_user, "--schedule", "@hourly")
    assert "  changed: schedule 15 * * * * -> @hourly\n" in moved.stderr
    assert schedule.entry_settings(schedule.find_entry(crontab_of(cron_user)))["workspace"] == (
        str(ws)
    )


def test_cron_install_warns_when_the_user_cannot_run_it_or_write_the_log(
    box: Box, cron_user: str
) -> None:
    # the logs folder is root's, under pytest's 0700 temporary folder: out of the user's reach
    result = invoke("cron", "install", "--config", str(box.config), "--user", cron_user)
    assert result.exit_code == 0
    log = box.logs / "healthcheck.log"
    assert (
        f"healthcheck: warning: {cron_user} cannot write {log}, so cron skips the job: "
        f"chown {cron_user} {box.logs} or choose another [logs] dirs\n"
    ) in result.stderr


def test_cron_remove_leaves_an_empty_crontab_as_it_was(box: Box, cron_user: str) -> None:
    subprocess.run(["crontab", "-u", cron_user, "-"], input="", text=True, check=True)
    assert (
        invoke("cron", "install", "--config", str(box.config), "--user", cron_user).exit_code == 0
    )
    assert invoke("cron", "remove", "--user", cron_user).exit_code == 0
    listed = subprocess.run(["crontab", "-u", cron_user, "-l"], capture_output=True, text=True)
    assert (listed.returncode, listed.stdout) == (0, "")  # still a crontab, still empty


def test_the_docs_refresh_can_be_turned_off(box: Box) -> None:
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    before = docs.read_bytes()
    for extra in ("\n[docs]\nenabled = false\n", ""):
        box.only("env", extra=extra)
        if not extra:
            box.config.write_text(box.config.read_text().replace("[paths]", '[paths]\ndocs = ""'))
        result = invoke("run", "--config", str(box.config))
        assert result.exit_code == 0
        assert docs.read_bytes() == before
        report = json.loads((box.workspace / "system_status.json").read_text())
        assert [f for f in report["findings"] if f["collector"] == "docs"] == []
        refused = invoke("docs", "update", "--config", str(box.config))
        assert refused.exit_code == 2
        assert refused.stderr == (
            "healthcheck: docs update: the docs refresh is turned off in the config ([docs] "
            'enabled = false or [paths] docs = ""); name the file to refresh it anyway\n'
        )
    assert git(box.workspace, "ls-tree", "--name-only", "HEAD").split() == [
        "system_status.json",
        "system_status.md",
    ]


def test_docs_update_last_writes_the_reports_time(box: Box) -> None:
    box.only("env")
    assert invoke("run", "--config", str(box.config), "--no-docs").exit_code == 0
    report = json.loads((box.workspace / "system_status.json").read_text())
    old = "2020-01-01T00:00:00Z"
    (box.workspace / "system_status.json").write_text(json.dumps({**report, "generated_at": old}))
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n- **Last Updated**: $(date)\n")
    result = invoke("docs", "update", "--config", str(box.config), "--last")
    assert result.exit_code == 0, result.stderr
    assert "- **Last Updated**: 2020-01-01 00:00:00 UTC" in docs.read_text()


def test_a_docs_path_that_is_not_a_regular_file_is_never_opened(box: Box) -> None:
    box.workspace.mkdir()
    fifo = box.workspace / "docs_vast-ai-environment.md"
    os.mkfifo(fifo)
    box.only("env", extra="\n[git]\nlock_timeout = 1\n")
    started = time.monotonic()
    result = invoke("docs", "update", "--config", str(box.config))
    assert result.exit_code == 2
    assert result.stderr == (
        f"healthcheck: docs update: {fifo} is not a regular file; nothing was read\n"
    )
    ran = invoke("run", "--config", str(box.config))
    assert ran.exit_code == 0
    assert time.monotonic() - started < 20
    report = json.loads((box.workspace / "system_status.json").read_text())
    (finding,) = [f for f in report["findings"] if f["collector"] == "docs"]
    assert finding["title"] == f"Docs file {fifo} cannot be refreshed: it is not a regular file"
    device = invoke("docs", "update", "/dev/null", "--config", str(box.config))
    assert device.stderr == (
        "healthcheck: docs update: /dev/null is not a regular file; nothing was read\n"
    )


def test_unknown_disabled_collector_and_unknown_keys_are_named(box: Box) -> None:
    box.write_config('disable = ["gpux"]')
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 2
    assert result.stderr == (
        f"healthcheck: config error: {box.config}: 'collectors.disable': unknown collector "
        "'gpux' (known: display, env, gpu, healthcheck, logs, ports, provisioning, supervisor, "
        "system)\n"
    )
    assert invoke("collectors", "--config", str(box.config)).exit_code == 2
    box.write_config("timout = 3")
    typo = invoke("run", "--config", str(box.config))
    assert (typo.exit_code, typo.stderr) == (
        2,
        f"healthcheck: config error: {box.config}: unknown key 'collectors.timout' "
        "(did you mean 'collectors.timeout'?)\n",
    )
    box.write_config("\n[colectors]\nx = 1\n")
    table = invoke("run", "--config", str(box.config))
    assert table.stderr.endswith("unknown key 'colectors' (did you mean 'collectors'?)\n")


def test_help_says_where_the_config_is_looked_up() -> None:
    text = " ".join(invoke("run", "--help").stdout.split())
    assert (
        "--config PATH Configuration file. Default: $HEALTHCHECK_CONFIG, else the first of "
        "./healthcheck.toml, ~/.config/healthcheck/config.toml, /etc/healthcheck/config.toml; "
        "else built-in defaults."
    ) in text
    assert "SPEC" not in text


# -- the docs file and the report, at the edges ----------------------------------------------


def test_the_docs_file_keeps_its_owner_and_its_hard_links(box: Box) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another uid needs root")
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    os.chown(docs, 4321, 4322)  # the operator's, not root's
    box.only("env")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    assert "April 29, 2025" not in docs.read_text()
    st = docs.stat()
    assert (st.st_uid, st.st_gid) == (4321, 4322)

    linked = box.root / "linked-copy.md"
    os.link(docs, linked)
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    inode = docs.stat().st_ino
    result = invoke("docs", "update", "--config", str(box.config), "--last")
    assert result.exit_code == 0, result.stderr
    assert docs.stat().st_ino == inode and docs.stat().st_nlink == 2
    assert linked.read_text() == docs.read_text()
    assert "April 29, 2025" not in linked.read_text()


# -- a terminal and a report that say what matters -------------------------------------------


def test_a_run_ends_with_the_top_findings_and_what_changed(box: Box) -> None:
    box.only("logs", "ports", "provisioning")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    # four more closed ports and a second script gone (one finding for both): seven, five shown
    extra = "".join(f"extra{n} = {free_port()}\n" for n in range(4))
    config = box.config.read_text()
    ghost = f"ghost = {box.closed_port}\n"
    box.config.write_text(config.replace(ghost, ghost + extra))
    box.script.unlink()
    result = invoke("run", "--config", str(box.config))
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Status WARN: 0 crit, 7 warn, 0 unknown. ")
    assert [line[:10] for line in lines[2:7]] == ["  WARN    "] * 5
    assert lines[7] == "  2 more in the report."
    previous = json.loads(git(box.workspace, "show", "HEAD~1:system_status.json"))
    stamp = previous["generated_at"].replace("T", " ").replace("Z", " UTC")
    assert lines[8] == f"Since the last run ({stamp}): new: 5 warn; resolved: 1."
    box.only("logs", "ports")
    healed = invoke("run", "--config", str(box.config)).stderr.splitlines()
    assert healed[-1].endswith("): resolved: 5.")


def test_colour_on_a_terminal_and_none_with_no_color(box: Box) -> None:
    import pty

    box.only("ports")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    outputs = []
    for extra in ({}, {"NO_COLOR": "1"}):
        leader, follower = pty.openpty()
        proc = subprocess.run(
            [sys.executable, "-m", "healthcheck", "run", "--config", str(box.config)],
            stderr=follower,
            stdout=subprocess.DEVNULL,
            env={**env, **extra},
            timeout=60,
            check=False,
        )
        os.close(follower)
        chunks = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks += chunk
        os.close(leader)
        assert proc.returncode == 0
        outputs.append(chunks.decode())
    assert "\x1b[33m\x1b[1mWARN   \x1b[0m Nothing listens on port" in outputs[0]
    assert "\x1b[" not in outputs[1]
    piped = invoke("run", "--config", str(box.config))
    assert "\x1b[" not in piped.stderr


def test_log_text_and_names_show_exactly_as_written(box: Box) -> None:
    from markdown_it import MarkdownIt

    name = "a_b_&amp;_*x*|y.log"
    (box.logs / name).write_bytes(
        "first\nsecond\u2028still second\u2029too\nFATAL: it broke\n\n".encode()
    )
    (box.logs / "jupyter.log").unlink()
    box.only("logs")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    text = (box.workspace / "system_status.md").read_text()
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [tokens[i + 1].children for i, t in enumerate(tokens) if t.type == "heading_open"]
    rendered = ["".join(c.content for c in h or [] if c.type == "text") for h in headings]
    assert str(box.logs / name) in rendered
    (block,) = [t.content for t in tokens if t.type == "fence" and t.content.startswith("first")]
    assert block.split("\n") == [
        "first",
        "second\u2028still second\u2029too",
        "FATAL: it broke",
        "",  # the trailing blank line of the file
        "",
    ]
    assert f"{(box.logs / name).stat().st_size} B, modified " in text
    assert "; 1 line looks like an error." in text
    report = json.loads((box.workspace / "system_status.json").read_text())
    (finding,) = [f for f in report["findings"] if f["collector"] == "logs"]
    assert (
        finding["detail"] == "1 of its last 4 lines looks like an error, among its final 3 lines."
    )


def test_log_show_title_and_a_pasted_greeting(box: Box) -> None:
    box.workspace.mkdir()
    cfg = ["--config", str(box.config)]
    pasted = (
        "Sure! Here's what I'd recommend:\n\n**Add swap to the box**\n\n"
        "1. fallocate -l 8G /swapfile\n"
    )
    added = invoke("log", "add", "-", "--source", "assistant", *cfg, input=pasted)
    assert (added.exit_code, added.stdout) == (0, "Added IMP-0001: Add swap to the box\n")
    titled = invoke("log", "add", "restart it nightly", "--title", "Restart jupyter", *cfg)
    assert titled.stdout == "Added IMP-0002: Restart jupyter\n"
    invoke("log", "resolve", "1", "--note", "swap added", *cfg)
    shown = invoke("log", "show", "IMP-1", *cfg)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert (shown.exit_code, shown.stdout) == (
        0,
        f"IMP-0001: Add swap to the box\nStatus: resolved\nAdded: {today}\n"
        f"Source: assistant\nResolved: {today}\nNote: swap added\n\n" + pasted.strip() + "\n",
    )
    assert invoke("log", "show", "2", *cfg).stdout.endswith(
        "\n\nRestart jupyter\n\nrestart it nightly\n"
    )
    missing = invoke("log", "show", "7", *cfg)
    assert (missing.exit_code, missing.stderr) == (
        2,
        "healthcheck: improvement log: no entry IMP-0007 in "
        f"{box.workspace / 'improvement_log.md'}\n",
    )


def test_the_report_agrees_with_itself_on_a_real_supervisord_box(box: Box) -> None:
    """Closed ports folded into their program's finding are named in the ports table (and
    keep the section from reading ok); noVNC agrees with supervisor; fixes are code spans;
    byte figures are human; several missing scripts are one finding."""
    from healthcheck.render import prose

    from supervisord_env import filebrowser_missing_command, http_server, start_supervisord

    novnc = free_port()
    closed = free_port()
    programs = {"novnc": http_server(novnc), "filebrowser": filebrowser_missing_command()}
    with start_supervisord(box.root / "sv", programs) as sv:
        sv.wait_for_states({"novnc": "RUNNING", "filebrowser": "FATAL"}, timeout=30)
        missing = [str(box.root / f"gone{n}.sh") for n in range(3)]
        box.only("supervisor", "ports", "display", "provisioning", "system")
        config = box.config.read_text()
        config = config.replace(
            f"web = {box.port}\nghost = {box.closed_port}\n",
            f"novnc = {novnc}\nfilebrowser = {closed}\n",
        ).replace(f'scripts = ["{box.script}", "{box.missing_script}"]', f"scripts = {missing}")
        box.config.write_text(
            config.replace("'", '"') + sv.toml() + '\n[display]\ndisplay = ":97"\n'
        )
        result = invoke("run", "--config", str(box.config), "--no-docs")
    assert result.exit_code == 0, result.stderr
    text = (box.workspace / "system_status.md").read_text()
    report = json.loads((box.workspace / "system_status.json").read_text())
    ids = [f["id"] for f in report["findings"]]
    number = ids.index("supervisor.command-not-found:filebrowser") + 1
    assert f"| filebrowser | {closed} | **no** (explained by finding {number}) |" in text
    assert report["sections"]["ports"]["status"] == "crit"
    assert "## ports: crit" in text
    programs_seen = report["sections"]["supervisor"]["data"]["programs"]
    (pid,) = [p["pid"] for p in programs_seen if p["name"] == "novnc"]
    assert (
        f"\n- noVNC: supervisor program novnc is RUNNING (pid {pid}), but it is not a "
        "websockify or noVNC process, so where it points was not checked\n"
    ) in text
    (scripts,) = [f for f in report["findings"] if f["collector"] == "provisioning"]
    assert scripts["id"] == "provisioning.missing"
    assert scripts["title"] == f"3 provisioning scripts are missing: {', '.join(missing)}"
    figures = text.split("## Volatile figures", 1)[1]
    assert "memory_available=" in figures and "iB " in figures
    assert not any(
        word.isdigit() and int(word) > 10**6
        for word in figures.replace("=", " ").split()
        if "duration" not in word
    )
    # a fix in backticks is a code span, not escaped backticks
    assert prose("then `supervisorctl update` <now>") == "then `supervisorctl update` \\<now\\>"
    assert "\\`" not in text
    # and the commands and settings of a fix are code spans
    assert (
        "Fix: Install it, or fix `command=` in `[program:filebrowser]` of the supervisor config "
        "(then `supervisorctl update`)."
    ) in text


def test_context_carries_the_supervisor_config_of_failing_programs(box: Box) -> None:
    from secrets_corpus import FAKE_SECRETS
    from supervisord_env import filebrowser_missing_command, sleeper, start_supervisord

    token = FAKE_SECRETS["github-classic"]
    failing = filebrowser_missing_command()
    failing["environment"] = f'GITHUB_TOKEN="{token}"'
    programs = {"worker": sleeper(), "filebrowser": failing}
    with start_supervisord(box.root / "sv", programs) as sv:
        sv.wait_for_states({"worker": "RUNNING", "filebrowser": "FATAL"}, timeout=30)
        box.only("supervisor")
        box.config.write_text(box.config.read_text() + sv.toml())
        result = invoke("context", "--config", str(box.config))
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "## Supervisor configuration of the failing programs" in text
    line = next(x for x in text.splitlines() if x.startswith("The supervisord config file: "))
    path = Path(line.removeprefix("The supervisord config file: ").replace("\\", ""))
    assert path == sv.conf_path  # the one the supervisord it talked to runs with
    block = text.split("`[program:filebrowser]`", 1)[1]
    assert "[program:filebrowser]\n" in block
    assert "command=/opt/filebrowser/bin/filebrowser" in block.replace(" = ", "=")
    assert "[program:worker]" not in text
    assert token not in text and "[redacted" in block


def test_logs_stay_useful_and_bounded(box: Box) -> None:
    """An 8 GiB log and a log of 4 KB lines cannot take the report over; a runaway log is a
    finding; a binary prefix does not hide the text written after it."""
    huge = box.logs / "huge.log"
    with huge.open("wb") as handle:
        handle.seek(8 * 1024**3)  # sparse: costs nothing on disk
        handle.write(b"still running\n")
    (box.logs / "wide.log").write_text(("x" * 4000 + "\n") * 20)
    (box.logs / "dumped.log").write_bytes(b"\x00\x01\x02\xff\xfe" * 400 + b"\nback to text\nok\n")
    for n in range(10):
        (box.logs / f"svc{n}.log").write_text(f"service {n} started\n")
    box.only("logs")
    box.config.write_text(box.config.read_text().replace("tail_lines = 5", "tail_lines = 20"))
    result = invoke("run", "--config", str(box.config), "--no-docs")
    assert result.exit_code == 0, result.stderr
    text = (box.workspace / "system_status.md").read_text()
    logs_part = text.split("## logs:", 1)[1].split("## Volatile figures", 1)[0]
    assert len(logs_part.encode()) < 64 * 1024
    assert logs_part.count("x" * 4000) <= 2
    assert "older lines left out for space" in logs_part
    for n in range(10):
        assert f"service {n} started" in logs_part  # the small logs are not crowded out
    report = json.loads((box.workspace / "system_status.json").read_text())
    (runaway,) = [f for f in report["findings"] if f["id"].startswith("logs.runaway-log")]
    assert runaway["title"] == "huge.log is 8.0 GiB: it grows without rotation"
    files = {Path(f["path"]).name: f for f in report["sections"]["logs"]["data"]["files"]}
    assert files["dumped.log"]["binary"] is False
    assert files["dumped.log"]["lines"] == ["back to text", "ok"]
    assert files["huge.log"]["lines"][-1] == "still running"


def refreshed(box: Box, text: str) -> tuple[str, str]:
    """`docs update FILE --last` on `text`; the new text and the report's date (YYYY-MM-DD)."""
    box.only("env")
    if not (box.workspace / "system_status.json").exists():
        assert invoke("run", "--config", str(box.config), "--no-docs").exit_code == 0
    stamp = json.loads((box.workspace / "system_status.json").read_text())["generated_at"]
    doc = box.root / "doc.md"
    doc.write_text(text)
    result = invoke("docs", "update", str(doc), "--config", str(box.config), "--last")
    assert result.exit_code == 0, result.stderr
    return doc.read_text(), stamp[:10]


def test_stamps_in_inline_html_and_code_stay_and_two_on_a_line_are_both_refreshed(
    box: Box,
) -> None:
    inert = (
        "# Box\n\n"
        "Intro <!-- Last updated: April 29, 2025 --> text.\n\n"
        "Intro <!--\nLast updated: April 29, 2025\n--> more.\n\n"
        'A <span title="Last updated: April 29, 2025">tag</span>.\n\n'
        "Run `echo\nLast updated: April 29, 2025` now.\n"
    )
    text, _ = refreshed(box, inert)
    assert text == inert
    two = "Docs: Last updated: April 29, 2025 | API: Last updated: 2025-04-29\n"
    text, day = refreshed(box, two)
    assert "2025" not in text
    assert text.count("Last updated: ") == 2 and day in text


def test_the_docs_refresh_costs_what_the_document_weighs(box: Box) -> None:
    """Linear: ten times the document, about ten times the CPU time (the whole-file difflib
    it replaced took a hundred times, minutes for 5 MB). CPU time, not wall time: other
    processes on a loaded machine cannot change the answer."""
    box.only("env")
    assert invoke("run", "--config", str(box.config), "--no-docs").exit_code == 0
    paragraph = "Some prose about the box, with `code` and a [link](http://x.invalid).\n\n"
    costs = []
    for size in (512 * 1024, 5 * 1024 * 1024):
        body = paragraph * (size // len(paragraph))
        text = "# Big\n\n*Last updated: April 29, 2025*\n\n" + body
        text += "*Last updated: April 29, 2025*\n"
        doc = box.root / "big.md"
        doc.write_text(text)
        started = time.process_time()
        result = invoke("docs", "update", str(doc), "--config", str(box.config), "--last")
        costs.append(time.process_time() - started)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.endswith(f": lines 3, {text.count(chr(10))} of the new file.\n")
    assert costs[1] < 25 * costs[0], costs
    assert costs[1] < 20, costs  # a few seconds of CPU at most


def test_an_index_lock_a_live_process_holds_is_not_called_stale(box: Box) -> None:
    ws, head = recorded_run(box)
    lock = ws / ".git" / "index.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"f = open({str(lock)!r}, 'w'); import time; time.sleep(60)"]
    )
    try:
        for _ in range(100):
            if lock.exists():
                break
            time.sleep(0.05)
        time.sleep(0.2)
        result = invoke("run", "--config", str(box.config))
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 0
    finding = history_finding(ws)
    assert finding["detail"].startswith(
        f"{lock} is held by a running process (pid {holder.pid}): a git command is under way"
    )
    assert git(ws, "rev-parse", "HEAD").strip() == head


def test_the_sample_report_agrees_with_itself() -> None:
    sample = Path(__file__).parent.parent / "sample_reports" / "faulty" / "system_status.md"
    text = sample.read_text()
    assert "## display: crit" in text
    assert "- Window manager icewm: **not running** (explained by finding " in text
    assert "**no** (explained by finding " in text


def test_cron_warns_when_the_user_cannot_run_the_installed_binary(
    tmp_path: Path, cron_account: str
) -> None:
    from healthcheck import cron as schedule

    private = tmp_path / "private-bin"
    private.mkdir(mode=0o700)  # root's alone: the cron user cannot enter it
    script = private / "healthcheck"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    logs = tmp_path / "open-logs"
    logs.mkdir()
    warnings = schedule._cannot(cron_account, [str(script)], logs / "healthcheck.log")
    assert warnings[0] == (
        f"warning: {cron_account} cannot run {script}, so the job would fail: install "
        "healthcheck where that user can reach it, or use --user with its owner"
    )
    # a binary everyone can run: no such warning
    assert not any("cannot run" in w for w in schedule._cannot(cron_account, ["/bin/sh"], logs))
    assert schedule._cannot("root", [str(script)], logs / "x.log") == []


def test_a_log_that_grows_fast_between_runs_is_a_finding(box: Box) -> None:
    log = box.logs / "chatty.log"
    log.write_text("started\n")
    box.only("logs")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    with log.open("r+b") as handle:
        handle.seek(300 * 1024**2)  # 300 MiB more (sparse), in a second or two
        handle.write(b"and on and on\n")
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    report = json.loads((box.workspace / "system_status.json").read_text())
    (finding,) = [f for f in report["findings"] if f["id"] == f"logs.log-growing:{log}"]
    assert finding["title"] == "chatty.log grew by 300.0 MiB since the run before"
    assert finding["detail"].startswith(f"{log} went from 8 B to 300.0 MiB in ")
    quiet = invoke("run", "--config", str(box.config))  # no growth since: no finding
    report = json.loads((box.workspace / "system_status.json").read_text())
    assert quiet.exit_code == 0
    assert [f for f in report["findings"] if f["id"].startswith("logs.log-growing")] == []


def test_a_hand_edited_previous_report_costs_only_the_growth_check(box: Box) -> None:
    """A previous report whose log entries are not records (edited by hand, or by another
    version) is no report to compare against: the run goes on without a growth finding."""
    (box.logs / "chatty.log").write_text("started\n")
    box.only("logs")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    report_path = box.workspace / "system_status.json"
    report = json.loads(report_path.read_text())
    report["sections"]["logs"]["data"]["files"] = ["chatty.log", 7, None]
    report_path.write_text(json.dumps(report))
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    assert "internal error" not in result.stderr
    again = json.loads(report_path.read_text())
    assert [f for f in again["findings"] if f["id"].startswith("logs.log-growing")] == []


def test_an_internal_errors_line_is_masked_by_the_configs_own_patterns(box: Box) -> None:
    """A bug's one line (no traceback) passes through the command's redactor, the one that
    knows [redact] patterns, not a bare one that knows only our environment."""
    box.only("env", extra='\n[redact]\npatterns = ["ZZFAKE-[0-9a-f]{12}"]\n')
    program = (
        "import sys, healthcheck.pipeline as p, healthcheck.cli as c\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('could not reach db at host ZZFAKE-0123456789ab')\n"
        "p.run = broken\n"
        "sys.argv[0] = 'healthcheck'\n"
        "c.main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program, "run", "--config", str(box.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3  # EXIT_FAILED
    assert "ZZFAKE-0123456789ab" not in proc.stderr
    assert proc.stderr.startswith("healthcheck: internal error: RuntimeError: could not reach db")
    assert "Traceback" not in proc.stderr
