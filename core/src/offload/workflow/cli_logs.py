"""``offload logs``: print a task's kept log, or follow it while the task runs.

Reads only: the journal is opened read-only (it is never written, and the run lock is
never taken), so it works from a second terminal while ``offload run`` goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

#: Seconds between looks at a followed log: from the first, up to the last while nothing comes.
PAUSES = (0.05, 0.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", nargs="?", metavar="TASK", help="full task name (+flow+step) or a unique end of it (step); default: every task of the run")
    parser.add_argument("--run", metavar="RUN", help="the run id (or a unique start of it); default: the project's latest run")
    parser.add_argument("--attempt", type=int, metavar="N", help="the attempt of TASK (default: its latest)")
    parser.add_argument("-f", "--follow", action="store_true", help="go on printing while the task (or, without TASK, the run) is running")
    parser.add_argument("--project", metavar="DIR", default=".", help="the project directory (default: .)")


class Follower:
    """The new lines of one task attempt's log at each :meth:`poll`, read from the pieces the
    driver writes (head, tail segments) and then from the folded file, each line once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.head_off = self.head_lines = 0
        self.seq: int | None = None  # the tail segment being read
        self.seg_off = self.post_lines = self.post_bytes = 0
        self.done = False

    def poll(self) -> list[str]:
        from offload.workflow import logstore

        out: list[str] = []
        for _ in range(10):
            if self.done:
                break
            state = logstore.read_state(self.path)
            try:
                if logstore.is_final(self.path, state):
                    self._from_file(out)
                    break
                assert state is not None
                self._from_pieces(state, out)
                break
            except FileNotFoundError:  # a piece went meanwhile (rotated, or folded in): look again
                if logstore.file_size(self.path) is None:
                    break
        return out

    def _from_file(self, out: list[str]) -> None:
        from offload.workflow import logstore

        if self.seq is None:  # only the head was read: the file goes on from there, byte for byte
            lines, used = logstore.complete_lines(logstore.read_bytes(self.path, self.head_off))
            self.head_off, self.head_lines = self.head_off + used, self.head_lines + len(lines)
            out += lines
            return
        # The tail was read from its segments, now folded in: skip what was printed already.
        rest = logstore.complete_lines(logstore.read_bytes(self.path))[0][self.head_lines :]
        cut = 0
        if rest and (match := logstore.MARKER_RE.fullmatch(rest[0])):
            cut, rest = int(match.group(1).replace(",", "")), rest[1:]
        shown = self.post_lines - cut
        if shown < 0:
            out.append(logstore.marker(-shown, None))
        out += rest[max(shown, 0) :]
        self.done = True

    def _from_pieces(self, state: dict[str, int], out: list[str]) -> None:
        from offload.workflow import logstore

        if self.head_off < state["head_bytes"]:
            lines, used = logstore.complete_lines(logstore.read_bytes(self.path, self.head_off, state["head_bytes"] - self.head_off))
            self.head_off, self.head_lines = self.head_off + used, self.head_lines + len(lines)
            out += lines
        if self.seq is None or self.seq < state["first"]:
            gap = state["dropped_lines"] - self.post_lines
            if gap > 0:  # rotated away before they were read
                out.append(logstore.marker(gap, state["dropped_bytes"] - self.post_bytes))
                self.post_lines, self.post_bytes = state["dropped_lines"], state["dropped_bytes"]
            self.seq, self.seg_off = state["first"], 0
        while True:
            newer = any(n > self.seq for n in logstore.segment_numbers(self.path))  # then this one is complete
            lines, used = logstore.complete_lines(logstore.read_bytes(f"{self.path}.tail-{self.seq}", self.seg_off))
            self.seg_off += used
            self.post_lines, self.post_bytes = self.post_lines + len(lines), self.post_bytes + used
            out += lines
            if not newer:
                return
            self.seq, self.seg_off = self.seq + 1, 0


