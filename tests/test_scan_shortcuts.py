"""The process and socket scans' shortcuts on a big box, each checked against the long way.

- Who holds a listening socket (or that no process of ours does) is remembered for an hour
  (user cache), so a later run does not walk every process's descriptors again; a
  remembered holder is checked first; a new socket on the same port (a new inode) and an
  hour's age both send the walk back.
- The rss of every process is not read: the stat estimate picks the few that may be the
  largest, and only theirs is read (psutil's figure).

Real processes and sockets throughout; none asserts a time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from healthcheck import cache, processes

HOLDER = (
    "import socket, sys\n"
    "def listen(port):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('127.0.0.1', port)); s.listen(); return s\n"
    "s = listen(0); port = s.getsockname()[1]; print(port, flush=True)\n"
    "for line in sys.stdin:\n"  # each line: close the socket and listen again (a new inode)
    "    s.close(); s = listen(port); print('again', flush=True)\n"
)


class Holder:
    """A child process listening on a TCP port: the owner the walk must find."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def listen_again(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "again\n"

    def owner(self) -> int | None:
        return next(c.pid for c in processes.tcp_listeners() if c.port == self.port)


@pytest.fixture
def holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Holder]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    started = Holder()
    try:
        yield started
    finally:
        started.proc.kill()
        started.proc.wait()


def _hide(monkeypatch: pytest.MonkeyPatch, pid: int) -> None:
    """Make the walk blind to `pid`'s descriptors, as to a process in another pid namespace."""
    real_read = processes._FdWalk._read
    monkeypatch.setattr(
        processes._FdWalk,
        "_read",
        lambda walk, seen: set() if seen == pid else real_read(walk, seen),
    )


