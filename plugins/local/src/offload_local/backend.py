"""The local backend: each task runs detached on this machine.

A task is started as a ``/bin/sh`` wrapper in a new session (so its own process group),
which runs the command with stdout and stderr appended to a log file in the io
directory and then writes the exit code next to it (see :mod:`offload_local.spawn`).
Nothing of the task lives in the driver: a new driver finds the log, the exit code or
the still running process group from the handle alone. The wrapper is a shell, not
Python, so that a task costs no more processes than ``subprocess.run``
(see ``bench/local_tasks.py``).

Timeout and cancel are enforced by whoever polls: the process group, and every process
that left it (found through the task's token, see :mod:`offload_local.procs`), gets
SIGTERM, then SIGKILL once the grace period is over, and a marker file says why it
stopped. A stopped task counts as finished once none of its processes is left.

A finished task's log is read to its end (see :mod:`offload_local.logs`) before its
final status is given: until then polls say it runs, with the lines read. A running
task's files are looked at no more often than every :data:`LOOK_EVERY` seconds: in
between, a poll asks only whether its wrapper still runs (``waitpid`` of the driver's
own child, or the pidfd the driver watches), so a poll of thousands of running tasks
costs no file system calls for the quiet ones.

A ``python3`` (or ``ruby``) that is a version manager's shim is asked once which interpreter
it runs, and that interpreter runs the tasks (see :mod:`offload_local.interpreters`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from offload import Backend, BackendError, Handle, Health, Result, Status, TaskRequest, TaskState
from offload_local import files, logs, procs
from offload_local.interpreters import Interpreters
from offload_local.spawn import WRAPPER, Spawner
from offload_local.watch import ExitWatcher

KILL_AFTER = 5.0  # seconds between SIGTERM and SIGKILL on timeout

#: A scan of /proc made by ``cancel`` serves the cancels of the next this many seconds,
#: so that cancelling a thousand tasks at once costs one scan (polls scan afresh).
SCAN_REUSE = 1.0

#: The driver's own sight of an exit is trusted over the exit file's coarse time stamp
#: when it came this soon after it (the driver was waiting, not busy or restarted).
PROMPT = 0.02

#: Seconds between two looks at a running task's log and stop markers (its end is seen at once).
LOOK_EVERY = 0.05

#: Files of an earlier attempt in the same io directory that a new one must not see.
STALE = (files.EXIT, files.CANCEL, files.TIMEOUT, files.LOG, files.PID)


@attrs.frozen
class LocalConfig:
    """``command_executor.local``: the shell that wraps each task."""

    shell: str = "/bin/sh"


def _stopping(present: frozenset[str]) -> bool:
    return files.CANCEL in present or files.TIMEOUT in present


def _stop_of(present: frozenset[str]) -> str | None:
    """The marker that stopped the task, if one did."""
    return files.CANCEL if files.CANCEL in present else files.TIMEOUT if files.TIMEOUT in present else None


def _prepare_io_dir(io_path: str) -> None:
    """Make the io directory, or clear what an earlier attempt left in it."""
    try:
        os.mkdir(io_path)
        return  # new: nothing to clear
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(io_path, exist_ok=True)
        return
    present = files.listing(io_path)
    for name in STALE:
        if name in present:
            files.remove(io_path, name)


class LocalBackend(Backend):
    """Runs tasks as detached process groups on this machine; needs no configuration."""

    name: ClassVar[str] = "local"
    config_type: ClassVar[type] = LocalConfig
    install_hint: ClassVar[str] = "pip install offload-local"

    def __init__(self, config: Any = None, context: Any = None) -> None:
        super().__init__(config, context)
        self._spawner = Spawner(self.config.shell)
        self._interpreters = Interpreters()
        self._base_env = dict(os.environ)
        self._watcher = ExitWatcher()
        #: io paths of tasks whose log had more than one read's worth at the last poll
        self._backlog: set[str] = set()
        #: when each running task's files were last looked at (``time.monotonic()``), by io path
        self._looked: dict[str, float] = {}
        #: exit code from ``waitpid`` of each wrapper of ours that ended (``None``: unknown), by pid
        self._ended: dict[int, int | None] = {}
        self._cancel_scan: tuple[float, procs.ProcessScan] | None = None

    def submit(self, request: TaskRequest) -> Handle:
        io_path, work = request.io_path, request.work_path
        _prepare_io_dir(io_path)
        shell = self.config.shell
        if not os.path.isdir(work):
            raise BackendError(f"task {request.task_id}: cannot start {shell!r} in {work}: no such directory")
        env = {**self._base_env, **request.env}
        mode, command = self._spawner.mode(self._interpreters.resolve(request.argv, env, work))
        env[procs.TOKEN_VAR] = io_path
        paths = [files.path(io_path, name) for name in (files.LOG, files.EXIT, files.PID)]
        argv = [shell, "-c", WRAPPER, "offload-local", *paths, mode, work, *command]
        started = time.time()
        try:
            pid = self._spawner.spawn(argv, env, self._watcher.release)
        except OSError as e:
            raise BackendError(f"task {request.task_id}: cannot start {shell!r} in {work}: {e.strerror or e}") from None
        self._watcher.reset(pid)
        self._ended.pop(pid, None)
        self._backlog.discard(io_path)
        self._looked[io_path] = time.monotonic()
        return self._handle(request, pid, started)

    def _handle(self, request: TaskRequest, pgid: int, started: float) -> Handle:
        state = {
            "pgid": pgid,
            "started_at": started,
            "log_offset": 0,
            "timeout": request.timeout,
        }
        return Handle(backend=self.name, task_id=request.task_id, io_path=request.io_path, state=state)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The task's wrapper writes its pid first thing: if it is there, the task started."""
        pid = files.read_pid(request.io_path)
        if pid is None:
            return None
        return self._handle(request, pid, files.started_at(request.io_path))

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        scan = procs.ProcessScan()  # one look at /proc for every task that is stopping
        now = time.monotonic()
        return [self._poll_one(handle, scan, now) for handle in handles]

    def _poll_one(self, handle: Handle, scan: procs.ProcessScan, now: float) -> Status:
        """Running: the new lines. Finished: the end of the log first, then the outcome.

        When a task is first seen finished, the log's size then (``log_end``) and the
        finish time go into the handle; the lines up to ``log_end`` are read in bounded
        steps, one per poll, and only the poll that reaches it gives the final state,
        with the exit code and what stopped the task (``exit_code``, ``stop``).
        """
        io_path, log = handle.io_path, files.path(handle.io_path, files.LOG)
        offset = int(handle.state.get("log_offset", 0))
        changes: dict[str, Any] = {}
        end = handle.state.get("log_end")
        present = exit_file = None
        if end is None:
            if self._quiet(handle, now):
                return Status(TaskState.RUNNING)
            self._looked[io_path] = now
            present = self._look(handle)
            if not self._finished(handle, scan, present):
                self._enforce_limits(handle, scan, present)
                return self._running(handle, logs.read(log, offset), changes)
            exit_file = files.read_exit(io_path) if files.EXIT in present else (None, None)
            chunk, end = logs.read_final(log, offset)
            changes = {"log_end": end, "finished_at": self._finish_time(handle, present, exit_file[1])}
        else:
            chunk = logs.read(log, offset, int(end))
        if not chunk.drained:
            return self._running(handle, chunk, changes)
        self._backlog.discard(io_path)
        self._looked.pop(io_path, None)
        self._ended.pop(int(handle.state["pgid"]), None)
        if present is None:
            present = files.listing(io_path)
        code = (exit_file or files.read_exit(io_path))[0]
        stop = _stop_of(present)
        state, reason = self._outcome(io_path, code, stop)
        changes.update(exit_code=code, stop=stop)
        return Status(state, exit_code=code, reason=reason, logs=chunk.lines, handle=self._moved(handle, chunk.offset, changes))

    def _quiet(self, handle: Handle, now: float) -> bool:
        """Whether the task surely still runs and its files were looked at a moment ago."""
        io_path = handle.io_path
        looked = self._looked.get(io_path)
        if looked is None or now - looked >= LOOK_EVERY or io_path in self._backlog:
            return False
        timeout = handle.state.get("timeout")
        if timeout is not None and time.time() - float(handle.state["started_at"]) > float(timeout):
            return False
        pid = int(handle.state["pgid"])
        if pid in self._spawner.children:
            return self._reap(pid)
        return self._watcher.watching(pid)

    def _reap(self, pid: int) -> bool:
        """Whether our wrapper ``pid`` still runs; when it has ended, keep its code."""
        alive, code = self._spawner.reap(pid)
        if not alive:
            self._ended[pid] = code
            self._watcher.saw_exit(pid, time.time())
        return alive

    def _look(self, handle: Handle) -> frozenset[str]:
        """The files in the io directory, once the wrapper (if ours) was asked whether it ended.

        A wrapper of ours that ended without recording its exit code (the script replaced
        the EXIT trap, or a signal ended it) gets the code ``waitpid`` gave.
        """
        pid = int(handle.state["pgid"])
        if pid in self._spawner.children:
            self._reap(pid)
        present = files.listing(handle.io_path)
        code = self._ended.get(pid)
        if pid in self._ended and files.EXIT not in present and code is not None:
            files.write_exit_code(handle.io_path, code)
            present = present | {files.EXIT}
        return present

    def _running(self, handle: Handle, chunk: logs.LogChunk, changes: dict[str, Any]) -> Status:
        if chunk.drained:
            self._backlog.discard(handle.io_path)
        else:
            self._backlog.add(handle.io_path)
        return Status(TaskState.RUNNING, logs=chunk.lines, handle=self._moved(handle, chunk.offset, changes))

    @staticmethod
    def _moved(handle: Handle, offset: int, changes: dict[str, Any]) -> Handle | None:
        if offset != handle.state.get("log_offset"):
            changes = {**changes, "log_offset": offset}
        return handle.with_state(**changes) if changes else None

    def _finished(self, handle: Handle, scan: procs.ProcessScan, present: frozenset[str]) -> bool:
        """Whether the task is over: its wrapper ended or, once told to stop, every process of it."""
        io_path, pgid = handle.io_path, int(handle.state["pgid"])
        if _stopping(present):
            wrapper = self._wrapper_alive(io_path, pgid)
            return not (wrapper or scan.group_alive(pgid) or scan.pids(io_path))
        if pgid in self._ended:
            return True
        if pgid in self._spawner.children:
            return False  # _look has just asked: it runs
        if files.EXIT in present and files.read_exit_code(io_path) is not None:
            return True
        return not procs.wrapper_alive(pgid, files.path(io_path, files.EXIT))

    def _wrapper_alive(self, io_path: str, pgid: int) -> bool:
        if pgid in self._ended:
            return False
        if pgid in self._spawner.children:
            return self._reap(pgid)
        return procs.wrapper_alive(pgid, files.path(io_path, files.EXIT))

    def _finish_time(self, handle: Handle, present: frozenset[str], stamp: float | None) -> float:
        """When the task ended, never before it started.

        The driver's own sight of the end (a pidfd waking it, or the poll that found
        it) has ``time.time()``'s precision, as the start time has, but may come late;
        the exit file's ``stamp`` is never late, but coarse. The sight wins when it came
        within :data:`PROMPT` of the stamp.
        """
        pgid = int(handle.state["pgid"])
        seen = self._watcher.exited_at.pop(pgid, None) or time.time()
        if _stopping(present):
            seen = time.time()  # the last of its processes, not the wrapper, ended it
        elif stamp is not None and seen - stamp > PROMPT:
            seen = stamp
        return max(seen, float(handle.state["started_at"]))

    @staticmethod
    def _outcome(io_path: str, code: int | None, stop: str | None) -> tuple[TaskState, str | None]:
        if stop == files.CANCEL:
            return TaskState.CANCELLED, "cancelled"
        if stop == files.TIMEOUT:
            limit = files.read_text(io_path, files.TIMEOUT)
            return TaskState.FAILED, f"timed out after {limit} s"
        if code is None:
            return TaskState.LOST, "the task's process group ended without recording an exit code"
        if code == 0:
            return TaskState.SUCCEEDED, None
        return TaskState.FAILED, f"exit code {code}"

    def _enforce_limits(self, handle: Handle, scan: procs.ProcessScan, present: frozenset[str]) -> None:
        """Stop a task past its timeout; escalate a stop to SIGKILL after the grace period."""
        io_path = handle.io_path
        timeout = handle.state.get("timeout")
        now = time.time()
        if timeout is not None and not _stopping(present):
            if now - float(handle.state["started_at"]) > float(timeout):
                files.write_text(io_path, files.TIMEOUT, f"{float(timeout):g}", deadline=now + KILL_AFTER)
                self._signal(handle, signal.SIGTERM, scan)
                present = present | {files.TIMEOUT}
        for marker in (files.CANCEL, files.TIMEOUT):
            if marker not in present:
                continue
            deadline = files.deadline(io_path, marker)
            if deadline is not None and now >= deadline:
                self._signal(handle, signal.SIGKILL, scan)

    @staticmethod
    def _signal(handle: Handle, sig: int, scan: procs.ProcessScan) -> None:
        """Signal the task's process group and every process of it that left the group."""
        procs.signal_group(int(handle.state["pgid"]), sig)
        procs.signal_all(scan.pids(handle.io_path), sig)

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Sleep up to ``timeout``, waking as soon as one of the tasks' wrappers exits.

        Returns at once while a task has log left to read, so a finished task's log is
        drained at the speed of the poll loop.
        """
        if any(handle.io_path in self._backlog for handle in handles):
            return
        running = [int(handle.state["pgid"]) for handle in handles if "log_end" not in handle.state]
        self._watcher.wait(running, timeout)

    def collect(self, handle: Handle) -> Result:
        """The result, from the exit code and the markers alone: it needs no log read."""
        io_path, known = handle.io_path, handle.state
        present = None
        if "stop" in known:  # the final poll recorded the outcome
            code, stop = known.get("exit_code"), known["stop"]
        else:
            present = files.listing(io_path) if "log_end" in known else self._look(handle)
            if "log_end" not in known and not self._finished(handle, procs.ProcessScan(), present):
                raise BackendError(f"task {handle.task_id} is still running; collect it when it has finished")
            code, stop = files.read_exit_code(io_path), _stop_of(present)
        code = None if code is None else int(code)
        state, reason = self._outcome(io_path, code, stop)
        finished_at = known.get("finished_at")
        if finished_at is None:
            finished_at = self._finish_time(handle, present if present is not None else files.listing(io_path), files.exit_stamp(io_path))
        return Result(
            state=state,
            exit_code=code,
            error=None if state is TaskState.SUCCEEDED else reason,
            started_at=float(known["started_at"]),
            finished_at=float(finished_at),
        )

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        present = files.listing(handle.io_path)
        if files.read_exit_code(handle.io_path) is not None and not _stopping(present):
            return
        files.write_text(handle.io_path, files.CANCEL, "cancelled", deadline=time.time() + grace)
        self._looked.pop(handle.io_path, None)  # the next poll looks
        scan = self._recent_scan()
        self._signal(handle, signal.SIGTERM, scan)
        if grace <= 0:
            self._signal(handle, signal.SIGKILL, scan)

    def _recent_scan(self) -> procs.ProcessScan:
        now = time.monotonic()
        if self._cancel_scan is None or now - self._cancel_scan[0] > SCAN_REUSE:
            self._cancel_scan = (now, procs.ProcessScan())
        return self._cancel_scan[1]

    def check(self) -> Health:
        if not os.access(self.config.shell, os.X_OK):
            return Health(ok=False, summary=f"local: {self.config.shell} is not executable")
        return Health(ok=True, summary="local: ready", details=(f"shell {self.config.shell}", f"{os.cpu_count()} CPUs"))

    def close(self) -> None:
        self._spawner.close()
        self._watcher.release()
