"""Running a workflow: one poll loop drives every running task of the run.

Each task of the workflow is a :class:`Node` with a state. ``advance`` walks the tree
and starts what may start (children in order, or all at once under ``_parallel``);
one batched poll per backend then brings statuses and log lines for every running
task; finished tasks are collected, journaled, retried (``_retry``) or handed to their
``_error`` tasks. The journal makes the run resumable after the driver is killed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import attrs

from offload.executor.executor import Executor
from offload.executor.models import Handle, Result, TaskState
from offload.executor.polling import AdaptiveInterval
from offload.workflow.engineops import ENGINE_OPERATORS, run_engine_operator
from offload.workflow.interrupts import Interrupted, Interrupts
from offload.workflow.journal import Journal
from offload.workflow.logstore import LogStore
from offload.workflow.nodes import Node, describe
from offload.workflow.operators import RequestContext, build_request
from offload.workflow.params import substitute
from offload.workflow.parser import Workflow
from offload.workflow.plan import Verbatim, layered_params
from offload.workflow.secrets import Masker, SecretStore, resolve, secret_names
from offload.workflow.shellparams import render_script
from offload.workflow.taskkeys import task_key
from offload.workflow.tasktree import TaskTree

#: Seconds a cancelled task gets to stop before it is killed.
CANCEL_GRACE = 10.0
#: Seconds after the grace period that the run waits for backends to confirm tasks stopped.
CONFIRM_LIMIT = 30.0
#: The backend named in the journal for tasks that ran inside the engine (``echo>``, ``if>``...).
ENGINE = "engine"


@attrs.frozen
class Progress:
    """Counts of a run's operator tasks by state (``running``, ``succeeded``, ``failed``,
    ``pending``...) and of the running ones by backend, and the seconds since it started."""

    by_state: dict[str, int]
    running_by_backend: dict[str, int]
    elapsed: float


class Run(TaskTree):
    """One run of a workflow, new or resumed from the journal."""

    def __init__(
        self,
        workflow: Workflow,
        executor: Executor,
        journal: Journal,
        run_id: str,
        session: dict[str, Any],
        on_log: Callable[[str, str], None],
        on_event: Callable[[str, str], None],
        secrets: SecretStore | None = None,
        on_tick: Callable[[Run], None] | None = None,
    ) -> None:
        #: every secret the workflow uses is masked from the start (a re-attached task logs too)
        self.masker = Masker()
        super().__init__(workflow, session, lambda task, message: on_event(task, self.masker.text(message)))
        self.executor, self.journal, self.run_id = executor, journal, run_id
        self.secrets = secrets or SecretStore()
        self.masker.add(v for t in workflow.root.walk() for e in t.env.values() for n in secret_names(e) if (v := self.secrets.get(n)) is not None)
        #: every task attempt's log, kept under .offload/logs/ (offload.workflow.logstore)
        attempt_of = lambda name: next((n.attempt for n in self.running if n.task.name == name), None)  # noqa: E731
        self.logs = LogStore(workflow.project_dir, run_id, attempt_of, lambda message: self.on_event("run", message))
        kept = self.logs.tee(on_log)
        self.on_log: Callable[[str, str], None] = lambda task, line: kept(task, self.masker.text(line))
        #: the latest journaled attempt of each task, from before this process started
        self.records = {}
        for (name, _attempt), record in sorted(journal.tasks(run_id).items(), key=lambda item: item[0][1]):
            self.records[name] = record
        self.running: dict[Node, Handle] = {}
        #: called after every turn of the loop (a progress display reads :meth:`progress`)
        self.on_tick = on_tick
        self.started = time.monotonic()
        self.interrupts = Interrupts()
        self.give_up_at = float("inf")
        self.interval = AdaptiveInterval()
        self.poll_failures = 0

    # -- the loop ---------------------------------------------------------------
    def execute(self) -> TaskState:
        """Run until every task finished or the run was cancelled; returns the run's state."""
        with self.interrupts:
            while True:
                if self.interrupts.pending:
                    self._cancel_running()
                if not self.cancelling:
                    self.wake_at = float("inf")
                    self.advance(self.root)
                if self.root.finished or (self.cancelling and not self.running):
                    break
                if self.cancelling and time.monotonic() > self.give_up_at:
                    self._give_up()
                    break
                if self.running:
                    # Wait, then poll: a task collected by the poll has its successor
                    # started by the next ``advance`` before the loop waits again.
                    self.wait()
                    self.poll_once()
                elif self.wake_at < float("inf"):
                    self.sleep_until(self.wake_at)
                if self.on_tick is not None:
                    self.on_tick(self)
        if self.cancelling:
            return TaskState.CANCELLED
        return self.root.state

    def progress(self) -> Progress:
        """What the run's operator tasks are doing now (the tasks generated so far included)."""
        by_state: dict[str, int] = {}
        running_by_backend: dict[str, int] = {}
        for node in self.root.operator_nodes():
            state = "running" if node in self.running else node.state.value
            by_state[state] = by_state.get(state, 0) + 1
            if node in self.running and node.backend:
                running_by_backend[node.backend] = running_by_backend.get(node.backend, 0) + 1
        return Progress(by_state, running_by_backend, time.monotonic() - self.started)

    def _cancel_running(self) -> None:
        """Ask every running task to stop, all at once: the first signal with a grace
        period, the second at once; after the third the run stops waiting for them."""
        signals = self.interrupts.take()
        self.cancelling = True
        if signals >= 3:
            self.give_up_at = time.monotonic()
            return
        force = signals > 1
        grace = 0 if force else CANCEL_GRACE
        how = "killing running tasks (interrupt again to stop waiting for them)" if force else "cancelling running tasks (interrupt again to kill them at once)"
        self.on_event("run", f"interrupted: {how}")
        self.give_up_at = time.monotonic() + grace + CONFIRM_LIMIT
        for node, handle in list(self.running.items()):
            try:
                self.executor.cancel(handle, grace=grace)
            except Exception as e:  # noqa: BLE001 - the others are still cancelled
                self.on_event(node.task.name, f"cancel failed: {describe(e)}")

    def _give_up(self) -> None:
        names = ", ".join(sorted(n.task.name for n in self.running))
        self.on_event(
            "run",
            f"stopped waiting for {len(self.running)} task(s) that have not confirmed they stopped ({names}); "
            "they may still run: run the workflow again to re-attach and collect them",
        )

    def wait(self) -> None:
        """Until a running task may have changed: the backends wake it, or the interval ends."""
        handles = list(self.running.values())
        if not handles:
            return
        timeout = min(self.interval.next(), max(0.0, self.wake_at - time.monotonic()))
        try:
            with self.interrupts.interruptible():
                self.executor.wait_any(handles, timeout)
        except Interrupted:
            pass

    def sleep_until(self, when: float) -> None:
        """Nothing runs: wait for a retry's time (an interrupt ends the wait)."""
        try:
            with self.interrupts.interruptible():
                time.sleep(max(0.0, min(when - time.monotonic(), 1.0)))
        except Interrupted:
            pass

    def poll_once(self) -> None:
        nodes = list(self.running)
        statuses = None
        try:
            with self.interrupts.interruptible():
                statuses = self.executor.poll([self.running[n] for n in nodes])
        except Interrupted:
            if statuses is None:
                return  # cut short while looking: nothing was learnt, nothing is lost
        except Exception as e:  # noqa: BLE001 - a backend that cannot answer now may answer later
            self.poll_failures += 1
            if self.poll_failures in (1, 10) or self.poll_failures % 100 == 0:
                self.on_event("run", f"polling failed ({type(e).__name__}: {e}); retrying (interrupt to cancel the run)")
            return
        self.poll_failures = 0
        moved = [(n, s.handle, s.state.finished) for n, s in zip(nodes, statuses, strict=True) if s.handle is not None and s.handle != self.running[n]]
        for node, handle, _ in moved:
            self.running[node] = handle
        # A finished task's last handle is not journaled: its result is, by _collect, right below.
        kept = [(node, handle) for node, handle, finished in moved if not finished]
        if kept:
            with self.journal.batch():
                for node, handle in kept:
                    self.journal.update_handle(self.run_id, node.task.name, node.attempt, handle)
        for node, status in zip(nodes, statuses, strict=True):
            for line in status.logs:
                self.on_log(node.task.name, line)
            if status.logs:
                self.interval.changed()
            if status.state.finished:
                self.interval.changed()
                self._collect(node)

    def _collect(self, node: Node) -> None:
        handle = self.running.pop(node)
        try:
            result = self.executor.collect(handle)
        except Exception as e:  # noqa: BLE001 - the task fails with the reason; the run goes on
            result = Result(state=TaskState.FAILED, error=f"cannot collect the result: {describe(e)}", finished_at=time.time())
        result = self.masker.result(result)
        self.logs.finish(node.task.name, node.attempt)
        self.journal.finished(self.run_id, node.task.name, node.attempt, handle.task_id, handle.backend, result)
        self.executor.finished(node.task.name, handle, result)
        node.handle, node.result = handle, result
        self.finish(node, result.state, result)

    def env_for(self, node: Node, params: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for n in self._node_chain(node):
            env.update(n.task.env)
        out = {}
        for key, value in env.items():
            out[key], used = resolve(value, self.secrets, lambda text: str(substitute(text, params)))
            self.masker.add(used)
        return out

    def start(self, node: Node) -> None:
        """Start an operator task: from the journal when it already ran, else submit it."""
        name = node.task.name
        record = self.records.get(name) if node.reuse_journal else None
        node.reuse_journal = False
        if record is not None:
            if record.state is TaskState.SUCCEEDED and record.result is not None:
                node.attempt, node.result, node.backend = record.attempt, record.result, record.backend
                node.replayed = True
                self.on_event(name, f"skipped: succeeded in an earlier attempt of run {self.run_id}")
                self.finish(node, TaskState.SUCCEEDED, record.result, quiet=True)
                return
            if record.state is TaskState.RUNNING and record.handle is not None:
                node.attempt, node.backend = record.attempt, record.backend
                node.replayed = True
                self.running[node] = record.handle
                node.state = TaskState.RUNNING
                self.on_event(name, f"re-attached to the running task on {record.backend}")
                return
            if record.state is TaskState.SUBMITTING:
                # The driver died while submitting: same attempt, so the backend can adopt it.
                node.attempt = record.attempt
                self._submit(node, adopt=True)
                return
        previous = self.records.get(name)
        node.attempt = max(node.attempt, previous.attempt if previous else 0) + 1
        if node.task.operator in ENGINE_OPERATORS:
            self._run_in_engine(node)
            return
        self._submit(node, adopt=False)

    def _run_in_engine(self, node: Node) -> None:
        """An engine operator (``echo>``, ``if>``, ``for_each>``...): runs here and now."""
        name = node.task.name
        task_id = f"{self.run_id}.{task_key(name)}.{node.attempt}"
        try:
            params = self.params_for(node)
            command = layered_params([Verbatim(params), {"__command": node.task.command}])["__command"]
            result, lines = run_engine_operator(str(node.task.operator), command, node.task.body, node.task.origin, self.workflow.project_dir)
        except Exception as e:  # noqa: BLE001 - the task fails with the reason; the run goes on
            result, lines = Result(state=TaskState.FAILED, exit_code=1, error=describe(e), started_at=time.time(), finished_at=time.time()), []
        result = self.masker.result(result)
        self.logs.open(name, node.attempt)
        for line in lines:
            self.on_log(name, line)
        self.logs.finish(name, node.attempt)
        self.journal.finished(self.run_id, name, node.attempt, task_id, ENGINE, result)
        node.backend, node.result = ENGINE, result
        self.finish(node, result.state, result)

    def _submit(self, node: Node, adopt: bool) -> None:
        name = node.task.name
        key = task_key(name)
        task_id = f"{self.run_id}.{key}.{node.attempt}"
        ctx = RequestContext(
            task_id=task_id,
            task_name=name,
            project_dir=self.workflow.project_dir,
            io_dir=f".offload/io/{self.run_id}/{key}.{node.attempt}",
            labels={"offload.run-id": self.run_id, "offload.task-id": task_id, "offload.task-name": name},
        )
        node.io_path = os.path.join(self.workflow.project_dir, ctx.io_dir)
        try:
            params = self.params_for(node)
            env = self.env_for(node, params)
            if node.task.operator == "sh>":
                command, carried = render_script(str(node.task.command), params, self._names_from_tasks(node))
                env.update(carried)
            else:
                command = layered_params([Verbatim(params), {"__command": node.task.command}])["__command"]
            request = build_request(str(node.task.operator), command, params, env, ctx, self.executor.task_keys)
            selection = self.executor.select(request)
            backend = selection.check()
            handle = self.executor.adopt(request, selection) if adopt else None
            if handle is None:
                self.journal.submitting(self.run_id, name, node.attempt, task_id, backend)
                handle = self.executor.submit(request, selection)
        except Exception as e:  # noqa: BLE001 - the task fails with the reason; the run goes on
            result = Result(state=TaskState.FAILED, error=self.masker.text(describe(e)), started_at=time.time(), finished_at=time.time())
            self.logs.finish(name, node.attempt)
            self.journal.finished(self.run_id, name, node.attempt, task_id, None, result)
            node.result = result
            self.finish(node, TaskState.FAILED, result)
            return
        self.journal.submitted(self.run_id, name, node.attempt, handle)
        node.backend, node.state = backend, TaskState.RUNNING
        self.running[node] = handle
        self.on_event(name, f"started on {backend}")
