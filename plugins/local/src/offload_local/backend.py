"""The local backend: each task runs detached on this machine.

A task is started as ``/bin/sh`` wrapper in a new session (so its own process group),
which runs the command with stdout and stderr appended to a log file in the io
directory and then writes the exit code next to it. Nothing of the task lives in the
driver: a new driver finds the log, the exit code or the still running process group
from the handle alone. The wrapper is a shell, not Python, so that a task costs one
fork and one exec more than ``subprocess.run`` (see ``bench/local_overhead.py``).

Timeout and cancel are enforced by whoever polls: the process group, and every process
that left it (found through the task's token, see :mod:`offload_local.procs`), gets
SIGTERM, then SIGKILL once the grace period is over, and a marker file says why it
stopped. A stopped task counts as finished once none of its processes is left.

A finished task's log is read to its end (see :mod:`offload_local.logs`) before its
final status is given: until then polls say it runs, with the lines read.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from offload import Backend, BackendError, Handle, Health, Result, Status, TaskRequest, TaskState
from offload_local import files, logs, procs
from offload_local.watch import ExitWatcher

#: The wrapper: writes its pid, sends all output to the log, and records the exit code
#: with one write when it exits (builtins only: an external ``mv`` would cost a fork
#: and an exec per task; readers take the code once its line is complete).
#: A script for this same shell (``sh -c SCRIPT`` or ``sh FILE``, which is what ``sh>``
#: runs) runs inline in the wrapper, so a task costs no more processes than running it
#: directly; an EXIT trap records its code, and should the script replace that trap,
#: the driver records the code from ``waitpid`` (it is the wrapper's parent). Any other
#: command runs as the wrapper's child.
WRAPPER = (
    '__offload_code=$2; printf "%s" $$ >"$3"; __offload_mode=$4; exec >>"$1" 2>&1; shift 4; '
    'trap \'printf "%s\\n" $? >"$__offload_code"\' EXIT; '
    'case $__offload_mode in '
    'c) __offload_script=$1; shift; [ $# -gt 0 ] && shift; unset __offload_mode; eval "$__offload_script" ;; '
    'f) __offload_file=$1; shift; unset __offload_mode; . "$__offload_file" ;; '
    '*) "$@" ;; '
    "esac"
)


def _wrapper_mode(shell: str, argv: Sequence[str]) -> tuple[str, list[str]]:
    """How the wrapper runs ``argv``: inline when it is a script for the wrapper's own shell."""
    if argv and os.path.realpath(argv[0]) == os.path.realpath(shell):
        if len(argv) >= 3 and argv[1] == "-c":
            return "c", list(argv[2:])
        if len(argv) >= 2 and not argv[1].startswith("-"):
            script = argv[1] if "/" in argv[1] else f"./{argv[1]}"  # `.` would search $PATH
            return "f", [script, *argv[2:]]
    return "x", list(argv)



KILL_AFTER = 5.0  # seconds between SIGTERM and SIGKILL on timeout

#: A scan of /proc made by ``cancel`` serves the cancels of the next this many seconds,
#: so that cancelling a thousand tasks at once costs one scan (polls scan afresh).
SCAN_REUSE = 1.0

#: The driver's own sight of an exit is trusted over the exit file's coarse time stamp
#: when it came this soon after it (the driver was waiting, not busy or restarted).
PROMPT = 0.02


@attrs.frozen
class LocalConfig:
    """``command_executor.local``: the shell that wraps each task."""

    shell: str = "/bin/sh"


