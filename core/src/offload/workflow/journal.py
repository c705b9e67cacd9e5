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

from offload.executor.errors import UsageError
from offload.executor.models import Handle, Result, TaskState
from offload.executor.serialization import from_dict, to_dict

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
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS task_times (
    run_id TEXT NOT NULL,
    task_name TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    queued_at REAL NOT NULL,
    submitted_at REAL,
    PRIMARY KEY (run_id, task_name, attempt)
);
"""

#: The journal format this offload writes (SQLite's ``user_version``).
VERSION = 1


@attrs.frozen
class RunRecord:
    run_id: str
    workflow: str
    state: TaskState
    session_time: str


@attrs.frozen
class TaskRecord:
    task_name: str
    attempt: int
    state: TaskState
    task_id: str
    backend: str | None
    handle: Handle | None
    result: Result | None


class JournalError(UsageError):
    """The journal cannot be used (corrupt, empty, from a newer offload). Exit status 2,
    and the file is left exactly as it was found."""


class Journal:
    """One SQLite file per project; safe to open from a restarted driver.

    The file is private to its owner (mode 0600: it holds handles and results), created
    whole or not at all, and never replaced: a file that is not a journal this offload
    can read stops the command with a message saying what to do.
    """

    def __init__(self, project_dir: str) -> None:
        self.dir = os.path.join(project_dir, ".offload")
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "journal.sqlite")
        if not os.path.exists(self.path):
            self._create()
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise self._unusable(f"cannot be opened ({e})") from None
        try:
            self._check()
            if os.stat(self.path).st_mode & 0o077:
                os.chmod(self.path, 0o600)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise self._unusable(f"is corrupt ({e})") from None
        except JournalError:
            self.db.close()
            raise

    def _create(self) -> None:
        """Write a new journal beside its place, then link it in: never a half-made file."""
        tmp = f"{self.path}.new-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute(f"PRAGMA user_version = {VERSION}")
            db.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another driver made it first
            except OSError:  # a file system without hard links
                if not os.path.exists(self.path):
                    os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)

    def _check(self) -> None:
        if os.path.getsize(self.path) == 0:
            raise self._unusable("is empty: offload never leaves an empty journal, so its history was lost")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise self._unusable(f"was written by a newer offload (journal version {version}, this offload reads up to {VERSION})")
        (verdict,) = self.db.execute("PRAGMA quick_check(1)").fetchone()
        if verdict != "ok":
            raise self._unusable(f"is corrupt ({verdict})")
        if version < VERSION:
            self.db.execute(f"PRAGMA user_version = {VERSION}")

    def _unusable(self, why: str) -> JournalError:
        return JournalError(
            f"journal {self.path} {why}; nothing was changed. Move it aside to start a new history "
            f"(mv {self.path} {self.path}.bad), or restore it from a backup"
        )

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
        if row is None:
            return None
        run_id, workflow_path, state, session_time = row
        try:
            return RunRecord(run_id, workflow_path, TaskState(state), session_time)
        except ValueError:
            raise self._unusable(f"has run {run_id} in an unknown state {state!r}") from None

    def start_run(self, workflow: str, session_time: str) -> RunRecord:
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.db.execute(
            "INSERT INTO runs (run_id, workflow, state, session_time, started_at) VALUES (?, ?, 'running', ?, ?)",
            (run_id, workflow, session_time, time.time()),
        )
        return RunRecord(run_id, workflow, TaskState.RUNNING, session_time)

    def reopen_run(self, run_id: str) -> None:
        self.db.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE run_id = ?", (run_id,))

    def new_attempt(self, run_id: str) -> int:
        """Count one more start of ``run_id`` (new or resumed); its number, from 1."""
        self.db.execute("INSERT INTO attempts (run_id, started_at) VALUES (?, ?)", (run_id, time.time()))
        return int(self.db.execute("SELECT COUNT(*) FROM attempts WHERE run_id = ?", (run_id,)).fetchone()[0])

    def session_time_before(self, workflow: str, run_id: str) -> str | None:
        """The session time of the latest run of ``workflow`` started before ``run_id``."""
        row = self.db.execute(
            "SELECT session_time FROM runs WHERE workflow = ? AND started_at < (SELECT started_at FROM runs WHERE run_id = ?) ORDER BY started_at DESC LIMIT 1",
            (workflow, run_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def finish_run(self, run_id: str, state: TaskState) -> None:
        self.db.execute("UPDATE runs SET state = ?, finished_at = ? WHERE run_id = ?", (state.value, time.time(), run_id))

    # tasks
    def tasks(self, run_id: str) -> dict[tuple[str, int], TaskRecord]:
        rows = self.db.execute(
            "SELECT task_name, attempt, state, task_id, backend, handle, result FROM tasks WHERE run_id = ?",
            (run_id,),
        ).fetchall()
        out = {}
        for name, attempt, state, task_id, backend, handle, result in rows:
            try:
                out[(name, attempt)] = TaskRecord(
                    name,
                    attempt,
                    TaskState(state),
                    task_id,
                    backend,
                    from_dict(json.loads(handle), Handle) if handle else None,
                    from_dict(json.loads(result), Result) if result else None,
                )
            except Exception as e:  # noqa: BLE001 - any decoding failure means the same to the user
                raise self._unusable(f"has an unreadable record of task {name} (attempt {attempt}) of run {run_id}: {type(e).__name__}") from None
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
        self._upsert(run_id, name, attempt, state=TaskState.SUBMITTING.value, task_id=task_id, backend=backend, handle=None, result=None)
        self._queued(run_id, name, attempt, time.time())

    def submitted(self, run_id: str, name: str, attempt: int, handle: Handle) -> None:
        self._upsert(run_id, name, attempt, state=TaskState.RUNNING.value, task_id=handle.task_id, backend=handle.backend, handle=json.dumps(to_dict(handle)))
        self.db.execute(
            "UPDATE task_times SET submitted_at = ? WHERE run_id = ? AND task_name = ? AND attempt = ? AND submitted_at IS NULL",
            (time.time(), run_id, name, attempt),
        )

    def _queued(self, run_id: str, name: str, attempt: int, when: float) -> None:
        self.db.execute(
            "INSERT INTO task_times (run_id, task_name, attempt, queued_at) VALUES (?, ?, ?, ?) ON CONFLICT (run_id, task_name, attempt) DO NOTHING",
            (run_id, name, attempt, when),
        )

    def task_times(self, run_id: str) -> dict[tuple[str, int], tuple[float, float | None]]:
        """When each task attempt of ``run_id`` was handed to its backend (queued) and when
        the backend had taken it (submitted); the result holds when it started and ended."""
        rows = self.db.execute("SELECT task_name, attempt, queued_at, submitted_at FROM task_times WHERE run_id = ?", (run_id,)).fetchall()
        return {(name, attempt): (queued, submitted) for name, attempt, queued, submitted in rows}

    def update_handle(self, run_id: str, name: str, attempt: int, handle: Handle) -> None:
        self.db.execute(
            "UPDATE tasks SET handle = ?, updated_at = ? WHERE run_id = ? AND task_name = ? AND attempt = ?",
            (json.dumps(to_dict(handle)), time.time(), run_id, name, attempt),
        )

    def finished(self, run_id: str, name: str, attempt: int, task_id: str, backend: str | None, result: Result) -> None:
        self._upsert(run_id, name, attempt, state=result.state.value, task_id=task_id, backend=backend, result=json.dumps(to_dict(result)))
        self._queued(run_id, name, attempt, result.started_at or time.time())  # a task that never reached a backend

    def tracked_handles(self) -> list[Handle]:
        """Handles of every task not known to have finished, in every run (for ``offload gc``)."""
        rows = self.db.execute("SELECT handle FROM tasks WHERE handle IS NOT NULL AND result IS NULL").fetchall()
        try:
            return [from_dict(json.loads(h), Handle) for (h,) in rows]
        except Exception as e:  # noqa: BLE001 - any decoding failure means the same to the user
            raise self._unusable(f"has an unreadable task handle: {type(e).__name__}") from None
