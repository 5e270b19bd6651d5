"""The process table and the run's other shared scans, each read once per run.

Reading the table costs a few /proc files per process; on a box with thousands of processes,
four collectors each reading it in parallel threads (under one GIL) cost four times that.
Inside `shared_scan()`, which a command opens around its whole run (the redactor's own look
for `env.source`'s process included), the first caller to ask reads the table and the others
wait for that same read. The same holds for every other scan made through `shared()`: the
socket table (and its /proc/*/fd walk), the log directory walk, each log's tail. Outside it,
every call reads afresh, so a collector run on its own (or a test that starts a process and
looks again) sees the box now.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

ZOMBIE = "zombie"  # psutil.STATUS_ZOMBIE, without importing psutil for it
# Only what most collectors need of every process. psutil's ppid() and create_time() each
# re-read /proc/PID/stat (a pid-reuse check): asked of the few processes that matter, not all.
_ATTRS = ["pid", "name", "cmdline", "status", "memory_info"]


# Interpreters whose first non-option argument is the real program: `python3
# /usr/bin/websockify`, `python3 -m websockify`, `bash /opt/start.sh`, `node server.js`.
# A versioned name counts as its interpreter (python3.11, perl5.36).
INTERPRETERS = frozenset(
    {"python", "python2", "python3", "sh", "bash", "dash", "perl", "node", "ruby"}
)


def interpreted_script(cmdline: tuple[str, ...] | list[str]) -> str | None:
    """The script (or `-m` module) an interpreter's command line runs; None when the command
    is no interpreter, or runs none (`python3 -c ...` still names its code's first word)."""
    if not cmdline or os.path.basename(cmdline[0]).rstrip("0123456789.") not in INTERPRETERS:
        return None
    return next((arg for arg in cmdline[1:] if not arg.startswith("-")), None)


# /proc/stat's first line, in seconds as psutil.cpu_times() gives it (the fields a kernel
# does not have are 0).
class CpuTimes(NamedTuple):
    user: float = 0.0
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0
    guest: float = 0.0
    guest_nice: float = 0.0


class ProcessRow:
    """What the collectors need of one process; None where it could not be read.

    A plain class, not a dataclass: thousands are made per run, and a dataclass costs
    import time for nothing here.

    `rss` is psutil's figure (/proc/PID/statm), read when first asked: only the system
    collector's largest processes need it, and a read per process is a third of the scan.
    `rss_estimate` is /proc/PID/stat's own figure, read with the rest (`largest_by_rss`).
    """

    __slots__ = ("_rss", "cmdline", "kernel_thread", "name", "pid", "rss_estimate", "status")

    def __init__(
        self,
        pid: int,
        name: str,
        cmdline: tuple[str, ...],
        status: str | None,
        rss: int | None,
        rss_estimate: int = 0,
        kernel_thread: bool = False,
    ) -> None:
        self.pid = pid
        self.kernel_thread = kernel_thread  # no descriptors, no environment, no command line
        self.name = name
        self.cmdline = cmdline
        self.status = status
        self._rss = rss
        self.rss_estimate = rss_estimate if rss is None else rss

    @property
    def rss(self) -> int:
        if self._rss is None:
            self._rss = _statm_rss(self.pid)
        return self._rss

    def __repr__(self) -> str:
        return f"ProcessRow(pid={self.pid}, name={self.name!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessRow):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        return (self.pid, self.name, self.cmdline, self.status, self.rss)

    @property
    def zombie(self) -> bool:
        return self.status == ZOMBIE

    def ppid(self) -> int | None:
        import psutil

        try:
            return psutil.Process(self.pid).ppid()
        except psutil.Error:
            return None

    def create_time(self) -> float | None:
        import psutil

        try:
            return psutil.Process(self.pid).create_time()
        except psutil.Error:
            return None


# Enough for any real process tree (supervisord -> sh -> vncserver -> Xtigervnc); a longer
# chain means a pid loop in a racing read, not a deeper tree.
MAX_TREE_DEPTH = 64


def descends_from(pid: int, ancestors: frozenset[int] | set[int]) -> bool:
    """Whether `pid` is one of `ancestors` or runs below one of them (walks its parents)."""
    import psutil

    current: int | None = pid
    for _ in range(MAX_TREE_DEPTH):
        if current is None or current <= 0:
            return False
        if current in ancestors:
            return True
        try:
            current = psutil.Process(current).ppid()
        except psutil.Error:
            return False
    return False


def scan() -> list[ProcessRow]:
    """Every process now, by pid: read from /proc directly where there is one.

    What psutil.process_iter(_ATTRS) gives, row for row (`psutil_scan`), for a fifth of
    the cost or less: psutil spends about 0.2 ms a process on its own bookkeeping, 1.2 s on a
    box of 5,000 processes, where two small reads a process take 0.02 ms.
    """
    rows = _proc_scan()
    return rows if rows is not None else psutil_scan()


def psutil_scan() -> list[ProcessRow]:
    """Every process now, by pid, through psutil (systems without /proc)."""
    import psutil

    rows = []
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        info = proc.info
        memory = info["memory_info"]
        rows.append(
            ProcessRow(
                pid=info["pid"],
                name=info["name"] or "",
                cmdline=tuple(info["cmdline"] or ()),
                status=info["status"],
                rss=memory.rss if memory else 0,
            )
        )
    return sorted(rows, key=lambda row: row.pid)


# /proc/PID/stat's state letter, in psutil's words (psutil._pslinux.PROC_STATUSES).
_STATUSES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "Z": ZOMBIE,
    "X": "dead",
    "x": "dead",
    "K": "wake-kill",
    "W": "waking",
    "I": "idle",
    "P": "parked",
}