def _is_our_wrapper(pid: int, io_path: str) -> bool:
    """Whether ``pid`` is the wrapper of the task in ``io_path``, not a reused pid (Linux).

    An empty command line means the process is between fork and exec (``Popen`` can
    return in that window) or is a zombie: the first is ours, the second has exited.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return True  # no /proc here: trust the pid
    if not cmdline:
        return not procs.is_zombie(pid)
    return files.path(io_path, files.EXIT).encode() in cmdline


def _pid_alive(pid: int, io_path: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_our_wrapper(pid, io_path)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stopping(io_path: str) -> bool:
    return files.exists(io_path, files.CANCEL) or files.exists(io_path, files.TIMEOUT)


class LocalBackend(Backend):
    """Runs tasks as detached process groups on this machine; needs no configuration."""

    name: ClassVar[str] = "local"
    config_type: ClassVar[type] = LocalConfig
    install_hint: ClassVar[str] = "pip install offload-local"

    def __init__(self, config: Any = None, context: Any = None) -> None:
        super().__init__(config, context)
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._base_env = dict(os.environ)
        self._watcher = ExitWatcher()
        #: io paths of tasks whose log had more than one read's worth at the last poll
        self._backlog: set[str] = set()
        self._cancel_scan: tuple[float, procs.ProcessScan] | None = None

    def submit(self, request: TaskRequest) -> Handle:
        io_path = request.io_path
        os.makedirs(io_path, exist_ok=True)
        for stale in (files.EXIT, files.CANCEL, files.TIMEOUT, files.LOG, files.PID):
            files.remove(io_path, stale)
        env = {**self._base_env, **request.env, procs.TOKEN_VAR: io_path}
        paths = [files.path(io_path, name) for name in (files.LOG, files.EXIT, files.PID)]
        mode, command = _wrapper_mode(self.config.shell, request.argv)
        argv = [self.config.shell, "-c", WRAPPER, "offload-local", *paths, mode, *command]
        started = time.time()
        proc = self._spawn(request, argv, env)
        self._children[proc.pid] = proc
        self._watcher.reset(proc.pid)
        self._backlog.discard(io_path)
        return self._handle(request, proc.pid, started)

    def _spawn(self, request: TaskRequest, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start the wrapper; out of file descriptors, give back the watcher's and try again."""
        for attempt in (1, 2):
            try:
                return subprocess.Popen(
                    argv,
                    cwd=request.work_path,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as e:
                if attempt == 1 and e.errno in (errno.EMFILE, errno.ENFILE):
                    self._watcher.release()
                    continue
                raise BackendError(f"task {request.task_id}: cannot start {argv[0]!r} in {request.work_path}: {e.strerror or e}") from None
        raise AssertionError("unreachable")

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
        return [self._poll_one(handle, scan) for handle in handles]

    def _poll_one(self, handle: Handle, scan: procs.ProcessScan) -> Status:
        """Running: the new lines. Finished: the end of the log first, then the outcome.

        When a task is first seen finished, the log's size then (``log_end``) and the
        finish time go into the handle; the lines up to ``log_end`` are read in bounded
        steps, one per poll, and only the poll that reaches it gives the final state.
        """
        io_path, log = handle.io_path, files.path(handle.io_path, files.LOG)
        offset = int(handle.state.get("log_offset", 0))
        changes: dict[str, Any] = {}
        end = handle.state.get("log_end")
        if end is None:
            if not self._finished(handle, scan):
                self._enforce_limits(handle, scan)
                return self._running(handle, logs.read(log, offset), changes)
            end = logs.size(log)
            changes = {"log_end": end, "finished_at": self._finish_time(handle)}
        chunk = logs.read(log, offset, int(end))
        if not chunk.drained:
            return self._running(handle, chunk, changes)
        self._backlog.discard(io_path)
        code = files.read_exit_code(io_path)
        state, reason = self._outcome(io_path, code)
        return Status(state, exit_code=code, reason=reason, logs=chunk.lines, handle=self._moved(handle, chunk.offset, changes))

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

    def _finished(self, handle: Handle, scan: procs.ProcessScan) -> bool:
        """Whether the task is over: its wrapper ended or, once told to stop, every process of it."""
        io_path, pgid = handle.io_path, int(handle.state["pgid"])
        if _stopping(io_path):
            wrapper = self._wrapper_alive(io_path, pgid)
            return not (wrapper or scan.group_alive(pgid) or scan.pids(io_path))
        if files.read_exit_code(io_path) is not None:
            if pgid in self._children:
                self._wrapper_alive(io_path, pgid)  # reap it
            return True
        return not self._wrapper_alive(io_path, pgid)

    def _finish_time(self, handle: Handle) -> float:
        """When the task ended, never before it started.

        The driver's own sight of the end (a pidfd waking it, or the poll that found
        it) has ``time.time()``'s precision, as the start time has, but may come late;
        the exit file's stamp is never late, but coarse. The sight wins when it came
        within :data:`PROMPT` of the stamp.
        """
        pgid = int(handle.state["pgid"])
        seen = self._watcher.exited_at.pop(pgid, None) or time.time()
        if _stopping(handle.io_path):
            seen = time.time()  # the last of its processes, not the wrapper, ended it
        else:
            stamp = files.exit_stamp(handle.io_path)
            if stamp is not None and seen - stamp > PROMPT:
                seen = stamp
        return max(seen, float(handle.state["started_at"]))

    def _outcome(self, io_path: str, code: int | None) -> tuple[TaskState, str | None]:
        if files.exists(io_path, files.CANCEL):
            return TaskState.CANCELLED, "cancelled"
        if files.exists(io_path, files.TIMEOUT):
            limit = files.read_text(io_path, files.TIMEOUT)
            return TaskState.FAILED, f"timed out after {limit} s"
        if code is None:
            return TaskState.LOST, "the task's process group ended without recording an exit code"
        if code == 0:
            return TaskState.SUCCEEDED, None
        return TaskState.FAILED, f"exit code {code}"

    def _enforce_limits(self, handle: Handle, scan: procs.ProcessScan) -> None:
        """Stop a task past its timeout; escalate a stop to SIGKILL after the grace period."""
        io_path = handle.io_path
        timeout = handle.state.get("timeout")
        now = time.time()
        if timeout is not None and not _stopping(io_path):
            if now - float(handle.state["started_at"]) > float(timeout):
                files.write_text(io_path, files.TIMEOUT, f"{float(timeout):g}", deadline=now + KILL_AFTER)
                self._signal(handle, signal.SIGTERM, scan)
        for marker in (files.CANCEL, files.TIMEOUT):
            deadline = files.deadline(io_path, marker)
            if deadline is not None and now >= deadline:
                self._signal(handle, signal.SIGKILL, scan)

    @staticmethod
    def _signal(handle: Handle, sig: int, scan: procs.ProcessScan) -> None:
        """Signal the task's process group and every process of it that left the group."""
        _signal_group(int(handle.state["pgid"]), sig)
        procs.signal_all(scan.pids(handle.io_path), sig)

    def _wrapper_alive(self, io_path: str, pgid: int) -> bool:
        """Whether the task's wrapper still runs; the driver reaps it when it is its child."""
        proc = self._children.get(pgid)
        if proc is None:
            return _pid_alive(pgid, io_path)
        if proc.poll() is None:
            return True
        self._watcher.saw_exit(pgid, time.time())
        del self._children[pgid]
        if files.read_exit_code(io_path) is None and proc.returncode is not None:
            # The script replaced the wrapper's EXIT trap, or a signal ended it.
            code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
            files.write_exit_code(io_path, code)
        return False

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
        if "log_end" not in handle.state and not self._finished(handle, procs.ProcessScan()):
            raise BackendError(f"task {handle.task_id} is still running; collect it when it has finished")
        code = files.read_exit_code(handle.io_path)
        state, reason = self._outcome(handle.io_path, code)
        finished_at = handle.state.get("finished_at")
        return Result(
            state=state,
            exit_code=code,
            error=None if state is TaskState.SUCCEEDED else reason,
            started_at=float(handle.state["started_at"]),
            finished_at=float(finished_at) if finished_at is not None else self._finish_time(handle),
        )

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        if files.read_exit_code(handle.io_path) is not None and not _stopping(handle.io_path):
            return
        files.write_text(handle.io_path, files.CANCEL, "cancelled", deadline=time.time() + grace)
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
        for proc in list(self._children.values()):
            proc.poll()
        self._children.clear()
        self._watcher.release()
