"""Small derived data kept between runs in the user's cache directory, keyed by its source.

Some work a run repeats gives the same answer as long as its input has not changed: parsing
the packaged failure catalogue (TOML, about 25 ms), the block structure of the docs file
(markdown-it, about 25 ms to import and 15 ms to parse). `load` returns what `store` kept
under the same name and key, or None; the key is a digest of the input, so an edited input
is simply a miss. A cache only: nothing is lost when it cannot be read or written (a
read-only home, a full disk), the run does the work itself.

Values are what `marshal` takes (dicts, lists, tuples, sets, str, bytes, numbers, None):
it reads back in about a millisecond what the TOML parser takes 25 ms for, and it is
written per Python version (its format is not promised across versions).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
from typing import Any

from healthcheck import __version__

# Files kept per name: a key is a digest of its input, so every edit of a config or a docs
# layout (every sys.path, for the entry points) would otherwise leave one more file behind.
# A few are kept so that installs or checkouts sharing a home do not evict each other at
# every run.
KEEP_PER_NAME = 8


def digest(*parts: bytes) -> str:
    """The key for input made of `parts` (their boundaries count)."""
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(len(part).to_bytes(8, "little"))
        hashed.update(part)
    return hashed.hexdigest()


def _path(name: str, key: str) -> str:
    # One file per key: several installs (or worktrees) sharing a home do not overwrite
    # each other's entries at every run.
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = sys.implementation.cache_tag or "python"
    return os.path.join(base, "healthcheck", f"{name}-{__version__}-{tag}-{key[:16]}.marshal")


def load(name: str, key: str) -> Any | None:
    """What was stored under `name` for `key`; None when absent, stale or unreadable."""
    try:
        # One read, then loads: marshal.load on a file object reads it piece by piece, ten
        # times slower (15 ms against 1.5 ms for the 300 KB of kept class code).
        with open(_path(name, key), "rb") as handle:
            stored = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(stored, tuple) or len(stored) != 2 or stored[0] != key:
        return None
    return stored[1]


def store(name: str, key: str, value: Any) -> None:
    """Keep `value` under `name` for `key`, atomically (two runs at once each write a whole
    file, and the last one stays); silently nothing when the directory is not writable."""
    path = _path(name, key)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{name}-")
        try:
            with os.fdopen(fd, "wb") as handle:
                marshal.dump((key, value), handle)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, ValueError):  # ValueError: a value marshal cannot write (a bug, not fatal)
        return
    _prune(os.path.dirname(path), name)


def _prune(directory: str, name: str) -> None:
    """Keep the KEEP_PER_NAME newest files of `name`; the older ones are only a miss away."""
    prefix = f"{name}-{__version__}-"
    try:
        with os.scandir(directory) as entries:
            files = [
                (entry.stat().st_mtime_ns, entry.path)
                for entry in entries
                if entry.name.startswith(prefix) and entry.name.endswith(".marshal")
            ]
        for _, stale in sorted(files, reverse=True)[KEEP_PER_NAME:]:
            os.unlink(stale)
    except OSError:  # another run pruned it first, or the folder is read-only: harmless
        return