class _Gone(Exception):
    """The process ended while it was being read: it is left out, as psutil leaves it."""


def _read_proc(path: str) -> bytes | None:
    """A /proc file's bytes; None when permission is denied; _Gone when it has gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise _Gone() from None
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
        if len(data) < 4096:
            return data
        chunks = [data]
        while chunks[-1]:  # a long command line: /proc gives it a page at a time
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks)
    except ProcessLookupError:
        raise _Gone() from None
    except OSError:
        return None
    finally:
        os.close(fd)


def _proc_scan() -> list[ProcessRow] | None:
    """The table from /proc, as psutil reads it on Linux; None where there is no /proc."""
    if not os.path.isfile("/proc/self/stat"):
        return None
    try:
        pids = sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    except OSError:
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    rows = []
    for pid in pids:
        try:
            stat = _read_proc(f"/proc/{pid}/stat")
        except _Gone:
            continue
        name: str | None = None
        status: str | None = None
        estimate = 0
        kernel_thread = False
        if stat:
            close = stat.rfind(b")")
            name = stat[stat.find(b"(") + 1 : close].decode(encoding, errors)
            fields = stat[close + 2 :].split(maxsplit=_STAT_RSS + 1)  # not the 30 after
            if fields:
                status = _STATUSES.get(fields[0].decode(), "?")
            if len(fields) > _STAT_RSS:
                estimate = int(fields[_STAT_RSS]) * page
                kernel_thread = bool(int(fields[_STAT_FLAGS]) & _PF_KTHREAD)
        try:
            # A kernel thread has no command line (psutil's is empty): not read for it.
            raw_cmdline = None if kernel_thread else _read_proc(f"/proc/{pid}/cmdline")
        except _Gone:
            continue
        if not raw_cmdline:
            cmdline: tuple[str, ...] = ()
        elif raw_cmdline[-1:] == b"\0" and b"\0" in raw_cmdline[:-1] and b"\r" not in raw_cmdline:
            # The usual command line (NUL-separated, more than one word), read at C speed.
            cmdline = tuple(raw_cmdline[:-1].decode(encoding, errors).split("\0"))
        else:
            cmdline = _cmdline(raw_cmdline.decode(encoding, errors))
        if name is not None and len(name) >= 15 and cmdline:
            # The kernel cuts names at 15 characters; psutil takes the whole one from argv[0].
            whole = os.path.basename(cmdline[0])
            if whole.startswith(name):
                name = whole
        rows.append(ProcessRow(pid, name or "", cmdline, status, None, estimate, kernel_thread))
    return rows


# /proc/PID/stat's rss field (resident pages) and flags, counted from the state (fields[0]).
_STAT_RSS = 21
_STAT_FLAGS = 6
_PF_KTHREAD = 0x00200000  # include/linux/sched.h: a kernel thread


def _statm_rss(pid: int) -> int:
    """Resident bytes from /proc/PID/statm, as psutil reads them; 0 when it cannot be read."""
    try:
        statm = _read_proc(f"/proc/{pid}/statm")
    except _Gone:
        return 0
    parts = statm.split() if statm else []
    return int(parts[1]) * os.sysconf("SC_PAGE_SIZE") if len(parts) > 1 else 0


def _rss_estimate_error() -> int:
    """How far /proc/PID/stat's rss may be from statm's, in bytes, at most.

    Since Linux 6.2 a process's page counts are per-CPU counters, each CPU's part below a
    batch (max(32, 2 x CPUs) pages) before it is folded into the shared figure; stat reads
    the shared figure of the three counters that make up rss (anonymous, file, shared
    memory), and on newer kernels statm, which psutil reports, the exact sum (here 6.18 they
    differ by up to 80 pages on 2 CPUs). Before 6.2 both read the same figure.
    """
    cpus = os.cpu_count() or 1
    return 3 * max(32, 2 * cpus) * cpus * os.sysconf("SC_PAGE_SIZE")


def largest_by_rss(rows: list[ProcessRow], count: int) -> list[ProcessRow]:
    """The `count` rows with the largest rss (psutil's figure), largest first, ties by pid.

    Only the rows whose stat estimate could put them among the largest have their statm
    read: on a box of 5,000 processes, a few dozen reads instead of 5,000.
    """
    if count <= 0:
        return []
    estimates = sorted((row.rss_estimate for row in rows), reverse=True)
    if len(estimates) > count:
        # A row is left out only when its figure, at its highest, is below what the
        # count-th largest estimate's row has at its lowest: count rows beat it for sure.
        floor = estimates[count - 1] - 2 * _rss_estimate_error()
        rows = [row for row in rows if row.rss_estimate >= floor]
    return sorted(rows, key=lambda row: (-row.rss, row.pid))[:count]


def _cmdline(data: str) -> tuple[str, ...]:
    """psutil's reading of /proc/PID/cmdline (text mode: universal newlines)."""
    data = data.replace("\r\n", "\n").replace("\r", "\n")
    if not data:
        return ()
    # NUL-separated, normally; a process that rewrote its title (setproctitle) may use spaces.
    sep = "\x00" if data.endswith("\x00") else " "
    if data.endswith(sep):
        data = data[:-1]
    args = data.split(sep)
    if sep == "\x00" and len(args) == 1 and " " in data:
        args = data.split(" ")
    return tuple(args)


class RunStart(NamedTuple):
    """When a run began: the monotonic clock, the box's CPU counters (None where there are
    none) and the CPU seconds this process had used by then."""

    at: float
    box: CpuTimes | None
    own: float


def own_cpu_seconds() -> float:
    """The CPU time this process (all of its threads) has used so far, in seconds."""
    times = os.times()
    return times.user + times.system


def cpu_times() -> CpuTimes | None:
    """The box's CPU counters now (one read of /proc/stat); None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            first = handle.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return CpuTimes(*(int(v) / ticks for v in first[1:11]))


class _SharedScans:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._values: dict[Hashable, Any] = {}
        # When the run began, in CPU counters: the system collector's CPU figure spans the
        # run so far instead of a sleep of its own.
        self.started = RunStart(time.monotonic(), cpu_times(), own_cpu_seconds())

    def peek(self, key: Hashable) -> Any | None:
        """What `key`'s scan gave, if it is done; None if it is not (nothing waits)."""
        return self._values.get(key)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # the others wait for the first read rather than starting their own
            if key not in self._values:
                self._values[key] = compute()
            return self._values[key]  # type: ignore[no-any-return]


_shared: ContextVar[_SharedScans | None] = ContextVar("healthcheck_shared_scans", default=None)


def shared(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, done once per `shared_scan()` block for each `key`; outside one, afresh.

    What it returns is shared between threads: callers must not change it.
    """
    scans = _shared.get()
    return scans.get(key, compute) if scans is not None else compute()


def process_rows() -> list[ProcessRow]:
    """The process table: the run's shared read inside `shared_scan()`, else a fresh one."""
    return shared("processes", scan)


class Listener(NamedTuple):
    """A listening TCP socket: psutil.net_connections' laddr, family and pid of one."""

    family: int  # socket.AF_INET or AF_INET6
    ip: str
    port: int
    pid: int | None  # the first process holding it; None when none we can see


def tcp_listeners() -> list[Listener]:
    """Every listening TCP socket (IPv4 and IPv6), with the process holding it.

    Read as psutil.net_connections(kind="tcp") reads it, but only the listeners are decoded:
    a busy box has tens of thousands of connections in /proc/net/tcp (TIME_WAIT among
    them), which psutil decodes one by one (0.4 s for 10,000). Once per run (shared); the
    processes holding them are found by the run's one walk of /proc/*/fd (`_FdWalk`).
    """
    return shared("tcp-listeners", _tcp_listeners)


def listeners_by_port() -> dict[int, list[tuple[str, int | None]]]:
    """Port -> [(address, pid)] for every listening TCP socket, IPv4 and IPv6: the view the
    ports and display collectors judge, from the run's one shared scan."""
    import socket

    listeners: dict[int, list[tuple[str, int | None]]] = {}
    for conn in tcp_listeners():
        address = (
            f"[{conn.ip}]:{conn.port}"
            if conn.family == socket.AF_INET6
            else f"{conn.ip}:{conn.port}"
        )
        listeners.setdefault(conn.port, []).append((address, conn.pid))
    return listeners


def unix_socket_pids(names: set[str]) -> set[int]:
    """The first process (lowest pid, other than this one) holding a Unix socket bound to
    one of `names` (as /proc/net/unix writes them: a path, or "@name" for an abstract one);
    empty when none does. From the run's one, shared, walk of /proc/*/fd."""
    inodes = {inode for path, inode in shared("unix-sockets", _unix_sockets) if path in names}
    if not inodes:
        return set()
    owners = shared("socket-owners", _FdWalk).owners(inodes, exclude=os.getpid())
    return {min(owners.values())} if owners else set()


class _FdWalk:
    """Who holds which socket: /proc/PID/fd walked in ascending pid order, only as far as
    the sockets asked about need, and never twice (what is found is kept for later asks).

    The lowest pid holding a socket is the one psutil names (it walks in the same order), and
    a listener is usually an early process: on a box of 5,000 processes the walk stops after
    the first few hundred instead of reading every one's descriptors.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: list[int] | None = None
        self._walked = 0
        self._holders: dict[str, list[int]] = {}

    def owners(self, inodes: set[str], exclude: int | None = None) -> dict[str, int]:
        """inode -> the lowest pid (other than `exclude`) holding it, for those held."""
        with self._lock:
            if self._pids is None:
                try:
                    listing = os.listdir("/proc")
                except OSError:
                    listing = []
                self._pids = sorted(int(entry) for entry in listing if entry.isdigit())
                # Kernel threads hold no descriptors: on a VM, half the table. Told from the
                # run's process table when it has been read already (not read for this).
                scans = _shared.get()
                table = scans.peek("processes") if scans is not None else None
                if table:
                    kernel = {row.pid for row in table if row.kernel_thread}
                    self._pids = [pid for pid in self._pids if pid not in kernel]
            missing = {i for i in inodes if self._held(i, exclude) is None}
            while missing and self._walked < len(self._pids):
                pid = self._pids[self._walked]
                self._walked += 1
                for inode in self._read(pid):
                    if pid != exclude:
                        missing.discard(inode)
            held = {i: self._held(i, exclude) for i in inodes}
            return {i: holder for i, holder in held.items() if holder is not None}

    def _held(self, inode: str, exclude: int | None) -> int | None:
        return next((pid for pid in self._holders.get(inode, ()) if pid != exclude), None)

    def _read(self, pid: int) -> set[str]:
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:  # gone, or not ours to look at
            return set()
        found = set()
        for fd in fds:
            try:
                target = os.readlink(f"{folder}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
        for inode in found:
            self._holders.setdefault(inode, []).append(pid)
        return found


def _tcp_listeners() -> list[Listener]:
    import socket

    listening: list[tuple[int, tuple[str, int], str]] = []
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: TCP_LISTEN
                continue
            address = _decode_address(fields[1], family)
            if address is not None:
                listening.append((family, address, fields[9]))
    if not listening:
        return []
    identities = {
        inode: _listener_identity(family, address, inode) for family, address, inode in listening
    }
    key = _proofs_key()
    proofs = _fresh_proofs(key, time.time())
    owners: dict[str, int] = {}
    asked = set()
    for inode, identity in identities.items():
        proof = proofs.get(identity)
        if proof is not None and proof[1] == 0:
            continue  # nobody we can see held it within the hour
        if proof is not None and _still_holds(proof[1], proof[2], inode):
            owners[inode] = proof[1]
        else:
            asked.add(inode)
    if asked:
        found = shared("socket-owners", _FdWalk).owners(asked)
        owners.update(found)
        # An inode asked for and not found means the walk went through every process: none
        # we can see holds it. Either way, the walk's answer is the proof kept.
        now = time.time()
        walked = {
            identities[inode]: (now, found[inode], _start_ticks(found[inode]) or 0)
            if inode in found
            else (now, 0, 0)
            for inode in asked
        }
        _store_proofs(key, {**proofs, **walked})
    return [Listener(family, *address, owners.get(inode)) for family, address, inode in listening]


# Who holds a listening socket takes a walk of every process's descriptors in pid order until
# it is found: 60 ms on a box of 5,000 processes when the holder has a high pid (pids wrap),
# and on every run when no process we can see holds it (a socket of the host or of another
# container sharing the network namespace: a proxy on port 2024, say). So the walk's answer
# is kept in the user cache per listener (its inode, address and port, on this boot, seen
# from this pid namespace) for LISTENER_PROOF_SECONDS: a later run that finds the same
# listener skips the walk for it, once it has checked that a remembered holder still is one
# (the same process, by its start time, with the socket among its descriptors). A new socket
# on the same port is a new inode: walked for afresh. After the hour the walk is made again:
# a process may have come to hold the socket (a descriptor passed over a Unix socket) or a
# lower pid may hold it too (a child forked after pids wrapped), and psutil names the lowest.
LISTENER_PROOF_SECONDS = 3600.0
_PROOFS_CACHE = "listener-holders"
# /proc/PID/stat's starttime (clock ticks after boot), counted from the state field.
_STAT_START = 19


def _listener_identity(family: int, address: tuple[str, int], inode: str) -> str:
    return f"{family} {address[0]} {address[1]} {inode}"


def _proofs_key() -> str:
    """The cache key: this boot (inode numbers start again at a reboot) and this pid
    namespace (another namespace sees other processes); "" when either cannot be read."""
    from healthcheck import cache

    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as handle:
            boot = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid").encode()
    except OSError:
        return ""
    return cache.digest(boot, namespace)


def _fresh_proofs(key: str, now: float) -> dict[str, tuple[float, int, int]]:
    """identity -> (when, holder pid or 0 for none, the holder's start time), for the
    proofs younger than the hour (and none from the future: a clock set back)."""
    from healthcheck import cache

    stored = cache.load(_PROOFS_CACHE, key) if key else None
    if not isinstance(stored, dict):
        return {}
    return {
        identity: proof
        for identity, proof in stored.items()
        if isinstance(proof, tuple)
        and len(proof) == 3
        and isinstance(proof[0], float)
        and 0 <= now - proof[0] < LISTENER_PROOF_SECONDS
    }


def _store_proofs(key: str, proofs: dict[str, tuple[float, int, int]]) -> None:
    from healthcheck import cache

    if key:
        cache.store(_PROOFS_CACHE, key, proofs)


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot); None when it cannot be read."""
    try:
        stat = _read_proc(f"/proc/{pid}/stat")
    except _Gone:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split() if stat else []
    return int(fields[_STAT_START]) if len(fields) > _STAT_START else None


def _still_holds(pid: int, start: int, inode: str) -> bool:
    """Whether process `pid`, started at `start`, has socket `inode` among its descriptors."""
    if _start_ticks(pid) != start:
        return False  # gone, or its pid taken by another process
    folder = f"/proc/{pid}/fd"
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(folder)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{folder}/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def _decode_address(text: str, family: int) -> tuple[str, int] | None:
    """/proc/net/tcp's "0100007F:1F90" as ("127.0.0.1", 8080), as psutil decodes it; None
    for port 0 (psutil's empty address)."""
    import socket
    import struct

    ip_hex, _, port_hex = text.partition(":")
    port = int(port_hex, 16)
    if not port:
        return None
    raw = bytes.fromhex(ip_hex)
    little = sys.byteorder == "little"
    if family == socket.AF_INET:
        return socket.inet_ntop(family, raw[::-1] if little else raw), port
    words = struct.unpack("<4I", raw)
    packed = struct.pack(">4I" if little else "<4I", *words)
    return socket.inet_ntop(socket.AF_INET6, packed), port


def _unix_sockets() -> list[tuple[str, str]]:
    """(path, inode) of every Unix socket in /proc/net/unix ("" for an unnamed one)."""
    try:
        with open("/proc/net/unix", encoding=sys.getfilesystemencoding(), errors="replace") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        tokens = line.split()
        if len(tokens) < 7:
            continue
        found.append((tokens[-1] if len(tokens) == 8 else "", tokens[6]))
    return found


def run_started() -> RunStart | None:
    """When the enclosing `shared_scan()` began, or None outside one."""
    scans = _shared.get()
    return scans.started if scans is not None else None


SharedScans = _SharedScans  # one run's store of scans (healthcheck.facts.Facts holds one)


def current_scans() -> SharedScans | None:
    """The store of the enclosing `shared_scan()` block, or None outside one."""
    return _shared.get()


@contextlib.contextmanager
def shared_scan(store: SharedScans | None = None) -> Iterator[None]:
    """Within the block (and threads started with a copy of its context), one read of each
    scan is shared: `store`'s, or a new one. Nested inside another block, it joins the
    outer one unless given a store of its own."""
    outer = _shared.get()
    if outer is not None and (store is None or store is outer):
        yield
        return
    token = _shared.set(store if store is not None else _SharedScans())
    try:
        yield
    finally:
        _shared.reset(token)
