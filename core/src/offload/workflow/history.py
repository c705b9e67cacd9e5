"""What ``offload runs`` and ``offload status`` show: the journal, read and never written.

The journal is opened read-only (a ``file:...?mode=ro`` SQLite URI) and the run lock is
never touched, so these commands work while ``offload run`` drives a run, and cannot
change the history whatever they find. A journal they cannot read is one message
(:class:`~offload.workflow.journal.JournalError`, exit status 2), as for every command.

The rows built here have one JSON form each (:meth:`RunRow.as_json`,
:meth:`TaskRow.as_json`); their keys are documented in the README and kept stable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import attrs

from offload.executor.errors import UsageError
from offload.executor.models import TaskState
from offload.workflow.journal import VERSION, Journal, TaskRecord

#: The order in which states are counted and listed.
STATE_ORDER = ("running", "submitting", "pending", "succeeded", "failed", "cancelled", "lost")
#: Longest error shown in a table (``--json`` has it whole).
ERROR_WIDTH = 60


class JournalReader(Journal):
    """A project's journal opened read-only: the query methods of :class:`Journal` (the
    same decoding, the same messages), on a connection that cannot write.

    ``Journal.__init__`` is deliberately not called: it creates, upgrades and tunes the
    file. Here nothing is created: no journal is a :class:`UsageError`.
    """

    def __init__(self, project_dir: str) -> None:
        self.dir = os.path.join(os.path.abspath(project_dir), ".offload")
        self.path = os.path.join(self.dir, "journal.sqlite")
        if not os.path.isfile(self.path):
            raise UsageError(f"no journal in {os.path.abspath(project_dir)}: no workflow has run there yet (offload run FLOW writes {self.path})")
        if os.path.getsize(self.path) == 0:
            raise self._unusable("is empty: offload never leaves an empty journal, so its history was lost")
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=ro"
        try:
            self.db = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None)
        except sqlite3.Error as e:
            raise self._unusable(f"cannot be opened ({e})") from None
        try:
            self.tables = self._check_readable()
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise self._unusable(f"is corrupt ({e})") from None
        except UsageError:
            self.db.close()
            raise

    def _check_readable(self) -> set[str]:
        """The same checks as :meth:`Journal._check`, without its upgrade; the tables there are."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise self._unusable(f"was written by a newer offload (journal version {version}, this offload reads up to {VERSION})")
        (verdict,) = self.db.execute("PRAGMA quick_check(1)").fetchone()
        if verdict != "ok":
            raise self._unusable(f"is corrupt ({' '.join(str(verdict).split())})")  # one line
        return {str(name) for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_runs(self) -> bool:
        return {"runs", "tasks"} <= self.tables

    def run_rows(self, now: float | None = None) -> list[RunRow]:
        """Every run, newest first, with the count of its tasks by state (latest attempts)."""
        if not self.has_runs:
            return []
        with self._reading():
            runs = self.db.execute(
                "SELECT run_id, workflow, state, session_time, started_at, finished_at FROM runs ORDER BY started_at DESC, rowid DESC"
            ).fetchall()
            counts: dict[str, dict[str, int]] = {}
            rows = self.db.execute(
                "SELECT t.run_id, t.state, COUNT(*) FROM tasks t WHERE t.attempt = "
                "(SELECT MAX(u.attempt) FROM tasks u WHERE u.run_id = t.run_id AND u.task_name = t.task_name) GROUP BY t.run_id, t.state"
            )
            for run_id, state, count in rows:
                counts.setdefault(str(run_id), {})[str(state)] = int(count)
        now = time.time() if now is None else now
        return [
            RunRow(
                run_id=str(run_id),
                workflow_path=str(workflow),
                state=str(state),
                session_time=str(session),
                started_at=float(started),
                finished_at=None if finished is None else float(finished),
                tasks=_ordered(counts.get(str(run_id), {})),
                now=now,
            )
            for run_id, workflow, state, session, started, finished in runs
        ]

    def task_rows(self, run_id: str, now: float | None = None) -> list[TaskRow]:
        """The latest attempt of each task of ``run_id`` the run has reached, in the order they were queued."""
        with self._reading():
            records = self.tasks(run_id)
            times = self.task_times(run_id) if "task_times" in self.tables else {}
        latest: dict[str, TaskRecord] = {}
        attempts: dict[str, int] = {}
        for (name, _attempt), record in sorted(records.items(), key=lambda item: item[0][1]):
            latest[name] = record
            attempts[name] = attempts.get(name, 0) + 1
        first_queued: dict[str, float] = {}
        for (name, _attempt), (queued_at, _submitted) in times.items():
            first_queued[name] = min(queued_at, first_queued.get(name, queued_at))
        now = time.time() if now is None else now
        rows = []
        for name, record in latest.items():
            queued, submitted = times.get((name, record.attempt), (None, None))
            result = record.result
            started = result.started_at if result is not None and result.started_at is not None else submitted if submitted is not None else queued
            finished = result.finished_at if result is not None else None
            row = TaskRow(
                task=name,
                task_id=record.task_id,
                backend=record.backend,
                state=record.state.value,
                exit_code=None if result is None else result.exit_code,
                attempts=attempts[name],
                started_at=started,
                finished_at=finished,
                error=None if result is None else result.error,
                now=now,
            )
            rows.append((first_queued.get(name, float("inf")), name, row))
        return [row for _, _, row in sorted(rows, key=lambda item: (item[0], item[1]))]

    def find_run(self, run_id: str | None, now: float | None = None) -> RunRow:
        """The run ``run_id``, or the one run whose id starts so (default: the latest run);
        :class:`UsageError` when there is none."""
        runs = self.run_rows(now)
        if not runs:
            raise UsageError(f"journal {self.path} has no runs yet")
        if run_id is None:
            return runs[0]
        found = [run for run in runs if run.run_id == run_id] or [run for run in runs if run.run_id.startswith(run_id)]
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(r.run_id for r in found[:5]) + (", ..." if len(found) > 5 else "")
            raise UsageError(f"run {run_id!r} is the start of {len(found)} runs' ids ({ids}): give more of it")
        raise UsageError(f"no run {run_id!r} in journal {self.path} (offload runs lists them)")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise self._unusable(f"is corrupt ({e})") from None


def _ordered(counts: dict[str, int]) -> dict[str, int]:
    known = {state: counts[state] for state in STATE_ORDER if state in counts}
    return {**known, **{state: n for state, n in sorted(counts.items()) if state not in known}}


def iso(when: float | None) -> str | None:
    """A time for tools: ISO 8601 in UTC, to the millisecond."""
    return None if when is None else dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat(timespec="milliseconds")


def local_time(when: float | None) -> str:
    """A time for people: the local time, to the second."""
    return "-" if when is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def human_duration(seconds: float | None, fine: bool = False) -> str:
    """``0.53s`` (``fine``: two decimals under ten seconds), ``1.5s``, ``2m05s``, ``1h02m``; ``-`` for none."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if fine and seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def one_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters (``...`` marks the cut)."""
    if not text:
        return ""
    lines = text.strip().splitlines() or [""]
    line = lines[0] + (" ..." if len(lines) > 1 else "")
    return line if len(line) <= width else line[: width - 3] + "..."


def workflow_name(path: str) -> str:
    """The name of a workflow from its file's path (``flows/daily.dig`` -> ``daily``)."""
    base = os.path.basename(path)
    return base[: -len(".dig")] if base.endswith(".dig") else base


@attrs.frozen
class RunRow:
    """One run of the journal. ``duration`` runs to now while the run is unfinished."""

    run_id: str
    workflow_path: str
    state: str
    session_time: str
    started_at: float
    finished_at: float | None
    tasks: dict[str, int]
    now: float = attrs.field(eq=False, repr=False)

    @property
    def workflow(self) -> str:
        return workflow_name(self.workflow_path)

    @property
    def duration(self) -> float:
        return max(0.0, (self.finished_at if self.finished_at is not None else self.now) - self.started_at)

    def tasks_text(self) -> str:
        return ", ".join(f"{n} {state}" for state, n in self.tasks.items()) or "no tasks"

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "workflow_path": self.workflow_path,
            "state": self.state,
            "session_time": self.session_time,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": round(self.duration, 3),
            "tasks": dict(self.tasks),
        }

    def cells(self) -> tuple[str, ...]:
        return (self.run_id, self.workflow, local_time(self.started_at), human_duration(self.duration), self.state, self.tasks_text())


