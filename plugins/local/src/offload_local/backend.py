"""The local backend: each task runs detached on this machine.

A task is started as ``/bin/sh`` wrapper in a new session (so its own process group),
which runs the command with stdout and stderr appended to a log file in the io
directory and then writes the exit code next to it. Nothing of the task lives in the
driver: a new driver finds the log, the exit code or the still running process group
from the handle alone. The wrapper is a shell, not Python, so that a task costs one
fork and one exec more than ``subprocess.run`` (see ``bench/local_overhead.py``).

Timeout and cancel are enforced by whoever polls: the process group gets SIGTERM,
then SIGKILL once the grace period is over, and a marker file says why it stopped.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from offload import Backend, BackendError, Handle, Health, Result, Status, TaskRequest, TaskState
from offload_local import files

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


@attrs.frozen
class LocalConfig:
    """``command_executor.local``: the shell that wraps each task."""

    shell: str = "/bin/sh"


def _is_our_wrapper(pid: int, io_path: str) -> bool:
    """Whether ``pid`` is the wrapper of the task in ``io_path``, not a reused pid (Linux).

    An empty command line means the process is between fork and exec (``Popen`` can
    return in that window) or is a zombie: neither is a reused pid, so it counts as ours.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return True  # no /proc here: trust the pid
    return not cmdline or files.path(io_path, files.EXIT).encode() in cmdline


def _pid_alive(pid: int, io_path: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_our_wrapper(pid, io_path)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class LocalBackend(Backend):
    """Runs tasks as detached process groups on this machine; needs no configuration."""

    name: ClassVar[str] = "local"
    config_type: ClassVar[type] = LocalConfig
    install_hint: ClassVar[str] = "pip install offload-local"

    def __init__(self, config: Any = None, context: Any = None) -> None:
        super().__init__(config, context)
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._base_env = dict(os.environ)

    def submit(self, request: TaskRequest) -> Handle:
        io_path = request.io_path
        os.makedirs(io_path, exist_ok=True)
        for stale in (files.EXIT, files.CANCEL, files.TIMEOUT, files.LOG, files.PID):
            files.remove(io_path, stale)
        env = {**self._base_env, **request.env} if request.env else None
        paths = [files.path(io_path, name) for name in (files.LOG, files.EXIT, files.PID)]
        mode, command = _wrapper_mode(self.config.shell, request.argv)
        argv = [self.config.shell, "-c", WRAPPER, "offload-local", *paths, mode, *command]
        started = time.time()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=request.work_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            raise BackendError(f"task {request.task_id}: cannot start {argv[0]!r} in {request.work_path}: {e.strerror or e}") from None
        self._children[proc.pid] = proc
        return self._handle(request, proc.pid, started)

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
        return [self._poll_one(handle) for handle in handles]

    def _poll_one(self, handle: Handle) -> Status:
        io_path = handle.io_path
        pgid = int(handle.state["pgid"])
        code = files.read_exit_code(io_path)
        alive = code is None and self._alive(io_path, pgid)
        finished = code is not None or not alive
        if finished and code is None:
            code = files.read_exit_code(io_path)  # written between the two looks
        lines, offset = files.read_new_lines(io_path, int(handle.state.get("log_offset", 0)), final=finished)
        changes: dict[str, Any] = {}
        if offset != handle.state.get("log_offset"):
            changes["log_offset"] = offset
        new_handle = handle.with_state(**changes) if changes else None
        if not finished:
            self._enforce_limits(handle)
            return Status(TaskState.RUNNING, logs=lines, handle=new_handle)
        state, reason = self._outcome(io_path, code)
        return Status(state, exit_code=code, reason=reason, logs=lines, handle=new_handle)

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

    def _enforce_limits(self, handle: Handle) -> None:
        """Stop a task past its timeout; escalate a stop to SIGKILL after the grace period."""
        io_path = handle.io_path
        pgid = int(handle.state["pgid"])
        timeout = handle.state.get("timeout")
        now = time.time()
        if timeout is not None and not files.exists(io_path, files.TIMEOUT) and not files.exists(io_path, files.CANCEL):
            if now - float(handle.state["started_at"]) > float(timeout):
                files.write_text(io_path, files.TIMEOUT, f"{float(timeout):g}", deadline=now + KILL_AFTER)
                _signal_group(pgid, signal.SIGTERM)
        for marker in (files.CANCEL, files.TIMEOUT):
            deadline = files.deadline(io_path, marker)
            if deadline is not None and now >= deadline:
                _signal_group(pgid, signal.SIGKILL)

    def _alive(self, io_path: str, pgid: int) -> bool:
        """Whether the task still runs: its wrapper does, or, once it was told to stop,
        any process of its group does (so one that ignores SIGTERM still gets SIGKILL)."""
        proc = self._children.get(pgid)
        if proc is not None:
            wrapper_alive = proc.poll() is None
            if not wrapper_alive:
                del self._children[pgid]
                if files.read_exit_code(io_path) is None and proc.returncode is not None:
                    # The script replaced the wrapper's EXIT trap, or a signal ended it.
                    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
                    files.write_exit_code(io_path, code)
        else:
            wrapper_alive = _pid_alive(pgid, io_path)
        if wrapper_alive:
            return True
        stopping = files.exists(io_path, files.CANCEL) or files.exists(io_path, files.TIMEOUT)
        return stopping and _group_alive(pgid)

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Sleep up to ``timeout``, waking as soon as one of the tasks' wrappers exits."""
        fds = []
        try:
            for handle in handles:
                try:
                    fds.append(os.pidfd_open(int(handle.state["pgid"])))
                except (OSError, AttributeError):
                    continue
            if fds:
                select.select(fds, [], [], timeout)
            else:
                time.sleep(timeout)
        finally:
            for fd in fds:
                os.close(fd)

    def collect(self, handle: Handle) -> Result:
        (status,) = self.poll([handle])
        if not status.state.finished:
            raise BackendError(f"task {handle.task_id} is still running; collect it when it has finished")
        error = None if status.state is TaskState.SUCCEEDED else status.reason
        return Result(
            state=status.state,
            exit_code=status.exit_code,
            error=error,
            started_at=float(handle.state["started_at"]),
            finished_at=files.finished_at(handle.io_path),
        )

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        pgid = int(handle.state["pgid"])
        if files.read_exit_code(handle.io_path) is not None:
            return
        files.write_text(handle.io_path, files.CANCEL, "cancelled", deadline=time.time() + grace)
        _signal_group(pgid, signal.SIGTERM)
        if grace <= 0:
            _signal_group(pgid, signal.SIGKILL)

    def check(self) -> Health:
        if not os.access(self.config.shell, os.X_OK):
            return Health(ok=False, summary=f"local: {self.config.shell} is not executable")
        return Health(ok=True, summary="local: ready", details=(f"shell {self.config.shell}", f"{os.cpu_count()} CPUs"))

    def close(self) -> None:
        for proc in list(self._children.values()):
            proc.poll()
        self._children.clear()
