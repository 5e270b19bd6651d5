"""How to bring back a display that does not answer: the fixes the display collector's
findings give and the run's diagnosis rewrites once it knows which supervisor program serves
the display (core, so that the diagnosis step needs no collector).
"""

from __future__ import annotations

from typing import Any

X_SERVER_NAMES = ("Xtigervnc", "Xvnc", "Xvfb", "Xorg", "X", "Xwayland")


def lock_is_stale(lock: dict[str, Any], server: dict[str, Any] | None) -> bool:
    """A lock with no live X server behind it (dead pid, no pid, or a reused pid)."""
    if not lock["exists"] or server is not None:
        return False
    if lock["pid"] is None or not lock["pid_alive"]:
        return True
    # After a container restart the old server's pid may belong to another program; the X
    # server still refuses to start, since it only checks that the pid exists.
    return lock.get("pid_name") is not None and lock["pid_name"] not in X_SERVER_NAMES


def x_server_down_hint(data: dict[str, Any], serving: dict[str, Any] | None) -> str:
    """The fix for a display that does not answer, naming the supervisor program that serves
    it and its state when known (`serving`: name, state, pid, and the title of its own finding
    as "cause" when it has one; from supervisord or from the server process's environment).
    A stale lock must go first: the server refuses to start while it is there."""
    display = data["display"]
    if serving is None:
        fix = (
            f"Start the program that runs the X server for {display}: supervisorctl status "
            "lists it; supervisorctl start PROGRAM, then supervisorctl tail PROGRAM stderr."
        )
    else:
        name, state = serving["name"], serving.get("state")
        log = f"its log: supervisorctl tail {name} stderr"
        if state in (None, "RUNNING", "STARTING"):
            what = f"{name} is {state}" if state else f"{name} runs it"
            fix = f"{what} but {display} does not answer: supervisorctl restart {name} ({log})."
        elif serving.get("cause"):
            # Starting it again fails the same way until its own finding's cause is fixed.
            fix = (
                f"{name} is {state}: {serving['cause']}. Fix that first (its own finding), "
                f"then supervisorctl start {name}."
            )
        else:
            fix = f"{name} is {state}: supervisorctl start {name} ({log})."
    if lock_is_stale(data["lock"], data["server"]):
        stale = f"{data['lock']['path']} {data['socket']['path']}"
        return f"First remove the stale lock: rm -f {stale}. Then: {fix}"
    return fix


def wm_not_running_hint(display: str, wm: str, program: str | None) -> str:
    """What to do about a window manager that is not running, naming its supervisor program
    when known (the diagnosis step knows it from supervisord; the collector does not)."""
    if program:
        section = f"[program:{program.split(':')[-1]}]"
        log = f"supervisorctl tail {program} stderr"
        start = f"supervisorctl start {program}"
    else:
        section = f"the [program:...] that runs {wm}"
        log = (
            f"supervisorctl status names the program that runs {wm}; "
            "supervisorctl tail PROGRAM stderr"
        )
        start = "supervisorctl start PROGRAM"
    return (
        f'{log}. "Can\'t open display: <none>" there means DISPLAY is unset: add '
        f'environment=DISPLAY="{display}" to {section}. "Can\'t open display: {display}" '
        "means it started before the X server was ready: give the X program a lower "
        f"priority= and let {section} autorestart. Then {start}."
    )