class JournalReader:
    """The journal, read-only: never written, never locked."""

    def __init__(self, project_dir: str) -> None:
        import os

        from offload.executor.errors import UsageError

        self.path = os.path.join(project_dir, ".offload", "journal.sqlite")
        if not os.path.isfile(self.path):
            raise UsageError(f"no journal at {self.path}: no workflow has run in {project_dir} (--project DIR names the project)")
        if os.path.getsize(self.path) == 0:
            raise self._unusable("is empty: offload never leaves an empty journal, so its history was lost")
        self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        import os
        import pathlib
        import sqlite3

        from offload.workflow.journal import VERSION

        # no -wal file: no driver has it open, and a read-only open would leave one behind
        how = "mode=ro" if os.path.exists(self.path + "-wal") else "immutable=1"
        try:
            db = sqlite3.connect(f"{pathlib.Path(self.path).absolute().as_uri()}?{how}", uri=True, timeout=30)
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise self._unusable(f"is corrupt ({e})") from None
        if version > VERSION:
            db.close()
            raise self._unusable(f"was written by a newer offload (journal version {version}, this offload reads up to {VERSION})")
        return db

    def _unusable(self, why: str) -> Exception:
        from offload.workflow.journal import JournalError

        return JournalError(f"journal {self.path} {why}; nothing was changed")

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        import sqlite3

        try:
            return list(self.db.execute(sql, args).fetchall())
        except sqlite3.DatabaseError as e:
            raise self._unusable(f"is corrupt ({e})") from None

    def run_id(self, wanted: str | None) -> str:
        from offload.executor.errors import UsageError

        runs = [r[0] for r in self.query("SELECT run_id FROM runs ORDER BY started_at DESC")]
        if not runs:
            raise UsageError(f"no run in {self.path} yet")
        if wanted is None:
            return str(runs[0])
        found = [r for r in runs if r == wanted] or [r for r in runs if r.startswith(wanted)]
        if len(found) == 1:
            return str(found[0])
        if found:
            raise UsageError(f"--run {wanted}: more than one run starts so: {', '.join(found[:5])}")
        raise UsageError(f"--run {wanted}: no such run in {self.path} (latest: {', '.join(runs[:5])})")

    def run_state(self, run_id: str) -> tuple[str, str]:
        """The run's state and workflow file."""
        ((state, workflow),) = self.query("SELECT state, workflow FROM runs WHERE run_id = ?", run_id)
        return str(state), str(workflow)

    def tasks(self, run_id: str) -> list[tuple[str, int, str]]:
        """(name, attempt, state) of every task attempt of the run, the tasks in the order they started."""
        rows = self.query(
            "SELECT t.task_name, t.attempt, t.state, COALESCE(tt.queued_at, t.updated_at) FROM tasks t LEFT JOIN task_times tt "
            "ON tt.run_id = t.run_id AND tt.task_name = t.task_name AND tt.attempt = t.attempt WHERE t.run_id = ?",
            run_id,
        )
        first: dict[str, float] = {}
        for name, _, _, started in rows:
            first[name] = min(first.get(name, started), started)
        rows.sort(key=lambda r: (first[r[0]], r[0], r[1]))
        return [(str(name), int(attempt), str(state)) for name, attempt, state, _ in rows]


