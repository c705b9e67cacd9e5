"""What ``offload report`` shows, read from a project's journal and logs without changing them.

The journal is opened read-only (an SQLite ``mode=ro`` URI, never :class:`Journal`, which
creates and migrates) and read in one transaction, so a run that is going on meanwhile is
seen at one instant. A task attempt's log is the file
``<project>/.offload/logs/<run_id>/<task_key>.<attempt>.log``; only its last lines are read.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import urllib.parse
from typing import Any

import attrs

from offload.executor.errors import UsageError
from offload.executor.models import Result, TaskState
from offload.executor.serialization import from_dict
from offload.workflow.journal import VERSION
from offload.workflow.taskkeys import task_key

#: Characters kept of one log line; the rest is cut (a log line can be a megabyte of JSON).
MAX_LINE_CHARS = 2000
#: Bytes read at most from the end of a log to find its last lines.
MAX_TAIL_BYTES = 4 << 20
#: Terminal escapes (colours, cursor moves) and other control characters, dropped from log lines.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f]")


@attrs.frozen
class Attempt:
    """One attempt of one task, with the four instants of its life that the journal knows
    (each ``None`` when not reached, or not recorded)."""

    task_name: str
    attempt: int
    state: TaskState
    backend: str | None
    queued_at: float | None
    submitted_at: float | None
    started_at: float | None
    finished_at: float | None
    error: str | None
    exit_code: int | None
    #: the last lines of its log; ``None`` when no log was kept
    log_tail: tuple[str, ...] | None = None
    log_path: str | None = None

    @property
    def done(self) -> bool:
        return self.finished_at is not None and self.state in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.LOST)


@attrs.frozen
class RunData:
    run_id: str
    workflow: str
    state: str
    session_time: str
    started_at: float
    finished_at: float | None
    #: when the journal was read: tasks still going are drawn up to here
    now: float
    attempts: tuple[Attempt, ...]
    project_dir: str


def journal_path(project_dir: str) -> str:
    return os.path.join(project_dir, ".offload", "journal.sqlite")


def _connect(path: str) -> sqlite3.Connection:
    if not os.path.isfile(path):
        raise UsageError(f"no journal at {path}: run a workflow of this project first (offload run FLOW), or name the project's directory with --project")
    if os.path.getsize(path) == 0:
        raise UsageError(f"journal {path} is empty: offload never leaves an empty journal, so its history was lost")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error as e:
        raise UsageError(f"journal {path} cannot be opened read-only ({e})") from None
    return db


def load_run(project_dir: str, run_id: str | None, now: float, tail_lines: int = 20) -> RunData:
    """The run ``run_id`` of the project (its latest run when ``None``), as the journal holds it
    at ``now``, with the last ``tail_lines`` log lines of each failed attempt."""
    project_dir = os.path.abspath(project_dir)
    path = journal_path(project_dir)
    db = _connect(path)
    try:
        db.execute("BEGIN")  # one snapshot of a journal that a running driver may be writing
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise UsageError(f"journal {path} was written by a newer offload (journal version {version}, this offload reads up to {VERSION})")
        run = _run_row(db, path, run_id)
        tasks = db.execute("SELECT task_name, attempt, state, backend, result FROM tasks WHERE run_id = ? ORDER BY task_name, attempt", (run[0],)).fetchall()
        times = {
            (name, attempt): (queued, submitted)
            for name, attempt, queued, submitted in db.execute(
                "SELECT task_name, attempt, queued_at, submitted_at FROM task_times WHERE run_id = ?", (run[0],)
            ).fetchall()
        }
        db.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        raise UsageError(f"journal {path} cannot be read ({e}); nothing was changed") from None
    finally:
        db.close()
    run_id, workflow, state, session_time, started_at, finished_at = run
    attempts = [_attempt(path, run_id, row, times.get((row[0], row[1]), (None, None))) for row in tasks]
    attempts = [_with_log(a, project_dir, run_id, tail_lines) if _failed(a) else a for a in attempts]
    return RunData(
        run_id=run_id,
        workflow=workflow,
        state=state,
        session_time=session_time,
        started_at=float(started_at),
        finished_at=None if finished_at is None else float(finished_at),
        now=now,
        attempts=tuple(attempts),
        project_dir=project_dir,
    )


def _run_row(db: sqlite3.Connection, path: str, run_id: str | None) -> tuple[Any, ...]:
    columns = "run_id, workflow, state, session_time, started_at, finished_at"
    if run_id is None:
        row = db.execute(f"SELECT {columns} FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        if row is None:
            raise UsageError(f"journal {path} has no run yet: run a workflow first (offload run FLOW)")
        return tuple(row)
    row = db.execute(f"SELECT {columns} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is not None:
        return tuple(row)
    # a unique prefix of a run id names that run, as a short git hash names a commit
    pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = db.execute(f"SELECT {columns} FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY started_at DESC LIMIT 2", (pattern,)).fetchall()
    if len(rows) == 1:
        return tuple(rows[0])
    latest = [r for (r,) in db.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 5").fetchall()]
    if rows:
        raise UsageError(f"run {run_id!r} is ambiguous in journal {path}: it starts {rows[0][0]}, {rows[1][0]}...; give more of the run id")
    known = f"its latest runs: {', '.join(latest)}" if latest else "it has no run yet"
    raise UsageError(f"no run {run_id!r} in journal {path} ({known}; offload runs lists them all)")


def _attempt(path: str, run_id: str, row: tuple[Any, ...], times: tuple[float | None, float | None]) -> Attempt:
    name, attempt, state, backend, result_json = row
    try:
        task_state = TaskState(state)
        result = from_dict(json.loads(result_json), Result) if result_json else None
    except Exception as e:  # noqa: BLE001 - any decoding failure means the same to the user
        raise UsageError(f"journal {path} has an unreadable record of task {name} (attempt {attempt}) of run {run_id}: {type(e).__name__}") from None
    queued, submitted = times
    return Attempt(
        task_name=str(name),
        attempt=int(attempt),
        state=result.state if result is not None else task_state,
        backend=None if backend is None else str(backend),
        queued_at=queued,
        submitted_at=submitted,
        started_at=result.started_at if result is not None else None,
        finished_at=result.finished_at if result is not None else None,
        error=result.error if result is not None else None,
        exit_code=result.exit_code if result is not None else None,
    )


def _failed(attempt: Attempt) -> bool:
    return attempt.state in (TaskState.FAILED, TaskState.LOST)


def log_file(project_dir: str, run_id: str, task_name: str, attempt: int) -> str | None:
    """Where the log of this attempt is kept (by the log store's contract), or ``None`` when
    the run id or the task name cannot name a file there."""
    if run_id in ("", ".", "..") or "/" in run_id or os.sep in run_id:
        return None
    try:
        key = task_key(task_name)
    except ValueError:
        return None
    return os.path.join(project_dir, ".offload", "logs", run_id, f"{key}.{attempt}.log")


def _with_log(attempt: Attempt, project_dir: str, run_id: str, lines: int) -> Attempt:
    path = log_file(project_dir, run_id, attempt.task_name, attempt.attempt)
    if path is None:
        return attempt
    tail = tail_lines(path, lines)
    return attempt if tail is None else attrs.evolve(attempt, log_tail=tail, log_path=path)


def tail_lines(path: str, count: int, chunk: int = 65536) -> tuple[str, ...] | None:
    """The last ``count`` lines of the UTF-8 text file at ``path``, read from its end (a log
    may be large; at most :data:`MAX_TAIL_BYTES` of it), control characters removed;
    ``None`` when there is no such file."""
    data = b""
    try:
        with open(path, "rb") as f:
            pos = f.seek(0, os.SEEK_END)
            while pos > 0 and data.count(b"\n") <= count and len(data) < MAX_TAIL_BYTES:
                step = min(chunk, pos)
                pos -= step
                f.seek(pos)
                data = f.read(step) + data
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as e:
        return (f"(the log {path} cannot be read: {e.strerror or e})",)
    if count <= 0:
        return ()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if pos > 0 and lines:
        lines = lines[1:]  # the first line read is the end of a line that began earlier
    return tuple(_clean(line.removesuffix("\r")) for line in lines[-count:])


def _clean(line: str) -> str:
    line = _CONTROL.sub("", line)
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [...]"