def _asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The socket inodes the walk is asked to find holders for, from now on."""
    real_owners = processes._FdWalk.owners
    asked: list[str] = []

    def owners(walk: Any, inodes: set[str], exclude: int | None = None) -> dict[str, int]:
        asked.extend(inodes)
        return real_owners(walk, inodes, exclude)

    monkeypatch.setattr(processes._FdWalk, "owners", owners)
    return asked


def _proofs() -> dict[str, tuple[float, int, int]]:
    stored = cache.load(processes._PROOFS_CACHE, processes._proofs_key())
    return stored if isinstance(stored, dict) else {}


def _proof(port: int) -> tuple[str, int]:
    """(inode, holder pid or 0) of the proof about the listener on 127.0.0.1:`port`."""
    return next(
        (identity.split()[-1], proof[1])
        for identity, proof in _proofs().items()
        if identity.split()[1:3] == ["127.0.0.1", str(port)]
    )


def test_a_found_holder_is_remembered_and_checked_instead_of_walked_for(
    holder: Holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert holder.owner() == holder.proc.pid  # the long way finds it
    inode, remembered = _proof(holder.port)
    assert remembered == holder.proc.pid
    with monkeypatch.context() as watched:
        asked = _asked(watched)
        assert holder.owner() == holder.proc.pid
        assert inode not in asked  # the holder was checked, not walked for
    # A remembered holder that does not hold the socket (here: this process, as if the
    # descriptor had been passed on) is walked past: the real holder is found.
    key = processes._proofs_key()
    proofs = _proofs()
    identity = next(i for i in proofs if i.endswith(f" {inode}"))
    me = (proofs[identity][0], os.getpid(), processes._start_ticks(os.getpid()) or 0)
    cache.store(processes._PROOFS_CACHE, key, {**proofs, identity: me})
    assert holder.owner() == holder.proc.pid
    # So is one whose pid now names another process (a different start time).
    stale = (proofs[identity][0], holder.proc.pid, proofs[identity][2] + 1)
    cache.store(processes._PROOFS_CACHE, key, {**proofs, identity: stale})
    asked = _asked(monkeypatch)
    assert holder.owner() == holder.proc.pid
    assert inode in asked


def test_a_listener_nobody_holds_is_remembered_and_not_walked_for_again(
    holder: Holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as blind:
        _hide(blind, holder.proc.pid)
        assert holder.owner() is None  # every process walked: nobody holds it
    inode, remembered = _proof(holder.port)
    assert remembered == 0
    # The next run trusts the proof: the walk is not asked about that socket.
    asked = _asked(monkeypatch)
    assert holder.owner() is None
    assert inode not in asked


def test_a_new_socket_on_the_same_port_is_walked_for_afresh(
    holder: Holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as blind:
        _hide(blind, holder.proc.pid)
        assert holder.owner() is None
    assert holder.owner() is None  # remembered
    old, _ = _proof(holder.port)
    holder.listen_again()  # same port, new inode: the proof was about another socket
    assert holder.owner() == holder.proc.pid
    inodes = {i.split()[-1]: p[1] for i, p in _proofs().items() if f" {holder.port} " in i}
    assert inodes[old] == 0 and len(inodes) == 2
    assert holder.proc.pid in inodes.values()


def test_the_proof_expires_after_an_hour(holder: Holder, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as blind:
        _hide(blind, holder.proc.pid)
        assert holder.owner() is None
    key = processes._proofs_key()
    proofs = _proofs()
    assert _proof(holder.port)[1] == 0
    # An hour and a second ago: walked for again, and the owner found.
    hour = processes.LISTENER_PROOF_SECONDS
    aged = {i: (when - hour - 1, *rest) for i, (when, *rest) in proofs.items()}
    cache.store(processes._PROOFS_CACHE, key, aged)
    assert holder.owner() == holder.proc.pid
    # A proof dated in the future (a clock set back) is not trusted either.
    future = {i: (when + 2 * hour, *rest) for i, (when, *rest) in proofs.items()}
    cache.store(processes._PROOFS_CACHE, key, future)
    assert holder.owner() == holder.proc.pid


# --- the largest processes by rss, reading few statm files ---------------------------------

EATER = (
    "import sys, time; block = bytearray(int(sys.argv[1]) << 20); print('ready', flush=True); "
    "time.sleep(600)"
)


def test_the_largest_processes_are_psutils_largest_and_only_they_are_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eaters = [
        subprocess.Popen([sys.executable, "-c", EATER, str(mib)], stdout=subprocess.PIPE, text=True)
        for mib in (96, 64, 8)
    ]
    sleepers: list[subprocess.Popen[Any]] = [subprocess.Popen(["sleep", "600"]) for _ in range(3)]
    try:
        for eater in eaters:
            assert eater.stdout is not None and eater.stdout.readline() == "ready\n"
        pids = {p.pid for p in [*eaters, *sleepers]}
        measured: list[int] = []
        real_statm = processes._statm_rss

        def statm(pid: int) -> int:
            measured.append(pid)
            return real_statm(pid)

        monkeypatch.setattr(processes, "_statm_rss", statm)
        rows = [row for row in processes.scan() if row.pid in pids]
        largest = processes.largest_by_rss(rows, 2)
        assert [row.pid for row in largest] == [eaters[0].pid, eaters[1].pid]
        rss = {p.pid: p.memory_info().rss for p in map(psutil.Process, pids)}
        assert [row.rss for row in largest] == [rss[eaters[0].pid], rss[eaters[1].pid]]
        # Only rows whose estimate could reach the second largest were measured.
        floor = sorted(r.rss_estimate for r in rows)[-2] - 2 * processes._rss_estimate_error()
        assert set(measured) == {r.pid for r in rows if r.rss_estimate >= floor}
        if processes._rss_estimate_error() < (64 - 8) << 19:  # a box of a few CPUs
            assert not {s.pid for s in sleepers} & set(measured)
        assert processes.largest_by_rss(rows, 0) == []
        assert {r.pid for r in processes.largest_by_rss(rows, 100)} == pids
    finally:
        for proc in eaters + sleepers:
            proc.kill()
            proc.wait()


def test_an_estimate_off_by_as_much_as_a_big_box_allows_still_gives_the_largest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On a box of 64 CPUs stat's figure may be 100 MB off: here 40 MB, either way.
    error = 40 << 20
    monkeypatch.setattr(processes, "_rss_estimate_error", lambda: error)
    eaters = [
        subprocess.Popen([sys.executable, "-c", EATER, str(mib)], stdout=subprocess.PIPE, text=True)
        for mib in (96, 64)
    ]
    try:
        for eater in eaters:
            assert eater.stdout is not None and eater.stdout.readline() == "ready\n"
        rows = {row.pid: row for row in processes.scan()}
        big, small = rows[eaters[0].pid], rows[eaters[1].pid]
        big.rss_estimate = big.rss - error + (1 << 20)  # lower than the smaller one's
        small.rss_estimate = small.rss + error - (1 << 20)
        assert [r.pid for r in processes.largest_by_rss([small, big], 1)] == [big.pid]
    finally:
        for proc in eaters:
            proc.kill()
            proc.wait()


def test_rss_read_on_demand_is_psutils() -> None:
    rows = {row.pid: row for row in processes.scan()}
    me = rows[os.getpid()]
    assert me.rss_estimate > 0
    assert abs(me.rss - psutil.Process().memory_info().rss) < 8 << 20
    assert socket  # the module the holder's sockets are made with


def test_command_lines_are_psutils_long_ones_and_odd_ones_too() -> None:
    spawned = [
        subprocess.Popen(["sh", "-c", "sleep 600", "x" * 20_000]),  # five pages of cmdline
        subprocess.Popen(["sleep", "600"]),
        subprocess.Popen(["sh", "-c", "sleep 600; :", "a\rb"]),
        subprocess.Popen(["bash", "-c", "exec -a 'title with spaces' sleep 600"]),
    ]
    try:
        pids = {p.pid for p in spawned}
        for _attempt in range(20):  # `exec -a` takes a moment to replace the shell
            ours = {r.pid: r.cmdline for r in processes.scan() if r.pid in pids}
            theirs = {p.pid: tuple(p.cmdline()) for p in map(psutil.Process, pids)}
            if ours == theirs and ours[spawned[3].pid][0] == "title with spaces":
                break
            time.sleep(0.1)
        assert ours == theirs
        assert len(ours[spawned[0].pid][3]) == 20_000
        assert ours[spawned[3].pid] == ("title with spaces", "600")
    finally:
        for proc in spawned:
            proc.kill()
            proc.wait()


# --- kernel threads: no descriptors to read ------------------------------------------------


def test_kernel_threads_are_told_and_their_descriptors_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = processes.scan()
    kernel = {row.pid for row in rows if row.kernel_thread}
    if not kernel:
        pytest.skip("no kernel thread visible in this pid namespace (a container)")
    by_pid = {row.pid: row for row in rows}
    for pid in kernel:  # kthreadd (pid 2) and its children, with no command line
        assert by_pid[pid].cmdline == () == tuple(psutil.Process(pid).cmdline())
        assert pid == 2 or psutil.Process(pid).ppid() == 2
    assert not by_pid[os.getpid()].kernel_thread
    read: list[int] = []
    real_read = processes._FdWalk._read

    def counted(walk: Any, pid: int) -> set[str]:
        read.append(pid)
        return real_read(walk, pid)

    monkeypatch.setattr(processes._FdWalk, "_read", counted)
    with processes.shared_scan():
        processes.process_rows()  # the run's table, read first
        assert processes._FdWalk().owners({"1"}) == {}  # a walk through every process
    assert read and not kernel & set(read)