def resolve_task(names: list[str], wanted: str, run_id: str) -> str:
    """The task ``wanted`` names: a full name, or the unique one ending with ``+wanted``."""
    from offload.executor.errors import UsageError

    if wanted in names:
        return wanted
    found = [n for n in names if n.endswith(wanted if wanted.startswith("+") else "+" + wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(f"task {wanted!r} is ambiguous in run {run_id}: {', '.join(found)}")
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise UsageError(f"no task {wanted!r} in run {run_id} (its tasks: {shown or 'none yet'})")


def driver_alive(project_dir: str, workflow: str) -> bool:
    """Whether the driver of the workflow (the holder of its run lock) still lives; the
    lock file is only read, never locked. ``True`` when it cannot be told."""
    import glob
    import hashlib
    import json
    import os

    locks = os.path.join(project_dir, ".offload", "locks")
    digest = hashlib.sha256(os.path.join(project_dir, os.path.basename(workflow)).encode("utf-8")).hexdigest()[:16]
    mine = os.path.join(locks, f"run-{digest}.lock")
    paths = [mine] if os.path.exists(mine) else glob.glob(os.path.join(locks, "run-*.lock"))
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                os.kill(int(json.load(f)["pid"]), 0)
        except ProcessLookupError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return True
    return not paths


def run(args: argparse.Namespace) -> int:
    import os

    from offload.executor.errors import UsageError
    from offload.executor.models import TaskState
    from offload.workflow.logstore import log_path, read_log

    project = os.path.abspath(args.project)
    journal = JournalReader(project)
    run_id = journal.run_id(args.run)
    rows = journal.tasks(run_id)
    attempts: dict[str, dict[int, str]] = {}
    for name, attempt, state in rows:
        attempts.setdefault(name, {})[attempt] = state
    if args.task is None and args.attempt is not None:
        raise UsageError("--attempt needs a TASK")
    if args.task is not None:
        name = resolve_task(list(attempts), args.task, run_id)
        attempt = max(attempts[name]) if args.attempt is None else args.attempt
        if attempt not in attempts[name]:
            raise UsageError(f"task {name} of run {run_id} has no attempt {attempt} (attempts: {', '.join(map(str, sorted(attempts[name])))})")
        if not args.follow:
            if not os.path.exists(log_path(project, run_id, name, attempt)) and TaskState(attempts[name][attempt]).finished:
                print(f"offload: no log was kept for {name} (attempt {attempt}) of run {run_id}", file=sys.stderr)
            _print(read_log(project, run_id, name, attempt))
            return 0
        return _follow(journal, project, run_id, [(name, attempt)], whole_run=False)
    if not args.follow:
        for name, tries in attempts.items():  # one log in memory at a time
            if not _print([f"[{name}] {line}" for line in read_log(project, run_id, name, max(tries))]):
                break
        return 0
    return _follow(journal, project, run_id, [(name, max(tries)) for name, tries in attempts.items()], whole_run=True)


def _print(lines: list[str]) -> bool:
    """Print ``lines``; ``False`` once the reader went away (``offload logs | head``)."""
    try:
        sys.stdout.writelines(line + "\n" for line in lines)
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def _follow(journal: JournalReader, project: str, run_id: str, keys: list[tuple[str, int]], whole_run: bool) -> int:
    """Print the logs of ``keys`` as they grow: one task attempt until it ended, or
    (``whole_run``) every task of the run, and each new attempt, until the run ended."""
    from offload.executor.models import TaskState
    from offload.workflow.logstore import log_path

    followers = {key: Follower(log_path(project, run_id, *key)) for key in keys}
    pause = PAUSES[0]

    def ended() -> bool:
        if not whole_run:
            ((state,),) = journal.query("SELECT state FROM tasks WHERE run_id = ? AND task_name = ? AND attempt = ?", run_id, *keys[0])
            return TaskState(state).finished
        for name, attempt, _ in journal.tasks(run_id):  # a new task, or a new attempt of one
            followers.setdefault((name, attempt), Follower(log_path(project, run_id, name, attempt)))
        return journal.run_state(run_id)[0] != TaskState.RUNNING.value

    while True:
        final = ended()
        lines = [f"[{name}] {line}" if whole_run else line for (name, _), f in followers.items() for line in f.poll()]
        if not _print(lines) or final:
            return 0
        if not lines and not driver_alive(project, journal.run_state(run_id)[1]):
            if ended():
                continue  # it ended just now: print its last lines
            what = f"run {run_id}" if whole_run else f"task {keys[0][0]} (attempt {keys[0][1]}) of run {run_id}"
            print(f"offload: {what} has not ended, but no offload run drives it; run the workflow again to resume it", file=sys.stderr)
            return 1
        pause = PAUSES[0] if lines else min(pause * 1.5, PAUSES[1])
        time.sleep(pause)
