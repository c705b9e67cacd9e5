"""Running a workflow file from Python: what ``offload run`` does, for embedding tools."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from offload.executor.errors import UsageError
from offload.executor.executor import Executor
from offload.executor.models import TaskState
from offload.workflow.journal import Journal
from offload.workflow.logstore import log_limit
from offload.workflow.nodes import Node
from offload.workflow.params import run_params, session_params
from offload.workflow.parser import Workflow, load_workflow
from offload.workflow.partial import skipped
from offload.workflow.plan import check_workflow
from offload.workflow.runlock import RunLock
from offload.workflow.runner import Run
from offload.workflow.secrets import SecretStore


@attrs.frozen
class RunOutcome:
    """How a run ended: its id, its state, and the tree of tasks with their results."""

    run_id: str
    state: TaskState
    resumed: bool
    root: Node


def session_params_for(workflow: Workflow, params: Mapping[str, Any], session_time: str | None, session_id: str) -> dict[str, Any]:
    """The built-in params of a session in the workflow's time zone, plus ``params``."""
    if session_time:
        try:
            when = dt.datetime.fromisoformat(session_time)
        except ValueError:
            raise UsageError(f"session time {session_time!r}: expected an ISO 8601 time such as 2026-01-31T00:00:00+00:00") from None
    else:
        when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(workflow.timezone)
    except (ValueError, KeyError, ImportError):
        raise UsageError(f"{os.path.basename(workflow.path)}: timezone: unknown time zone {workflow.timezone!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        local = when.astimezone(zone)
        return {**session_params(session_id, local, workflow.timezone, workflow.project_dir), **run_params(session_id, 1, None), **params}
    except (OverflowError, ValueError):
        raise UsageError(f"session time {session_time!r}: out of the range of dates offload can use (years 1 to 9999 in {workflow.timezone})") from None


def _last_executed(journal: Journal, workflow: Workflow, run_id: str) -> dt.datetime | None:
    """The session time of the workflow's run before ``run_id``, in the workflow's time zone."""
    text = journal.session_time_before(workflow.path, run_id)
    if not text:
        return None
    try:
        from zoneinfo import ZoneInfo

        return dt.datetime.fromisoformat(text).astimezone(ZoneInfo(workflow.timezone))
    except (ValueError, KeyError):
        return None


def _quiet(task: str, message: str) -> None:
    pass


def run_workflow(
    path: str,
    executor: Executor,
    *,
    params: Mapping[str, Any] | None = None,
    rerun: bool = False,
    session_time: str | None = None,
    wait: bool = False,
    secrets: SecretStore | None = None,
    on_log: Callable[[str, str], None] = _quiet,
    on_event: Callable[[str, str], None] = _quiet,
    on_tick: Callable[[Run], None] | None = None,
    start: str | None = None,
    goal: str | None = None,
) -> RunOutcome:
    """Run the workflow at ``path``, resuming its last run unless that one succeeded.

    Everything is checked before anything is launched; a problem raises
    :class:`offload.ConfigError`. ``on_log(task, line)`` gets every log line as it comes,
    ``on_event(task, message)`` every start, finish, retry and skip; ``on_tick(run)``
    is called after every turn of the run's loop (``run.progress()`` tells what runs).
    ``start``/``goal`` run part of the workflow, as ``digdag run --start/--goal`` do.

    One driver at a time runs a workflow of a project: while another holds the run
    lock, this raises :class:`offload.workflow.runlock.RunLocked` or, with ``wait``, waits for it.
    """
    workflow = load_workflow(path)
    leave_out = skipped(workflow, start, goal)
    log_limit()  # a bad OFFLOAD_LOG_LIMIT stops the run before it is journaled
    journal = Journal(workflow.project_dir)
    lock = RunLock(journal.dir, workflow.path)
    try:
        lock.acquire(wait=wait, on_wait=lambda message: on_event("run", message))
        previous = None if rerun else journal.latest_run(workflow.path)
        resume = previous is not None and previous.state is not TaskState.SUCCEEDED
        if resume and previous is not None:
            session_time = previous.session_time
        session = session_params_for(workflow, params or {}, session_time, previous.run_id if resume and previous else "new")
        secrets = secrets or SecretStore()
        check_workflow(workflow, executor, session, secrets)
        if resume and previous is not None:
            run_id = previous.run_id
            journal.reopen_run(run_id)
        else:
            run_id = journal.start_run(workflow.path, session["session_time"]).run_id
        session.update(
            {k: v for k, v in run_params(run_id, journal.new_attempt(run_id), _last_executed(journal, workflow, run_id)).items() if k not in (params or {})}
        )
        on_event("run", f"{'resuming' if resume else 'starting'} run {run_id} of {workflow.name}")
        run = Run(workflow, executor, journal, run_id, session, on_log, on_event, secrets, on_tick)
        run.skip = leave_out
        state = run.execute()
        journal.finish_run(run_id, state)
        return RunOutcome(run_id, state, resume, run.root)
    finally:
        journal.close()
        lock.release()
