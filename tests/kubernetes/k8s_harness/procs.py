"""Child processes of the harness, each with its own log file, stopped by pid only.

A process started for a test session dies with the Python thread that started it
(``PR_SET_PDEATHSIG``: a crashed or killed pytest leaves no apiserver behind; start the
cluster from a thread that lives as long as the cluster, e.g. the main one); a *detached*
one (``python -m k8s_harness up``) is in a session of its own and outlives its starter.
Stopping is by pid (SIGTERM, then SIGKILL), never by name; :func:`stop_pid` checks that a
recorded pid still runs the recorded program before it signals it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


class Proc:
    """One child process; its stdout and stderr go to ``log``."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None, detach: bool = False) -> None:
        self.name, self.argv, self.log, self.env, self.detach = name, list(argv), log, env, detach
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self) -> None:
        if not Path(self.argv[0]).exists():
            raise FileNotFoundError(f"{self.name}: {self.argv[0]} does not exist")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=None if self.detach else _die_with_parent,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        """Raise, naming the log file, when the process has died."""
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.popen.returncode}; its log is {self.log}:\n{tail(self.log)}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(10)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _state(pid: int) -> str:
    """The state letter of ``pid`` in /proc ("" when it does not exist; "Z" for a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def pid_runs(pid: int, program: str) -> bool:
    """Whether ``pid`` is alive and runs a command line that contains ``program``."""
    return _state(pid) not in ("", "Z") and any(program in part for part in cmdline(pid))


def stop_pid(pid: int, program: str, timeout: float = 10.0) -> bool:
    """SIGTERM ``pid`` if it still runs ``program``, SIGKILL after ``timeout``; whether it was running."""
    if not pid_runs(pid, program):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _state(pid) in ("", "Z"):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True