RUN_HEADER = ("run", "workflow", "started", "duration", "state", "tasks")


@attrs.frozen
class TaskRow:
    """The latest attempt of one task of a run. ``duration`` runs to now while the task is unfinished."""

    task: str
    task_id: str
    backend: str | None
    state: str
    exit_code: int | None
    attempts: int
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    now: float = attrs.field(default=0.0, eq=False, repr=False)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else None if TaskState(self.state).finished else self.now
        return None if end is None else max(0.0, end - self.started_at)

    def as_json(self) -> dict[str, Any]:
        duration = self.duration
        return {
            "task": self.task,
            "task_id": self.task_id,
            "backend": self.backend,
            "state": self.state,
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": None if duration is None else round(duration, 3),
            "error": self.error,
        }

    def cells(self) -> tuple[str, ...]:
        code = "" if self.exit_code is None else str(self.exit_code)
        return (self.task, self.backend or "-", self.state, code, str(self.attempts), human_duration(self.duration), one_line(self.error))


TASK_HEADER = ("task", "backend", "state", "exit", "attempts", "duration", "error")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    all_rows = [header, *rows]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in all_rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def matches_workflow(row: RunRow, flow: str) -> bool:
    """``--workflow FLOW``: a name (``daily``), a file name (``daily.dig``) or a path to it."""
    return row.workflow == workflow_name(flow)
