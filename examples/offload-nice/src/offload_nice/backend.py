"""The ``nice`` backend: each task runs detached on this machine at a lower CPU and I/O priority (Linux).

A ``/bin/sh`` wrapper, started through ``ionice`` and ``nice`` in a session of its own, writes its pid,
the task's stdout and stderr, and then its exit code into the io directory: the handle alone lets
another process poll, collect or cancel the task. Whoever polls enforces the timeout and the cancel
grace period (SIGTERM to the process group, then SIGKILL); a stop file says why it stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import attrs

import offload
from offload import Handle, Problem, Result, Status, TaskRequest, TaskState

IoClass = Literal["idle", "best-effort"]
WRAPPER = 'printf "%s" $$ >"$3"; exec >>"$1" 2>&1 </dev/null; __exit=$2; shift 3; "$@"; printf "%s\\n" $? >"$__exit"'
LOG, EXIT, PID, STOP = "nice.log", "nice.exit", "nice.pid", "nice.stop"
KILL_AFTER = 5.0  # seconds from SIGTERM to SIGKILL when a task times out
MAX_READ = 1 << 20  # bytes of log read per poll while a task runs


def _level(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and not 0 <= value <= 19:
        raise ValueError(f"must be 0 to 19, got {value}")


@attrs.frozen
class NiceConfig:
    """``command_executor.nice``: the priority of tasks that do not set their own."""

    default_level: int = attrs.field(default=10, validator=_level)
    default_io_class: IoClass = "idle"


@attrs.frozen
class NiceTaskConfig:
    """A task's ``nice:`` section; ``None`` takes the system config's default."""

    level: int | None = attrs.field(default=None, validator=_level)
    io_class: IoClass | None = None


def _structure(cls: type, data: Any, where: str) -> tuple[Any, list[Problem]]:
    """``structure_strict``, with attrs validators run per field so each problem names its key."""
    with attrs.validators.disabled():  # a validator raising inside cattrs loses the key path
        value, problems = offload.structure_strict(cls, data, where)
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cls) if value is not None else ()
    for field in fields:
        try:
            if field.validator is not None:
                field.validator(value, field, getattr(value, field.name))
        except ValueError as e:
            problems.append(Problem(f"{where}.{field.name}", str(e), fatal=True))
    return (None if problems else value), problems


def _path(handle: Handle, name: str) -> str:
    return os.path.join(handle.io_path, name)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:  # not there (yet), or a process gone while /proc was read
        return None


def _exit_code(handle: Handle) -> int | None:
    text = _read(_path(handle, EXIT))  # complete once its newline is there
    return int(text) if text and text.endswith("\n") else None


def _stop(handle: Handle) -> dict[str, Any] | None:
    text = _read(_path(handle, STOP))  # why and when the task was told to stop
    return json.loads(text) if text else None


def _write_stop(handle: Handle, why: str, kill_at: float) -> None:
    old = _stop(handle)
    if old is not None:  # a cancel after a timeout keeps the first reason and the earlier kill
        why, kill_at = old["why"], min(kill_at, old["kill_at"])
    tmp = _path(handle, STOP + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"why": why, "kill_at": kill_at}, f)
    os.replace(tmp, _path(handle, STOP))


def _proc_stat(pid: int) -> list[str] | None:
    """State, parent and process group of ``pid`` from ``/proc`` (Linux); ``None`` when gone."""
    text = _read(f"/proc/{pid}/stat")
    return text[text.rfind(")") + 2 :].split()[:3] if text else None


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wrapper_alive(handle: Handle) -> bool:
    """Whether the task's wrapper runs: its pid is live, no zombie, and not reused by another program.

    The command line is empty for a moment while ``nice`` and ``ionice`` exec the next program.
    """
    pid = int(handle.state["pid"])
    stat, cmdline = _proc_stat(pid), _read(f"/proc/{pid}/cmdline") or ""
    return stat is not None and stat[0] not in ("Z", "X") and (not cmdline or _path(handle, EXIT) in cmdline)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is left; zombies, which wait for their parent, do not count."""
    stats = (_proc_stat(int(name)) for name in os.listdir("/proc") if name.isdigit())
    return any(s is not None and s[0] not in ("Z", "X") and int(s[2]) == pgid for s in stats)


