"""The journal: every run, handle and result, in SQLite under ``<project>/.offload/``.

Written before and after each step that launches or finishes something, so that a
driver killed at any point can be restarted: finished tasks are skipped, running
ones re-attached, and a task whose submission was interrupted is looked for before
it is submitted again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs

from offload.models import Handle, Result, TaskState
from offload.serialization import from_dict, to_dict

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    state TEXT NOT NULL,
    session_time TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    task_name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT NOT NULL,
    backend TEXT,
    handle TEXT,
    result TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, task_name, attempt)
);
"""

#: Task states in the journal besides :class:`TaskState`: a submission in progress.
SUBMITTING = "submitting"


@attrs.frozen
class RunRecord:
    run_id: str
    workflow: str
    state: str
    session_time: str


@attrs.frozen
class TaskRecord:
    task_name: str
    attempt: int
    state: str
    task_id: str
    backend: str | None
    handle: Handle | None
    result: Result | None


class Journal:
    """One SQLite file per project; safe to open from a restarted driver."""

    def __init__(self, project_dir: str) -> None:
        self.dir = os.path.join(project_dir, ".offload")
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "journal.sqlite")
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes of one poll cycle into one transaction."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # runs
    def latest_run(self, workflow: str) -> RunRecord | None:
        row = self.db.execute(
            "SELECT run_id, workflow, state, session_time FROM runs WHERE workflow = ? ORDER BY started_at DESC LIMIT 1",
            (workflow,),
        ).fetchone()
        return RunRecord(*row) if row else None

    def start_run(self, workflow: str, session_time: str) -> RunRecord:
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute(
            "INSERT INTO runs (run_id, workflow, state, session_time, started_at) VALUES (?, ?, 'running', ?, ?)",
            (run_id, workflow, session_time, time.time()),
        )
        return RunRecord(run_id, workflow, "running", session_time)

    def reopen_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE run_id = ?", (run_id,))

    def finish_run(self, run_id: str, state: str) -> None:
        self.db.execute("UPDATE runs SET state = ?, finished_at = ? WHERE run_id = ?", (state, time.time(), run_id))

    # tasks
    def tasks(self, run_id: str) -> dict[tuple[str, int], TaskRecord]:
        rows = self.db.execute(
            "SELECT task_name, attempt, state, task_id, backend, handle, result FROM tasks WHERE run_id = ?",
            (run_id,),
        ).fetchall()
        out = {}
        for name, attempt, state, task_id, backend, handle, result in rows:
            out[(name, attempt)] = TaskRecord(
                name,
                attempt,
                state,
                task_id,
                backend,
                from_dict(json.loads(handle), Handle) if handle else None,
                from_dict(json.loads(result), Result) if result else None,
            )
        return out

    def _upsert(self, run_id: str, name: str, attempt: int, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        columns = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        updates = ", ".join(f"{c} = excluded.{c}" for c in fields)
        self.db.execute(
            f"INSERT INTO tasks (run_id, task_name, attempt, {columns}) VALUES (?, ?, ?, {marks}) "
            f"ON CONFLICT (run_id, task_name, attempt) DO UPDATE SET {updates}",
            (run_id, name, attempt, *fields.values()),
        )

    def submitting(self, run_id: str, name: str, attempt: int, task_id: str, backend: str) -> None:
        self._upsert(run_id, name, attempt, state=SUBMITTING, task_id=task_id, backend=backend, handle=None, result=None)

    def submitted(self, run_id: str, name: str, attempt: int, handle: Handle) -> None:
        self._upsert(run_id, name, attempt, state=TaskState.RUNNING.value, task_id=handle.task_id, backend=handle.backend, handle=json.dumps(to_dict(handle)))

    def update_handle(self, run_id: str, name: str, attempt: int, handle: Handle) -> None:
        self.db.execute(
            "UPDATE tasks SET handle = ?, updated_at = ? WHERE run_id = ? AND task_name = ? AND attempt = ?",
            (json.dumps(to_dict(handle)), time.time(), run_id, name, attempt),
        )

    def finished(self, run_id: str, name: str, attempt: int, task_id: str, backend: str | None, result: Result) -> None:
        self._upsert(run_id, name, attempt, state=result.state.value, task_id=task_id, backend=backend, result=json.dumps(to_dict(result)))

    def tracked_handles(self) -> list[Handle]:
        """Handles of every task not known to have finished, in every run (for ``offload gc``)."""
        rows = self.db.execute("SELECT handle FROM tasks WHERE handle IS NOT NULL AND result IS NULL").fetchall()
        return [from_dict(json.loads(h), Handle) for (h,) in rows]
