"""The workspace's git history: each run (and each improvement-log change) is one commit.

A commit here records our own files and nothing else. It is built with plumbing on an
index of our own (kept in the git directory; read-tree of HEAD when HEAD is not our last
commit, our files added, write-tree, commit-tree, then a compare-and-swap update-ref of
HEAD), so whatever the operator has staged or modified in the
same repository stays exactly as it was, staged or not, and no hook or signing prompt of
theirs can stall a cron run. Afterwards the real index learns our files' new versions, so
`git status` does not show them as changed.

The plumbing runs `git` itself (six short processes a commit, where GitPython ran ten),
not GitPython: importing GitPython costs a run more (about 45 ms, and a `git version`
process) than all of its git commands together. GitPython stays for what reads history
(`History.repo`, used by `healthcheck diff`), imported only there. Every few hundred runs
a commit also starts `git gc --auto` in the background, never waited for, so the
repository stays packed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthcheck.commands import run_command
from healthcheck.lock import LOCK_NAME, NOTIFY_STATE_NAME
from healthcheck.model import Finding, Status, human_duration
from healthcheck.redact import Redactor

if TYPE_CHECKING:
    import git

log = logging.getLogger(__name__)

COLLECTOR = "history"  # the `collector` of the findings this module makes
_ZERO = "0" * 40
# An operation of the operator's own that is half done: committing on top of it would mix
# our commit into their merge, rebase or bisect.
_IN_PROGRESS = (
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase or git am"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
    ("BISECT_LOG", "a bisect"),
)
# Variables that would point our git commands at another repository or index.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")
# Housekeeping: git itself packs loose objects only past gc.auto = 6700 of them (some 1,100
# runs of about six objects each, 15 MB). We ask earlier, past GC_LOOSE_OBJECTS, estimated
# as git does from one of the 256 object folders, and never wait for it.
GC_LOOSE_OBJECTS = 1000
_GC_SAMPLE_DIR = "17"
# Our own index (in the git directory, never the operator's index).
_INDEX_NAME = "healthcheck-index"


class HistoryError(Exception):
    """The workspace history cannot be used (not creatable, bare, broken, git missing).

    `hint`, when known, is the fix for this very fault (the report's finding carries it).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class GitFailed(Exception):
    """A git command exited with an error (`command`: its arguments; `stderr`: its words)."""

    def __init__(self, command: list[str], stderr: str) -> None:
        super().__init__(stderr.strip() or f"git {' '.join(command)} failed")
        self.command = command
        self.stderr = stderr


class CommitOutcome:
    """What `History.commit` did."""

    def __init__(
        self,
        sha: str | None = None,
        parent: str | None = None,
        unchanged: bool = False,
        left_out: list[Path] | None = None,
        withheld: list[tuple[Path, int]] | None = None,
    ) -> None:
        self.sha = sha  # the new commit; None when nothing was committed
        self.parent = parent  # HEAD before the commit (None on an unborn branch)
        self.unchanged = unchanged  # our files were already recorded as they are
        self.left_out = left_out or []  # outside the work tree, or absent
        # Files not committed because a line looks like a secret: (path, first such line).
        self.withheld = withheld or []

    def __repr__(self) -> str:
        return f"CommitOutcome(sha={self.sha!r}, unchanged={self.unchanged})"

    @property
    def short(self) -> str:
        return self.sha[:7] if self.sha else ""


class History:
    """One workspace repository, opened (or created) for our commits."""

    def __init__(self, worktree: Path, git_dir: Path, redactor: Redactor) -> None:
        self.redactor = redactor
        self.worktree = worktree.resolve()
        self.git_dir = git_dir
        self._repo: git.Repo | None = None
        env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
        # English messages whatever the locale (they end up in findings), as GitPython did.
        env.update(LANGUAGE="C", LC_ALL="C")
        env.update(
            GIT_DIR=str(self.git_dir),
            GIT_WORK_TREE=str(self.worktree),
            GIT_INDEX_FILE=str(self.git_dir / "index"),
        )
        self._env = env

    @property
    def repo(self) -> git.Repo:
        """The repository through GitPython, for reading history (imported on first use)."""
        if self._repo is None:
            git = gitpython()
            self._repo = git.Repo(self.worktree)
        return self._repo

    @classmethod
    def open(cls, workspace: Path, redactor: Redactor, create: bool = True) -> History:
        """The repository at `workspace` (its top, not a parent's); created when missing.

        A workspace inside someone else's work tree gets a repository of its own rather than
        commits in theirs.
        """
        executable = os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git"
        if shutil.which(executable) is None:
            raise HistoryError(
                f"git is not installed ({executable} is not on PATH; apt-get install git)"
            )
        workspace = Path(workspace)
        if (broken := _unreadable_head(workspace)) is not None:
            raise broken
        git_dir = _git_dir_of(workspace)
        if git_dir is None:
            if _is_git_dir(workspace):
                raise HistoryError(f"{workspace} is a bare git repository")
            if not create:
                raise HistoryError(f"{workspace} is not a git repository")
            try:
                workspace.mkdir(parents=True, exist_ok=True)
                _run_git(["init", "-q", str(workspace)], _clean_env(), cwd=None)
            except (GitFailed, OSError) as exc:
                raise HistoryError(
                    f"cannot create a git repository in {workspace}: {exc}"
                ) from None
            git_dir = _git_dir_of(workspace)
            if git_dir is None:  # pragma: no cover - git init said yes and made nothing
                raise HistoryError(f"cannot create a git repository in {workspace}")
            log.info("created a git repository in %s", workspace)
        history = cls(workspace, git_dir, redactor)
        if create:
            history._prepare()
        return history

    # -- state -----------------------------------------------------------------------------

    def blocked(self) -> str | None:
        """Why committing now would get in the operator's way, or None."""
        for name, what in _IN_PROGRESS:
            if (self.git_dir / name).exists():
                return f"the repository in {self.worktree} is in the middle of {what}"
        try:
            head = (self.git_dir / "HEAD").read_text(encoding="utf-8", errors="replace")
        except OSError:  # pragma: no cover - a repository without HEAD is no repository
            head = ""
        if not head.startswith("ref:"):
            return f"HEAD in {self.worktree} is detached (not on a branch)"
        return None

    def fault(self) -> HistoryError | None:
        """What is broken in the repository so that a commit would fail, with its fix."""
        ws = self.worktree
        lock = self.git_dir / "index.lock"
        if lock.exists():
            try:
                age = time.time() - lock.stat().st_mtime
            except OSError:
                age = 0.0
            holders = _holders(lock)
            if holders:
                return HistoryError(
                    f"{lock} is held by a running process (pid "
                    f"{', '.join(map(str, holders))}): a git command is under way",
                    "Let it finish; the next run records this one's reports.",
                )
            return HistoryError(
                f"{lock} was left by a git that was killed: it is {human_duration(age)} old "
                "and no git process holds it, so every git command that writes the index fails",
                f"Remove it: rm {lock} (then `git -C {ws} status` to check the repository).",
            )
        named = self._missing_object()
        if named is not None:
            return HistoryError(
                f"the repository in {ws} is missing objects: HEAD's commit {named[:12]} "
                "(or its tree) is not in .git/objects",
                f"`git -C {ws} fsck` shows the damage; restore .git from a backup or the remote, "
                f"or move it aside (mv {self.git_dir} {self.git_dir}.broken) so that the next "
                "run starts a new history.",
            )
        return None

    def _missing_object(self) -> str | None:
        """HEAD's commit when it, or its tree, is not in the object store; else None (an
        unborn branch has nothing to miss).

        One `git cat-file --batch-check` answers for both in the usual case: a name whose
        object is not there reads back as the name followed by "missing". Only when HEAD
        itself is (an unborn branch, or a lost commit) does a second process tell which.
        """
        try:
            out = self._git("cat-file", "--batch-check", input="HEAD\nHEAD^{tree}\n")
        except GitFailed:
            return None
        commit, tree = ([*out.splitlines(), "", ""])[:2]
        if commit.endswith(" missing"):
            return self._quiet_git("rev-parse", "--verify", "-q", "HEAD")
        if tree.endswith(" missing"):
            return commit.split()[0]
        return None

    def _quiet_git(self, *args: str) -> str | None:
        try:
            return str(self._git(*args)).strip()
        except GitFailed:
            return None

    def head(self) -> str | None:
        """The commit HEAD points at; None on an unborn branch."""
        try:
            return self._git("rev-parse", "--verify", "-q", "HEAD^{commit}")
        except GitFailed:
            return None

    # -- writing ---------------------------------------------------------------------------

    def commit(
        self, paths: Sequence[Path], message: str, redacted: Collection[Path] = ()
    ) -> CommitOutcome:
        """Commit the current contents of `paths` (files in the work tree) and nothing else.

        No change means no commit. The message passes through the redactor.
        `redacted`: files among `paths` that the tool itself wrote through this redactor
        (the run's reports), not checked for secrets again; every other file is.
        """
        try:
            outcome = self._commit(paths, message, frozenset(redacted))
        except GitFailed as exc:
            raise HistoryError(
                f"git {exc.command[0] if exc.command else ''} failed: {_last_line(exc)}"
            ) from None
        if outcome.sha:
            self._housekeeping()
        return outcome

    def _commit(
        self, paths: Sequence[Path], message: str, redacted: frozenset[Path]
    ) -> CommitOutcome:
        outcome = CommitOutcome()
        rels = []
        for path in paths:
            rel = self.relative(path)
            if rel is None or not path.is_file():
                outcome.left_out.append(path)
            elif path not in redacted and (line := self.secret_line(path)) is not None:
                outcome.withheld.append((path, line))
            elif rel not in rels:
                rels.append(rel)
        parent, parent_tree = self._commit_and_tree("HEAD")
        expected = parent
        outcome.parent = parent
        if not rels:
            outcome.unchanged = True
            return outcome
        tree = self._tree_with(parent_tree, rels)
        if parent and tree == parent_tree:
            outcome.unchanged = True
            return outcome
        self._ensure_identity()
        text = self.redactor.text(message)
        args = ["commit-tree", tree, "--no-gpg-sign"]
        if parent:
            args += ["-p", parent]
        sha = self._git(*args, input=text.rstrip("\n") + "\n")
        subject = text.splitlines()[0]
        try:
            self._git("update-ref", "-m", subject, "HEAD", sha, expected or _ZERO)
        except GitFailed as exc:
            # Someone committed between our read of HEAD and now: theirs stands, ours is
            # dropped (the files are still written; the next run records them).
            raise HistoryError(f"HEAD moved while committing: {_last_line(exc)}") from None
        self._sync_index(rels)
        outcome.sha = sha
        return outcome

    def committable(self, path: Path) -> bool:
        """Whether `path` is a file inside the work tree (what `commit` would consider)."""
        return self.relative(path) is not None and path.is_file()

    def secret_line(self, path: Path, content: bytes | None = None) -> int | None:
        """The first line of `path` (or of `content`, what is about to be written there)
        holding something the redactor would mask, else None.

        What the tool writes is redacted already; this catches what a person put in a file
        we commit (a token pasted into the docs file or the improvement log by hand), which
        git would otherwise keep forever and a push would publish.
        """
        try:
            raw = path.read_bytes() if content is None else content
        except OSError:
            return None
        text = raw.decode("utf-8", "surrogateescape")
        masked = self.redactor.text(text)
        if masked == text:
            return None
        # Redaction keeps the number of newlines, so lines still pair up.
        for number, (before, after) in enumerate(
            zip(text.split("\n"), masked.split("\n"), strict=False), start=1
        ):
            if before != after:
                return number
        return 1

    def push(self, remote: str, timeout: float) -> str | None:
        """Push the current branch to `remote` (a name or URL); the error, or None."""
        env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
        env.update(self._env)
        # Never wait for a password nobody will type (cron has no terminal).
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        result = run_command(
            ["git", "-C", str(self.worktree), "push", "--quiet", remote, "HEAD"], timeout, env
        )
        if result.ok:
            return None
        if result.error:
            return result.error
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        return " / ".join(lines[-3:]) or f"git push exited with status {result.returncode}"

    def relative(self, path: Path) -> str | None:
        """`path` relative to the work tree (POSIX form), or None when outside it."""
        try:
            rel = path.resolve().relative_to(self.worktree)
        except ValueError:
            return None
        if not rel.parts or rel.parts[0] == ".git":
            return None
        return rel.as_posix()

    def show(self, rev: str, rel: str) -> str:
        """The text of `rel` as recorded in commit `rev` (read through GitPython, whose
        GitCommandError says it is not there)."""
        return str(self.repo.git.show(f"{rev}:{rel}", strip_newline_in_stdout=False))

    # -- internals -------------------------------------------------------------------------

    def _git(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> str:
        """`git ARGS` in this repository; its stdout (without the final newline)."""
        out = _run_git(list(args), {**self._env, **(env or {})}, self.worktree, input)
        return out.removesuffix("\n")

    def _commit_and_tree(self, rev: str) -> tuple[str | None, str | None]:
        """The commit `rev` names and its tree (one process); (None, None) when there is
        none (an unborn branch, or the parent of a root commit)."""
        try:
            out = self._git("rev-parse", f"{rev}^{{commit}}", f"{rev}^{{tree}}").split()
        except GitFailed:
            return None, None
        return (out[0], out[1]) if len(out) == 2 else (None, None)

    def _tree_with(self, parent_tree: str | None, rels: list[str]) -> str:
        """The tree of `parent_tree` with our files' current contents, written through an
        index of our own (never the operator's).

        The index is kept in the git directory between commits, with the tree it was last
        written as: when the parent is that tree (our own last commit, the usual case), it
        needs no read-tree. The mark is dropped before the index changes and set after it
        is written, so an interrupted commit leaves no mark and the next one reads afresh.
        """
        index = self.git_dir / _INDEX_NAME
        mark = self.git_dir / f"{_INDEX_NAME}.tree"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            fresh = parent_tree is None or mark.read_text(encoding="ascii").strip() != parent_tree
        except OSError:
            fresh = True
        with contextlib.suppress(FileNotFoundError):
            mark.unlink()
        if fresh:
            if parent_tree:
                self._git("read-tree", parent_tree, env=env)
            else:
                with contextlib.suppress(FileNotFoundError):
                    index.unlink()
        self._git("update-index", "--add", "--", *rels, env=env)
        tree = self._git("write-tree", env=env)
        with contextlib.suppress(OSError):  # without the mark, the next commit reads afresh
            mark.write_text(tree + "\n", encoding="ascii")
        return tree

    def _prepare(self) -> None:
        """Keep our lock and alert-state files out of `git status` (a local exclude, not a
        tracked file)."""
        exclude = self._common_dir() / "info" / "exclude"
        try:
            existing = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
            missing = [
                line
                for line in (f"/{LOCK_NAME}", f"/{NOTIFY_STATE_NAME}")
                if line not in existing.splitlines()
            ]
            if missing:
                exclude.parent.mkdir(parents=True, exist_ok=True)
                sep = "" if not existing or existing.endswith("\n") else "\n"
                with exclude.open("a", encoding="utf-8") as handle:
                    handle.write(sep + "".join(f"{line}\n" for line in missing))
        except OSError as exc:  # cosmetic: the lock file then shows as untracked
            log.info("cannot update %s: %s", exclude, exc)

    def _common_dir(self) -> Path:
        """The folder shared by all work trees of the repository (`.git` for the main one)."""
        try:
            shared = (self.git_dir / "commondir").read_text(encoding="utf-8").strip()
        except OSError:
            return self.git_dir
        return (self.git_dir / shared).resolve()

    def _ensure_identity(self) -> None:
        """A repository-local identity, only where no user.name or user.email is configured."""
        if _local_identity(self._common_dir() / "config"):
            return  # set in the repository itself (by us, usually): nothing to ask git
        if any(_local_identity(path) for path in _global_configs()):
            return  # the user's own identity, in a file git reads too: no process to start
        try:
            found = self._git("config", "--get-regexp", r"^user\.(name|email)$")
        except GitFailed:
            found = ""
        configured = {line.split(" ", 1)[0] for line in found.splitlines()}
        fallback = {"user.name": "healthcheck", "user.email": f"healthcheck@{socket.gethostname()}"}
        for key, value in fallback.items():
            if key not in configured:
                self._git("config", "--local", key, value)

    def _sync_index(self, rels: list[str]) -> None:
        """The real index gets our files' committed versions; nothing else in it changes.

        Retried briefly: an operator's git command may hold index.lock for a moment.
        """
        for attempt in range(10):
            try:
                self._git("update-index", "--add", "--", *rels)
                return
            except GitFailed as exc:
                if attempt == 9:
                    log.warning(
                        "the git index could not be updated (%s); `git reset -q -- %s` in %s "
                        "makes `git status` agree with the commit",
                        _last_line(exc),
                        " ".join(rels),
                        self.worktree,
                    )
                    return
                time.sleep(0.1)

    def _housekeeping(self) -> None:
        """Start `git gc --auto` in the background once loose objects pile up.

        Estimated as git estimates it (one object folder of 256, a directory listing), so a
        run pays nothing until it is due. The gc runs detached and is never waited for:
        git's own gc lock keeps two from overlapping, and a commit during a repack is safe.
        """
        with contextlib.suppress(OSError):
            if time.time() - (self._common_dir() / "gc.pid").stat().st_mtime < 3600:
                return  # one is running; a gc.pid older than that was left by a killed one
        folder = self._common_dir() / "objects" / _GC_SAMPLE_DIR
        try:
            loose = sum(1 for _ in os.scandir(folder))
        except OSError:
            return
        if not gc_due(loose):
            return
        gc = gc_command()
        try:
            # sh starts it in the background and returns at once: nothing to wait for, and
            # no child of ours is left behind (it belongs to init once sh has exited).
            subprocess.run(
                ["sh", "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh", *gc],
                cwd=self.worktree,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not killed with the run's process group
                check=False,
            )
        except OSError as exc:  # housekeeping only: the next commit tries again
            log.info("cannot start git gc: %s", exc)


def gc_due(loose_in_sample: int) -> bool:
    """Whether `git gc --auto -c gc.auto=GC_LOOSE_OBJECTS` would pack, judged as git judges
    it: more loose objects in the sampled folder than the threshold's 256th part."""
    return loose_in_sample > -(-GC_LOOSE_OBJECTS // 256)


def gc_command() -> list[str]:
    """The housekeeping command a commit starts in the background when `gc_due`."""
    return ["git", "-c", f"gc.auto={GC_LOOSE_OBJECTS}", "gc", "--auto", "--quiet"]


def _local_identity(config: Path) -> bool:
    """Whether a repository's own config file sets both user.name and user.email."""
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    section = ""
    found = set()
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[] \t").lower()
        elif section == "user" and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if value:
                found.add(key.lower())
    return {"name", "email"} <= found


def _global_configs() -> list[Path]:
    """The per-user git config files git reads (where an identity is usually set)."""
    if os.environ.get("GIT_CONFIG_GLOBAL"):
        return [Path(os.environ["GIT_CONFIG_GLOBAL"])]
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [Path(os.path.expanduser("~/.gitconfig")), Path(xdg) / "git" / "config"]


def _run_git(
    args: list[str], env: dict[str, str], cwd: Path | None, input: str | None = None
) -> str:
    # No terminal prompt, no pager, no editor: these run from cron.
    proc = subprocess.run(
        ["git", *args],
        env=env,
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        check=False,
    )
    if proc.returncode != 0:
        raise GitFailed(args, proc.stderr)
    return proc.stdout


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env.update(LANGUAGE="C", LC_ALL="C")
    return env


def _is_git_dir(path: Path) -> bool:
    """Whether `path` is a git directory itself (what git checks: HEAD, objects, refs)."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def _git_dir_of(workspace: Path) -> Path | None:
    """The git directory of a work tree whose top is `workspace`: `.git`, or the folder a
    `.git` file names (a linked work tree or a submodule); None when it has neither."""
    dot_git = workspace / ".git"
    if dot_git.is_file():
        try:
            first = dot_git.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, IndexError):
            return None
        if not first.startswith("gitdir:"):
            return None
        target = (workspace / first.removeprefix("gitdir:").strip()).resolve()
        # A linked work tree's folder keeps HEAD and names the shared one in `commondir`.
        linked = (target / "HEAD").is_file() and (target / "commondir").is_file()
        return target if linked or _is_git_dir(target) else None
    return dot_git if _is_git_dir(dot_git) else None


def gitpython() -> Any:
    # Without a git executable, GitPython refuses to import at all; quiet, it imports and
    # its commands fail. It reads the variable once, at import, so it is taken away again:
    # a variable the tool set for itself must not show in the env section as the box's.
    set_here = "GIT_PYTHON_REFRESH" not in os.environ
    if set_here:
        os.environ["GIT_PYTHON_REFRESH"] = "quiet"
    try:
        import git
    finally:
        if set_here:
            os.environ.pop("GIT_PYTHON_REFRESH", None)
    return git


def _unreadable_head(workspace: Path) -> HistoryError | None:
    """A `.git` git no longer recognises because its HEAD is corrupt: the fault and its fix.

    Without this the run would try `git init` over it (and fail with git's own words)."""
    git_dir = workspace / ".git"
    head = git_dir / "HEAD"
    if not git_dir.is_dir() or not (git_dir / "objects").is_dir():
        return None
    try:
        text = head.read_bytes()[:80].decode("utf-8", "replace").strip()
    except OSError as exc:
        text = f"unreadable: {exc.strerror or exc}"
    if text.startswith("ref: refs/") or (len(text) == 40 and text.isalnum()):
        return None  # HEAD is fine: something else is wrong, which git init will say
    heads = sorted(p.name for p in (git_dir / "refs" / "heads").glob("*") if p.is_file())
    branch = "main" if "main" in heads else (heads[0] if heads else "main")
    return HistoryError(
        f"{head} is corrupt (it reads {text!r}), so git does not see a repository in {workspace}",
        f"Point it back at the branch: echo 'ref: refs/heads/{branch}' > {head}",
    )


def _holders(path: Path) -> list[int]:
    """The pids that have `path` open (from /proc/*/fd; ours are not counted)."""
    target = str(path)
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    found.append(int(proc.name))
                    break
            except OSError:
                continue
    return found


def _last_line(exc: GitFailed) -> str:
    lines = [line for line in str(exc.stderr or exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else str(exc)


# -- run commits ---------------------------------------------------------------------------


def run_message(
    report_data: dict[str, Any], files: Sequence[str] = (), outside: Path | None = None
) -> str:
    """`healthcheck: HOST CRIT (2 crit, 1 warn)`, then one line per finding.

    `report_data` is the report's dict (`Report.to_dict()`); the caller redacts the result.
    `files`: what the commit holds, named in the body. `outside`: the run's report lies
    outside the history (--output elsewhere), so the commit holds only the docs refresh
    and its message claims no status it does not record.
    """
    counts = report_data["counts"]
    tally = f"{counts['crit']} crit, {counts['warn']} warn"
    if counts.get("unknown"):
        tally += f", {counts['unknown']} unknown"
    recorded = [f"Files: {', '.join(files)}."] if files else []
    if outside is not None:
        return (
            "\n".join(
                [
                    f"healthcheck: {report_data['host']} docs refreshed",
                    "",
                    f"Run at {report_data['generated_at']}; its report was written to {outside}, "
                    "outside this history, and is not recorded here.",
                    *recorded,
                ]
            )
            + "\n"
        )
    lines = [
        f"healthcheck: {report_data['host']} {report_data['status'].upper()} ({tally})",
        "",
        f"Run at {report_data['generated_at']}, {len(report_data['sections'])} collectors.",
        *recorded,
    ]
    findings = report_data["findings"]
    if findings:
        lines.append("")
        lines += [
            f"- {f['severity'].upper()} {f['id']}: {' '.join(f['title'].split())}" for f in findings
        ]
    return "\n".join(lines) + "\n"


def push_failed(remote: str, error: str) -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="push-failed",
        subject=remote,
        severity=Status.WARN,
        title=f"The workspace history could not be pushed to {remote}",
        detail=error,
        hint=(
            "The commits are kept locally and the next run pushes them; check the remote "
            "with `git -C WORKSPACE push` by hand."
        ),
    )


def commit_skipped(reason: str) -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="commit-skipped",
        subject="",
        severity=Status.WARN,
        title="This run was not recorded in the workspace history",
        detail=f"{reason}; committing now could mix with the operator's own work.",
        hint="Finish or abort it (git merge --abort, git rebase --continue, git switch BRANCH).",
    )


def secret_withheld(path: Path, line: int) -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="secret-withheld",
        subject=str(path),
        severity=Status.WARN,
        title=f"{path.name} is not committed: line {line} looks like a secret",
        detail=(
            f"{path} line {line} holds what looks like a password, token or key. Git would "
            "keep it in the history for good (and a push would publish it), so this run "
            "records the file as it was before."
        ),
        hint=f"Take the secret out of {path} (keep it in an environment variable or a file "
        "outside the workspace); the next run commits the file again.",
    )


def history_failed(reason: str, hint: str = "") -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="unavailable",
        subject="",
        severity=Status.WARN,
        title="The workspace history cannot be recorded",
        detail=f"{reason}. The report was written; only the commit was skipped.",
        hint=hint or "Set [git] commit = false to run without history, or fix the repository.",
    )