def _read_log(handle: Handle, offset: int, final: bool) -> tuple[tuple[str, ...], int]:
    """Lines after ``offset`` and the offset after them; only complete lines until ``final``."""
    try:
        with open(_path(handle, LOG), "rb") as f:
            f.seek(offset)
            data = f.read() if final else f.read(MAX_READ)
    except FileNotFoundError:
        return (), offset
    if not final:
        cut = data.rfind(b"\n") + 1
        data = data[:cut] if cut or len(data) < MAX_READ else data  # a line over MAX_READ comes in pieces
    if not data:
        return (), offset
    text = data.decode("utf-8", errors="replace")
    return tuple(text.removesuffix("\n").split("\n")), offset + len(data)


class NiceBackend(offload.Backend):
    """Runs tasks that set ``nice:`` as detached process groups at a lower CPU and I/O priority."""

    name: ClassVar[str] = "nice"
    config_type: ClassVar[type] = NiceConfig
    task_config_type: ClassVar[type | None] = NiceTaskConfig
    install_hint: ClassVar[str] = "pip install -e examples/offload-nice"

    def __init__(self, config: Any = None, context: offload.BackendContext | None = None) -> None:
        super().__init__(config, context)
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # wrappers this process started

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str, context: offload.BackendContext | None = None) -> tuple[Any, list[Problem]]:
        return _structure(NiceConfig, data, where)

    def parse_task_config(self, sections: Mapping[str, Any], where: str) -> tuple[Any, list[Problem]]:
        """``None`` for a task without a ``nice:`` section, else its :class:`NiceTaskConfig`."""
        if self.name not in sections:
            return None, []
        return _structure(NiceTaskConfig, sections[self.name], f"{where}: {self.name}")

    def usable(self, task: TaskRequest) -> list[Problem]:
        if task.settings is None:
            return [Problem(f"task {task.task_id}: nice", "not set for this task (nice: {} runs it at the default level)")]
        return []

    def _priority(self, request: TaskRequest) -> list[str]:
        """The command prefix that sets the task's nice level and I/O class."""
        settings: NiceTaskConfig = request.settings or NiceTaskConfig()
        level = self.config.default_level if settings.level is None else settings.level
        io_class = settings.io_class or self.config.default_io_class
        # nice(1) adds to the driver's own level; without privileges a level cannot go down
        prefix = ["nice", "-n", str(max(0, level - os.getpriority(os.PRIO_PROCESS, 0)))]
        ionice = shutil.which("ionice")
        if ionice:  # -t: run the task even where the I/O class cannot be set
            prefix = [ionice, "-t", "-c", "3" if io_class == "idle" else "2", *(["-n", "7"] if io_class != "idle" else []), *prefix]
        return prefix

    def submit(self, request: TaskRequest) -> Handle:
        prefix = self._priority(request)
        handle = Handle(self.name, request.task_id, request.io_path, {"timeout": request.timeout})
        os.makedirs(handle.io_path, exist_ok=True)
        for name in (LOG, EXIT, PID, STOP):  # left by an earlier attempt of the task
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_path(handle, name))
        files = [_path(handle, name) for name in (LOG, EXIT, PID)]
        argv = [*prefix, "/bin/sh", "-c", WRAPPER, "offload-nice", *files, *request.argv]
        started = time.time()
        try:
            proc = subprocess.Popen(argv, cwd=request.work_path, env={**os.environ, **request.env}, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        except OSError as e:
            raise offload.BackendError(f"task {request.task_id}: cannot start {argv[0]!r} in {request.work_path}: {e.strerror or e}") from None
        self._children[proc.pid] = proc
        return handle.with_state(pid=proc.pid, started_at=started, log_offset=0)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The wrapper writes its pid first thing: if the pid file is there, the task started."""
        path = os.path.join(request.io_path, PID)
        if not (text := _read(path)):
            return None
        state = {"timeout": request.timeout, "pid": int(text), "started_at": os.stat(path).st_mtime, "log_offset": 0}
        return Handle(self.name, request.task_id, request.io_path, state)

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        return [self._poll_one(handle) for handle in handles]

    def _poll_one(self, handle: Handle) -> Status:
        now, pid = time.time(), int(handle.state["pid"])
        proc = self._children.get(pid)
        if proc is not None and proc.poll() is not None:  # reap our own wrapper: no zombies
            del self._children[pid]
        stop, code = _stop(handle), _exit_code(handle)
        if stop is not None:  # stopping: over when no process of the task is left
            finished = not _group_alive(pid)
            if not finished and now >= stop["kill_at"]:
                _signal(pid, signal.SIGKILL)
        else:
            finished = code is not None or not _wrapper_alive(handle)
            timeout = handle.state.get("timeout")
            if not finished and timeout is not None and now - float(handle.state["started_at"]) > timeout:
                _write_stop(handle, f"timed out after {timeout:g} s", now + KILL_AFTER)
                _signal(pid, signal.SIGTERM)
        lines, offset = _read_log(handle, int(handle.state["log_offset"]), final=finished)
        changes: dict[str, Any] = {"log_offset": offset} if offset != handle.state["log_offset"] else {}
        if not finished:
            return Status(TaskState.RUNNING, logs=lines, handle=handle.with_state(**changes) if changes else None)
        changes.setdefault("finished_at", handle.state.get("finished_at") or now)
        state, reason = self._outcome(handle)
        return Status(state, exit_code=code, reason=reason, logs=lines, handle=handle.with_state(**changes))

    @staticmethod
    def _outcome(handle: Handle) -> tuple[TaskState, str | None]:
        code, stop = _exit_code(handle), _stop(handle)
        if code is None and stop is not None:
            return (TaskState.CANCELLED if stop["why"] == "cancelled" else TaskState.FAILED), stop["why"]
        if code is None:
            return TaskState.LOST, "the task's wrapper ended without recording an exit code"
        return (TaskState.SUCCEEDED, None) if code == 0 else (TaskState.FAILED, f"exit code {code}")

    def collect(self, handle: Handle) -> Result:
        if "finished_at" not in handle.state:
            raise offload.BackendError(f"task {handle.task_id} is still running; collect it when it has finished")
        proc = self._children.pop(int(handle.state["pid"]), None)
        if proc is not None:  # reap our wrapper, which exits right after the task
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_AFTER)
        state, reason = self._outcome(handle)
        return Result(state, exit_code=_exit_code(handle), error=reason, started_at=handle.state["started_at"], finished_at=handle.state["finished_at"])

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        if _exit_code(handle) is not None:
            return  # it finished: it keeps its real result
        _write_stop(handle, "cancelled", time.time() + grace)
        _signal(int(handle.state["pid"]), signal.SIGTERM if grace > 0 else signal.SIGKILL)

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Sleep up to ``timeout``, waking as soon as one of our own wrappers exits (Linux pidfds)."""
        poller, fds = select.poll(), []
        try:
            for pid in {int(h.state["pid"]) for h in handles} & set(self._children):
                fds.append(os.pidfd_open(pid))
                poller.register(fds[-1], select.POLLIN)
            poller.poll(int(timeout * 1000)) if fds else time.sleep(timeout)
        except OSError:  # out of descriptors: the next poll sees the exit all the same
            time.sleep(timeout)
        finally:
            for fd in fds:
                os.close(fd)

    def check(self) -> offload.Health:
        ok, ionice = shutil.which("nice") is not None, shutil.which("ionice") or "not found (I/O class not set)"
        details = (f"default level {self.config.default_level}, I/O class {self.config.default_io_class}", f"ionice: {ionice}")
        return offload.Health(ok, "nice: ready" if ok else "nice: the nice command is not on PATH", details)

    def close(self) -> None:
        self._children = {pid: proc for pid, proc in self._children.items() if proc.poll() is None}
