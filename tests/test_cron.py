"""`healthcheck cron`: the real `crontab` of a throwaway user, a real cron under supervisord."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from healthcheck import cron as schedule
from healthcheck.cli import cli
from healthcheck.config import Config

from supervisord_env import start_supervisord
from support import Box

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).absolute().parent
# Every kind of line a person keeps in a crontab; `remove` must give back exactly these bytes.
ORIGINAL = (
    "# m h  dom mon dow   command\n"
    "SHELL=/bin/bash\n"
    'MAILTO=""\n'
    "\n"
    "  # an indented comment, kept indented\n"
    "*/5 * * * * /bin/true --fast   # nightly-ish, spaces kept\n"
    '0 3 * * 1-5 /bin/echo "100%" > /dev/null\n'
    "FOO = bar baz\n"
    "@reboot /bin/true\n"
    "# 0 1 * * * /bin/true (a disabled job)\n"
)
TEST_PATH = "/opt/tools/bin:relative/bin:/usr/bin"


def invoke(*args: str) -> CliRunner:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def crontab_of(user: str) -> str:
    result = subprocess.run(["crontab", "-u", user, "-l"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else ""


def set_crontab(user: str, text: str) -> None:
    subprocess.run(["crontab", "-u", user, "-"], input=text, text=True, check=True)


@pytest.fixture(autouse=True, scope="module")
def root_crontab_untouched() -> Iterator[None]:
    """No test may change the crontab of the user running the suite (root, on CI)."""
    if shutil.which("crontab") is None:
        yield
        return
    before = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    yield
    after = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    if (after.returncode, after.stdout) != (before.returncode, before.stdout):
        if before.returncode == 0:
            subprocess.run(["crontab", "-"], input=before.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True, check=False)
        pytest.fail("a test changed the crontab of the user running the suite (restored)")


def expected_line(box: Box, when: str = "0 */6 * * *") -> str:
    path = f"{BIN}:/opt/tools/bin:/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin"
    return (
        f"{when} HEALTHCHECK_CONFIG={box.config} PATH={path} {BIN}/healthcheck run -q "
        f">> {box.logs}/healthcheck.log 2>&1 # healthcheck-managed"
    )


def test_install_twice_leaves_one_entry_and_remove_gives_back_every_byte(
    box: Box, cron_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", TEST_PATH)
    set_crontab(cron_user, ORIGINAL)
    line = expected_line(box)

    first = invoke("cron", "install", "--config", str(box.config), "--user", cron_user)
    assert first.exit_code == 0
    assert first.stdout == line + "\n"
    assert f"\nInstalled in the crontab of {cron_user}:\n" in "\n" + first.stderr
    assert crontab_of(cron_user) == ORIGINAL + line + "\n"

    again = invoke("cron", "install", "--config", str(box.config), "--user", cron_user)
    assert again.exit_code == 0
    assert f"\nAlready installed in the crontab of {cron_user}:\n" in "\n" + again.stderr
    assert crontab_of(cron_user) == ORIGINAL + line + "\n"

    removed = invoke("cron", "remove", "--user", cron_user)
    assert removed.exit_code == 0
    assert removed.stderr == f"Removed from the crontab of {cron_user}: {line}\n"
    assert crontab_of(cron_user) == ORIGINAL

    nothing = invoke("cron", "remove", "--user", cron_user)
    assert nothing.exit_code == 0
    assert nothing.stderr == (
        f"No healthcheck entry in the crontab of {cron_user}: nothing to do.\n"
    )
    assert crontab_of(cron_user) == ORIGINAL


def test_a_new_schedule_updates_the_entry_in_place(
    box: Box, cron_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", TEST_PATH)
    head, tail = "# first\n0 1 * * * /bin/true\n", "# after ours\n30 2 * * * /bin/true\n"
    set_crontab(cron_user, head + expected_line(box) + "\n" + tail)
    result = invoke(
        "cron",
        "install",
        "--config",
        str(box.config),
        "--user",
        cron_user,
        "--schedule",
        "*/30 * * * *",
    )
    assert result.exit_code == 0
    assert (
        f"\nUpdated in the crontab of {cron_user}:\n"
        "  changed: schedule 0 */6 * * * -> */30 * * * *\n" in ("\n" + result.stderr)
    )
    assert crontab_of(cron_user) == head + expected_line(box, "*/30 * * * *") + "\n" + tail


def test_copies_and_commented_out_entries_become_one(cron_user: str, box: Box) -> None:
    ours = "0 */6 * * * /old/healthcheck run -q # healthcheck-managed\n"
    other = "30 2 * * * /bin/true"
    set_crontab(cron_user, f"# 0 * * * * /old/healthcheck # healthcheck-managed\n{other}\n{ours}")
    assert (
        invoke("cron", "install", "--config", str(box.config), "--user", cron_user).exit_code == 0
    )
    lines = crontab_of(cron_user).splitlines()
    assert [schedule.is_ours(line) for line in lines] == [True, False]
    assert lines[1] == other
    assert not lines[0].startswith("#")


def test_the_installed_line_runs_under_crons_bare_environment(box: Box, cron_user: str) -> None:
    box.write_config('disable = ["system", "display", "supervisor"]')
    assert (
        invoke("cron", "install", "--config", str(box.config), "--user", cron_user).exit_code == 0
    )
    entry = schedule.find_entry(crontab_of(cron_user))
    assert entry is not None and entry.schedule == "0 */6 * * *"
    # What cron does: /bin/sh -c with `\%` unescaped, HOME and SHELL, and nothing else.
    command = entry.command.replace("\\%", "%")
    env = {"HOME": str(box.root), "SHELL": "/bin/sh", "LOGNAME": cron_user}
    done = subprocess.run(["/bin/sh", "-c", command], env=env, cwd="/", timeout=120)
    assert done.returncode == 0, (box.logs / "healthcheck.log").read_text()
    assert (box.workspace / "system_status.json").is_file()
    assert (box.logs / "healthcheck.log").is_file()  # created by the redirection, -q keeps it quiet


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("61 * * * *", "--schedule: '61 * * * *' is not a valid cron schedule"),
        ("* * *", "--schedule: '* * *' is not a valid cron schedule"),
        ("every six hours", "--schedule: 'every six hours' is not a valid cron schedule"),
        ("@reboot", "--schedule: '@reboot' is not a valid cron schedule"),
        ("0 0 30 2 *", "--schedule: '0 0 30 2 *' never fires"),
    ],
)
def test_a_bad_schedule_is_a_usage_error_naming_it(
    box: Box, cron_user: str, value: str, message: str
) -> None:
    set_crontab(cron_user, ORIGINAL)
    result = invoke("cron", "install", "--user", cron_user, "--schedule", value)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"healthcheck: {message}")
    assert result.stderr.count("\n") == 1
    assert crontab_of(cron_user) == ORIGINAL


def test_unknown_user_and_missing_crontab_command(
    box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke("cron", "status", "--user", "no-such-user-hc")
    assert (result.exit_code, result.stderr) == (
        2,
        "healthcheck: --user: no such user 'no-such-user-hc'\n",
    )
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for args in (["install"], ["remove"], ["status"]):
        result = invoke("cron", *args)
        assert result.exit_code == 3
        assert result.stderr == (
            "healthcheck: no crontab command: cron is not installed "
            "(Debian/Ubuntu: apt-get install cron)\n"
        )


def test_status_shows_entry_next_run_and_how_to_run_cron(box: Box, cron_user: str) -> None:
    if schedule.cron_daemon() is not None:
        pytest.skip("a cron daemon runs on this machine")
    assert schedule.status_lines(cron_user)[:2] == [
        f"Crontab of {cron_user}: no entry",
        "Install it with: healthcheck cron install",
    ]
    line = "0 */6 * * * /x/healthcheck run -q >> /logs/healthcheck.log 2>&1 # healthcheck-managed"
    set_crontab(cron_user, line + "\n")
    now = datetime(2025, 1, 1, 1, 30, tzinfo=timezone.utc)
    assert schedule.status_lines(cron_user, now) == [
        f"Crontab of {cron_user}: healthcheck entry installed",
        f"Entry: {line}",
        "Next run: 2025-01-01T06:00+00:00 (in 4 h 30 min)",
        "Cron daemon: not running, so no entry fires. Containers have no init to start it;",
        "run it under supervisord with this program (cron/supervisord-cron.conf), then",
        "`supervisorctl reread && supervisorctl update`:",
        "",
        "[program:cron]",
        "command=cron -f",
        "autostart=true",
        "autorestart=true",
        "startsecs=2",
        "redirect_stderr=true",
        "stdout_logfile=/logs/cron.log",
    ]
    result = invoke("cron", "status", "--user", cron_user)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[2].startswith("Next run: ")
    set_crontab(cron_user, "# " + line + "\n")
    assert schedule.status_lines(cron_user, now)[2] == "The entry is commented out: it never runs."


def test_status_sees_cron_started_by_the_shipped_supervisord_program(
    tmp_path: Path, cron_user: str
) -> None:
    if schedule.cron_daemon() is not None:
        pytest.skip("a cron daemon already runs on this machine")
    if shutil.which("cron") is None:
        pytest.skip("Debian's cron is not installed")
    parser = configparser.RawConfigParser()
    parser.read(REPO / "cron" / "supervisord-cron.conf")
    options = dict(parser["program:cron"])
    assert options.pop("stdout_logfile") == "/logs/cron.log"  # the test's own log dir instead
    with start_supervisord(tmp_path, {"cron": options}) as sv:
        pid = sv.wait_for_states({"cron": "RUNNING"})["cron"]["pid"]
        assert schedule.cron_daemon() == {"name": "cron", "pid": pid}
        assert schedule.status_lines(cron_user)[-1] == f"Cron daemon: running (cron, pid {pid})"
    assert schedule.cron_daemon() is None


def test_cronie_and_busybox_daemons_are_recognised(tmp_path: Path) -> None:
    if schedule.cron_daemon() is not None:
        pytest.skip("a cron daemon already runs on this machine")
    crond = tmp_path / "crond"  # cronie's name, and busybox's applet started through a link
    shutil.copy("/bin/sleep", crond)
    proc = subprocess.Popen([str(crond), "30"])
    try:
        for _ in range(50):
            found = schedule.cron_daemon()
            if found:
                break
        assert found == {"name": "crond", "pid": proc.pid}
    finally:
        proc.kill()
        proc.wait()


def test_log_goes_to_the_first_logs_dir_or_says_where(tmp_path: Path) -> None:
    config = Config()
    config.paths.workspace = str(tmp_path / "ws")
    second = tmp_path / "Logs"
    second.mkdir()
    config.logs.dirs = [str(tmp_path / "logs"), str(second)]
    assert schedule.log_file(config) == (
        second / "healthcheck.log",
        f"logs directory {tmp_path / 'logs'} does not exist; logging to {second}",
    )
    second.rmdir()
    # nothing is created: the first logs directory, with a warning that it must exist
    logs = tmp_path / "logs"
    assert schedule.log_file(config) == (
        logs / "healthcheck.log",
        f"warning: {logs} does not exist, so cron cannot write the job's output there and "
        f"skips the job: create it (mkdir -p {logs}) or run `healthcheck run` once first",
    )
    assert not logs.exists() and not (tmp_path / "ws").exists()
    (tmp_path / "ws").mkdir()
    assert schedule.log_file(config) == (
        tmp_path / "ws" / "healthcheck.log",
        f"no logs directory exists ({logs}); logging to {tmp_path / 'ws'}",
    )
    logs.mkdir()
    assert schedule.log_file(config) == (logs / "healthcheck.log", None)


def test_splice_keeps_line_endings_and_adds_a_missing_final_newline() -> None:
    ours = "0 * * * * /x # healthcheck-managed"
    crlf = "a\r\n0 1 * * * /old # healthcheck-managed\r\nb\r\n"
    assert schedule.splice(crlf, ours) == f"a\r\n{ours}\r\nb\r\n"
    assert schedule.splice(crlf, None) == "a\r\nb\r\n"
    assert schedule.splice("", ours) == ours + "\n"
    assert schedule.splice("a", ours) == f"a\n{ours}\n"
    # the tag only counts as a trailing comment of its own
    other = "0 * * * * /bin/echo healthcheck-managed-elsewhere\n"
    assert schedule.splice(other, None) == other


def test_interval_is_the_longest_gap() -> None:
    monday = datetime(2025, 1, 6, 12, 0, tzinfo=timezone.utc)
    assert schedule.interval("0 */6 * * *", monday) == timedelta(hours=6)
    assert schedule.interval("@daily", monday) == timedelta(days=1)
    assert schedule.interval("0 9 * * 1-5", monday) == timedelta(hours=72)


def test_the_shipped_files_match_what_install_writes() -> None:
    conf = (REPO / "cron" / "supervisord-cron.conf").read_text()
    assert conf.endswith(schedule.SUPERVISORD_SNIPPET)
    shipped = [
        line
        for line in (REPO / "cron" / "healthcheck.crontab").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    built = schedule.build_line(
        schedule.DEFAULT_SCHEDULE,
        ["HEALTHCHECK"],
        "CONFIG",
        ":".join(schedule.STANDARD_PATH),
        Path("LOG"),
    )
    assert shipped == [built]


def test_the_command_is_this_installations_healthcheck() -> None:
    assert schedule.healthcheck_command() == [str(BIN / "healthcheck")]
